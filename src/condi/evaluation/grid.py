"""The full evaluation grid from stored per-clip scores (docs/method.md, sections 3-6): every sampler at every K
(and every Ks at ``Ks_K``), computed in seconds with no forward pass.

Long-form rows: dataset, fold, teacher, student, method, K (``"dense"`` for dense), Ks,
top1 (percent), top1_std (random only, over seeds), n_videos, n_short (videos with N < K),
n_dense (videos with N <= K: dense by definition, every method sees all their clips),
clips_per_video (mean clips the teacher saw),
unambiguous_share (synthetic data: share of the teacher's clips the manifest marks clean),
auroc_teacher_correct (the ranking score's AUROC for "teacher correct" on test clips).

Per-video rows (:func:`baseline_grid`, :func:`student_grid`; the ``.videos.parquet`` beside
each evaluation CSV, docs/method.md section 5): for every row of the long table, each test
video's correctness, columns :data:`PER_VIDEO_COLUMNS`: method, K, Ks, random_seed, video_id,
correct (0/1: the video's prediction from the method's clips is its label). ``random`` keeps one
block per seed of ``evaluation.random_seeds`` (``random_seed`` set; null for every other
method), so its long-table ``top1`` is the mean of ``correct`` over videos and seeds; every
other row's ``top1`` is the mean over its videos (times 100).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from condi.evaluation.samplers import (
    equidistant,
    prefix_means,
    random_order,
    ranked,
    split_prediction,
)
from condi.methods import get_method
from condi.metrics import auroc, softmax_np
from condi.scores import student_clip_scores

BASELINES = ("random", "equidistant", "dense", "oracle")
PER_VIDEO_COLUMNS = ["method", "K", "Ks", "random_seed", "video_id", "correct"]
_CORRECT = "_correct"  # a row's per-video correctness while the grid is built


@dataclass
class Videos:
    """Test clips grouped per video (clips in temporal order)."""

    labels: np.ndarray  # (V,)
    slices: list[slice]  # clip positions of each video in the per-clip arrays
    unambiguous: np.ndarray | None = None  # (n_clips,) bool, synthetic ground truth
    ids: np.ndarray | None = None  # (V,) video_id of each video (default 0..V-1)

    @classmethod
    def from_index(cls, test_index: pd.DataFrame, unambiguous: np.ndarray | None = None) -> Videos:
        df = test_index.reset_index(drop=True)
        if not (df["video_id"].is_monotonic_increasing):
            raise ValueError("test index rows must be sorted by (video_id, clip_index)")
        bounds = np.flatnonzero(np.diff(df["video_id"].to_numpy())) + 1
        starts = np.concatenate([[0], bounds])
        ends = np.concatenate([bounds, [len(df)]])
        labels = df["label"].to_numpy()[starts]
        ids = df["video_id"].to_numpy()[starts]
        slices = [slice(s, e) for s, e in zip(starts, ends, strict=True)]
        return cls(labels, slices, unambiguous, ids)

    @property
    def video_ids(self) -> np.ndarray:
        return self.ids if self.ids is not None else np.arange(len(self.labels))


def _correct(preds: list[np.ndarray], labels: np.ndarray) -> np.ndarray:
    """(V,) bool: each video's predicted class is its label."""
    return np.array([p.argmax() for p in preds]) == labels


def _accuracy(preds: list[np.ndarray], labels: np.ndarray) -> float:
    return float(_correct(preds, labels).mean() * 100.0)


def _rows_for_orders(
    name: str, orders: list[np.ndarray], teacher_probs: np.ndarray, videos: Videos, ks: list[int]
) -> list[dict]:
    """Top-1 at every K for a sampler given by one clip order per video (each row holds its
    per-video correctness under ``_CORRECT``)."""
    out = []
    means = [
        prefix_means(teacher_probs[sl], o) for sl, o in zip(videos.slices, orders, strict=True)
    ]
    n_videos_clips = np.array([sl.stop - sl.start for sl in videos.slices])  # N per video
    for k in ks:
        preds = [m[min(k, len(m)) - 1] for m in means]
        n_clips = np.array([len(m) for m in means])
        correct = _correct(preds, videos.labels)
        row = {
            "method": name,
            "K": str(k),
            "top1": float(correct.mean() * 100.0),
            _CORRECT: correct,
            "n_short": int((n_clips < k).sum()),
            "n_dense": int((n_videos_clips <= k).sum()),
            "clips_per_video": float(np.minimum(n_clips, k).mean()),
        }
        if videos.unambiguous is not None:
            chosen = np.concatenate(
                [videos.unambiguous[sl][o[:k]] for sl, o in zip(videos.slices, orders, strict=True)]
            )
            row["unambiguous_share"] = float(chosen.mean())
        out.append(row)
    return out


def _pop_correct(rows: list[dict], **extra: object) -> list[dict]:
    """Take the per-video correctness out of ``rows``: one key per row (its method, K, Ks,
    ``extra`` and its ``correct`` vector), for :func:`per_video_frame`."""
    return [
        {"method": r["method"], "K": r["K"], "Ks": r.get("Ks"), **extra, "correct": r.pop(_CORRECT)}
        for r in rows
    ]


def per_video_frame(keys: list[dict], videos: Videos) -> pd.DataFrame:
    """The long per-video frame (:data:`PER_VIDEO_COLUMNS`) of the rows ``keys``."""
    if not keys:
        return pd.DataFrame(columns=PER_VIDEO_COLUMNS)
    n = len(videos.labels)

    def col(name: str) -> np.ndarray:
        return np.repeat(np.array([k.get(name) for k in keys], dtype=object), n)

    return pd.DataFrame(
        {
            "method": col("method").astype(str),
            "K": col("K").astype(str),
            "Ks": pd.array(col("Ks"), dtype="Int64"),
            "random_seed": pd.array(col("random_seed"), dtype="Int64"),
            "video_id": np.tile(videos.video_ids, len(keys)),
            "correct": np.concatenate([k["correct"] for k in keys]).astype(np.int8),
        }
    )


def baseline_grid(
    teacher_logits: np.ndarray, videos: Videos, ks: list[int], seeds: list[int]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``random`` (mean and std over seeds), ``equidistant``, ``dense`` and ``oracle``:
    ``(rows, per-video rows)`` (module docstring; ``random`` per seed)."""
    probs = softmax_np(teacher_logits.astype(np.float64))
    rows: list[dict] = []
    keys: list[dict] = []
    per_seed = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        orders = [random_order(sl.stop - sl.start, rng) for sl in videos.slices]
        seed_rows = _rows_for_orders("random", orders, probs, videos, ks)
        keys += _pop_correct(seed_rows, random_seed=seed)
        per_seed.append(pd.DataFrame(seed_rows))
    rnd = pd.concat(per_seed).drop(columns="method").groupby("K", sort=False).agg(["mean", "std"])
    for k in rnd.index:
        row = {col: rnd.loc[k, (col, "mean")] for col in rnd.columns.get_level_values(0).unique()}
        row.update(
            method="random", K=k, top1_std=float(rnd.loc[k, ("top1", "std")]), n_seeds=len(seeds)
        )
        row["n_short"], row["n_dense"] = int(row["n_short"]), int(row["n_dense"])
        rows.append(row)
    others: list[dict] = []
    for k in ks:
        orders = [equidistant(sl.stop - sl.start, k) for sl in videos.slices]
        others.extend(_rows_for_orders("equidistant", orders, probs, videos, [k]))
    dense = _rows_for_orders(
        "dense",
        [np.arange(sl.stop - sl.start) for sl in videos.slices],
        probs,
        videos,
        [max(sl.stop - sl.start for sl in videos.slices)],
    )
    dense[0].update(K="dense", n_short=0, n_dense=len(videos.labels))
    others.extend(dense)
    orders = [ranked(probs[sl, y]) for sl, y in zip(videos.slices, videos.labels, strict=True)]
    others.extend(_rows_for_orders("oracle", orders, probs, videos, ks))
    keys += _pop_correct(others)
    df = pd.DataFrame(rows + others)
    df["n_videos"] = len(videos.labels)
    return df, per_video_frame(keys, videos)


def baseline_rows(
    teacher_logits: np.ndarray, videos: Videos, ks: list[int], seeds: list[int]
) -> pd.DataFrame:
    """The rows of :func:`baseline_grid`."""
    return baseline_grid(teacher_logits, videos, ks, seeds)[0]


def student_grid(
    method: str,
    teacher_logits: np.ndarray,
    student_logits: np.ndarray,
    confidence_logit: np.ndarray | None,
    videos: Videos,
    ks: list[int],
    z_test: np.ndarray,
    split_k: int | None = None,
    split_ks: list[int] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A student-ranked sampler at every K; for ``condi_sr`` also ``condi_sr_split`` (docs/method.md, section 4)
    at ``split_k`` for every Ks in ``split_ks``: ``(rows, per-video rows)``."""
    t_probs = softmax_np(teacher_logits.astype(np.float64))
    scores = student_clip_scores(student_logits, confidence_logit)
    score = scores[get_method(method).ranking]
    orders = [ranked(score[sl]) for sl in videos.slices]
    rows = _rows_for_orders(method, orders, t_probs, videos, ks)
    roc = auroc(score, z_test)
    for r in rows:
        r["auroc_teacher_correct"] = roc
    if method == "condi_sr" and split_k is not None:
        s_probs = softmax_np(student_logits.astype(np.float64))
        for ks_ in split_ks or []:
            preds, n_short, n_dense = [], 0, 0
            for sl in videos.slices:
                p, _, _ = split_prediction(
                    t_probs[sl],
                    s_probs[sl],
                    scores["z_tilde"][sl],
                    scores["entropy"][sl],
                    split_k,
                    ks_,
                )
                preds.append(p)
                n_short += int(sl.stop - sl.start < split_k)
                n_dense += int(sl.stop - sl.start <= split_k)
            correct = _correct(preds, videos.labels)
            rows.append(
                {
                    "method": "condi_sr_split",
                    "K": str(split_k),
                    "Ks": ks_,
                    "top1": float(correct.mean() * 100.0),
                    _CORRECT: correct,
                    "n_short": n_short,
                    "n_dense": n_dense,
                    "auroc_teacher_correct": roc,
                }
            )
    keys = _pop_correct(rows)
    df = pd.DataFrame(rows)
    df["n_videos"] = len(videos.labels)
    return df, per_video_frame(keys, videos)


def student_rows(*args, **kwargs) -> pd.DataFrame:
    """The rows of :func:`student_grid` (same arguments)."""
    return student_grid(*args, **kwargs)[0]


def student_accuracy(student_logits: np.ndarray, videos: Videos) -> float:
    """The student's own dense video accuracy (for reference)."""
    probs = softmax_np(student_logits.astype(np.float64))
    return _accuracy([probs[sl].mean(0) for sl in videos.slices], videos.labels)
