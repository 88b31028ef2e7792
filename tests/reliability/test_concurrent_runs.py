"""Issue 8.5: two pipeline invocations on one directory at once: the second is refused clearly
by Snakemake's directory lock, and the first completes with the reference table."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest

from tests.reliability.conftest import SNAKEMAKE, TABLE, files_under, pipeline_env, snakemake


@pytest.mark.slow
def test_second_invocation_is_refused_and_the_first_is_unharmed(reference_run, tmp_path):
    # A copy of the finished reference (Snakemake's records included, mtimes kept) without its
    # results: the first invocation re-runs scoring, evaluation and the table (not training).
    wd = tmp_path / "wd"
    shutil.copytree(reference_run, wd, symlinks=True)
    shutil.rmtree(wd / "results")
    shutil.rmtree(wd / ".snakemake" / "locks", ignore_errors=True)
    lock_dir = wd / ".snakemake" / "locks"

    with open(tmp_path / "first.out", "w") as out:
        first = subprocess.Popen(
            [*SNAKEMAKE, "--cores", "2", TABLE],
            cwd=wd,
            env=pipeline_env(wd),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        # no deadline: the first invocation either takes its lock or ends (the failure)
        while not (lock_dir.is_dir() and any(lock_dir.iterdir())):
            assert first.poll() is None, (tmp_path / "first.out").read_text()[-3000:]
            time.sleep(0.05)
        # The first invocation (its jobs included: one process group) is paused while it holds
        # its lock, so that it cannot finish before the second asks: no race on a slow machine.
        os.killpg(first.pid, signal.SIGSTOP)
        try:
            results_before = files_under(wd / "results") if (wd / "results").exists() else set()
            second = snakemake(wd, "--cores", "2", TABLE, timeout=300)
            still_running = first.poll() is None
        finally:
            os.killpg(first.pid, signal.SIGCONT)
        assert second.returncode != 0, second.stdout[-3000:]
        assert "Directory cannot be locked" in second.stdout, second.stdout[-3000:]
        assert "localrule" not in second.stdout and "Job stats" not in second.stdout  # no job
        assert still_running, "the first invocation ended before it could be paused"

        assert first.wait(timeout=600) == 0, (tmp_path / "first.out").read_text()[-6000:]
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    first_log = (tmp_path / "first.out").read_text()
    assert "Error in rule" not in first_log and "LockException" not in first_log, first_log[-3000:]
    assert results_before <= files_under(wd / "results")
    assert (wd / TABLE).read_bytes() == (reference_run / TABLE).read_bytes()
    assert not lock_dir.exists() or not any(lock_dir.iterdir())  # the first released its lock
