"""Table V: dividing the work between teacher and student (ConDi-SR with a student share Ks,
docs/method.md, section 4): accuracy and mean time per video for every Ks at K = ``evaluation.Ks_K``.
Source: the ``condi_sr_split`` rows of the timing CSVs (``condi report timing``); folds
averaged.

Ks = 0 is inference (b) with the split's aggregation (teacher vectors weighted by z~), as the
``condi_sr_split`` rows of Table III; the plain average of ``condi_sr`` at the same K is shown
beside it for reference.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from condi.io import write_csv, write_text
from condi.tables.table4 import assemble, caption_setup, fold_means

__all__ = ["assemble", "paper_shape", "write"]


def paper_shape(long: pd.DataFrame) -> pd.DataFrame:
    """Rows (dataset, teacher+student, K, Ks): accuracy, mean time per video, GMACs, speed-ups."""
    m = fold_means(long)
    split = m[m["method"] == "condi_sr_split"].copy()
    if split.empty:
        raise ValueError("no condi_sr_split rows in the timing files (time a condi_sr student)")
    split["model"] = split["teacher"] + "+" + split["student"]
    out = split[
        [
            "dataset",
            "model",
            "K",
            "Ks",
            "top1",
            "time_s",
            "gmacs_per_video",
            "teacher_clips_per_video",
            "speedup_time",
            "speedup_gmacs",
        ]
    ].sort_values(["dataset", "model", "K", "Ks"])
    return out.reset_index(drop=True)


def reference_rows(long: pd.DataFrame) -> pd.DataFrame:
    """``condi_sr`` (plain average, Table IV) at the split's K, for the caption."""
    m = fold_means(long)
    ks = set(m.loc[m["method"] == "condi_sr_split", "K"])
    ref = m[(m["method"] == "condi_sr") & m["K"].isin(ks) & m["Ks"].isna()].copy()
    ref["model"] = ref["teacher"] + "+" + ref["student"]
    return ref


def to_markdown(table: pd.DataFrame) -> str:
    t = table.rename(
        columns={
            "top1": "accuracy (%)",
            "time_s": "mean time per video (s)",
            "gmacs_per_video": "GMACs per video",
            "teacher_clips_per_video": "teacher clips per video",
            "speedup_time": "speed-up (time)",
            "speedup_gmacs": "speed-up (MACs)",
        }
    ).copy()
    t["Ks"] = t["Ks"].astype(str)
    for col, fmt in [
        ("accuracy (%)", "{:.2f}"),
        ("mean time per video (s)", "{:.4g}"),
        ("GMACs per video", "{:.4g}"),
        ("teacher clips per video", "{:.2f}"),
        ("speed-up (time)", "x{:.2f}"),
        ("speed-up (MACs)", "x{:.2f}"),
    ]:
        t[col] = [fmt.format(v) if pd.notna(v) else "" for v in t[col]]
    return t.to_markdown(index=False, disable_numparse=True) + "\n"


def write(long: pd.DataFrame, out_csv: str | Path, out_md: str | Path) -> pd.DataFrame:
    long = long[long["method"].isin(["condi_sr_split", "condi_sr", "dense"])]
    write_csv(long, out_csv)
    table = paper_shape(long)
    ref = reference_rows(long)
    refs = "; ".join(
        f"{r.dataset} {r.model} K={r.K}: {r.top1:.2f}% at {r.time_s:.4g} s"
        for r in ref.itertuples()
    )
    title = (
        "Table V: ConDi-SR dividing the work between teacher and student: the Ks lowest-entropy "
        "clips are classified by the student, K - Ks by the teacher (docs/method.md, section 4). Accuracy (%) and "
        "mean time per video, end to end on decoded clips (decoding excluded). Folds averaged. "
        f"Setup: {caption_setup(long)}. Ks = 0 aggregates with z~ weights; the plain average "
        f"(Table IV's ConDi-SR) gives {refs or 'n/a'}.\n\n"
    )
    write_text(out_md, title + to_markdown(table))
    return table
