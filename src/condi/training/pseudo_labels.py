"""Eq. 1 pseudo-labels: ``z_i = 1`` iff the teacher's argmax on training clip ``V_i`` equals the
video's label, computed with the teacher in eval mode and the deterministic test transform
(docs/method.md, section 1). The teacher's raw logits are stored too (float16) for the KD losses.

Stored per (dataset, fold, teacher) as one ``.npz``: ``rows`` (index row positions of the
train and val clips), ``logits`` (float16, n x C), ``z`` (uint8), ``split``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from condi.data.indexed import IndexedData, loader_workers
from condi.inference import forward_rows
from condi.io import atomic_path
from condi.metrics import eq1_labels
from condi.runtime import setup

log = logging.getLogger(__name__)


def crossfit_folds(data: IndexedData, k: int, seed: int) -> np.ndarray:
    """Assign every training video to one of ``k`` folds by GROUP (the index's ``group``
    column: UCF-101's ``<Class>/gGG``, a Kinetics YouTube id; a video without one is its own
    group), stratified by class and seeded; returns the fold of every training clip (in
    ``data.rows("train")`` order).

    A fold teacher must not have trained on a near-duplicate of the clips it judges, so a group
    never straddles two folds. Per class (a group's class is its most frequent label, ties the
    smallest id), the class's groups sorted by key are put in a seeded random order, then the
    larger groups first (stable), and each goes to the fold with the fewest of the class's
    videos so far (ties: the first from a seeded random offset). With one video per group this
    is the round robin ``(i + offset) % k`` over the permuted videos.
    """
    rows = data.rows("train")
    index = data.index
    group_col = index["group"] if "group" in index.columns else index["video"]
    videos = pd.DataFrame(
        {
            "video_id": index["video_id"].to_numpy()[rows],
            "label": index["label"].to_numpy()[rows],
            "group": group_col.astype(str).to_numpy()[rows],
        }
    ).drop_duplicates("video_id")
    members: dict[str, list[int]] = {}
    for vid, group in zip(videos["video_id"], videos["group"], strict=True):
        members.setdefault(group, []).append(int(vid))
    group_label = (
        videos.groupby(["group", "label"])
        .size()
        .rename("n")
        .reset_index()
        .sort_values(["group", "n", "label"], ascending=[True, False, True])
        .drop_duplicates("group")
        .set_index("group")["label"]
    )
    rng = np.random.default_rng(seed)
    fold_of: dict[int, int] = {}
    for _label, block in group_label.groupby(group_label, sort=True):
        keys = sorted(block.index)
        keys = [keys[i] for i in rng.permutation(len(keys))]
        keys.sort(key=lambda g: -len(members[g]))
        offset = int(rng.integers(k))
        sizes = [0] * k
        for key in keys:
            fold = min(range(k), key=lambda f: (sizes[f], (f - offset) % k))
            sizes[fold] += len(members[key])
            for vid in members[key]:
                fold_of[vid] = fold
    return np.array([fold_of[int(v)] for v in data.video_ids(rows)], dtype=np.int64)


def crossfit_judge(
    teacher_logits: np.ndarray,
    folds: np.ndarray,
    k: int,
    fold_logits: Callable[[int], np.ndarray],
) -> np.ndarray:
    """The logits whose argmax decides z (Eq. 1) under cross-fitting.

    ``teacher_logits`` are the given teacher's on the training clips (the first ``len(folds)``
    rows, in ``folds`` order) and then the val clips. Each training clip of fold ``j`` is judged
    by fold teacher ``j`` (trained without fold j): ``fold_logits(j)`` returns its logits on
    fold j's clips in their order. The val rows keep the given teacher's logits."""
    judge = np.array(teacher_logits, copy=True)
    for j in range(k):
        idx = np.flatnonzero(folds == j)
        logits = fold_logits(j)
        if len(logits) != len(idx):
            raise ValueError(f"fold teacher {j}: {len(logits)} logits for {len(idx)} clips")
        judge[idx] = logits
    return judge


def compute_pseudo_labels(
    params: dict[str, Any],
    teacher_model: torch.nn.Module,
    data: IndexedData,
    teacher: str | None = None,
    work_dir: str | Path | None = None,
    pretrained: str | Path | None = None,
) -> dict[str, np.ndarray]:
    """Eq. 1 labels and teacher logits for every train and val clip.

    ``pseudo_labels.source: train`` (the paper): the given teacher judges its own training
    clips. ``crossfit`` (beyond the paper, docs/method.md, section 9): the training videos are split into
    ``crossfit_folds`` stratified folds and each clip is judged by a teacher trained, with the
    same recipe, on the other folds only, so memorised clips are not labelled "teacher
    correct". This costs ``crossfit_folds`` extra teacher trainings (each on
    (k-1)/k of the training set); their checkpoints are kept in ``work_dir``. Under
    ``protocol: transfer`` the fold teachers are fine-tuned from ``pretrained`` like the teacher
    (docs/method.md, section 2.5). Val clips are always judged by the given teacher.
    """
    device = setup(params["seed"], params["threads"], params["device"])
    teacher_model.to(device)
    train_rows, val_rows = data.rows("train"), data.rows("val")
    rows = np.concatenate([train_rows, val_rows])
    labels = data.labels(rows)
    batch = params["evaluation"]["batch_size"]
    workers = loader_workers(params, data)
    out = forward_rows(
        teacher_model, data, rows, labels, params["data"], batch, device, num_workers=workers
    )
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

        recipe = params_hash(params, teacher, folds.tolist(), str(pretrained))

        def fold_logits(j: int) -> np.ndarray:
            ckpt = Path(work_dir) / f"crossfit_{recipe}_{j + 1}of{k}.pt"
            if not ckpt.is_file():
                log.info("crossfit teacher %d/%d on %d clips", j + 1, k, int((folds != j).sum()))
                train_teacher(
                    params,
                    teacher,
                    data,
                    ckpt,
                    train_rows=train_rows[folds != j],
                    pretrained=pretrained,
                )
            model, _ = load_model(ckpt, role="teacher")
            model.to(device)
            held = train_rows[folds == j]
            return forward_rows(
                model,
                data,
                held,
                data.labels(held),
                params["data"],
                batch,
                device,
                num_workers=workers,
            )["logits"]

        judge = crossfit_judge(judge, folds, k, fold_logits)
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
