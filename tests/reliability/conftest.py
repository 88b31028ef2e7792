"""Shared pieces of the reliability suite (issue 8).

One uninterrupted pipeline run on a *damaged* tiny dataset is shared by every test that needs
a reference (``reference_run``): the tiny synthetic videos with a zero-byte, a corrupt, a
truncated and three missing videos (all of one class's test videos: that class has none), and
one video shorter than a clip (10 frames: N = 1, padded). The pipeline must go on through them
(issue 8.6), and the killed-and-resumed run (8.2) and the run that a second invocation tried to
share (8.5) must reproduce its table byte for byte.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from tests.conftest import REPO, load_yaml, workflow_copy

SNAKEMAKE = ["snakemake"]
TABLE = "results/table3.csv"
TEACHER_OUT = "models/synthetic/fold1/teacher_resnext14.pt"
STUDENT_OUT = "models/synthetic/fold1/student_resnext14_resnext14half_condi_sr.pt"
INDEX = "data/index/synthetic_fold1.parquet"
CACHE = "data/cache/synthetic_fold1.npy"
TEACHER_SCORES = "results/scores/synthetic/fold1/teacher_resnext14.npz"
BASELINES = "results/eval/synthetic/fold1/baselines_resnext14.csv"
DATA_ROOT = "data/synthetic"
PIPELINE_TIMEOUT = 600

# The faults written into the tiny dataset: path under UCF-101/ -> start of the reason that
# skipped_videos.csv must give.
SKIPPED = {
    "MoveLeft/v_MoveLeft_g01_c01.avi": "empty file",  # train, zero bytes
    "MoveUp/v_MoveUp_g02_c01.avi": "cannot open",  # train, random bytes
    "MoveDown/v_MoveDown_g01_c01.avi": "truncated",  # train, cut in half
    "MoveDown/v_MoveDown_g03_c01.avi": "missing",  # test: every MoveDown test video is gone
    "MoveDown/v_MoveDown_g03_c02.avi": "missing",
    "MoveDown/v_MoveDown_g04_c01.avi": "missing",
}
NO_TEST_CLASS = "MoveDown"
SHORT_VIDEO = "MoveRight/v_MoveRight_g03_c01.avi"  # test, re-encoded with 10 frames
SHORT_FRAMES = 10


def pipeline_params(**edits) -> dict:
    """The repository's params, shrunk: tiny damaged dataset (a real-dataset entry, no synth
    block), protocol scratch, teacher 3 epochs, student 1, only condi_sr, CPU, 1 thread per
    job."""
    p = load_yaml(REPO / "params.yaml")
    p["seed"] = 0
    p["device"] = "cpu"
    p["threads"] = 1
    p["datasets"] = {"synthetic": {"kind": "ucf101", "root": DATA_ROOT, "folds": [1]}}
    p["protocol"] = "scratch"  # the one dataset: no source to pre-train on
    p.pop("pretrain", None)
    p["training"]["teacher"].update(epochs=3, lr_milestones=[])
    p["training"]["student"].update(epochs=1)
    p["methods"] = ["condi_sr"]
    p.setdefault("tables", {})["table3_columns"] = {"synthetic": ["1", "3", "5", "dense"]}
    p.update(edits)
    return p


def make_damaged_dataset(root: Path) -> Path:
    """The ``tiny`` synthetic dataset at ``root`` with the faults of :data:`SKIPPED` and the
    short video of :data:`SHORT_VIDEO`."""
    from condi.data.synthetic import encode_avi, generate

    generate(root, preset="tiny", seed=0)
    videos = root / "UCF-101"
    for rel, reason in SKIPPED.items():
        path = videos / rel
        if reason == "empty file":
            path.write_bytes(b"")
        elif reason == "cannot open":
            path.write_bytes(np.random.default_rng(0).bytes(5000))
        elif reason == "truncated":
            data = path.read_bytes()
            path.write_bytes(data[: len(data) // 2])
        else:
            path.unlink()
    path = videos / SHORT_VIDEO
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) > 16
    encode_avi(path, np.stack(frames[:SHORT_FRAMES]), 25)
    return root


def env(workdir: Path, **extra: str) -> dict[str, str]:
    """The environment of a ``condi`` subprocess: MLflow in the work dir's own SQLite store
    (never the repository's or a server named by the caller's environment)."""
    e = dict(os.environ)
    e.pop("CONDI_TRACKING", None)
    e["CONDI_ROOT"] = str(workdir)
    e["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir / 'mlflow.db'}"
    e["PYTHONUNBUFFERED"] = "1"
    e.update(extra)
    return e


def pipeline_env(workdir: Path) -> dict[str, str]:
    """The environment of a pipeline run (Snakemake) here: :func:`env` with tracking off. What
    these runs test is the pipeline's own state (faults in the data, kills, locks); tracking's
    own faults are tested on their own (test_tracking_unreachable.py), and a whole run's
    tracking by the orchestration run (tests/orchestration/test_mlflow.py). Off, a job starts
    without MLflow: two seconds less per job."""
    return env(workdir, CONDI_TRACKING="0")


def snakemake(
    workdir: Path, *args: str, timeout: float = PIPELINE_TIMEOUT
) -> subprocess.CompletedProcess:
    """Run Snakemake in ``workdir`` (:func:`pipeline_env`); stdout and stderr together
    (Snakemake 9 prints its errors, the LockException included, on stdout)."""
    return subprocess.run(
        [*SNAKEMAKE, *args],
        cwd=workdir,
        env=pipeline_env(workdir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


def condi(
    *args: str, cwd: Path, timeout: float = 300, env_extra: dict | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "condi", *map(str, args)],
        cwd=cwd,
        env=env(cwd, **(env_extra or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def new_workdir(dest: Path, reference: Path | None = None, **edits) -> Path:
    """A workflow copy with the pipeline params; the damaged dataset copied from ``reference``
    (or generated)."""
    wd = workflow_copy(dest, pipeline_params(**edits))
    if reference is not None:
        shutil.copytree(reference / DATA_ROOT, wd / DATA_ROOT)
    else:
        make_damaged_dataset(wd / DATA_ROOT)
    return wd


def files_under(root: Path, skip: tuple[str, ...] = (".snakemake",)) -> set[str]:
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and p.relative_to(root).parts[0] not in skip
    }


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory) -> Path:
    """One uninterrupted pipeline run (``results/table3.csv``) on the damaged tiny dataset."""
    wd = new_workdir(tmp_path_factory.mktemp("reference") / "wd")
    out = snakemake(wd, "--cores", "2", TABLE)
    assert out.returncode == 0, out.stdout[-6000:]
    assert (wd / TABLE).is_file()
    # tracking off (pipeline_env): onstart/onsuccess touched no store, no job kept a record
    assert not (wd / "mlflow.db").exists() and not (wd / ".mlflow_pending").exists()
    return wd
