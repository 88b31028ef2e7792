"""Issue 8.2: a training job killed with SIGKILL mid-run is resumed from its last checkpoint
when the same Snakemake target is run again, and the final table equals an uninterrupted
run's byte for byte (CPU, fixed seed and threads).

What a re-run needs after SIGKILL (the whole process group: Snakemake and its jobs): Snakemake
cannot remove its lock, so a plain re-run is refused ("Directory cannot be locked") and
``snakemake --unlock`` is needed first; ``--rerun-incomplete`` is harmless (the killed job's
output was never written, so Snakemake has nothing marked incomplete that exists) and is
passed so that a kill between the output's rename and Snakemake's bookkeeping is covered too.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import pytest

from condi.training.loop import state_path_for
from tests.reliability.conftest import (
    SNAKEMAKE,
    TABLE,
    TEACHER_OUT,
    new_workdir,
    pipeline_env,
    snakemake,
)

TEACHER_LOG = "logs/train_teacher/synthetic_fold1_resnext14.log"


def start_and_kill_after_first_epoch(wd) -> None:
    """Run the pipeline; as soon as the teacher's first epoch is checkpointed, SIGKILL
    Snakemake's whole process group (Snakemake and the training job)."""
    state = wd / state_path_for(TEACHER_OUT)
    with open(wd / "first_run.out", "w") as out:
        proc = subprocess.Popen(
            [*SNAKEMAKE, "--cores", "2", TABLE],
            cwd=wd,
            env=pipeline_env(wd),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        # no deadline (a busy machine is slow, not wrong): the run either checkpoints an epoch
        # or ends, and ending first is the failure
        while not state.exists():  # written atomically after each epoch
            assert proc.poll() is None, (wd / "first_run.out").read_text()[-3000:]
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.slow
def test_killed_teacher_resumes_and_reproduces_the_table(reference_run, tmp_path):
    wd = new_workdir(tmp_path / "wd", reference=reference_run)
    start_and_kill_after_first_epoch(wd)
    time.sleep(1.0)  # no job of the killed group may still write
    assert not (wd / TEACHER_OUT).exists(), "the teacher finished before the kill"
    assert (wd / state_path_for(TEACHER_OUT)).exists()

    # the lock of the killed Snakemake stays: a plain re-run is refused, clearly
    refused = snakemake(wd, "--cores", "2", TABLE, timeout=120)
    assert refused.returncode != 0
    assert "Directory cannot be locked" in refused.stdout, refused.stdout[-3000:]
    assert "--unlock" in refused.stdout

    unlock = snakemake(wd, "--unlock", TABLE, timeout=120)
    assert unlock.returncode == 0, unlock.stdout[-3000:]
    rerun = snakemake(wd, "--cores", "2", "--rerun-incomplete", TABLE)
    assert rerun.returncode == 0, rerun.stdout[-6000:]

    log = (wd / TEACHER_LOG).read_text()
    resumed = re.search(r"resuming \S+ after epoch (\d+)/(\d+)", log)
    assert resumed, log[-3000:]
    assert 1 <= int(resumed.group(1)) <= int(resumed.group(2)) == 3
    # the terminal saw it too, and every epoch after it, each line naming the log
    done = int(resumed.group(1))
    assert f"condi: [{TEACHER_LOG}] resuming after epoch {done}/3" in rerun.stdout
    for epoch in range(done + 1, 4):
        assert f"condi: [{TEACHER_LOG}] epoch {epoch}/3: train_loss " in rerun.stdout
    assert not (wd / state_path_for(TEACHER_OUT)).exists()
    assert not list((wd / "models").rglob("*.tmp"))

    assert (wd / TABLE).read_bytes() == (reference_run / TABLE).read_bytes()
    md = TABLE.replace(".csv", ".md")
    assert (wd / md).read_bytes() == (reference_run / md).read_bytes()
