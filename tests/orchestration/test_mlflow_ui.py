"""The MLflow UI as a user sees it (issue 14.6): runs logged by condi into the project's SQLite
store, ``mlflow ui --backend-store-uri sqlite:///mlflow.db`` started in the project (the
README's command), and headless Chromium screenshots (``mlflow_screenshots.py``) of the runs
page, every nested run expanded, and of one run's metrics page; the pages must show the runs'
names and the metrics, and the UI must serve the run's artifacts from the project's store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.orchestration.conftest import MlflowServer, free_port, stop, wait_for_server
from tests.orchestration.mlflow_screenshots import chromium

pytestmark = pytest.mark.skipif(
    chromium() is None,
    reason="chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)",
)
HERE = Path(__file__).parent


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project whose SQLite store holds one invocation: its run, a teacher run with three
    epochs of metrics and a checkpoint, a student nested under it, Table III's run."""
    from condi import tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("CONDI_ROOT", str(tmp_path))
    monkeypatch.setenv("CONDI_INVOCATION", "20260101-120000-abc123")
    monkeypatch.delenv("CONDI_TRACKING", raising=False)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "teacher.pt").write_bytes(b"weights" * 100)
    tracking.init_store({"datasets": {"synthetic": {}}})
    w = {"rule": "train_teacher", "dataset": "synthetic", "fold": "1", "teacher": "resnext"}
    names = {}
    teacher = "train_teacher@synthetic-1-resnext"
    tags = {**w, "model_path": "models/teacher.pt", "dvc_stage": teacher}
    with tracking.Run("train_teacher", "synthetic", {"lr": 0.1}, tags, name=teacher) as run:
        for epoch in (1, 2, 3):
            run.log_metrics({"train_loss": 2.0 / epoch, "val_top1": 30.0 * epoch}, step=epoch)
    names["teacher"] = (teacher, run.run_id, run.experiment_id)
    student = "train_student@synthetic-1-resnext-resnext8-condi_sr"
    tags = {**w, "rule": "train_student", "student": "resnext8", "method": "condi_sr"}
    with tracking.Run("train_student", "synthetic", {"lam": 0.5}, tags, name=student) as run:
        run.log_metrics({"train_loss": 1.0}, step=1)
    names["student"] = (student, run.run_id, run.experiment_id)
    with tracking.Run("table3", "synthetic", {"seed": 0}, {"rule": "table3"}, name="table3") as run:
        run.log_metrics({"top1/condi_sr/K1": 61.5})
    names["table3"] = ("table3", run.run_id, run.experiment_id)
    names["pipeline"] = ("pipeline 20260101-120000-abc123", None, None)
    return tmp_path, names


def test_screenshots_of_the_runs_and_metrics_pages_show_the_runs(project, tmp_path):
    root, names = project
    port = free_port()
    log = root / "ui.log"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen(
        ["mlflow", "ui", "--backend-store-uri", "sqlite:///mlflow.db", "--port", str(port),
         "--workers", "1"],
        cwd=root, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
        start_new_session=True,
    )  # fmt: skip
    server = MlflowServer(f"http://127.0.0.1:{port}", proc, log)
    try:
        wait_for_server(server)
        teacher, run_id, exp_id = names["teacher"]
        out = tmp_path / "shots"
        done = subprocess.run(
            [sys.executable, str(HERE / "mlflow_screenshots.py"), server.uri, exp_id, run_id,
             str(out)],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        files = json.loads(done.stdout)
        for png in files.values():
            data = Path(png).read_bytes()
            assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, png
        runs_page = (out / "runs.txt").read_text().splitlines()
        for name, *_ in names.values():  # nested runs expanded: every name on the page
            assert name in runs_page, (name, runs_page)
        metrics_page = (out / "metrics.txt").read_text()
        assert teacher in metrics_page
        assert "train_loss" in metrics_page and "val_top1" in metrics_page
        # the UI serves the run's artifacts from this project's mlartifacts/
        url = f"{server.uri}/api/2.0/mlflow/artifacts/list?run_id={run_id}&path=checkpoint"
        with urllib.request.urlopen(url, timeout=30) as resp:
            listed = json.loads(resp.read())
        assert [f["path"] for f in listed["files"]] == ["checkpoint/teacher.pt"]
    finally:
        stop(proc)
