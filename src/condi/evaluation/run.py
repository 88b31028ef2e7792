"""Evaluation stages: per-clip test scores, computed once per (dataset, fold, model) and
stored, then the whole grid of samplers, K and Ks from them (docs/method.md, section 6).

Only :func:`clip_scores` (:func:`scoring_model`, then :func:`model_clip_scores`) runs a model:
it imports torch when called, so that the grid stage (``condi evaluate grid``, numpy and pandas
over stored scores) starts without it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from condi.evaluation.grid import Videos, baseline_grid, student_accuracy, student_grid
from condi.io import atomic_path
from condi.metrics import eq1_labels

if TYPE_CHECKING:
    from condi.data.indexed import IndexedData

log = logging.getLogger(__name__)


def clip_scores(
    params: dict[str, Any], checkpoint: str | Path, data: IndexedData
) -> dict[str, np.ndarray]:
    """Per-clip outputs of a teacher (logits) or student (logits, confidence logit) on every
    test clip, in index order."""
    model, ckpt = scoring_model(checkpoint, data)
    return model_clip_scores(params, model, ckpt, data)


def scoring_model(checkpoint: str | Path, data: IndexedData) -> tuple[Any, dict[str, Any]]:
    """The model of ``checkpoint`` and its checkpoint dict, checked against the index (its
    class count): a bad file is named before any scoring starts."""
    from condi.models.checkpoint import load_model

    model, ckpt = load_model(checkpoint)
    if ckpt["num_classes"] != data.num_classes:
        raise ValueError(
            f"{checkpoint}: trained for {ckpt['num_classes']} classes, the index has {data.num_classes}"
        )
    return model, ckpt


def model_clip_scores(
    params: dict[str, Any], model: Any, ckpt: dict[str, Any], data: IndexedData
) -> dict[str, np.ndarray]:
    """:func:`clip_scores` with the model already loaded (:func:`scoring_model`)."""
    from condi.data.indexed import loader_workers
    from condi.inference import forward_rows
    from condi.runtime import setup

    device = setup(params["seed"], params["threads"], params["device"])
    model.to(device)
    rows = data.rows("test")
    out = forward_rows(
        model,
        data,
        rows,
        data.labels(rows),
        params["data"],
        params["evaluation"]["batch_size"],
        device,
        num_workers=loader_workers(params, data),
    )
    method = {"method": np.array(ckpt["method"])} if ckpt.get("method") else {}
    return {"rows": rows.astype(np.int64), **out, **method}


def save_scores(path: str | Path, scores: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **scores)


def load_scores(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: scores not found (run `condi evaluate scores`)")
    try:
        with np.load(path) as f:
            return {k: f[k] for k in f.files if k != "method"}
    except Exception as exc:
        raise ValueError(f"{path}: unreadable scores file: {exc}") from exc


def scores_by_method(paths: list[str | Path]) -> dict[str, dict[str, np.ndarray]]:
    """``{method: scores}`` of student score files, each naming its method (in path order)."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for path in paths:
        scores = load_scores(path)
        with np.load(path) as f:
            if "method" not in f.files:
                raise ValueError(f"{path}: not a student's scores (no method recorded)")
            method = str(f["method"])
        if method in out:
            raise ValueError(f"{path}: a second {method} student")
        out[method] = scores
    return out


def _test_videos(index: pd.DataFrame, rows: np.ndarray, manifest: pd.DataFrame | None) -> Videos:
    test = index.iloc[rows]
    unamb = None
    if manifest is not None:
        m = manifest.set_index(["video", "clip_index"])["ambiguous"]
        keys = pd.MultiIndex.from_arrays([test["video"], test["clip_index"]])
        unamb = ~m.reindex(keys).fillna(False).to_numpy(dtype=bool)
    return Videos.from_index(test, unamb)


def load_manifest(root: str | Path) -> pd.DataFrame | None:
    """The synthetic dataset's ground truth of ambiguous clips, when the root has one."""
    path = Path(root) / "manifest.parquet"
    return pd.read_parquet(path) if path.is_file() else None


def evaluate(
    params: dict[str, Any],
    index: pd.DataFrame,
    teacher_scores: dict[str, np.ndarray],
    student_scores: dict[str, dict[str, np.ndarray]] | None = None,
    manifest: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Baselines (no student) or, with ``student_scores`` (method -> scores), every
    student-ranked method, at every K of ``params['evaluation']``."""
    return evaluate_grid(params, index, teacher_scores, student_scores, manifest)[0]


def evaluate_grid(
    params: dict[str, Any],
    index: pd.DataFrame,
    teacher_scores: dict[str, np.ndarray],
    student_scores: dict[str, dict[str, np.ndarray]] | None = None,
    manifest: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`evaluate` and, for every row, each test video's correctness: ``(rows,
    per-video rows)`` (``condi.evaluation.grid``, its module docstring), the per-video rows
    with the video's path (``video``) beside its ``video_id`` where the index has it."""
    ev = params["evaluation"]
    rows = teacher_scores["rows"]
    videos = _test_videos(index, rows, manifest)
    ks = sorted(ev["K"])
    if not student_scores:
        df, per_video = baseline_grid(teacher_scores["logits"], videos, ks, ev["random_seeds"])
        return df, _with_paths(per_video, index)
    z_test = eq1_labels(teacher_scores["logits"], index["label"].to_numpy()[rows])
    frames, per_video = [], []
    for method, s in student_scores.items():
        if not np.array_equal(s["rows"], rows):
            raise ValueError(f"{method}: student scores cover other test clips than the teacher's")
        df, pv = student_grid(
            method,
            teacher_scores["logits"],
            s["logits"],
            s.get("confidence_logit"),
            videos,
            ks,
            z_test,
            split_k=ev["Ks_K"],
            split_ks=ev["Ks"],
        )
        df["student_dense_top1"] = student_accuracy(s["logits"], videos)
        frames.append(df)
        per_video.append(pv)
    return (
        pd.concat(frames, ignore_index=True),
        _with_paths(pd.concat(per_video, ignore_index=True), index),
    )


def _with_paths(per_video: pd.DataFrame, index: pd.DataFrame) -> pd.DataFrame:
    if "video" not in index.columns or "video_id" not in index.columns:
        return per_video
    paths = index.drop_duplicates("video_id").set_index("video_id")["video"]
    out = per_video.copy()
    out.insert(
        out.columns.get_loc("video_id") + 1, "video", paths.reindex(out["video_id"]).to_numpy()
    )
    return out
