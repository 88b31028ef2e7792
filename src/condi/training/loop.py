"""A resumable epoch loop shared by the teacher and the students.

After every epoch the full training state (model, optimiser, RNG states, history, the best
model so far, method-specific state such as st_conf's beta) is written atomically to a
``.state.pt`` file beside the output. Re-running an interrupted job resumes from the last
completed epoch, and because every epoch re-seeds its RNGs from ``(seed, epoch)`` the result
is the same as an uninterrupted run (CPU, fixed seed and threads). A job killed mid-epoch
loses at most that epoch.

The state file holds only tensors and plain types (version 2: :class:`FitResult` as a dict,
NumPy's RNG keys as a list) and is read with ``weights_only`` (:func:`condi.io.load_torch`):
a state file holding any other object is refused, the job stops with its name. A version 1
state (a pickled :class:`FitResult`) is still resumed: that one dataclass is allow-listed.
"""

from __future__ import annotations

import copy
import glob
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from condi.io import UnsafeFileError, load_torch, plain_data, save_torch
from condi.progress import epoch_line, progress
from condi.runtime import rng_state, seed_everything, set_rng_state

log = logging.getLogger(__name__)

STATE_VERSION = 2
READABLE_STATE_VERSIONS = (1, 2)


def config_hash(obj: Any) -> str:
    """A stable hash of the configuration a job trains with (resume only when it matches)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def params_hash(params: dict[str, Any], *extra: Any) -> str:
    """The resume key of a job: its params (from a stage command, the stage's own keys:
    condi.pipeline.narrow) without the runtime settings (threads, DataLoader workers: a job
    may resume with others), and ``extra`` facts about its data."""
    from condi.pipeline import RUNTIME_KEYS

    return config_hash([{k: v for k, v in params.items() if k not in RUNTIME_KEYS}, *extra])


@dataclass
class FitResult:
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0  # 1-based, as every epoch number condi shows or stores (0: none yet)
    best_metric: float = float("-inf")
    best_model: dict[str, torch.Tensor] | None = None
    resumed_from: int = 0

    def as_state(self) -> dict[str, Any]:
        """Plain data for the state file (:meth:`from_state` reads it back)."""
        return {
            "history": self.history,
            "best_epoch": self.best_epoch,
            "best_metric": self.best_metric,
            "best_model": self.best_model,
            "resumed_from": self.resumed_from,
        }

    @classmethod
    def from_state(cls, state: FitResult | dict[str, Any]) -> FitResult:
        if isinstance(state, FitResult):  # a version 1 state file
            return state
        return cls(**state)


def state_path_for(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".state.pt")


def remove_stale_temporaries(state_path: Path) -> None:
    """Delete the temporary files a killed job left beside its output and state
    (``.<out>.*.tmp``, see :func:`condi.io.atomic_path`): each is as big as a checkpoint with its
    optimiser state, and nothing reads them. One job per output at a time (Snakemake's lock)."""
    name = state_path.name.removesuffix(".state.pt")
    for tmp in state_path.parent.glob(f".{glob.escape(name)}.*.tmp"):
        log.info("removing %s, left by an interrupted job", tmp)
        tmp.unlink(missing_ok=True)


def fit(
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    seed: int,
    state_path: Path,
    cfg_hash: str,
    set_epoch_lr: Callable[[int], None],
    train_one_epoch: Callable[[int], dict[str, float]],
    evaluate: Callable[[int], dict[str, float]],
    select: str | None = None,
    extra_state: dict[str, Any] | None = None,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
    is_main: bool = True,
) -> FitResult:
    """Train for ``epochs`` epochs, checkpointing after each; returns history and best model.

    ``select`` names the validation metric whose maximum picks the best model (teacher:
    video-level val accuracy); ``None`` keeps the last epoch's weights.
    ``extra_state`` is a mutable dict saved and restored with the state.

    Epochs are numbered from 1 wherever they are shown or stored (the history's ``epoch``,
    ``best_epoch``, the log and progress lines, ``on_epoch_end``'s first argument: MLflow's
    step); the callbacks ``set_epoch_lr``, ``train_one_epoch`` and ``evaluate`` receive the
    0-based index the schedules are written in (docs/method.md, section 2.4). After each epoch
    one line goes to the run's terminal under Snakemake (:func:`condi.progress.progress`).
    """
    extra_state = extra_state if extra_state is not None else {}
    result = FitResult()
    start = 0
    if is_main:
        remove_stale_temporaries(state_path)
    if state_path.exists():
        try:
            state = load_torch(state_path, allow=(FitResult,))
        except UnsafeFileError:
            raise  # never resume from (nor silently replace) a file that holds code
        except ValueError as exc:
            log.warning("%s; starting from scratch", exc)
            state = None
        if (
            state is not None
            and state.get("cfg_hash") == cfg_hash
            and state.get("version") in READABLE_STATE_VERSIONS
        ):
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            extra_state.update(state["extra"])
            result = FitResult.from_state(state["result"])
            start = state["epoch"]
            result.resumed_from = start
            set_rng_state(state["rng"])
            log.info("resuming %s after epoch %d/%d", state_path, start, epochs)
            if is_main:
                progress(f"resuming after epoch {start}/{epochs}")
        elif state is not None:
            log.warning(
                "%s was written with another configuration; starting from scratch", state_path
            )

    for epoch in range(start, epochs):
        seed_everything(seed * 1009 + epoch)
        set_epoch_lr(epoch)
        t0 = time.perf_counter()
        number = epoch + 1
        metrics = {"epoch": number, **train_one_epoch(epoch)}
        metrics["epoch_time_s"] = time.perf_counter() - t0
        metrics.update(evaluate(epoch))
        metrics["lr"] = optimizer.param_groups[0]["lr"]
        result.history.append(metrics)
        score = metrics.get(select, float("nan")) if select else float(epoch)
        if select is None or score > result.best_metric or result.best_model is None:
            result.best_metric = score
            result.best_epoch = number
            result.best_model = copy.deepcopy(
                {k: v.detach().cpu() for k, v in model.state_dict().items()}
            )
        if is_main:
            save_torch(
                {
                    "version": STATE_VERSION,
                    "cfg_hash": cfg_hash,
                    "epoch": epoch + 1,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "extra": plain_data(extra_state, "extra_state"),
                    "result": plain_data(result.as_state(), "result"),
                    "rng": rng_state(),
                },
                state_path,
            )
        log.info("epoch %d/%d %s", number, epochs, {k: round(v, 4) for k, v in metrics.items()})
        if is_main:
            progress(epoch_line(number, epochs, metrics))
        if on_epoch_end is not None:
            on_epoch_end(number, metrics)
    return result
