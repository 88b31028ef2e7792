"""The tiny pipeline through snakemake-executor-plugin-slurm on a real single-node SLURM
(issue 7.4). Opt-in, it takes minutes and needs root: ``CONDI_TEST_SLURM=1 pytest
tests/orchestration/test_slurm.py`` sets SLURM up (``slurm_single_node.sh``: Debian's
slurm-wlm, munge, slurmctld and slurmd on this host) unless ``sinfo`` already answers."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from condi.pipeline import STAGES
from tests.conftest import workflow_copy
from tests.orchestration.conftest import read_table3, run, tiny_params

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("CONDI_TEST_SLURM") != "1", reason="set CONDI_TEST_SLURM=1 (needs root)"
    ),
]

HERE = Path(__file__).parent


def slurm_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    return out.returncode == 0 and ("idle" in out.stdout or "mix" in out.stdout)


def test_tiny_pipeline_on_slurm(tmp_path):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    if not slurm_up():
        run(["bash", str(HERE / "slurm_single_node.sh")], tmp_path, timeout=900)
    work = workflow_copy(tmp_path / "wf", tiny_params())
    os.symlink("workflow/profiles", work / "profiles")
    # the profile's partitions, written for this machine the documented way (docs/cluster.md)
    partitions = work / "workflow" / "profiles" / "slurm" / "partitions.yaml"
    run(["generate-slurm-partition-config", "-o", str(partitions)], work)
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}
    cmd = [
        "snakemake",
        "--workflow-profile",
        "workflow/profiles/slurm",
        "--jobs",
        "4",
        "--set-resources",
        "train_teacher:mem_mb=4000",
        "train_student:mem_mb=4000",
        "--slurm-no-account",
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "5",
        "--seconds-between-status-checks",
        "5",
    ]
    t0 = time.monotonic()
    out = run(cmd, work, env=env, timeout=1800)
    print(f"\ntiny pipeline on SLURM: {time.monotonic() - t0:.0f} s")
    text = out.stdout + out.stderr
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", text)
    # the job stats table: every job but `all` and the local rules (tables, figures) is submitted
    stats = re.search(r"^Job stats:\n.*?\n-+\s+-+\n(.*?)^total\s", text, flags=re.M | re.S)
    counts = dict(line.split() for line in stats.group(1).strip().splitlines())
    n_jobs = sum(int(n) for rule, n in counts.items() if rule in STAGES and not STAGES[rule].local)
    assert len(submitted) == n_jobs, text[-3000:]
    states = dict(
        line.split()
        for line in run(["squeue", "--states=all", "-h", "-o", "%i %T"], work).stdout.splitlines()
    )  # MinJobAge (slurm_single_node.sh) keeps finished jobs listed for 10 minutes
    assert all(states.get(j) == "COMPLETED" for j in submitted), (submitted, states)
    t3 = read_table3(work / "results" / "table3.csv")
    assert t3["top1"].between(0, 100).all() and (t3["n_videos"] > 0).all()
