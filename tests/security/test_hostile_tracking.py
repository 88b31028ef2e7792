"""Issue 12.8 and 12.9: tracking credentials never printed; kept records are untrusted input.

* ``MLFLOW_TRACKING_URI=http://user:pass@host``: no condi output (stdout, stderr, logs)
  shows the password, with the store up or down.
* ``condi tracking import`` over ``.mlflow_pending/`` with a corrupt record, a record whose
  ``stage`` is ``../../x`` and one whose artifact is ``/etc/hostname``: the corrupt one is named
  and left, the others are imported, nothing is written outside ``.mlflow_pending/`` and only
  artifacts under the project directory are uploaded.
* A failed upload ends the run FAILED in the store, not RUNNING.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from condi import tracking
from condi.cli import main

SECRET = "s3cretPW"
FAST_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "2"}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- 12.8: credentials ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("http://user:pass@host:5000/x", "http://***@host:5000/x"),
        ("https://u:p@ss@mlflow.example/api", "https://***@mlflow.example/api"),
        ("store http://tok@h/ failed: API request to http://u:pw@h/api/2.0", "http://***@h/"),
        ("https://h/x?token=abc&run=1", "https://h/x?token=***&run=1"),
        ("sqlite:////work/mlflow.db", "sqlite:////work/mlflow.db"),
        ("postgresql://admin:hunter2@db:5432/mlflow", "postgresql://***@db:5432/mlflow"),
    ],
)
def test_redact(text, shown):
    out = tracking.redact(text)
    assert shown in out
    for secret in ("pass", "p@ss", "pw@", "abc", "hunter2", "tok@"):
        if secret in text and secret not in shown:
            assert secret not in out


def _run_python(code: str, cwd, uri: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **FAST_HTTP, "MLFLOW_TRACKING_URI": uri, "CONDI_ROOT": str(cwd)}
    env.pop("CONDI_TRACKING", None)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_a_password_in_the_tracking_uri_is_never_printed(tmp_path):
    uri = f"http://alice:{SECRET}@127.0.0.1:{closed_port()}"
    init = _run_python(
        "from condi.cli import main; raise SystemExit(main(['tracking', 'init']))", tmp_path, uri
    )
    stage = _run_python(
        "from condi.tracking import Run\n"
        "with Run('probe', 'synthetic', {'a': 1}) as run:\n"
        "    run.log_metrics({'m': 1.0})\n",
        tmp_path,
        uri,
    )
    for out in (init, stage):
        assert SECRET not in out.stdout + out.stderr, out.stderr[-3000:]
    assert init.returncode == 1 and "http://***@127.0.0.1" in init.stderr, init.stderr[-2000:]
    assert stage.returncode == 0 and "unreachable" in stage.stderr
    (record,) = (tmp_path / ".mlflow_pending").glob("*.json")
    assert SECRET not in record.read_text()


# -- 12.9: records to import ------------------------------------------------------------------


@pytest.fixture(scope="module")
def store_template(tmp_path_factory):
    import mlflow

    db = tmp_path_factory.mktemp("store") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{db}").search_experiments(max_results=1)
    return db


@pytest.fixture
def project(tmp_path, store_template, monkeypatch):
    """A project directory whose store is a fresh SQLite copy; returns (root, db)."""
    import shutil

    root = tmp_path / "project"
    (root / tracking.PENDING_DIR).mkdir(parents=True)
    db = tmp_path / "store.db"
    shutil.copy(store_template, db)
    monkeypatch.setenv("CONDI_ROOT", str(root))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    monkeypatch.delenv("CONDI_TRACKING", raising=False)
    monkeypatch.chdir(root)
    return root, db


def record(stage="evaluate", artifacts=(), status="FINISHED", **extra) -> dict:
    return {
        "experiment": "synthetic",
        "tags": {"stage": stage, "dataset": "synthetic"},
        "params": {"a": "1"},
        "metrics": [["acc", 0.5, 1700000000000, 0]],
        "artifacts": list(artifacts),
        "status": status,
        **extra,
    }


def snapshot(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def stored(db, run) -> list[str]:
    """The run's artifacts in the SQLite store's mlartifacts/ (beside the database)."""
    folder = tracking.local_artifact_dir(run.info.artifact_uri, f"sqlite:///{db}")
    assert folder is not None
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def runs_by_stage(db):
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{db}")
    exp = client.get_experiment_by_name("synthetic")
    runs = client.search_runs([exp.experiment_id]) if exp else []
    return client, {r.data.tags["stage"]: r for r in runs}


def test_import_names_a_bad_record_and_imports_the_others(project, tmp_path, capsys):
    root, db = project
    pending = root / tracking.PENDING_DIR
    (root / "results").mkdir()
    (root / "results" / "eval.csv").write_text("a,b\n1,2\n")
    (pending / "a-corrupt.json").write_text('{"experiment": "synthetic", "tags": ')
    (pending / "b-notes.json").write_text(json.dumps(["not", "a", "record"]))
    (pending / "c-escape.json").write_text(json.dumps(record(stage="../../x")))
    (pending / "d-hostname.json").write_text(
        json.dumps(record(stage="steal", artifacts=["/etc/hostname", "results/../../store.db"]))
    )
    (pending / "e-good.json").write_text(json.dumps(record(artifacts=["results/eval.csv"])))
    outside_before = snapshot(tmp_path)

    rc = main(["tracking", "import"])
    out, err = capsys.readouterr()
    assert rc == 1
    assert "imported 3 run(s)" in out
    for name in ("a-corrupt.json", "b-notes.json"):
        (line,) = [ln for ln in err.splitlines() if name in ln]
        assert line.startswith("condi: error: ") and "left in place" in line
    assert "not valid JSON" in err and "not a JSON object" in err
    assert sorted(p.name for p in pending.iterdir()) == ["a-corrupt.json", "b-notes.json"]
    # nothing new anywhere but the artifact store beside the SQLite file (the one artifact)
    new = set(snapshot(tmp_path)) - set(outside_before)
    assert {n for n in new if not n.startswith("mlartifacts")} == set(), new
    assert {Path(n).name for n in new if Path(n).suffix} == {"eval.csv"}, new

    client, runs = runs_by_stage(db)
    assert set(runs) == {"../../x", "steal", "evaluate"}
    assert all(r.info.status == "FINISHED" for r in runs.values())
    assert stored(db, runs["steal"]) == []  # /etc/hostname stayed home
    assert stored(db, runs["evaluate"]) == ["eval.csv"]


def test_a_stage_name_cannot_leave_the_pending_folder(project, tmp_path):
    root, _ = project
    run = tracking.Run("../../x", "synthetic")
    run.log_artifact(tmp_path / "elsewhere.csv")
    before = snapshot(tmp_path)
    run._write_pending("FINISHED")
    new = sorted(set(snapshot(tmp_path)) - set(before))
    assert len(new) == 1 and new[0].startswith(f"project/{tracking.PENDING_DIR}/x-"), new
    rec = json.loads((tmp_path / new[0]).read_text())
    assert rec["tags"]["stage"] == "../../x"  # kept as data, harmless
    for stage in ("/etc/passwd", "..", "a/b\\c", "\n", ""):
        name = tracking._safe_name(stage)
        assert name and "/" not in name and "\\" not in name and not name.startswith(".")


def test_a_failed_upload_leaves_a_failed_run_not_a_running_one(project, monkeypatch):
    root, db = project
    monkeypatch.setattr(tracking, "_retry", lambda fn, tries=4, delay=0.2: fn())

    def broken(self):
        raise OSError("artifact store full")

    monkeypatch.setattr(tracking.Run, "_flush_to_store", broken)
    with tracking.Run("evaluate", "synthetic", {"a": 1}) as run:
        run.log_metrics({"m": 1.0})
    _, runs = runs_by_stage(db)
    assert runs["evaluate"].info.status == "FAILED"
    assert len(list((root / tracking.PENDING_DIR).glob("evaluate-*.json"))) == 1

    # importing while the store still fails: the record stays, no second copy, run FAILED
    pending_before = sorted((root / tracking.PENDING_DIR).iterdir())
    result = tracking.import_pending()
    assert result.imported == 0 and result.left == 1
    assert sorted((root / tracking.PENDING_DIR).iterdir()) == pending_before
    _, runs = runs_by_stage(db)
    assert all(r.info.status == "FAILED" for r in runs.values())


def test_every_log_line_and_error_line_is_redacted(capsys):
    import logging

    from condi.cli import _redact_credentials

    rec = logging.LogRecord(
        "condi.data.download", logging.WARNING, __file__, 1, "%s: retry after %s",
        (f"https://bob:{SECRET}@mirror/k400.tar.gz", "timeout"), None,
    )  # fmt: skip
    assert _redact_credentials(rec)
    assert SECRET not in rec.getMessage() and "https://***@mirror/" in rec.getMessage()
    argv = ["predict", "x.avi", "--teacher-ckpt", f"http://u:{SECRET}@h/t.pt"]
    assert main([*argv, "--student-ckpt", "s"])
    assert SECRET not in capsys.readouterr().err
