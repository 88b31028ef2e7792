"""Time per pipeline stage, from Snakemake's ``benchmark:`` files (docs/method.md, "The
pipeline"; the README's timing table comes from here, not from a hand-written log).

Every rule of ``workflow/rules/stages.smk`` writes ``logs/benchmark/<stage>/<job>.tsv`` (a
stage without wildcards: ``logs/benchmark/<stage>.tsv``): Snakemake's wall-clock seconds
``s``, CPU seconds ``cpu_time``, peak memory ``max_rss`` (MB) and ``mean_load`` (the job's CPU
time per wall second, in %), one row per benchmark repeat. :func:`read_benchmarks` reads them
into one row per job (repeats averaged, memory: the peak) and :func:`stage_times` sums them
per stage, in the order of the stage table (:data:`condi.pipeline.STAGES`). The sum of job
seconds is not the run's wall time when jobs ran in parallel: ``total_s`` says how much work
each stage was.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from condi.io import write_csv, write_text

JOB_COLUMNS = ["stage", "job", "s", "cpu_time", "max_rss", "mean_load", "repeats", "path"]
STAGE_COLUMNS = [
    "stage",
    "jobs",
    "total_s",
    "mean_s",
    "max_s",
    "cpu_s",
    "max_rss_mb",
    "cpu_pct",
]
NUMERIC = ["s", "cpu_time", "max_rss", "mean_load"]


def read_benchmarks(folder: str | os.PathLike = "logs/benchmark") -> pd.DataFrame:
    """One row per job (:data:`JOB_COLUMNS`) from the ``*.tsv`` files under ``folder``: the
    stage is the first folder below it (or the file's stem when it lies directly in it), the
    job the file's path below the stage without ``.tsv``. Unreadable files raise ``ValueError``
    naming the file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no benchmark folder (run the pipeline with Snakemake)")
    rows = []
    for path in sorted(folder.rglob("*.tsv")):
        rel = path.relative_to(folder)
        stage = rel.parts[0] if len(rel.parts) > 1 else path.stem
        job = str(Path(*rel.parts[1:]).with_suffix("")) if len(rel.parts) > 1 else ""
        try:
            df = pd.read_csv(path, sep="\t")
        except Exception as exc:
            raise ValueError(f"{path}: not a Snakemake benchmark file: {exc}") from exc
        if "s" not in df.columns or df.empty:
            raise ValueError(f"{path}: not a Snakemake benchmark file (no rows or no 's' column)")
        values = {  # repeats: mean times and load, the peak memory
            c: getattr(pd.to_numeric(df[c], errors="coerce"), "max" if c == "max_rss" else "mean")()
            if c in df
            else np.nan
            for c in NUMERIC
        }
        rows.append({"stage": stage, "job": job, **values, "repeats": len(df), "path": str(path)})
    return pd.DataFrame(rows, columns=JOB_COLUMNS)


def _stage_order(stages: list[str]) -> list[str]:
    from condi.pipeline import STAGES

    known = [s for s in STAGES if s in stages]
    return known + sorted(s for s in stages if s not in STAGES)


def stage_times(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per stage (:data:`STAGE_COLUMNS`): jobs, summed / mean / longest wall seconds, summed CPU
    seconds, peak memory and ``cpu_pct`` = CPU seconds per wall second (%, below 100 for a
    one-thread job that waited for the CPU on a busy machine); then a ``total`` row."""
    if jobs.empty:
        return pd.DataFrame(columns=STAGE_COLUMNS)
    g = jobs.groupby("stage", sort=False)
    out = g.agg(
        jobs=("s", "size"),
        total_s=("s", "sum"),
        mean_s=("s", "mean"),
        max_s=("s", "max"),
        cpu_s=("cpu_time", "sum"),
        max_rss_mb=("max_rss", "max"),
    ).reset_index()
    out["cpu_pct"] = 100.0 * out["cpu_s"] / out["total_s"]
    out = out.set_index("stage").loc[_stage_order(list(out["stage"]))].reset_index()
    total = {
        "stage": "total",
        "jobs": int(out["jobs"].sum()),
        "total_s": out["total_s"].sum(),
        "mean_s": jobs["s"].mean(),
        "max_s": jobs["s"].max(),
        "cpu_s": out["cpu_s"].sum(),
        "max_rss_mb": jobs["max_rss"].max(),
        "cpu_pct": 100.0 * out["cpu_s"].sum() / out["total_s"].sum(),
    }
    return pd.concat([out, pd.DataFrame([total])], ignore_index=True)[STAGE_COLUMNS]


def markdown(table: pd.DataFrame, source: str = "logs/benchmark") -> str:
    """The per-stage table as Markdown (seconds to one decimal, memory in MB)."""
    lines = [
        f"Time per stage from Snakemake's benchmark files (`{source}`): wall seconds summed over "
        "each stage's jobs (jobs running in parallel overlap, so the total is work, not the "
        "run's wall time), CPU seconds (and per wall second, %) and peak memory.",
        "",
        "| stage | jobs | total s | mean s | max s | CPU s | CPU % | peak MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        name = f"**{r.stage}**" if r.stage == "total" else r.stage
        lines.append(
            f"| {name} | {int(r.jobs)} | {r.total_s:.1f} | {r.mean_s:.1f} | {r.max_s:.1f} | "
            f"{r.cpu_s:.1f} | {r.cpu_pct:.0f} | {r.max_rss_mb:.0f} |"
        )
    return "\n".join(lines) + "\n"


def write(
    folder: str | os.PathLike, out_csv: str | os.PathLike, out_md: str | os.PathLike
) -> pd.DataFrame:
    """Read ``folder``'s benchmark files, write the per-stage CSV and Markdown; returns it."""
    table = stage_times(read_benchmarks(folder))
    write_csv(table, out_csv)
    write_text(out_md, markdown(table, str(folder)))
    return table
