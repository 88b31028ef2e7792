"""Pieces shared by the teacher and student trainers: data, the epoch step, checkpoints."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from condi.data import flips
from condi.data.dataset import ClipDataset
from condi.data.index import read_index
from condi.io import load_npy, load_torch, save_torch
from condi.training.distributed import DistInfo, GlobalBatchSampler

log = logging.getLogger(__name__)


TIMING_KEYS = ("clips_per_s", "epoch_time_s")


@dataclass
class IndexedData:
    """An index (one row per clip) with its metadata and clip cache."""

    index: pd.DataFrame
    meta: dict[str, Any]
    cache_path: str

    @property
    def num_classes(self) -> int:
        return int(self.meta["num_classes"])

    def rows(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.index["split"].to_numpy() == split)

    def labels(self, rows: np.ndarray) -> np.ndarray:
        return self.index["label"].to_numpy()[rows]

    def video_ids(self, rows: np.ndarray) -> np.ndarray:
        return self.index["video_id"].to_numpy()[rows]


def load_data(index_path: str | Path, cache_path: str | Path) -> IndexedData:
    df, meta = read_index(index_path)
    cache_path = Path(cache_path)
    if not cache_path.is_file():
        raise FileNotFoundError(f"{cache_path}: clip cache not found (run `condi data cache`)")
    arr = load_npy(cache_path, mmap_mode="r")
    if arr.shape[0] != len(df):
        raise ValueError(
            f"{cache_path}: clip cache has {arr.shape[0]} clips but {index_path} lists {len(df)}"
        )
    return IndexedData(df, meta, str(cache_path))


def train_loader(
    data: IndexedData,
    rows: np.ndarray,
    data_cfg: dict,
    batch_size: int,
    seed: int,
    epoch: int,
    dist: DistInfo | None = None,
    accumulate: int = 1,
) -> DataLoader:
    """Training batches of one epoch: order and augmentation depend only on ``(seed, epoch)``,
    so a resumed run, a run with DataLoader workers and a DDP run see the same clips. Flips
    follow ``data_cfg["flip"]`` for this dataset (:func:`condi.data.flips.table_for`)."""
    dist = dist or DistInfo()
    epoch_seed = seed * 1009 + epoch
    ds = ClipDataset(
        data.cache_path,
        rows,
        data.labels(rows),
        crop_size=data_cfg["crop_size"],
        train=True,
        mean=data_cfg["mean"],
        std=data_cfg["std"],
        aug_seed=epoch_seed,
        flip_labels=flips.table_for(data_cfg, data.meta),
    )
    sampler = GlobalBatchSampler(
        len(rows), batch_size, epoch_seed, dist.rank, dist.world, dist.world * accumulate
    )
    return DataLoader(ds, batch_sampler=sampler)


def run_epoch(
    model: nn.Module,
    loader,
    optimizer: torch.optim.Optimizer,
    step: Callable[[Any, torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict[str, float]]],
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


def save_model(
    path: str | Path,
    model: nn.Module | dict,
    *,
    role: str,
    arch: str,
    kwargs: dict,
    num_classes: int,
    **info: Any,
) -> None:
    """A condi checkpoint: ``{'model': state_dict, 'role', 'arch', 'kwargs', 'num_classes', ...}``."""
    state = model if isinstance(model, dict) else model.state_dict()
    if "history" in info:  # timings vary run to run: keep them in MLflow, not in the weights file
        info["history"] = [
            {k: v for k, v in h.items() if k not in TIMING_KEYS} for h in info["history"]
        ]
    save_torch(
        {
            "model": state,
            "role": role,
            "arch": arch,
            "kwargs": kwargs,
            "num_classes": num_classes,
            **info,
        },
        path,
    )


def save_trained(
    out_path: str | Path, result: Any, spec: dict, data: IndexedData, role: str, **info: Any
) -> None:
    """Write the trained weights (``result.best_model``) as a condi checkpoint and drop the
    resume state beside it (training finished)."""
    from condi.training.loop import state_path_for

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


def load_model(path: str | Path, role: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a model from a condi checkpoint written by :func:`save_model`."""
    from condi.models import build_model, build_student

    ckpt = load_torch(path)
    if not isinstance(ckpt, dict) or "model" not in ckpt or "arch" not in ckpt:
        raise ValueError(f"{path}: not a condi checkpoint (expected keys 'model' and 'arch')")
    if role is not None and ckpt.get("role") != role:
        raise ValueError(f"{path}: expected a {role} checkpoint, got {ckpt.get('role')!r}")
    builder = build_student if ckpt["role"] == "student" else build_model
    model = builder(ckpt["arch"], ckpt["num_classes"], **ckpt["kwargs"])
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights do not fit {ckpt['arch']}: {exc}") from exc
    return model, ckpt
