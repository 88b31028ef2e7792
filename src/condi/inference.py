"""Batched forward passes over cached clips (eval transform: center crop), used for
pseudo-labels (Eq. 1), validation and the per-clip test scores. ``batch_size: auto`` runs the
model at its fastest batch size per clip on this device (:mod:`condi.batching`)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from condi.batching import batch_profile
from condi.data.dataset import ClipDataset, make_loader


@torch.no_grad()
def forward_rows(
    model: nn.Module,
    cache_path: str,
    rows: np.ndarray,
    labels: np.ndarray,
    data_cfg: dict,
    batch_size: int | str,
    device: torch.device,
) -> dict[str, np.ndarray]:
    """Run ``model`` in eval mode over the cached clips ``rows``, ``batch_size`` clips at a
    time (``"auto"``: the model's fastest size per clip, :func:`condi.batching.batch_profile`).

    Returns ``{"logits": (n, C) float32}`` for a teacher, plus ``"confidence_logit": (n,)``
    for a student (a model whose forward returns ``(logits, confidence_logit)``).
    """
    dataset = ClipDataset(
        cache_path,
        rows,
        labels,
        crop_size=data_cfg["crop_size"],
        train=False,
        mean=data_cfg["mean"],
        std=data_cfg["std"],
    )
    clip_shape = (3, dataset.clip_len, dataset.crop_size, dataset.crop_size)
    batch = batch_profile(model, device, clip_shape, batch_size).best()
    loader = make_loader(dataset, batch_size=batch, shuffle=False, seed=0)
    was_training = model.training
    model.eval()
    logits, conf = [], []
    for clips, _, _ in loader:
        out = model(clips.to(device, non_blocking=True))
        if isinstance(out, tuple):
            logits.append(out[0].float().cpu())
            conf.append(out[1].float().cpu())
        else:
            logits.append(out.float().cpu())
    model.train(was_training)
    result = {"logits": torch.cat(logits).numpy() if logits else np.zeros((0, 0), np.float32)}
    if conf:
        result["confidence_logit"] = torch.cat(conf).numpy()
    return result
