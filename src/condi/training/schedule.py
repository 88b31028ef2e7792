"""Optimisers and learning-rate schedules (docs/method.md, section 2, paper section IV-A)."""

from __future__ import annotations

import torch
from torch import nn


def teacher_optimizer(model: nn.Module, cfg: dict) -> torch.optim.SGD:
    """SGD with momentum and weight decay (the 3D-ResNets convention)."""
    return torch.optim.SGD(
        model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"]
    )


def teacher_lr(epoch: int, cfg: dict) -> float:
    """Step schedule: ``lr * lr_step ** (number of milestones <= epoch)`` (epochs 0-based)."""
    n = sum(1 for m in cfg.get("lr_milestones", []) if epoch >= m)
    return cfg["lr"] * cfg.get("lr_step", 0.1) ** n


def student_optimizer(student: nn.Module, cfg: dict) -> torch.optim.SGD:
    """Two parameter groups: ``base`` (backbone + classifier) and ``confidence`` (the one-logit
    head). Both start at ``alpha = cfg['lr']``; :func:`student_lrs` sets them per epoch."""
    groups = [
        {"params": list(student.base_parameters()), "name": "base"},
        {"params": list(student.confidence_parameters()), "name": "confidence"},
    ]
    return torch.optim.SGD(
        groups, lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"]
    )


def student_lrs(
    epoch: int,
    alpha: float,
    lr_div: float = 1.25,
    conf_lr_div: float = 5.0,
    conf_alpha: float | None = None,
) -> tuple[float, float]:
    """Learning rates ``(base, confidence)`` for 0-based ``epoch``.

    Paper IV-A: the rest of the network "is divided by 1.25 every epoch" and the confidence
    branch "starts equal to the rest and is divided by 5 after every epoch from the second on".
    Read as: base = alpha / 1.25^epoch; confidence = alpha for epochs 0 and 1, then
    alpha / 5^(epoch - 1) (divided after the second epoch, the third, ...). ``conf_alpha``
    (``conf_lr``; default alpha) is the confidence branch's start instead: when fine-tuning, the
    branch is new and trained from scratch (docs/method.md, section 2.5).
    """
    base = alpha / lr_div**epoch
    start = alpha if conf_alpha is None else conf_alpha
    conf = start / conf_lr_div ** max(0, epoch - 1)
    return base, conf


def set_lrs(optimizer: torch.optim.Optimizer, lrs: dict[str, float] | float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lrs if isinstance(lrs, float) else lrs[group.get("name", "base")]
