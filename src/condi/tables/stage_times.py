"""The time each pipeline stage took in the last Snakemake run (docs/method.md, "The pipeline").

Snakemake writes one ``benchmark:`` file per job (``logs/benchmark/<stage>/<job>.tsv``, or
``logs/benchmark/<stage>.tsv`` for a stage without wildcards; a synthetic dataset's job is
named by its root): wall-clock seconds ``s``, peak memory ``max_rss`` (MB), ``cpu_time``...
:func:`collect` reads them all, one row per job; :func:`summarise` gives one row per stage
(jobs, total, longest job, peak memory) in the pipeline's order; :func:`markdown` is the
report's table. A run that never went through Snakemake (``dvc repro``) has no such files:
the table then says so rather than inventing times.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from condi.io import write_csv, write_text

JOB_COLUMNS = ["stage", "job", "s", "max_rss_mb", "cpu_time_s", "file"]
STAGE_COLUMNS = ["stage", "jobs", "total_s", "max_s", "max_rss_mb"]


def _number(value: object) -> float:
    """A benchmark field as a number (Snakemake writes ``-`` where it measured nothing)."""
    out = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
    return float(out)


def collect(folder: str | Path, jobs: set[str] | None = None) -> pd.DataFrame:
    """One row per benchmark file under ``folder`` (:data:`JOB_COLUMNS`); the last row of a
    file when Snakemake appended several (``--benchmark-repeats``). With ``jobs`` (paths
    relative to ``folder``, without ``.tsv``: :func:`job_files`), only those: a file left by a
    job the pipeline no longer has (a renamed model, a dropped stage) is not counted."""
    folder = Path(folder)
    rows = []
    for path in sorted(folder.rglob("*.tsv")) if folder.is_dir() else []:
        rel = path.relative_to(folder).with_suffix("")
        if jobs is not None and rel.as_posix() not in jobs:
            continue
        parts = rel.parts
        try:
            df = pd.read_csv(path, sep="\t")
        except (ValueError, OSError) as exc:
            raise ValueError(f"{path}: not a Snakemake benchmark file ({exc})") from exc
        if df.empty or "s" not in df.columns:
            raise ValueError(f"{path}: not a Snakemake benchmark file (no 's' column)")
        last = df.iloc[-1]
        rows.append(
            {
                "stage": parts[0],
                "job": "/".join(parts[1:]) or "-",
                "s": _number(last["s"]),
                "max_rss_mb": _number(last.get("max_rss", float("nan"))),
                "cpu_time_s": _number(last.get("cpu_time", float("nan"))),
                "file": str(path),
            }
        )
    return pd.DataFrame(rows, columns=JOB_COLUMNS)


def job_files(config: dict) -> set[str]:
    """The benchmark file of every job of ``config``'s pipeline (the ablation's included),
    relative to the benchmark folder and without ``.tsv``, as the Snakemake rules name them
    (:func:`condi.pipeline.log_pattern`)."""
    from condi import pipeline as pl

    out = set()
    for stage in pl.STAGES.values():
        pattern = pl.log_pattern(stage, "", "")[1:]  # "<stage>/<job>" or "<stage>"
        for w in pl.job_wildcards(config, stage):
            if stage.name == "synth":
                w = {"root": config["datasets"][w["dataset"]]["root"]}
            out.add(pattern.format(**w))
    return out


def summarise(jobs: pd.DataFrame, order: list[str] | None = None) -> pd.DataFrame:
    """One row per stage: its jobs, their total and longest time (s) and peak memory (MB), in
    ``order`` (the pipeline's stage order; other stages after it, by name)."""
    if jobs.empty:
        return pd.DataFrame(columns=STAGE_COLUMNS)
    g = jobs.groupby("stage", sort=False)
    out = pd.DataFrame(
        {
            "jobs": g.size(),
            "total_s": g["s"].sum(),
            "max_s": g["s"].max(),
            "max_rss_mb": g["max_rss_mb"].max(),
        }
    ).reset_index()
    rank = {name: i for i, name in enumerate(order or [])}
    out["_rank"] = [rank.get(s, len(rank)) for s in out["stage"]]
    out = out.sort_values(["_rank", "stage"], kind="stable").drop(columns="_rank")
    return out.reset_index(drop=True)[STAGE_COLUMNS]


def _duration(seconds: float) -> str:
    """``7 s``, ``4.5 min``, ``1.2 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def markdown(stages: pd.DataFrame, folder: str | Path) -> str:
    """The per-stage table with the sum of all jobs (CPU-serial time: jobs that ran side by
    side count in full), or a note that there are no Snakemake records."""
    if stages.empty:
        return (
            f"No Snakemake benchmark records in `{folder}`: the per-stage times come from the "
            "`benchmark:` files of a Snakemake run (`snakemake --cores all`); `dvc repro` "
            "records none.\n"
        )
    shown = pd.DataFrame(
        {
            "stage": stages["stage"],
            "jobs": stages["jobs"].astype(int),
            "total": [_duration(s) for s in stages["total_s"]],
            "longest job": [_duration(s) for s in stages["max_s"]],
            "peak memory (MB)": ["" if pd.isna(m) else f"{m:.0f}" for m in stages["max_rss_mb"]],
        }
    )
    total = float(stages["total_s"].sum())
    return (
        shown.to_markdown(index=False)
        + f"\n\nAll jobs together: {_duration(total)} ({int(stages['jobs'].sum())} jobs; jobs "
        "that ran side by side count in full, so a run on several cores takes less). "
        f"Wall-clock seconds per job from Snakemake's `benchmark:` files in `{folder}`; each "
        "job's output is in `logs/<stage>/`.\n"
    )


def write(
    folder: str | Path,
    out_csv: str | Path,
    out_md: str | Path,
    order: list[str],
    jobs_of: set[str] | None = None,
) -> str:
    """Collect ``folder``'s benchmark files (of the jobs ``jobs_of`` only, when given), write
    the per-job CSV and the per-stage Markdown; returns the Markdown."""
    jobs = collect(folder, jobs_of)
    write_csv(jobs, out_csv)
    md = markdown(summarise(jobs, order), folder)
    write_text(out_md, md)
    return md
