"""The default pipeline's time on an idle machine, estimated from a run on a loaded one.

On a shared machine the wall time of ``snakemake --cores 2`` says more about the other users
than about the pipeline. Snakemake's benchmark files (``logs/benchmark/**/*.tsv``, one per job)
record each job's CPU time (``cpu_time``: user + system seconds of the job's processes), which
load changes far less. Every job of the default pipeline is single-threaded (params
``threads: 1``; the timing job takes every core but runs torch with ``threads``), so on an idle
machine a job takes about its CPU time. This script prints, for the jobs of ``params.yaml``'s
default target (``condi.pipeline.jobs``, main part):

* the CPU time per stage and in total, and total / cores (a lower bound of the idle wall time);
* the critical path: the longest chain of dependent jobs, by CPU time (another lower bound);
* a list schedule on ``--cores`` idle cores: jobs start in the pipeline's order as soon as
  their inputs exist and a core is free (the timing job waits for an empty machine and takes
  all cores, as its Snakemake rule does) - the estimate of the idle wall time;
* the measured wall time and the mean load average during the jobs (``mean_load``).

Run it from the directory the pipeline ran in: ``python benchmarks/pipeline_budget.py``.
"""

from __future__ import annotations

import argparse
import heapq
from pathlib import Path

import pandas as pd

from condi.config import load_params
from condi.pipeline import BENCHMARKS, jobs, log_pattern


def job_times(root: Path, params: dict) -> pd.DataFrame:
    """One row per job of the default pipeline: its benchmark's cpu_time, wall time (``s``)
    and mean load; NaN for a job without a benchmark file."""
    rows = []
    for j in jobs(params, ablation=False):
        w = dict(j.wildcards)
        if j.stage.name == "synth":
            w = {"root": params["datasets"][w["dataset"]]["root"]}
        path = root / log_pattern(j.stage, BENCHMARKS, ".tsv").format(**w)
        row = {"job": j.name, "stage": j.stage.name, "threads": j.stage.threads}
        if path.is_file():
            b = pd.read_csv(path, sep="\t").iloc[-1]
            row.update(cpu_s=float(b["cpu_time"]), wall_s=float(b["s"]),
                       load=float(b["mean_load"]))  # fmt: skip
        rows.append(row)
    return pd.DataFrame(rows)


def dependencies(params: dict) -> dict[str, set[str]]:
    """Job name -> the names of the jobs whose outputs it reads."""
    all_jobs = jobs(params, ablation=False)
    made = {f: j.name for j in all_jobs for fs in j.outputs.values() for f in fs}
    roots = {d["root"]: f"synth@{name}" for name, d in params["datasets"].items() if "synth" in d}
    out = {}
    for j in all_jobs:
        deps = {made[d] for d in j.deps if d in made}
        deps |= {roots[p] for p in j.params_paths.values() if p in roots}
        out[j.name] = deps - {j.name}
    return out


def critical_path(times: dict[str, float], deps: dict[str, set[str]], order: list[str]) -> float:
    finish: dict[str, float] = {}
    for name in order:
        finish[name] = times[name] + max((finish[d] for d in deps[name]), default=0.0)
    return max(finish.values(), default=0.0)


def list_schedule(
    times: dict[str, float],
    deps: dict[str, set[str]],
    order: list[str],
    exclusive: set[str],
    cores: int,
) -> float:
    """Makespan of a greedy schedule on ``cores`` cores (module docstring)."""
    done: dict[str, float] = {}
    running: list[tuple[float, str, int]] = []  # (end, job, cores held)
    free, now, pending = cores, 0.0, list(order)
    while pending or running:
        started = True
        while started:
            started = False
            for name in pending:
                need = cores if name in exclusive else 1
                if all(d in done for d in deps[name]) and free >= need:
                    heapq.heappush(running, (now + times[name], name, need))
                    free -= need
                    pending.remove(name)
                    started = True
                    break
        end, name, held = heapq.heappop(running)
        now, free = end, free + held
        done[name] = end
    return now


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()
    params = load_params(args.params)
    df = job_times(Path("."), params)
    missing = df[df["cpu_s"].isna()]["job"].tolist() if "cpu_s" in df else df["job"].tolist()
    if missing:
        print(f"no benchmark for {len(missing)} job(s), counted as 0 s: {', '.join(missing)}")
    df["cpu_s"] = df.get("cpu_s", pd.Series(0.0, index=df.index)).fillna(0.0)
    per_stage = df.groupby("stage", sort=False)[["cpu_s", "wall_s"]].sum()
    per_stage["jobs"] = df.groupby("stage", sort=False).size()
    print(per_stage.round(1).to_string())
    times = dict(zip(df["job"], df["cpu_s"], strict=True))
    deps = dependencies(params)
    order = df["job"].tolist()
    exclusive = set(df.loc[df["threads"] == "all", "job"])
    total = df["cpu_s"].sum()
    print(f"\nCPU time, all jobs: {total:.0f} s; / {args.cores} cores: {total / args.cores:.0f} s")
    print(f"critical path (CPU time): {critical_path(times, deps, order):.0f} s")
    span = list_schedule(times, deps, order, exclusive, args.cores)
    print(f"list schedule on {args.cores} idle cores: {span:.0f} s = {span / 60:.1f} min")
    if "wall_s" in df and df["wall_s"].notna().any():
        print(f"mean load average during the jobs: {df['load'].mean():.1f} "
              f"(the jobs' own wall times sum to {df['wall_s'].sum():.0f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
