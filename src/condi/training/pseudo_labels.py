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

from condi.data.indexed import IndexedData
from condi.inference import forward_rows
from condi.io import atomic_path
from condi.metrics import eq1_labels
from condi.runtime import setup

log = logging.getLogger(__name__)


def crossfit_folds(data: IndexedData, k: int, seed: int) -> np.ndarray:
    """Assign every training VIDEO to one of ``k`` folds, stratified by class and seeded;
    returns the fold of every training clip (in ``data.rows("train")`` order)."""
    rows = data.rows("train")
    videos = data.index.iloc[rows].drop_duplicates("video_id")[["video_id", "label"]]
    rng = np.random.default_rng(seed)
    fold_of: dict[int, int] = {}
    for _, group in videos.groupby("label", sort=True):
        ids = group["video_id"].to_numpy()
        ids = ids[rng.permutation(len(ids))]
        offset = int(rng.integers(k))
        for i, vid in enumerate(ids):
            fold_of[int(vid)] = (i + offset) % k
    return np.array([fold_of[int(v)] for v in data.video_ids(rows)])


def compute_pseudo_labels(
    params: dict[str, Any],
    teacher_model: torch.nn.Module,
    data: IndexedData,
    teacher: str | None = None,
    work_dir: str | Path | None = None,
) -> dict[str, np.ndarray]:
    """Eq. 1 labels and teacher logits for every train and val clip.

    ``pseudo_labels.source: train`` (the paper): the given teacher judges its own training
    clips. ``crossfit`` (beyond the paper, SPEC 9): the training videos are split into
    ``crossfit_folds`` stratified folds and each clip is judged by a teacher trained, with the
    same recipe, on the other folds only, so memorised clips are not labelled "teacher
    correct". This costs ``crossfit_folds`` extra teacher trainings (each on
    (k-1)/k of the training set); their checkpoints are kept in ``work_dir``. Val clips are
    always judged by the given teacher.
    """
    device = setup(params["seed"], params["threads"], params["device"])
    teacher_model.to(device)
    train_rows, val_rows = data.rows("train"), data.rows("val")
    rows = np.concatenate([train_rows, val_rows])
    labels = data.labels(rows)
    batch = params["evaluation"]["batch_size"]
    out = forward_rows(teacher_model, data.cache_path, rows, labels, params["data"], batch, device)
    judge = out["logits"].copy()  # whose argmax decides z (Eq. 1)
    pl_cfg = params["pseudo_labels"]
    if pl_cfg["source"] == "crossfit":
        from condi.models.checkpoint import load_model
        from condi.training.teacher import train_teacher

        if teacher is None or work_dir is None:
            raise ValueError("crossfit pseudo-labels need the teacher's name and a work_dir")
        k = pl_cfg["crossfit_folds"]
        folds = crossfit_folds(data, k, params["seed"])
        from condi.training.loop import params_hash

        recipe = params_hash(params, teacher, folds.tolist())
        for j in range(k):
            ckpt = Path(work_dir) / f"crossfit_{recipe}_{j + 1}of{k}.pt"
            if not ckpt.is_file():
                log.info("crossfit teacher %d/%d on %d clips", j + 1, k, int((folds != j).sum()))
                train_teacher(params, teacher, data, ckpt, train_rows=train_rows[folds != j])
            model, _ = load_model(ckpt, role="teacher")
            model.to(device)
            held = train_rows[folds == j]
            fold_out = forward_rows(
                model, data.cache_path, held, data.labels(held), params["data"], batch, device
            )
            judge[np.flatnonzero(folds == j)] = fold_out["logits"]
    # The KD losses keep distilling the real teacher's logits; only z changes with the source.
    z = eq1_labels(judge, labels)
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
