"""Eq. 1 pseudo-labels: ``z_i = 1`` iff the teacher's argmax on training clip ``V_i`` equals the
video's label, computed with the teacher in eval mode and the deterministic test transform
(SPEC section 1). The teacher's raw logits are stored too (float16) for the KD losses.

Stored per (dataset, fold, teacher) as one ``.npz``: ``rows`` (index row positions of the
train and val clips), ``logits`` (float16, n x C), ``z`` (uint8), ``split``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from condi.io import atomic_path
from condi.training.common import IndexedData
from condi.training.inference import forward_rows
from condi.training.runtime import setup

log = logging.getLogger(__name__)


def eq1_labels(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Eq. 1: 1 where ``argmax softmax(logits) == y`` (softmax keeps the argmax), else 0."""
    return (np.asarray(logits).argmax(axis=1) == np.asarray(labels)).astype(np.uint8)


def compute_pseudo_labels(
    params: dict[str, Any], teacher_model: torch.nn.Module, data: IndexedData
) -> dict[str, np.ndarray]:
    device = setup(params["seed"], params["threads"], params["device"])
    teacher_model.to(device)
    rows = np.concatenate([data.rows("train"), data.rows("val")])
    labels = data.labels(rows)
    out = forward_rows(
        teacher_model,
        data.cache_path,
        rows,
        labels,
        params["data"],
        params["evaluation"]["batch_size"],
        device,
    )
    z = eq1_labels(out["logits"], labels)
    return {
        "rows": rows.astype(np.int64),
        "logits": out["logits"].astype(np.float16),
        "z": z,
        "split": data.index["split"].to_numpy()[rows].astype("U5"),
    }


def summary(pl: dict[str, np.ndarray]) -> dict[str, float]:
    """The share z = 1 per split (the teacher's clip accuracy under Eq. 1)."""
    out = {}
    for split in ("train", "val"):
        mask = pl["split"] == split
        if mask.any():
            out[f"z1_share_{split}"] = float(pl["z"][mask].mean())
    return out


def save_pseudo_labels(path: str | Path, pl: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **pl)


def load_pseudo_labels(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: pseudo-labels not found (run `condi train pseudo-labels`)"
        )
    try:
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    except Exception as exc:
        raise ValueError(f"{path}: unreadable pseudo-label file: {exc}") from exc
