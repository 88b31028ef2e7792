"""Table IV: mean time per video and accuracy per method and K, plus multiply-adds per video
and the speed-up over dense (docs/method.md, section 6). Source: the timing CSVs of ``condi report
timing``; the long CSV is their concatenation, the Markdown a pivot of it (folds averaged:
UCF-101 is the mean over its three folds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from condi.evaluation.timing_columns import ALL_K, TIMING_COLUMNS
from condi.io import write_csv, write_text
from condi.methods import METHOD_REGISTRY, TIMED_METHODS

# ConDi-SR, the equidistant baseline, the other timed students
TABLE4_METHODS = ["condi_sr", "equidistant", *(m for m in TIMED_METHODS if m != "condi_sr")]
METHOD_LABELS = {
    **{m.name: m.label for m in METHOD_REGISTRY.values()},
    "equidistant": "Equidistant",
    "dense": "Dense (all clips)",
}
GROUP = ["dataset", "teacher", "student", "method", "K", "Ks"]
AVERAGED = [
    "time_s",
    "top1",
    "top1_grid",
    "gmacs_per_video",
    "speedup_time",
    "speedup_gmacs",
    "teacher_clips_per_video",
    "student_clips_per_video",
]


def assemble(timing_csvs: list[str | Path]) -> pd.DataFrame:
    """Concatenate timing CSVs into the long table (every column of the timing runs)."""
    frames = []
    for path in timing_csvs:
        df = pd.read_csv(path, dtype={"K": str})
        if df.empty:
            raise ValueError(f"{path}: empty timing file")
        frames.append(df)
    long = pd.concat(frames, ignore_index=True)
    for col in TIMING_COLUMNS:
        if col not in long.columns:
            long[col] = np.nan
    long["Ks"] = long["Ks"].astype("Int64")
    long["_k"] = pd.to_numeric(long["K"], errors="coerce").fillna(np.inf)
    long = long.sort_values(["dataset", "fold", "teacher", "student", "method", "_k", "Ks"])
    return long.drop(columns="_k")[TIMING_COLUMNS].reset_index(drop=True)


def fold_means(long: pd.DataFrame) -> pd.DataFrame:
    """Mean over folds per (dataset, teacher, student, method, K, Ks)."""
    df = long.copy()
    df["Ks"] = df["Ks"].astype("float")  # groupby drops <NA> keys of Int64
    df["Ks"] = df["Ks"].fillna(-1)
    out = df.groupby(GROUP, sort=False, dropna=False)[AVERAGED].mean().reset_index()
    out["n_folds"] = df.groupby(GROUP, sort=False, dropna=False).size().to_numpy()
    out["Ks"] = out["Ks"].where(out["Ks"] >= 0).astype("Int64")
    return out


def caption_setup(long: pd.DataFrame) -> str:
    """'device (name), N threads, fp32|bf16 autocast, batch B' for every setup in ``long``."""
    parts = []
    cols = ["device", "device_name", "threads", "amp", "channels_last", "fuse", "batch_size"]
    for _, r in long.reindex(columns=cols).drop_duplicates().iterrows():
        prec = "bf16 autocast" if str(r["amp"]).lower() == "true" else "fp32"
        layout = ", channels-last" if str(r["channels_last"]).lower() == "true" else ""
        layout += (
            ", BatchNorm folded, pointwise as matmul" if str(r["fuse"]).lower() == "true" else ""
        )
        parts.append(
            f"{r['device']} ({r['device_name']}), {int(r['threads'])} torch thread(s), {prec}"
            f"{layout}, batch {_batch(r['batch_size'])}"
        )
    return "; ".join(parts)


def _batch(value: object) -> str:
    """A ``batch_size`` cell: ``64`` (fixed; also when read back as 64.0) or the
    ``auto (teacher 1, student 2)`` label of condi.evaluation.timing.batch_label."""
    if isinstance(value, int | float | np.integer | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _k_order(ks: list[str]) -> list[str]:
    return sorted(ks, key=lambda k: (k == ALL_K, float(k) if k != ALL_K else 0.0))


def paper_shape(long: pd.DataFrame, methods: list[str] | None = None) -> pd.DataFrame:
    """Rows (dataset, teacher+student, method), columns K: "time s (top-1)" as in the paper;
    the dense row carries the "All" column."""
    methods = methods or TABLE4_METHODS
    m = fold_means(long)
    m = m[m["Ks"].isna() & m["method"].isin(methods + ["dense"])].copy()
    m["model"] = m["teacher"] + "+" + m["student"]
    m["cell"] = [f"{t:.4g} s ({a:.2f})" for t, a in zip(m["time_s"], m["top1"], strict=True)]
    order = {k: i for i, k in enumerate(methods + ["dense"])}
    m["_m"] = m["method"].map(order)
    table = m.pivot_table(
        index=["dataset", "model", "_m", "method"], columns="K", values="cell", aggfunc="first"
    )
    table = table.sort_index(level=[0, 1, 2]).droplevel("_m")
    table = table[_k_order(list(table.columns))]
    table.index = table.index.set_levels(
        [METHOD_LABELS.get(x, x) for x in table.index.levels[2]], level=2
    )
    return table


def cost_shape(long: pd.DataFrame, methods: list[str] | None = None) -> pd.DataFrame:
    """Rows as :func:`paper_shape`, columns K: "GMACs (x time speed-up / x MAC speed-up)"."""
    methods = methods or TABLE4_METHODS
    m = fold_means(long)
    m = m[m["Ks"].isna() & m["method"].isin(methods + ["dense"])].copy()
    m["model"] = m["teacher"] + "+" + m["student"]
    m["cell"] = [
        f"{g:.4g} (x{st:.2f} / x{sg:.2f})"
        for g, st, sg in zip(
            m["gmacs_per_video"], m["speedup_time"], m["speedup_gmacs"], strict=True
        )
    ]
    order = {k: i for i, k in enumerate(methods + ["dense"])}
    m["_m"] = m["method"].map(order)
    table = m.pivot_table(
        index=["dataset", "model", "_m", "method"], columns="K", values="cell", aggfunc="first"
    )
    table = table.sort_index(level=[0, 1, 2]).droplevel("_m")
    table = table[_k_order(list(table.columns))]
    table.index = table.index.set_levels(
        [METHOD_LABELS.get(x, x) for x in table.index.levels[2]], level=2
    )
    return table


def to_markdown(table: pd.DataFrame) -> str:
    flat = table.copy()
    flat.columns = [f"K={k}" for k in flat.columns]
    flat = flat.fillna("").reset_index()
    return flat.to_markdown(index=False, disable_numparse=True) + "\n"


def write(long: pd.DataFrame, out_csv: str | Path, out_md: str | Path) -> pd.DataFrame:
    write_csv(long, out_csv)
    table = paper_shape(long)
    n = long.groupby(["dataset", "fold"])["n_videos"].max()
    videos = ", ".join(f"{d} fold {f}: {int(v)} videos" for (d, f), v in n.items())
    title = (
        "Table IV: mean time per video (s) and top-1 video accuracy (%) by method and K, "
        "measured end to end on decoded clips (student over all N clips + teacher over the "
        "chosen ones, batched; video decoding excluded). Folds averaged. "
        f"Setup: {caption_setup(long)}. {videos}.\n\n"
    )
    cost = cost_shape(long)
    cost_title = (
        "\nMultiply-adds per video in G (FlopCounterMode / 2: what Table II reports as "
        "GFLOPs), with the speed-up over dense in time / in multiply-adds.\n\n"
    )
    write_text(out_md, title + to_markdown(table) + cost_title + to_markdown(cost))
    return table
