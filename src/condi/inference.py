"""Batched forward passes over a dataset's clips (eval transform: center crop), used for
pseudo-labels (Eq. 1), validation and the per-clip test scores, on either data path (the clip
cache or a resized store decoded in DataLoader workers: :mod:`condi.data.indexed`).
``batch_size: auto`` runs the model at its fastest batch size per clip on this device
(:mod:`condi.batching`)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from condi.batching import batch_profile
from condi.data.dataset import ClipDataset, make_loader
from condi.data.indexed import IndexedData, clip_dataset


@torch.no_grad()
def forward_rows(
    model: nn.Module,
    clips: IndexedData | str,
    rows: np.ndarray,
    labels: np.ndarray,
    data_cfg: dict,
    batch_size: int | str,
    device: torch.device,
    num_workers: int = 0,
) -> dict[str, np.ndarray]:
    """Run ``model`` in eval mode over the clips ``rows`` of ``clips`` (a dataset, or the path
    of a clip cache), in row order, ``num_workers`` DataLoader workers reading them,
    ``batch_size`` clips at a time (``"auto"``: the model's fastest size per clip,
    :func:`condi.batching.batch_profile`).

    Returns ``{"logits": (n, C) float32}`` for a teacher, plus ``"confidence_logit": (n,)``
    for a student (a model whose forward returns ``(logits, confidence_logit)``).
    """
    if isinstance(clips, IndexedData):
        dataset = clip_dataset(clips, rows, labels, data_cfg, train=False)
    else:
        dataset = ClipDataset(
            clips,
            rows,
            labels,
            crop_size=data_cfg["crop_size"],
            train=False,
            mean=data_cfg["mean"],
            std=data_cfg["std"],
        )
    clip_shape = (3, dataset.clip_len, dataset.crop_size, dataset.crop_size)
    batch = batch_profile(model, device, clip_shape, batch_size).best()
    loader = make_loader(dataset, batch_size=batch, shuffle=False, seed=0, num_workers=num_workers)
    was_training = model.training
    model.eval()
    logits, conf = [], []
    for clips_batch, _, _ in loader:
        out = model(clips_batch.to(device, non_blocking=True))
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
