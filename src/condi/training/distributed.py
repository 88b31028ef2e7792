"""Several GPUs or nodes through ``torch.distributed`` (launch with ``torchrun``).

Every rank sees, per optimiser step, its own slice of the same global batch that a single
process would see (:class:`GlobalBatchSampler`), clip augmentation depends only on
``(seed, epoch, row)``, and gradients are averaged by DDP; so N ranks with per-rank batch B/N
follow the same trajectory as one process accumulating N micro-batches of B/N (BatchNorm
statistics are per micro-batch in both). Only rank 0 writes checkpoints and outputs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group that ``torchrun`` describes (``WORLD_SIZE`` > 1), else run alone.
    Backend: NCCL on CUDA, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    info = DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(info.local_rank)
    return info


def device_for(device: torch.device, info: DistInfo) -> torch.device:
    return (
        torch.device("cuda", info.local_rank) if device.type == "cuda" and info.enabled else device
    )


def wrap(model: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    if not info.enabled:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


class GlobalBatchSampler(Sampler[list[int]]):
    """Batches of one epoch: a seeded permutation cut into global batches of ``batch_size``;
    rank ``r`` of ``world`` gets the r-th of ``world`` equal slices of each global batch.

    The permutation depends only on ``seed``. A final partial batch is kept unless it has fewer
    than 2 clips per part (``parts`` = ``world`` x gradient-accumulation steps): BatchNorm in
    training mode needs two or more values per channel, and all ranks must take the same
    number of steps."""

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world: int = 1,
        parts: int | None = None,
    ) -> None:
        parts = parts or world
        if batch_size % parts:
            raise ValueError(
                f"batch_size {batch_size} is not divisible into {parts} ranks x micro-batches"
            )
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.parts = parts

    def _slices(self) -> list[list[int]]:
        g = torch.Generator().manual_seed(self.seed)
        perm = torch.randperm(self.n, generator=g).tolist()
        out = []
        for start in range(0, self.n, self.batch_size):
            batch = perm[start : start + self.batch_size]
            if len(batch) < 2 * self.parts:  # BatchNorm needs 2+ clips per rank and micro-batch
                continue
            share = -(-len(batch) // self.world)
            out.append(batch[self.rank * share : (self.rank + 1) * share])
        return out

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._slices()

    def __len__(self) -> int:
        return len(self._slices())
