"""Progress of long jobs (issue 14): epochs are numbered from 1 everywhere (history, best
epoch, log line, MLflow step), and under Snakemake each epoch writes one line naming the log
to the descriptor the rule opens on Snakemake's stderr (``condi.pipeline.RULE_SHELL``)."""

from __future__ import annotations

import os
import subprocess
import sys

import torch
from torch import nn

from condi.pipeline import RULE_SHELL
from condi.progress import LOG_ENV, PROGRESS_FD_ENV, epoch_line, progress
from condi.training.loop import fit

LOG = "logs/train_teacher/synthetic_fold1_resnext14.log"


def run_fit(tmp_path, epochs, accs):
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen, steps = [], []
    result = fit(
        model=model,
        optimizer=opt,
        epochs=epochs,
        seed=0,
        state_path=tmp_path / "m.pt.state.pt",
        cfg_hash="h",
        set_epoch_lr=lambda e: None,
        train_one_epoch=lambda e: seen.append(e) or {"train_loss": 0.5 + e},
        evaluate=lambda e: {"val_video_acc": accs[e]},
        select="val_video_acc",
        on_epoch_end=lambda number, m: steps.append((number, m["epoch"])),
    )
    return result, seen, steps


def test_epochs_count_from_one_and_each_writes_one_progress_line(tmp_path, monkeypatch):
    read, write = os.pipe()
    monkeypatch.setenv(PROGRESS_FD_ENV, str(write))
    monkeypatch.setenv(LOG_ENV, LOG)
    result, seen, steps = run_fit(tmp_path, 3, [10.0, 30.0, 20.0])
    os.close(write)
    with os.fdopen(read) as f:
        lines = f.read().splitlines()
    assert seen == [0, 1, 2]  # the schedules' 0-based index
    assert steps == [(1, 1), (2, 2), (3, 3)]  # MLflow step == the history's epoch
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    assert result.best_epoch == 2  # val 30.0 was the second epoch's
    assert len(lines) == 3
    for n, line in enumerate(lines, 1):
        assert line.startswith(f"condi: [{LOG}] epoch {n}/3: train_loss {0.5 + n - 1:.4g}")
        assert "val_video_acc" in line and line.endswith(" s)")


def test_no_progress_without_the_variable(monkeypatch):
    monkeypatch.delenv(PROGRESS_FD_ENV, raising=False)
    assert progress("epoch 1/2") is False


def test_a_closed_descriptor_never_fails_the_job(monkeypatch):
    read, write = os.pipe()
    os.close(read)
    os.close(write)
    monkeypatch.setenv(PROGRESS_FD_ENV, str(write))
    assert progress("epoch 1/2") is False


def test_epoch_line_shows_losses_validation_and_time():
    line = epoch_line(3, 15, {"epoch": 3, "train_loss": 1.23456, "lr": 0.05,
                              "val_video_acc": 40.9091, "epoch_time_s": 12.34})  # fmt: skip
    assert line == "epoch 3/15: train_loss 1.235, val_video_acc 40.91 (12.3 s)"


def test_the_rule_sends_the_output_to_the_log_and_progress_to_stderr(tmp_path):
    """The rule's shell line as Snakemake fills it in: the job's stdout and stderr land in the
    log, the progress line on the caller's stderr."""
    log = tmp_path / "job.log"
    code = (
        "import sys; from condi.progress import progress; print('stdout line'); "
        "print('stderr line', file=sys.stderr); progress('epoch 1/2: train_loss 1')"
    )
    cmd = f"{sys.executable} -c {code!r}"
    shell = RULE_SHELL.replace("{log:q}", f"'{log}'").replace("{params.cmd}", cmd)
    out = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, env=os.environ)
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""
    assert out.stderr == f"condi: [{log}] epoch 1/2: train_loss 1\n"
    assert log.read_text().splitlines() == ["stdout line", "stderr line"]
