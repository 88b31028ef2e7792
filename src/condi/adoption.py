"""Snakemake and DVC adopt each other's results, so that neither re-runs what the other made.

* After a Snakemake run, :func:`commit` records in ``dvc.lock`` the jobs that the run made
  (``dvc commit``): ``dvc status`` is then clean and ``dvc push`` has them. The Snakefile does
  this ``onsuccess``; ``condi pipeline adopt --commit`` does it by hand.
* After ``dvc pull`` (or ``dvc checkout``) the files carry arbitrary modification times and
  Snakemake has no record of them, so it would re-run everything whose inputs look newer than
  its outputs. :func:`restore_mtimes` gives the outputs of every job that ``dvc status`` finds
  up to date increasing mtimes in pipeline order. The Snakefile does this when Snakemake has
  recorded nothing in the checkout yet (a fresh clone); ``condi pipeline adopt`` does it by
  hand. Snakemake's other rerun triggers (params, code, input) need its own records, which a
  fresh clone does not have, so the mtimes are all it judges by.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from condi import pipeline as pl

log = logging.getLogger(__name__)


def _is_dvc_repo(root: Path) -> bool:
    return (root / ".dvc").is_dir() and (root / "dvc.yaml").is_file()


def needs_mtimes(root: str | Path = ".") -> bool:
    """``dvc.lock`` exists and Snakemake has recorded no job here yet."""
    root = Path(root)
    meta = root / ".snakemake" / "metadata"
    return (
        _is_dvc_repo(root)
        and (root / "dvc.lock").is_file()
        and not (meta.is_dir() and any(meta.iterdir()))
    )


def _snakemake_outputs(j: pl.Job) -> list[str]:
    """The files Snakemake knows as the job's outputs (a synthetic dataset: its manifest)."""
    if j.stage.name == "synth":
        return [f"{j.outputs['root'][0]}/manifest.parquet"]
    return [f for name, fs in j.outputs.items() if j.stage.outputs[name].kind != "dir" for f in fs]


def _changed_stages(root: Path) -> set[str]:
    """The DVC targets ``dvc status`` reports (``name`` or ``ablation/dvc.yaml:name``)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        status = repo.status()
    return set(status)


def restore_mtimes(config: dict[str, Any], root: str | Path = ".") -> int:
    """Give the outputs of every up-to-date DVC job increasing mtimes in pipeline order;
    returns how many jobs were adopted. Jobs that ``dvc status`` reports are left alone."""
    root = Path(root)
    try:
        changed = _changed_stages(root)
    except Exception as exc:  # a broken or locked DVC repo: Snakemake judges by mtimes alone
        log.warning("condi: dvc status failed (%s); not adopting DVC's outputs", exc)
        return 0
    t = time.time()
    adopted = 0
    split = pl.split_stages(config)
    for j in pl.jobs(config):
        if pl.dvc_target(j.stage, j.wildcards, split) in changed:
            continue
        files = [root / f for f in _snakemake_outputs(j)]
        if not files or not all(f.exists() for f in files):
            continue
        t += 0.01
        for f in files:
            os.utime(f, (t, t))
        adopted += 1
    if adopted:
        log.info("condi: adopted the outputs of %d DVC job(s) for Snakemake", adopted)
    return adopted


def made_since(config: dict[str, Any], since: float, root: str | Path = ".", jobs: bool = False):
    """DVC targets of the jobs all of whose outputs exist, were written at or after ``since``
    and are newer than every input file (what a Snakemake run made); with ``jobs``, pairs of
    (target, job)."""
    root = Path(root)
    out = []
    split = pl.split_stages(config)
    for j in pl.jobs(config):
        files = [root / f for f in _snakemake_outputs(j)]
        if not files or not all(f.exists() for f in files):
            continue
        oldest = min(f.stat().st_mtime for f in files)
        deps = [root / d for d in j.deps if (root / d).is_file()]
        if oldest >= since and all(d.stat().st_mtime <= oldest for d in deps):
            target = pl.dvc_target(j.stage, j.wildcards, split)
            out.append((target, j) if jobs else target)
    return out


def commit(config: dict[str, Any], since: float = 0.0, root: str | Path = ".") -> list[str]:
    """``dvc commit`` the jobs whose outputs were all written at or after ``since`` (those a
    Snakemake run made); returns them. Nothing happens outside a DVC repository."""
    root = Path(root)
    if not _is_dvc_repo(root):
        return []
    made = made_since(config, since, root, jobs=True)
    if not made:
        return []
    targets = [target for target, _ in made]
    outputs = [root / f for _, j in made for fs in j.outputs.values() for f in fs]
    return targets if dvc_commit(root, commit_targets(config, targets), outputs) else []


def commit_targets(config: dict[str, Any], targets: list[str]) -> list[str]:
    """``targets`` in as few ``dvc commit`` targets as name the same stages: a part (dvc.yaml,
    ablation/dvc.yaml, speed/dvc.yaml) all of whose jobs are among them as its file, else a
    stage all of whose jobs are (a ``foreach`` group) as its name. ``dvc commit`` collects and
    rewrites dvc.lock once per target: 0.4 s each for the tiny pipeline's, 20 s after a whole
    run job by job, 5 s as two files."""
    split = pl.split_stages(config)
    made = set(targets)
    by_part: dict[str, dict[str, list[str]]] = {}
    for j in pl.jobs(config):
        stages = by_part.setdefault(j.stage.part, {})
        stages.setdefault(j.stage.name, []).append(pl.dvc_target(j.stage, j.wildcards, split))
    out: list[str] = []
    for part, stages in by_part.items():
        if all(set(ts) <= made for ts in stages.values()):
            out.append(pl.PART_DVC[part])
            continue
        for name, ts in stages.items():
            group = pl.STAGES[name].wildcards and name not in split and len(ts) > 1
            if group and set(ts) <= made:
                out.append(name if part == "main" else f"{pl.PART_DVC[part]}:{name}")
            else:
                out += [t for t in ts if t in made]
    return out


def _times(paths: list[Path]) -> dict[Path, tuple[int, int]]:
    """(atime, mtime) in ns of ``paths`` and, for a folder, of everything under it (the
    folder last, so that restoring in this order leaves its own mtime as it was)."""
    times = {}
    for path in paths:
        if path.is_dir():
            for sub in sorted(path.rglob("*"), key=lambda p: -len(p.parts)):
                st = sub.stat()
                times[sub] = (st.st_atime_ns, st.st_mtime_ns)
        if path.exists():
            st = path.stat()
            times[path] = (st.st_atime_ns, st.st_mtime_ns)
    return times


def dvc_commit(root: Path, targets: list[str], outputs: list[Path]) -> bool:
    """``dvc commit`` ``targets``, keeping the modification times of their ``outputs``.
    DVC moves each output into its cache and links or copies it back, which gives it a new
    mtime, target by target in DVC's own order: a job's output could then look older than
    its input, and the next Snakemake run would re-run the job. False if DVC failed."""
    before = _times(outputs)
    cmd = ["dvc", "commit", "--force", "--quiet", *targets]
    done = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    for path, (atime, mtime) in before.items():
        if path.exists():
            os.utime(path, ns=(atime, mtime), follow_symlinks=False)
    if done.returncode != 0:
        log.warning("condi: `dvc commit` failed: %s", done.stderr.strip()[-2000:])
        return False
    return True
