"""Issue 8.4: with the MLflow store unreachable (a closed port) or locked (SQLite held by an
exclusive transaction) a stage retries briefly, then goes on with a warning: its results are
written and the run's record is kept under ``.mlflow_pending/`` for ``condi tracking import``.

MLflow's HTTP client retries a refused connection 7 times with exponential back-off by default
(about 4 minutes per request, and condi's own tries on top: ~12 minutes before the stage went
on). ``condi.tracking`` now sets brief ``MLFLOW_HTTP_*`` defaults (a user's own settings win);
``test_default_http_retries_are_bounded`` checks the settings a run ends up with (the bound on
its waiting follows from them: no wall-clock assertion, which flakes on a busy machine). The
stage tests set ``MLFLOW_HTTP_REQUEST_MAX_RETRIES=0`` / ``MLFLOW_HTTP_REQUEST_TIMEOUT=2``
themselves, so that they stay bounded whatever those defaults are.
"""

from __future__ import annotations

import json
import shutil
import socket
import sqlite3
import subprocess
import sys

import pytest

from tests.reliability.conftest import BASELINES, INDEX, TEACHER_SCORES, condi, env

FAST_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "2"}
STAGE_TIMEOUT = 900  # a hang guard only (the stage takes ~15 s), never a speed check


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def grid_stage(ref, cwd, env_extra):
    """The baseline evaluation stage, as the pipeline runs it, writing ``eval.csv`` in cwd."""
    return condi(
        "evaluate",
        "grid",
        "--params",
        ref / "params.yaml",
        "--dataset",
        "synthetic",
        "--fold",
        "1",
        "--teacher",
        "resnext14",
        "--index",
        ref / INDEX,
        "--teacher-scores",
        ref / TEACHER_SCORES,
        "--out",
        "eval.csv",
        cwd=cwd,
        env_extra=env_extra,
        timeout=STAGE_TIMEOUT,
    )


def pending(root):
    return sorted((root / ".mlflow_pending").glob("*.json"))


def assert_went_on(out, cwd, ref):
    assert out.returncode == 0, out.stderr[-3000:]
    assert "keeping this run's record locally" in out.stderr, out.stderr[-3000:]
    assert "condi tracking import" in out.stderr
    # no result lost: the same table as the pipeline's own run, and the record kept
    assert (cwd / "eval.csv").read_bytes() == (ref / BASELINES).read_bytes()
    (record,) = pending(cwd)
    rec = json.loads(record.read_text())
    assert rec["status"] == "FINISHED" and rec["experiment"] == "synthetic"
    assert rec["metrics"] and rec["params"] and rec["artifacts"]
    return rec


def stored_artifacts(store, run) -> list[str]:
    """The run's artifacts, copied into the SQLite store's mlartifacts/ beside it."""
    from condi.tracking import local_artifact_dir

    folder = local_artifact_dir(run.info.artifact_uri, f"sqlite:///{store}")
    assert folder is not None and folder.parent.parent.parent == store.parent / "mlartifacts"
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def imported_runs(store):
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{store}")
    exp = client.get_experiment_by_name("synthetic")
    assert exp is not None
    return client, client.search_runs([exp.experiment_id])


@pytest.fixture(scope="module")
def store_template(tmp_path_factory):
    """An empty MLflow SQLite store, created once (its migrations take seconds)."""
    import mlflow

    db = tmp_path_factory.mktemp("store") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{db}").search_experiments(max_results=1)
    return db


@pytest.fixture
def store(store_template, tmp_path):
    db = tmp_path / "store" / "mlflow.db"
    db.parent.mkdir()
    shutil.copy(store_template, db)
    return db


@pytest.fixture(scope="module")
def unreachable(reference_run, tmp_path_factory):
    cwd = tmp_path_factory.mktemp("unreachable")
    uri = f"http://127.0.0.1:{closed_port()}"
    out = grid_stage(
        reference_run, cwd, {"MLFLOW_TRACKING_URI": uri, **FAST_HTTP, "CONDI_ROOT": str(cwd)}
    )
    return cwd, out


def test_unreachable_server_stage_goes_on_and_keeps_the_record(unreachable, reference_run):
    cwd, out = unreachable
    assert_went_on(out, cwd, reference_run)
    assert "unreachable" in out.stderr


def test_kept_record_is_imported_later(unreachable, tmp_path, store):
    src, _ = unreachable
    root = tmp_path / "root"
    shutil.copytree(src, root)
    (rec_path,) = pending(root)
    rec = json.loads(rec_path.read_text())
    out = condi(
        "tracking", "import", cwd=root, env_extra={"MLFLOW_TRACKING_URI": f"sqlite:///{store}"}
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "imported 1 run(s)" in out.stdout
    assert not pending(root)
    client, (run,) = imported_runs(store)
    assert run.info.status == "FINISHED"
    assert set(run.data.metrics) == {m[0] for m in rec["metrics"]}
    assert set(run.data.params) == set(rec["params"])
    assert stored_artifacts(store, run) == ["eval.csv"]


def test_kept_record_keeps_its_artifacts_when_imported_from_elsewhere(unreachable, tmp_path, store):
    src, _ = unreachable
    root = tmp_path / "root"
    shutil.copytree(src, root)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = condi(
        "tracking",
        "import",
        cwd=elsewhere,
        env_extra={"MLFLOW_TRACKING_URI": f"sqlite:///{store}", "CONDI_ROOT": str(root)},
    )
    assert out.returncode == 0 and "imported 1 run(s)" in out.stdout, out.stderr[-3000:]
    client, (run,) = imported_runs(store)
    assert stored_artifacts(store, run) == ["eval.csv"]


def test_locked_sqlite_store_stage_goes_on_and_keeps_the_record(reference_run, tmp_path, store):
    db = store
    uri = {"MLFLOW_TRACKING_URI": f"sqlite:///{db}"}
    holder = sqlite3.connect(db, isolation_level=None, timeout=0)
    holder.execute("BEGIN EXCLUSIVE")  # another process writing, for as long as the stage runs
    try:
        out = grid_stage(reference_run, tmp_path, uri)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert_went_on(out, tmp_path, reference_run)
    assert "locked" in out.stderr

    out = condi("tracking", "import", cwd=tmp_path, env_extra=uri)
    assert out.returncode == 0 and "imported 1 run(s)" in out.stdout, out.stderr[-3000:]
    _, (run,) = imported_runs(db)
    assert run.info.status == "FINISHED" and run.data.metrics


@pytest.mark.slow
def test_default_http_retries_are_bounded(tmp_path):
    """A tracked run against a closed port, with no MLFLOW_HTTP_* settings of its own, goes on
    (record kept) and ran under settings that bound each request's waiting: at most
    (retries + 1) timeouts plus the back-off sleeps, 30 s, instead of MLflow's minutes. The
    bound is computed from the settings, not measured (a busy machine would make a timing
    flake); the subprocess timeout is only a hang guard."""
    code = (
        "import json, os\n"
        "from condi.tracking import Run\n"
        "with Run('probe', 'synthetic', {'a': 1}) as run:\n"
        "    run.log_metrics({'m': 1.0})\n"
        "print(json.dumps({k: v for k, v in os.environ.items() if k.startswith('MLFLOW_HTTP_')}))\n"
    )
    e = env(tmp_path, MLFLOW_TRACKING_URI=f"http://127.0.0.1:{closed_port()}")
    for key in list(e):
        if key.startswith("MLFLOW_HTTP_"):
            del e[key]
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=e,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert pending(tmp_path)
    http = json.loads(out.stdout.strip().splitlines()[-1])
    retries = int(http["MLFLOW_HTTP_REQUEST_MAX_RETRIES"])
    timeout = float(http["MLFLOW_HTTP_REQUEST_TIMEOUT"])
    factor = float(http["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"])
    jitter = float(http.get("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0"))
    # urllib3's back-off before retry i (i >= 1) is factor * 2 ** (i - 1), plus the jitter
    backoff = sum(factor * 2 ** (i - 1) + jitter for i in range(1, retries + 1))
    assert (retries + 1) * timeout + backoff <= 30
