"""The one training function of the teacher and the students (:func:`train`): device and
seeds, the model, the resumable epoch loop (:func:`condi.training.loop.fit`) over seeded
training batches, validation after every epoch, and the trained checkpoint. What differs
between the two is given to it: the objective's per-batch step, the optimiser and its
learning-rate schedule, and the validation metrics."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from condi.data import flips
from condi.data.indexed import IndexedData, clip_dataset, loader_workers
from condi.inference import forward_rows
from condi.models import build_model, build_student, load_pretrained
from condi.models.checkpoint import load_backbone, save_model, training_config
from condi.runtime import setup
from condi.training.distributed import (
    DistInfo,
    GlobalBatchSampler,
    device_for,
    init_distributed,
    wrap,
)
from condi.training.loop import FitResult, fit, params_hash, state_path_for
from condi.training.schedule import set_lrs

log = logging.getLogger(__name__)

ROLES = ("teacher", "student")
# (model output, labels, index rows) -> (loss, extra scalars to average over the epoch)
Step = Callable[[Any, torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict[str, float]]]
# (outputs of condi.inference.forward_rows on the val clips, their index rows) -> metrics
Validate = Callable[[dict[str, np.ndarray], np.ndarray], dict[str, float]]


def train_loader(
    data: IndexedData,
    rows: np.ndarray,
    data_cfg: dict,
    batch_size: int,
    seed: int,
    epoch: int,
    dist: DistInfo | None = None,
    accumulate: int = 1,
    num_workers: int = 0,
) -> DataLoader:
    """Training batches of one epoch: order and augmentation depend only on ``(seed, epoch)``,
    so a resumed run, a run with ``num_workers`` DataLoader workers (each decoding its clips on
    a resized store) and a DDP run see the same clips. Flips follow ``data_cfg["flip"]`` for
    this dataset (:func:`condi.data.flips.table_for`)."""
    dist = dist or DistInfo()
    epoch_seed = seed * 1009 + epoch
    ds = clip_dataset(
        data,
        rows,
        data.labels(rows),
        data_cfg,
        train=True,
        aug_seed=epoch_seed,
        flip_labels=flips.table_for(data_cfg, data.meta),
    )
    sampler = GlobalBatchSampler(
        len(rows), batch_size, epoch_seed, dist.rank, dist.world, dist.world * accumulate
    )
    return DataLoader(ds, batch_sampler=sampler, num_workers=num_workers)


def run_epoch(
    model: nn.Module,
    loader,
    optimizer: torch.optim.Optimizer,
    step: Step,
    device: torch.device,
    desc: str,
    accumulate: int = 1,
) -> dict[str, float]:
    """One pass over ``loader``; ``step(model_output, labels, rows)`` returns the loss and extra
    scalars to average. Each batch is split into ``accumulate`` micro-batches whose gradients
    are averaged before the optimiser step. Shows a progress bar with the loss and clips/s."""
    model.train()
    totals: dict[str, float] = {}
    n_seen = 0
    t0 = time.perf_counter()
    bar = tqdm(loader, desc=desc, leave=False, mininterval=2.0, disable=None)
    for clips, labels, rows in bar:
        optimizer.zero_grad(set_to_none=True)
        micro = list(zip(*(t.tensor_split(accumulate) for t in (clips, labels, rows)), strict=True))
        for i, (x, y, r) in enumerate(micro):
            sync = (
                contextlib.nullcontext()
                if i == len(micro) - 1 or not hasattr(model, "no_sync")
                else model.no_sync()
            )
            with sync:
                out = model(x.to(device, non_blocking=True))
                loss, extras = step(out, y.to(device), r)
                (loss / accumulate).backward()
            b = y.shape[0]
            n_seen += b
            for k, v in {"loss": float(loss.detach()), **extras}.items():
                totals[k] = totals.get(k, 0.0) + v * b
        optimizer.step()
        bar.set_postfix(
            loss=f"{totals['loss'] / n_seen:.4f}",
            clips_s=f"{n_seen / (time.perf_counter() - t0):.0f}",
        )
    elapsed = time.perf_counter() - t0
    metrics = {f"train_{k}": v / max(n_seen, 1) for k, v in totals.items()}
    metrics["clips_per_s"] = n_seen / max(elapsed, 1e-9)
    return metrics


def save_trained(
    out_path: str | Path, result: FitResult, spec: dict, data: IndexedData, role: str, **info: Any
) -> None:
    """Write the trained weights (``result.best_model``) as a condi checkpoint and drop the
    resume state beside it (training finished)."""
    save_model(
        out_path,
        result.best_model,
        role=role,
        arch=spec["arch"],
        kwargs=spec.get("kwargs", {}),
        num_classes=data.num_classes,
        class_names=list(data.meta.get("class_names", [])),
        history=result.history,
        **info,
    )
    state_path_for(out_path).unlink(missing_ok=True)


@dataclass
class Prepared:
    """A job's device, its place in a torchrun job and its freshly built model."""

    model: nn.Module
    device: torch.device
    dist: DistInfo


def prepare(
    params: dict[str, Any], role: str, name: str, num_classes: int, plain: bool = False
) -> Prepared:
    """Seed every RNG, fix the threads, pick the device (and join a torchrun job), then build
    model ``name`` of ``params['teachers']`` (a classifier) or ``params['students']`` (a
    :class:`~condi.models.StudentModel`; with ``plain``, the student's backbone alone, a
    classifier: pre-training), in that order: the seed decides its initial weights."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    spec = params[f"{role}s"][name]
    device = setup(params["seed"], params["threads"], params["device"])
    dist = init_distributed(device)
    device = device_for(device, dist)
    build = build_student if role == "student" and not plain else build_model
    model = build(spec["arch"], num_classes, **spec.get("kwargs", {}))
    return Prepared(model, device, dist)


def validation(
    params: dict[str, Any],
    model: nn.Module,
    data: IndexedData,
    device: torch.device,
    validate: Validate,
) -> dict[str, float]:
    """``validate`` on the model's outputs for the val clips (eval transform); ``{}`` when the
    index has no val split."""
    val_rows = data.rows("val")
    if len(val_rows) == 0:
        return {}
    out = forward_rows(
        model,
        data,
        val_rows,
        data.labels(val_rows),
        params["data"],
        params["evaluation"]["batch_size"],
        device,
        num_workers=loader_workers(params, data),
    )
    return validate(out, val_rows)


def train(
    params: dict[str, Any],
    role: str,
    name: str,
    data: IndexedData,
    out_path: str | Path,
    *,
    step: Step,
    optimizer: Callable[[nn.Module], torch.optim.Optimizer],
    lrs: Callable[[int], float | dict[str, float]],
    validate: Validate,
    select: str | None,
    resume_key: Sequence[Any],
    desc: str,
    train_rows: np.ndarray | None = None,
    extra_state: dict[str, Any] | None = None,
    tracker=None,
    cfg: dict[str, Any] | None = None,
    init_from: str | Path | None = None,
    pretraining: bool = False,
    **info: Any,
) -> FitResult | None:
    """Train model ``name`` of ``params['teachers' | 'students']`` (``role`` teacher | student,
    with ``params['training'][role]``) on ``train_rows`` (default: the train split) and write
    its checkpoint to ``out_path``.

    ``step`` is the objective's per-batch loss, ``optimizer(model)`` builds the optimiser and
    ``lrs(epoch)`` gives its learning rate(s) (:func:`condi.training.schedule.set_lrs`) for
    that epoch. After every epoch ``validate`` turns the model's outputs on the val clips into
    metrics; ``select`` names the one whose maximum picks the weights to keep (``None``: the
    last epoch's). ``resume_key`` (with the params) decides whether a resume state beside
    ``out_path`` may be resumed; ``extra_state`` is saved and restored with it (the step may
    update it). ``cfg`` is the optimisation recipe (default ``params['training'][role]``).

    Initial weights: with ``init_from`` (fine-tuning, docs/method.md section 2.5) every weight
    but the classifier comes from that pre-trained checkpoint
    (:func:`condi.models.checkpoint.load_backbone`: the head is re-initialised, a student's
    confidence head starts fresh); otherwise a ``pretrained`` checkpoint of the model's spec
    initialises it (non-strict; a student's backbone). ``pretraining`` trains a student's
    backbone as a plain classifier and saves either model with role ``pretrained`` (so that it
    cannot be taken for a target model). The checkpoint records ``best_epoch`` (1-based), ``init_from``,
    ``config`` (the params it trained with: :func:`condi.models.checkpoint.training_config`)
    and ``info``. Returns the loop's result, or ``None`` in the processes of a torchrun job
    other than rank 0 (only rank 0 writes).
    """
    job = prepare(params, role, name, data.num_classes, plain=pretraining)
    model, device, dist = job.model, job.device, job.dist
    spec = params[f"{role}s"][name]
    cfg = params["training"][role] if cfg is None else cfg
    if init_from is not None:
        loaded = load_backbone(model, init_from, arch=spec["arch"])
        log.info("%s %s: %d tensors from %s, fresh: %s", role, name, len(loaded.loaded),
                 init_from, ", ".join(loaded.skipped) or "none")  # fmt: skip
        info["init_from"] = str(init_from)
    elif spec.get("pretrained"):
        target = model.backbone if role == "student" and not pretraining else model
        load_pretrained(target, spec["pretrained"], arch=spec["arch"], strict=False)
    model.to(device)
    trained = wrap(model, dist, device)  # DDP when launched with torchrun
    opt = optimizer(model)
    train_rows = data.rows("train") if train_rows is None else np.asarray(train_rows)

    def train_one_epoch(epoch: int) -> dict[str, float]:
        loader = train_loader(
            data,
            train_rows,
            params["data"],
            cfg["batch_size"],
            params["seed"],
            epoch,
            dist=dist,
            accumulate=cfg["accumulate"],
            num_workers=loader_workers(params, data),
        )
        return run_epoch(
            trained,
            loader,
            opt,
            step,
            device,
            accumulate=cfg["accumulate"],
            desc=f"{desc} e{epoch + 1}",
        )

    result = fit(
        model=model,
        optimizer=opt,
        epochs=cfg["epochs"],
        seed=params["seed"],
        state_path=state_path_for(out_path),
        cfg_hash=params_hash(params, *resume_key),
        set_epoch_lr=lambda epoch: set_lrs(opt, lrs(epoch)),
        train_one_epoch=train_one_epoch,
        evaluate=lambda _epoch: validation(params, model, data, device, validate),
        select=select,
        extra_state=extra_state,
        on_epoch_end=(lambda e, m: tracker.log_metrics(m, step=e))
        if tracker and dist.is_main
        else None,
        is_main=dist.is_main,
    )
    if not dist.is_main:
        return None
    if pretraining:
        info["pretrained_for"] = role
    saved_role = "pretrained" if pretraining else role
    save_trained(
        out_path,
        result,
        spec,
        data,
        saved_role,
        best_epoch=result.best_epoch,
        config=training_config(params),
        **info,
    )
    return result
