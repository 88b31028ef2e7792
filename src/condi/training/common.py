"""Pieces shared by the teacher and student trainers: the training batches, the epoch step and
the trained checkpoint."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from condi.data.dataset import ClipDataset
from condi.data.indexed import IndexedData
from condi.models.checkpoint import save_model
from condi.training.distributed import DistInfo, GlobalBatchSampler

log = logging.getLogger(__name__)


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
    so a resumed run, a run with DataLoader workers and a DDP run see the same clips."""
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
