"""Table III: top-1 video accuracy of every sampler at every K (SPEC section 6)."""

from __future__ import annotations

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
    "clips_per_video",
    "unambiguous_share",
    "auroc_teacher_correct",
    "student_dense_top1",
    "pseudo_labels",
    "detach_confidence",
    "seed",
]
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


def paper_shape(long: pd.DataFrame, columns: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """Rows method x teacher[+student], columns dataset x K; folds averaged (UCF-101: the mean
    over the official folds). ``columns`` picks the K columns per dataset (default: all)."""
    df = long[long["Ks"].isna() | (long["Ks"] == 0)].copy()
    df = df[df["method"] != "condi_sr_split"]
    df["model"] = np.where(df["student"] == "-", df["teacher"], df["teacher"] + "+" + df["student"])
    mean = df.groupby(["method", "model", "dataset", "K"], sort=False)["top1"].mean().reset_index()
    # dense is one number per (dataset, teacher): show it in the "dense" column of every row
    if columns:
        mean = pd.concat(
            [mean[(mean["dataset"] == d) & mean["K"].isin(ks)] for d, ks in columns.items()]
        )
    table = mean.pivot_table(
        index=["method", "model"], columns=["dataset", "K"], values="top1", sort=False
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


def to_markdown(table: pd.DataFrame) -> str:
    flat = table.copy()
    flat.columns = [f"{d} K={k}" if k != "dense" else f"{d} Dense" for d, k in flat.columns]
    flat = flat.map(lambda v: "" if pd.isna(v) else f"{v:.2f}").reset_index()
    return flat.to_markdown(index=False, disable_numparse=True) + "\n"


def write(
    long: pd.DataFrame,
    out_csv: str | Path,
    out_md: str | Path,
    columns: dict[str, list[str]] | None = None,
) -> pd.DataFrame:
    write_csv(long, out_csv)
    table = paper_shape(long, columns)
    title = (
        "Table III: top-1 video accuracy (%) by method and K. Teacher-only samplers show the "
        "teacher; student-ranked ones teacher+student. Folds averaged.\n\n"
    )
    write_text(out_md, title + to_markdown(table))
    paper_csv = Path(out_csv).with_name(Path(out_csv).stem + "_paper.csv")
    flat = table.copy()
    flat.columns = [f"{d}:{k}" for d, k in flat.columns]
    write_csv(flat.reset_index(), paper_csv)
    return table
