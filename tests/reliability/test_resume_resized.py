"""Issue 19.2: on the resized store (clips decoded on the fly in DataLoader worker processes), a
training job killed with SIGKILL (the whole process group: the job and its workers) resumes
from its last checkpoint and ends with the weights of an uninterrupted run, bit for bit (CPU,
fixed seed and threads), here one read without workers. The workers draw every clip's crop and flip from (epoch seed, row), as
the cache path does, so neither the kill nor the number of workers changes a batch.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from condi.data.index import build_index, write_index
from condi.data.resized import ResizeSettings, build_resized_store
from condi.models.checkpoint import load_model
from condi.training.loop import state_path_for
from tests.conftest import REPO, load_yaml, tiny_synthetic

EPOCHS = 3


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """A params file (storage: resized, 2 workers), the index and the store of the tiny
    synthetic dataset."""
    wd = tmp_path_factory.mktemp("resized_resume")
    root = tiny_synthetic(wd / "data")
    df, skipped = build_index("ucf101", root, 1, clip_len=16, val_fraction=0.1, seed=0)
    index = wd / "index.parquet"
    write_index(df, index, {**df.attrs["condi"], "dataset": "synthetic"}, skipped=skipped)
    p = load_yaml(REPO / "params.yaml")
    store = build_resized_store(
        [df],
        root,
        wd / "store",
        ResizeSettings(p["data"]["short_side"], 16, crf=18, preset="ultrafast"),
        workers=1,
        progress=False,
    )
    # the one dataset: no source to pre-train on
    p.update(seed=0, device="cpu", threads=1, workers=2, protocol="scratch")
    p["datasets"] = {
        "synthetic": {"kind": "ucf101", "root": str(root), "folds": [1], "storage": "resized"}
    }
    p["training"]["teacher"].update(epochs=EPOCHS, batch_size=16, lr_milestones=[])
    (wd / "params.yaml").write_text(yaml.safe_dump(p))
    (wd / "params0.yaml").write_text(yaml.safe_dump({**p, "workers": 0}))
    return wd, index, store


def train_cmd(wd, index, store, out, params="params.yaml") -> list[str]:
    return [sys.executable, "-m", "condi", "train", "teacher", "--params", str(wd / params),
            "--stage", "train_teacher", "--dataset", "synthetic", "--fold", "1", "--teacher",
            "resnext14", "--index", str(index), "--cache", str(store), "--out", str(out)]  # fmt: skip


def env() -> dict[str, str]:
    return {**os.environ, "CONDI_TRACKING": "0", "PYTHONUNBUFFERED": "1"}


def weights(path):
    return load_model(path)[1]["model"]


@pytest.mark.slow
def test_killed_training_on_the_resized_store_resumes_to_the_same_weights(job, tmp_path):
    wd, index, store = job
    # the reference reads its clips in the job's own process (workers: 0)
    ref = tmp_path / "ref" / "teacher.pt"
    done = subprocess.run(
        train_cmd(wd, index, store, ref, "params0.yaml"),
        env=env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    out = tmp_path / "killed" / "teacher.pt"
    state = state_path_for(out)
    log = tmp_path / "first.log"
    with open(log, "w") as f:
        proc = subprocess.Popen(
            train_cmd(wd, index, store, out),
            env=env(),
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        # no deadline (a busy machine is slow, not wrong): the job checkpoints an epoch or ends
        while not state.exists():
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the job and its DataLoader workers
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists(), "the job finished before the kill"

    rerun = subprocess.run(
        train_cmd(wd, index, store, out), env=env(), capture_output=True, text=True, timeout=900
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    resumed = re.search(r"resuming \S+ after epoch (\d+)/(\d+)", rerun.stderr)
    assert resumed, rerun.stderr[-3000:]
    assert 1 <= int(resumed.group(1)) < int(resumed.group(2)) == EPOCHS
    assert not state.exists()
    a, b = weights(out), weights(ref)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
