"""Table III: top-1 video accuracy of every sampler at every K (docs/method.md, section 6), with paired
bootstrap intervals over test videos (docs/method.md, section 5).

From the per-video correctness the evaluation grid writes beside each CSV
(``condi.evaluation.grid``), every row of the long table gets (percentage points, per fold):

* ``diff_vs_condi_sr`` (``_lo``, ``_hi``): this row's top-1 minus ``condi_sr``'s at the same
  dataset, fold, teacher, student and K; a teacher-only row (student ``-``) is compared with
  the ``condi_sr`` of its teacher's only student (NaN when there are several: the Markdown has
  every student); NaN where there is no ``condi_sr`` (e.g. K = dense);
* ``diff_vs_dense`` (``_lo``, ``_hi``): this row's top-1 minus the teacher's dense top-1.

Intervals are percentile intervals of a paired bootstrap: the test videos of a (dataset, fold)
are resampled with replacement ``tables.bootstrap.resamples`` times (seeded by params ``seed``
and the dataset and fold), and every difference of that fold is computed on the same
resampled videos for both of its methods (all of the fold's rows share the resamples), so what
two methods have in common cancels. ``random``'s per-video value is its correctness averaged
over its seeds (``evaluation.random_seeds``), so the interval is over videos, its seed noise
averaged in; its mean over videos is its ``top1``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from condi.io import write_csv, write_text
from condi.methods import METHODS

KEY = ["dataset", "fold", "teacher", "student", "method", "K", "Ks"]
LONG_COLUMNS = KEY + [
    "top1",
    "top1_std",
    "n_videos",
    "n_short",
    "n_dense",
    "clips_per_video",
    "unambiguous_share",
    "auroc_teacher_correct",
    "student_dense_top1",
    "protocol",
    "pseudo_labels",
    "detach_confidence",
    "kd_reduction",
    "seed",
]
REFERENCES = ("condi_sr", "dense")  # diff_vs_<reference>
DIFF_COLUMNS = [f"diff_vs_{r}{s}" for r in REFERENCES for s in ("", "_lo", "_hi")]
LONG_COLUMNS += DIFF_COLUMNS
# the baselines, the students (ConDi-SR last, next to its split), dense
METHOD_ORDER = [
    "oracle",
    "random",
    "equidistant",
    *(m for m in METHODS if m != "condi_sr"),
    "condi_sr",
    "condi_sr_split",
    "dense",
]


def assemble(eval_csvs: list[str | Path]) -> pd.DataFrame:
    """Concatenate the per-job evaluation CSVs into the long table, sorted and typed."""
    frames = []
    for path in eval_csvs:
        df = pd.read_csv(path, dtype={"K": str})
        if df.empty:
            raise ValueError(f"{path}: empty evaluation file")
        frames.append(df)
    long = pd.concat(frames, ignore_index=True)
    for col in LONG_COLUMNS:
        if col not in long.columns:
            long[col] = np.nan
    long["Ks"] = long["Ks"].astype("Int64")
    long["student"] = long["student"].fillna("-")
    long["_m"] = (
        long["method"].map({m: i for i, m in enumerate(METHOD_ORDER)}).fillna(len(METHOD_ORDER))
    )
    long["_k"] = pd.to_numeric(long["K"], errors="coerce").fillna(np.inf)
    long = long.sort_values(
        ["dataset", "fold", "teacher", "student", "_m", "_k", "Ks"], kind="stable"
    )
    return long.drop(columns=["_m", "_k"])[LONG_COLUMNS].reset_index(drop=True)


# -- paired bootstrap over test videos (module docstring) --------------------------------------


@dataclass(frozen=True)
class Bootstrap:
    """The resampling: params ``tables.bootstrap`` (resamples, level) and ``seed``."""

    resamples: int = 2000
    level: float = 0.95
    seed: int = 0

    @classmethod
    def from_params(cls, params: dict) -> Bootstrap:
        b = params["tables"].get("bootstrap") or {}
        return cls(int(b.get("resamples", 2000)), float(b.get("level", 0.95)), int(params["seed"]))

    def rng(self, *key: object) -> np.random.Generator:
        """The resampling stream of one (dataset, fold): params seed and a hash of the key, so
        folds are resampled independently and a fold's intervals do not depend on the others."""
        return np.random.default_rng([self.seed, zlib.crc32("/".join(map(str, key)).encode())])


def bootstrap_means(x: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``(resamples, rows)``: each row's mean of ``x`` (rows x videos) over ``resamples``
    resamples of the videos with replacement, the same resampled videos for every row.

    A resample is a vector of counts (how often each video was drawn), so all rows' means are
    one matrix product; resamples are drawn in chunks of at most 2^22 draws."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    n = x.shape[1]
    if n == 0:
        raise ValueError("bootstrap over no videos")
    out = np.empty((resamples, x.shape[0]))
    chunk = max(1, (1 << 22) // n)
    for start in range(0, resamples, chunk):
        r = min(chunk, resamples - start)
        idx = rng.integers(0, n, size=(r, n)) + n * np.arange(r)[:, None]
        counts = np.bincount(idx.ravel(), minlength=r * n).reshape(r, n).astype(np.float64)
        out[start : start + r] = counts @ x.T / n
    return out


def interval(reps: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The percentile interval (``lo``, ``hi``) of bootstrap replicates (along axis 0)."""
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(reps, [tail, 1.0 - tail], axis=0)
    return lo, hi


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, boot: Bootstrap, rng: np.random.Generator | None = None
) -> tuple[float, float, float]:
    """``(difference, lo, hi)`` in percentage points of two methods' per-video correctness
    ``a`` and ``b`` (0/1, or a mean over seeds) on the same videos: mean(a) - mean(b) and its
    paired percentile bootstrap interval (the videos resampled, the same for both)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    reps = bootstrap_means(d, boot.resamples, rng or boot.rng())[:, 0] * 100.0
    lo, hi = interval(reps, boot.level)
    return float(d.mean() * 100.0), float(lo), float(hi)


def load_videos(paths: list[str | Path]) -> pd.DataFrame:
    """Concatenate the grid's per-video files (``condi evaluate grid --videos``)."""
    frames = [pd.read_parquet(p) for p in paths]
    if not frames:
        return pd.DataFrame(columns=[*KEY, "random_seed", "video_id", "correct"])
    pv = pd.concat(frames, ignore_index=True)
    pv["student"] = pv["student"].fillna("-")
    pv["K"] = pv["K"].astype(str)
    pv["Ks"] = pv["Ks"].astype("Int64")
    return pv


def _keys(df: pd.DataFrame) -> pd.Series:
    parts = [df[c].astype(str) for c in ("teacher", "student", "method", "K")]
    parts.append(df["Ks"].astype("Int64").fillna(-1).astype("int64").astype(str))
    out = parts[0]
    for p in parts[1:]:
        out = out + "|" + p
    return out


def _fold_matrix(rows: pd.DataFrame, videos: pd.DataFrame, where: str) -> np.ndarray:
    """Rows x videos: each row's per-video correctness (random: the mean over its seeds), NaN
    for rows the per-video files do not cover; checked against the rows' top-1."""
    per = videos.groupby([_keys(videos), "video_id"])["correct"].mean().unstack("video_id")
    if per.isna().to_numpy().any():
        raise ValueError(f"{where}: the per-video files cover different test videos")
    x = per.reindex(_keys(rows)).to_numpy(dtype=np.float64)
    has = ~np.isnan(x).any(axis=1)
    top1 = rows["top1"].to_numpy(dtype=np.float64)
    bad = has & ~np.isclose(x.mean(axis=1) * 100.0, top1, rtol=1e-4, atol=1e-3)
    if bad.any():
        r = rows.iloc[int(np.flatnonzero(bad)[0])]
        raise ValueError(
            f"{where}: {r['method']} K={r['K']}: the per-video file gives top-1 "
            f"{np.nanmean(x[bad][0]) * 100:.4f}, the CSV {r['top1']:.4f} (stale files?)"
        )
    return x


def add_differences(
    long: pd.DataFrame, videos: pd.DataFrame, boot: Bootstrap
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The long table with :data:`DIFF_COLUMNS` filled (module docstring), and ``rivals``:
    condi_sr minus every other method at each K (dense: condi_sr at K minus dense) per
    (dataset, teacher, student), folds averaged (the mean of the folds' differences; the
    interval from the mean over folds of each fold's replicates, folds resampled
    independently). Columns: dataset, teacher, student, rival, K, diff, lo, hi, n_folds,
    n_videos (summed over folds)."""
    long = long.copy()
    for col in DIFF_COLUMNS:
        long[col] = np.nan
    folds: dict[tuple, list] = {}
    for (dataset, fold), rows in long.groupby(["dataset", "fold"], sort=False):
        sel = (videos["dataset"].astype(str) == str(dataset)) & (
            videos["fold"].astype(str) == str(fold)
        )
        if not sel.any():
            continue
        x = _fold_matrix(rows, videos[sel], f"{dataset} fold {fold}")
        has = ~np.isnan(x).any(axis=1)
        meta = rows[["teacher", "student", "method", "K"]].astype(str).to_numpy()
        single = rows["Ks"].isna().to_numpy()
        condi = {
            (t, s, k): i
            for i, (t, s, m, k) in enumerate(meta)
            if m == "condi_sr" and single[i] and has[i]
        }
        dense = {t: i for i, (t, s, m, k) in enumerate(meta) if m == "dense" and has[i]}
        pairs: list[tuple[int, int]] = []  # (a, b): a's correctness minus b's
        tags: list[tuple] = []
        for i, (t, s, _m, k) in enumerate(meta):
            if not has[i]:
                continue
            refs = [j for (tt, ss, kk), j in condi.items() if tt == t and kk == k]
            ref = condi.get((t, s, k)) if s != "-" else (refs[0] if len(refs) == 1 else None)
            if ref is not None:
                pairs.append((i, ref))
                tags.append(("row", i, "condi_sr"))
            if t in dense:
                pairs.append((i, dense[t]))
                tags.append(("row", i, "dense"))
        for (t, s, k), c in condi.items():
            for i, (tt, ss, m, kk) in enumerate(meta):
                rival = has[i] and tt == t and ss in (s, "-") and single[i]
                if rival and m not in ("condi_sr", "condi_sr_split") and (kk == k or m == "dense"):
                    pairs.append((c, i))
                    tags.append(("rival", (dataset, t, s, m, k)))
        if not pairs:
            continue
        a, b = (np.array(v) for v in zip(*pairs, strict=True))
        d = x[a] - x[b]
        obs = d.mean(axis=1) * 100.0
        reps = bootstrap_means(d, boot.resamples, boot.rng(dataset, fold)) * 100.0
        lo, hi = interval(reps, boot.level)
        n_videos = x.shape[1]
        index = rows.index.to_numpy()
        for p, tag in enumerate(tags):
            if tag[0] == "row":
                col = f"diff_vs_{tag[2]}"
                long.loc[index[tag[1]], [col, f"{col}_lo", f"{col}_hi"]] = (obs[p], lo[p], hi[p])
            else:
                folds.setdefault(tag[1], []).append((obs[p], reps[:, p], n_videos))
    out = []
    for (dataset, t, s, m, k), per_fold in folds.items():
        reps = np.mean([r for _, r, _ in per_fold], axis=0)
        lo, hi = interval(reps, boot.level)
        out.append(
            {"dataset": dataset, "teacher": t, "student": s, "rival": m, "K": k,
             "diff": float(np.mean([o for o, _, _ in per_fold])), "lo": float(lo),
             "hi": float(hi), "n_folds": len(per_fold), "n_videos": sum(n for *_, n in per_fold)}
        )  # fmt: skip
    cols = ["dataset", "teacher", "student", "rival", "K", "diff", "lo", "hi", "n_folds"]
    return long, pd.DataFrame(out, columns=[*cols, "n_videos"])


def paper_shape(
    long: pd.DataFrame, columns: dict[str, list[str]] | None = None, value: str = "top1"
) -> pd.DataFrame:
    """Rows method x teacher[+student], columns dataset x K; folds averaged (UCF-101: the mean
    over the official folds). ``columns`` picks the K columns per dataset (default: all);
    ``value`` the column shown (``top1_std``: random's std over its seeds, NaN elsewhere)."""
    df = long[long["Ks"].isna() | (long["Ks"] == 0)].copy()
    df = df[df["method"] != "condi_sr_split"]
    df["model"] = np.where(df["student"] == "-", df["teacher"], df["teacher"] + "+" + df["student"])
    df[value] = pd.to_numeric(df[value], errors="coerce")
    if df[value].isna().all():
        df[value] = df[value].astype(np.float64)
    mean = df.groupby(["method", "model", "dataset", "K"], sort=False)[value].mean().reset_index()
    # dense is one number per (dataset, teacher): show it in the "dense" column of every row
    if columns:
        mean = pd.concat(
            [mean[(mean["dataset"] == d) & mean["K"].isin(ks)] for d, ks in columns.items()]
        )
    table = mean.pivot_table(
        index=["method", "model"], columns=["dataset", "K"], values=value, sort=False
    )
    order = {m: i for i, m in enumerate(METHOD_ORDER)}
    table = table.iloc[
        sorted(
            range(len(table)), key=lambda i: (order.get(table.index[i][0], 99), table.index[i][1])
        )
    ]
    if columns:
        table = table[
            [c for d, ks in columns.items() for c in [(d, k) for k in ks] if c in table.columns]
        ]
    return table


def to_markdown(table: pd.DataFrame, std: pd.DataFrame | None = None) -> str:
    """The paper-shaped table as Markdown; a cell with a ``std`` (random's, over its seeds)
    reads ``mean ± std``."""
    flat = table.copy()
    spread = (
        std.reindex(index=table.index, columns=table.columns)
        if std is not None
        else pd.DataFrame(np.nan, index=table.index, columns=table.columns)
    )
    cells = [
        [
            "" if pd.isna(v) else f"{v:.2f}" if pd.isna(s) else f"{v:.2f} ± {s:.2f}"
            for v, s in zip(row_v, row_s, strict=True)
        ]
        for row_v, row_s in zip(table.to_numpy(), spread.to_numpy(), strict=True)
    ]
    flat = pd.DataFrame(cells, index=table.index, columns=table.columns)
    flat.columns = [f"{d} K={k}" if k != "dense" else f"{d} Dense" for d, k in flat.columns]
    flat = flat.reset_index()
    return flat.to_markdown(index=False, disable_numparse=True) + "\n"


def dense_note(long: pd.DataFrame) -> str:
    """How many test videos are dense by definition at each K (N <= K clips: every sampler
    classifies all of their clips, so the methods can differ only on the others), per
    dataset, summed over its folds; from the teacher-only baselines' ``n_dense``."""
    base = long[long["method"].isin(["equidistant", "oracle", "random"]) & long["Ks"].isna()]
    base = base[pd.to_numeric(base["K"], errors="coerce").notna()]
    if base.empty or base["n_dense"].isna().all():
        return ""
    parts = []
    for dataset, rows in base.groupby("dataset", sort=False):
        # one count per (fold, K): the baselines agree, their teacher and the method do not matter
        per = rows.groupby(["fold", "K"], sort=False)[["n_dense", "n_videos"]].first()
        by_k = per.groupby(level="K", sort=False).sum()
        by_k = by_k.iloc[np.argsort(pd.to_numeric(by_k.index).to_numpy(), kind="stable")]
        counts = ", ".join(f"{int(r.n_dense)} at K={k}" for k, r in by_k.iterrows())
        parts.append(f"{dataset}: {counts} of {int(by_k['n_videos'].iloc[0])} test videos")
    return (
        "Dense by definition (videos with N <= K clips: every sampler classifies all their "
        "clips, so the methods differ only on the others): " + "; ".join(parts) + ".\n"
    )


def rivals_table(rivals: pd.DataFrame, columns: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """Rows (dataset, teacher+student, rival), columns K: ``condi_sr minus rival [lo, hi]``
    (percentage points) from :func:`add_differences`; ``columns`` picks the K per dataset."""
    if rivals.empty:
        return pd.DataFrame()
    df = rivals.copy()
    if columns:
        df = df[[k in columns.get(d, []) for d, k in zip(df["dataset"], df["K"], strict=True)]]
    df["model"] = df["teacher"] + "+" + df["student"]
    df["cell"] = [
        f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]"
        for d, lo, hi in zip(df["diff"], df["lo"], df["hi"], strict=True)
    ]
    table = df.pivot(index=["dataset", "model", "rival"], columns="K", values="cell")
    order = {m: i for i, m in enumerate(METHOD_ORDER)}
    table = table.loc[sorted(table.index, key=lambda i: (i[0], i[1], order.get(i[2], 99), i[2]))]
    ks = sorted(table.columns, key=lambda k: (pd.to_numeric(k, errors="coerce"), k))
    return table[ks]


def rivals_markdown(
    rivals: pd.DataFrame,
    long: pd.DataFrame,
    boot: Bootstrap,
    columns: dict[str, list[str]] | None = None,
) -> str:
    """The second table of table3.md: condi_sr minus each rival at each K with its interval."""
    table = rivals_table(rivals, columns)
    if table.empty:
        return ""
    pct = f"{boot.level * 100:g}%"
    counts = []
    for dataset, rows in long.groupby("dataset", sort=False):
        n = rows.groupby("fold", sort=True)["n_videos"].max()
        folds = ", ".join(str(f) for f in n.index)
        label = "fold" if len(n) == 1 else "folds"
        counts.append(
            f"{dataset}: {' / '.join(str(int(v)) for v in n)} test videos ({label} {folds})"
        )
    several = (rivals["n_folds"] > 1).any()
    text = (
        f"\ncondi_sr minus each rival at each K, top-1 percentage points [{pct} CI]: paired "
        f"bootstrap, the test videos resampled with replacement ({boot.resamples} resamples, "
        f"seed {boot.seed}), the same resampled videos for condi_sr and the rival; percentile "
        "interval. Positive: condi_sr is better. Rival `dense`: condi_sr at K against all "
        "clips. `random`: per video, its correctness averaged over its seeds. "
        + "; ".join(counts)
        + "."
        + (
            " Several folds: the mean of the folds' differences; its interval from the mean "
            "over folds of each fold's resampled difference (folds resampled independently)."
            if several
            else ""
        )
        + "\n\n"
    )
    flat = table.copy()
    flat.columns = [f"K={k}" for k in flat.columns]
    flat = flat.fillna("").reset_index()
    return text + flat.to_markdown(index=False, disable_numparse=True) + "\n"


def dense_markdown(
    long: pd.DataFrame, boot: Bootstrap, columns: dict[str, list[str]] | None = None
) -> str:
    """The third table of table3.md: each method minus dense averaging at each K, with its
    paired interval (the long table's ``diff_vs_dense`` columns)."""
    if "diff_vs_dense" not in long:
        return ""
    rows = long["diff_vs_dense"].notna() & long["Ks"].isna() & (long["method"] != "dense")
    df = long[rows].copy()
    if columns:
        df = df[[k in columns.get(d, []) for d, k in zip(df["dataset"], df["K"], strict=True)]]
    if df.empty:
        return ""
    df["model"] = np.where(df["student"] == "-", df["teacher"], df["teacher"] + "+" + df["student"])
    df["cell"] = [
        f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]"
        for d, lo, hi in zip(
            df["diff_vs_dense"], df["diff_vs_dense_lo"], df["diff_vs_dense_hi"], strict=True
        )
    ]
    table = df.pivot_table(
        index=["dataset", "model", "method"], columns="K", values="cell", aggfunc="first"
    )
    order = {m: i for i, m in enumerate(METHOD_ORDER)}
    table = table.loc[sorted(table.index, key=lambda i: (i[0], order.get(i[2], 99), i[1], i[2]))]
    ks = sorted(table.columns, key=lambda k: (pd.to_numeric(k, errors="coerce"), k))
    flat = table[ks]
    flat.columns = [f"K={k}" for k in flat.columns]
    flat = flat.fillna("").reset_index()
    return (
        "\nEach method minus dense averaging (the teacher on all clips) at each K, top-1 "
        f"percentage points [{boot.level * 100:g}% CI]: the same paired bootstrap over test "
        "videos. Positive: the method beats dense at that K.\n\n"
        + flat.to_markdown(index=False, disable_numparse=True)
        + "\n"
    )


def write(
    long: pd.DataFrame,
    out_csv: str | Path,
    out_md: str | Path,
    columns: dict[str, list[str]] | None = None,
    rivals: pd.DataFrame | None = None,
    boot: Bootstrap | None = None,
) -> pd.DataFrame:
    """The long CSV, the Markdown (the paper-shaped table and, with ``rivals`` from
    :func:`add_differences`, condi_sr minus each rival) and the paper-shaped CSV."""
    write_csv(long, out_csv)
    table = paper_shape(long, columns)
    std = paper_shape(long, columns, value="top1_std")
    several = (long.groupby("dataset")["fold"].nunique() > 1).any()
    title = (
        "Table III: top-1 video accuracy (%) by method and K. Teacher-only samplers show the "
        "teacher; student-ranked ones teacher+student. random: mean ± std over its seeds "
        "(`evaluation.random_seeds`)." + (" Folds averaged." if several else "") + "\n\n"
    )
    text = title + to_markdown(table, std)
    note = dense_note(long)
    if note:
        text += "\n" + note
    if rivals is not None:
        text += rivals_markdown(rivals, long, boot or Bootstrap(), columns)
        text += dense_markdown(long, boot or Bootstrap(), columns)
    write_text(out_md, text)
    paper_csv = Path(out_csv).with_name(Path(out_csv).stem + "_paper.csv")
    flat = table.copy()
    flat.columns = [f"{d}:{k}" for d, k in flat.columns]
    write_csv(flat.reset_index(), paper_csv)
    return table
