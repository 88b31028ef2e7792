"""Ambiguity detection (docs/method.md, section 5, issue 6.4): how well each clip-ranking score tells the
clips the teacher gets right from the others, and, on the synthetic dataset, which clips the
samplers pick.

From the stored per-clip test scores (``condi evaluate scores``), per (dataset, fold, teacher,
student):

* ``auroc`` / ``teacher_correct``: the AUROC of each score for "teacher correct on this test
  clip" (Eq. 1 on test clips): z~ of ``condi_sr`` and ``bce_conf``, -H of ``st_ent``,
  max-softmax of ``maxprob``, c of ``st_conf`` (each method's own ranking score,
  ``primary = True``), every other score each student offers (``primary = False``; z~ only where the method
  trains the confidence head), and the
  teacher's own max-softmax as a reference (method ``teacher``);
* ``auroc`` / ``teacher_correct_within_video``: the same AUROC computed within each test video
  (its clips ranked against each other only, which is what a sampler does) and averaged over
  the videos with an unweighted mean (every video counts once, however many clips it has);
  videos whose clips are all right or all wrong have no AUROC and are skipped (``n_videos``:
  the videos averaged; ``n_pos`` / ``n_neg``: their clips). The pooled ``teacher_correct``
  also rewards a score for telling easy videos from hard ones; the within-video one does not;
* synthetic data only (``<root>/manifest.parquet``): ``auroc`` / ``clean_vs_<kind>``: the AUROC
  of the score for "clean" against the clips of one ambiguity kind (clips of both only), and
  ``clean_vs_ambiguous`` against all ambiguous clips; ``teacher_correct_rate`` per kind; and
  ``unambiguous_share``: the share of the clips each sampler sends to the teacher at K = 1, 3, 5
  that the manifest marks clean (from the evaluation grid itself,
  ``condi.evaluation.run.evaluate``), beside the share of clean clips among all test clips
  (method ``all clips``).

Long columns: :data:`COLUMNS`. The Markdown is a pivot (folds averaged).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from condi.io import write_csv, write_text
from condi.methods import METHOD_REGISTRY, METHODS, get_method
from condi.metrics import auroc, eq1_labels, softmax_np
from condi.scores import student_clip_scores

COLUMNS = [
    "dataset",
    "fold",
    "teacher",
    "student",
    "method",
    "score",
    "primary",
    "metric",
    "target",
    "K",
    "value",
    "n_pos",
    "n_neg",
    "n_videos",
]
SCORE_LABELS = {"z_tilde": "z~", "neg_entropy": "-H", "max_prob": "max-softmax"}
SHARE_KS = (1, 3, 5)
# the teacher's reference, the baselines, the students (ConDi-SR last), all clips
METHOD_ORDER = [
    "teacher",
    "oracle",
    "random",
    "equidistant",
    *(m for m in METHODS if m != "condi_sr"),
    "condi_sr",
    "all clips",
]


def score_label(method: str, score: str) -> str:
    if method == "st_conf" and score == "z_tilde":
        return "c"
    return SCORE_LABELS.get(score, score)


def _auroc_row(method: str, score: str, primary: bool, target: str, s, pos) -> dict[str, Any]:
    pos = np.asarray(pos).astype(bool)
    return {
        "method": method,
        "score": score,
        "primary": primary,
        "metric": "auroc",
        "target": target,
        "value": auroc(s, pos),
        "n_pos": int(pos.sum()),
        "n_neg": int((~pos).sum()),
    }


def within_video_auroc(
    scores: np.ndarray, positive: np.ndarray, video_ids: np.ndarray
) -> tuple[float, int, int, int]:
    """The AUROC of ``scores`` for ``positive`` within each video (Mann-Whitney U with average
    ranks for ties, as :func:`condi.metrics.auroc`), averaged over the videos that
    have clips of both classes, each video weighted equally. Returns ``(mean AUROC, videos
    averaged, positive clips, negative clips in them)``; NaN mean when no video has both."""
    pos = np.asarray(positive).astype(bool)
    df = pd.DataFrame({"v": np.asarray(video_ids), "s": np.asarray(scores, dtype=np.float64)})
    df["r"] = df.groupby("v")["s"].rank(method="average").where(pos, 0.0)
    df["p"] = pos
    g = df.groupby("v")
    n_pos, n, rank_sum = g["p"].sum(), g.size(), g["r"].sum()
    n_neg = n - n_pos
    ok = (n_pos > 0) & (n_neg > 0)
    if not ok.any():
        return math.nan, 0, 0, 0
    auc = (rank_sum[ok] - n_pos[ok] * (n_pos[ok] + 1) / 2) / (n_pos[ok] * n_neg[ok])
    return float(auc.mean()), int(ok.sum()), int(n_pos[ok].sum()), int(n_neg[ok].sum())


def _within_row(method: str, score: str, primary: bool, s, pos, video_ids) -> dict[str, Any]:
    value, n_videos, n_pos, n_neg = within_video_auroc(s, pos, video_ids)
    return {
        "method": method,
        "score": score,
        "primary": primary,
        "metric": "auroc",
        "target": "teacher_correct_within_video",
        "value": value,
        "n_pos": n_pos,
        "n_neg": n_neg,
        "n_videos": n_videos,
    }


def _kind_rows(method: str, score: str, primary: bool, s: np.ndarray, kinds: np.ndarray):
    clean = kinds == "clean"
    out = [_auroc_row(method, score, primary, "clean_vs_ambiguous", s, clean)]
    for kind in sorted(set(kinds) - {"clean"}):
        sel = clean | (kinds == kind)
        out.append(_auroc_row(method, score, primary, f"clean_vs_{kind}", s[sel], clean[sel]))
    return out


def clip_kinds(index: pd.DataFrame, rows: np.ndarray, manifest: pd.DataFrame) -> np.ndarray:
    """The manifest's kind of every test clip ``rows`` (``clean`` where it lists none)."""
    test = index.iloc[rows]
    m = manifest.set_index(["video", "clip_index"])["kind"]
    keys = pd.MultiIndex.from_arrays([test["video"], test["clip_index"]])
    return m.reindex(keys).fillna("clean").to_numpy(dtype=object).astype(str)


def compute(
    params: dict[str, Any],
    index: pd.DataFrame,
    teacher_scores: dict[str, np.ndarray],
    student_scores: dict[str, dict[str, np.ndarray]],
    manifest: pd.DataFrame | None = None,
    share_ks: tuple[int, ...] = SHARE_KS,
) -> pd.DataFrame:
    """The long ambiguity table of one (dataset, fold, teacher, student) (module docstring)."""
    rows = teacher_scores["rows"]
    labels = index["label"].to_numpy()[rows]
    correct = eq1_labels(teacher_scores["logits"], labels).astype(bool)
    kinds = clip_kinds(index, rows, manifest) if manifest is not None else None
    video_ids = index["video_id"].to_numpy()[rows]
    t_max = softmax_np(teacher_scores["logits"].astype(np.float64)).max(axis=1)
    out = [
        _auroc_row("teacher", "max_prob", True, "teacher_correct", t_max, correct),
        _within_row("teacher", "max_prob", True, t_max, correct, video_ids),
    ]
    if kinds is not None:
        out += _kind_rows("teacher", "max_prob", True, t_max, kinds)
        for kind in ["clean", *sorted(set(kinds) - {"clean"})]:
            sel = kinds == kind
            out.append(
                {
                    "method": "teacher",
                    "score": "",
                    "primary": True,
                    "metric": "teacher_correct_rate",
                    "target": kind,
                    "value": float(correct[sel].mean()) if sel.any() else np.nan,
                    "n_pos": int(correct[sel].sum()),
                    "n_neg": int((~correct[sel]).sum()),
                }
            )
    for method, s in student_scores.items():
        if not np.array_equal(s["rows"], rows):
            raise ValueError(f"{method}: student scores cover other test clips than the teacher's")
        scores = student_clip_scores(s["logits"], s.get("confidence_logit"))
        spec = get_method(method)
        primary_score = spec.ranking
        for name in ("z_tilde", "neg_entropy", "max_prob"):
            # an untrained confidence head's z~ is not reported
            if name not in scores or (name == "z_tilde" and not spec.trains_confidence):
                continue
            primary = name == primary_score
            out.append(_auroc_row(method, name, primary, "teacher_correct", scores[name], correct))
            out.append(_within_row(method, name, primary, scores[name], correct, video_ids))
            if kinds is not None:
                out += _kind_rows(method, name, primary, scores[name], kinds)
    df = pd.DataFrame(out)
    if manifest is not None:
        df = pd.concat(
            [df, _shares(params, index, teacher_scores, student_scores, manifest, kinds, share_ks)]
        )
    return df.reindex(
        columns=[c for c in COLUMNS if c not in ("dataset", "fold", "teacher", "student")]
    )


def _shares(params, index, teacher_scores, student_scores, manifest, kinds, share_ks):
    from condi.evaluation.run import evaluate

    p = {**params, "evaluation": {**params["evaluation"], "K": list(share_ks)}}
    frames = [evaluate(p, index, teacher_scores, None, manifest)]
    if student_scores:
        frames.append(evaluate(p, index, teacher_scores, student_scores, manifest))
    grid = pd.concat(frames, ignore_index=True)
    grid = grid[grid["method"].isin(METHOD_ORDER) & grid["K"].isin([str(k) for k in share_ks])]
    shares = pd.DataFrame(
        {
            "method": grid["method"],
            "score": [
                METHOD_REGISTRY[m].ranking if m in METHOD_REGISTRY else "" for m in grid["method"]
            ],
            "primary": True,
            "metric": "unambiguous_share",
            "target": "unambiguous",
            "K": grid["K"].astype(int),
            "value": grid["unambiguous_share"].astype(float),
        }
    )
    base = pd.DataFrame(
        [
            {
                "method": "all clips",
                "score": "",
                "primary": True,
                "metric": "unambiguous_share",
                "target": "unambiguous",
                "K": k,
                "value": float((kinds == "clean").mean()),
                "n_pos": int((kinds == "clean").sum()),
                "n_neg": int((kinds != "clean").sum()),
            }
            for k in share_ks
        ]
    )
    return pd.concat([shares, base], ignore_index=True)


def assemble(csvs: list[str | Path]) -> pd.DataFrame:
    frames = [pd.read_csv(p) for p in csvs]
    long = pd.concat(frames, ignore_index=True).reindex(columns=COLUMNS)
    long["K"] = long["K"].astype("Int64")
    return long


def _order(method: str) -> int:
    return METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)


def auroc_table(long: pd.DataFrame, primary_only: bool = True) -> pd.DataFrame:
    """Rows (dataset, teacher+student, method, score), columns the AUROC targets; folds
    averaged. The teacher's reference row is listed once per teacher+student."""
    df = long[long["metric"] == "auroc"].copy()
    df = df[df["primary"].astype(str).str.lower() == "true"] if primary_only else df
    df["model"] = df["teacher"] + "+" + df["student"]
    df["score"] = [score_label(m, s) for m, s in zip(df["method"], df["score"], strict=True)]
    t = df.pivot_table(
        index=["dataset", "model", "method", "score"],
        columns="target",
        values="value",
        aggfunc="mean",
    )
    # a target whose AUROC is undefined everywhere (e.g. no video with right and wrong clips
    # for the within-video AUROC) keeps its column, empty, rather than vanishing
    targets = set(df["target"])
    cols = ["teacher_correct", "teacher_correct_within_video", "clean_vs_ambiguous"] + sorted(
        c for c in targets if c.startswith("clean_vs_") and c != "clean_vs_ambiguous"
    )
    t = t.reindex(columns=[c for c in cols if c in targets])
    keys = sorted(t.index, key=lambda i: (i[0], i[1], _order(i[2]), i[3]))
    return t.loc[keys]


def share_table(long: pd.DataFrame) -> pd.DataFrame:
    """Rows (dataset, teacher+student, method), columns K: share of the teacher's clips that
    are clean (synthetic manifest), folds averaged."""
    df = long[long["metric"] == "unambiguous_share"].copy()
    if df.empty:
        return pd.DataFrame()
    df["model"] = df["teacher"] + "+" + df["student"]
    t = df.pivot_table(
        index=["dataset", "model", "method"], columns="K", values="value", aggfunc="mean"
    )
    keys = sorted(t.index, key=lambda i: (i[0], i[1], _order(i[2])))
    return t.loc[keys]


def _fmt(t: pd.DataFrame, prefix: str = "") -> str:
    flat = t.copy()
    flat.columns = [f"{prefix}{c}" for c in flat.columns]
    flat = flat.map(lambda v: "" if pd.isna(v) else f"{v:.3f}").reset_index()
    return flat.to_markdown(index=False, disable_numparse=True) + "\n"


def _within_counts(long: pd.DataFrame) -> str:
    """``: 12 of 40 videos (synthetic, fold 1), ...``: how many videos the within-video AUROC
    averages (the teacher's reference row: every score sees the same clips' labels)."""
    rows = long[(long["target"] == "teacher_correct_within_video") & (long["method"] == "teacher")]
    if rows.empty or "n_videos" not in rows:
        return ""
    parts = [
        f"{int(r.n_videos)} videos ({r.dataset}, fold {r.fold}, {r.teacher})"
        for r in rows.drop_duplicates(["dataset", "fold", "teacher"]).itertuples()
        if pd.notna(r.n_videos)
    ]
    return ": " + ", ".join(parts) if parts else ""


def write(long: pd.DataFrame, out_csv: str | Path, out_md: str | Path) -> None:
    write_csv(long, out_csv)
    text = (
        "Ambiguity detection: AUROC of each clip-ranking score for 'teacher correct on this test "
        "clip' (Eq. 1 on the test set): teacher_correct pools all test clips; "
        "teacher_correct_within_video ranks each video's clips against each other only and "
        "averages over the videos (unweighted; videos whose clips are all right or all wrong "
        "skipped"
        + _within_counts(long)
        + "). On the synthetic dataset also for 'clean' against each ambiguity kind of the "
        "manifest. Each method's own ranking score; the teacher's max-softmax is a reference. "
        "Folds averaged.\n\n" + _fmt(auroc_table(long))
    )
    extra = auroc_table(long, primary_only=False)
    extra = extra[[i[2] != "teacher" for i in extra.index]]
    text += "\nEvery score each student offers (not only the one it ranks by):\n\n" + _fmt(extra)
    rates = long[long["metric"] == "teacher_correct_rate"]
    if not rates.empty:
        r = rates.pivot_table(
            index=["dataset", "teacher"], columns="target", values="value", aggfunc="mean"
        )
        r = r[["clean", *sorted(c for c in r.columns if c != "clean")]]
        text += "\nThe teacher's clip accuracy per kind (synthetic manifest):\n\n" + _fmt(r)
    shares = share_table(long)
    if not shares.empty:
        text += (
            "\nShare of the clips sent to the teacher that the manifest marks unambiguous "
            "(clean), at K = 1, 3, 5; 'all clips' is the share among all test clips.\n\n"
            + _fmt(shares, "K=")
        )
    write_text(out_md, text)
