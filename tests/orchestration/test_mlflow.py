"""MLflow: the tiny pipeline logged to an `mlflow server`, checked through its REST API; and
parallel jobs writing to one SQLite store (issue 7.3)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from condi import tracking
from condi.pipeline import STAGES, job_name
from condi.tracking import file_md5
from tests.conftest import REPO
from tests.orchestration.conftest import git, run


def all_runs(server) -> list[dict]:
    """Every run of every experiment, through the REST API."""
    exps = server.api("/api/2.0/mlflow/experiments/search", {"max_results": 1000})["experiments"]
    runs = []
    for exp in exps:
        body = {"experiment_ids": [exp["experiment_id"]], "max_results": 1000}
        found = server.api("/api/2.0/mlflow/runs/search", body).get("runs", [])
        for r in found:
            r["experiment"] = exp["name"]
            r["tags"] = {t["key"]: t["value"] for t in r["data"].get("tags", [])}
            r["metrics"] = {m["key"]: m["value"] for m in r["data"].get("metrics", [])}
            r["params"] = {m["key"]: m["value"] for m in r["data"].get("params", [])}
        runs += found
    return runs


def artifacts(server, run_id: str, path: str = "") -> set[str]:
    """The run's artifact files, listed through the REST API (folders walked)."""
    query = f"run_id={run_id}" + (f"&path={path}" if path else "")
    out = set()
    for f in server.api(f"/api/2.0/mlflow/artifacts/list?{query}").get("files", []):
        out |= artifacts(server, run_id, f["path"]) if f["is_dir"] else {f["path"]}
    return out


def expected_jobs(params):
    from condi.config import validate
    from condi.pipeline import jobs

    # the targets the pipelines fixture runs: all and the ablation (not the speed report)
    return {j.name: j for j in jobs(validate(params)) if j.stage.part != "speed"}


@pytest.mark.slow
def test_every_job_is_a_nested_named_run_on_an_mlflow_server(pipelines):
    """Read back through the REST API of the live server the Snakemake run logged to: one run
    per job (data stages and tables included), named as DVC names the job, nested under its
    teacher's run or the invocation's, with MLflow's context tags and no duplicates of them."""
    server, smk = pipelines.server, pipelines.smk
    runs = all_runs(server)
    unfinished = [(r["info"]["run_name"], r["info"]["status"]) for r in runs]
    assert all(status == "FINISHED" for _, status in unfinished), [
        u for u in unfinished if u[1] != "FINISHED"
    ]
    parents = [r for r in runs if r["tags"]["stage"] == "pipeline"]
    jobs = [r for r in runs if r["tags"]["stage"] != "pipeline"]
    expected = expected_jobs(pipelines.params)
    names = [r["info"]["run_name"] for r in jobs]
    assert set(names) == set(expected)
    # a table job has one run per dataset it covers, each in that dataset's experiment: Table I
    # lists the target and the transfer protocol's source; every other job has one run
    repeated = {n for n in names if names.count(n) > 1}
    assert repeated == {"table1"}, repeated
    table1 = [r for r in jobs if r["info"]["run_name"] == "table1"]
    assert sorted(r["experiment"] for r in table1) == sorted(pipelines.params["datasets"])
    # one invocation: its run in each experiment that has jobs
    (invocation,) = {r["tags"]["invocation"] for r in runs}
    assert sorted(p["experiment"] for p in parents) == sorted({r["experiment"] for r in jobs})
    parent_of = {p["experiment"]: p["info"]["run_id"] for p in parents}
    by_name = {r["info"]["run_name"]: r for r in jobs}
    head = git(smk, "rev-parse", "HEAD").stdout.strip()
    for name, r in by_name.items():
        t, stage = r["tags"], expected[name].stage
        assert t["mlflow.runName"] == t["dvc_stage"] == name
        assert t["stage"] == t["rule"] == stage.name
        assert t["mlflow.user"] and t["mlflow.source.type"] == "LOCAL" and t["mlflow.source.name"]
        assert t["mlflow.source.git.commit"] == head
        assert not {"git_commit", "run_name"} & set(t), name  # MLflow's own tags say it
        trainer = tracking.teacher_stage(stage.name)
        if trainer is not None:  # under the run that trained its teacher
            w = {k: t[k] for k in STAGES[trainer].wildcards}
            teacher = by_name[job_name(trainer, w)]
            assert t["mlflow.parentRunId"] == teacher["info"]["run_id"], name
        else:
            assert t["mlflow.parentRunId"] == parent_of[r["experiment"]], name
        assert r["info"]["artifact_uri"].startswith("mlflow-artifacts:/"), r["info"]
        assert r["experiment"] == t.get("dataset", "all datasets")
    assert by_name["table2"]["experiment"] == "all datasets"  # Table II covers no dataset


@pytest.mark.slow
def test_table_runs_log_their_numbers_and_params(pipelines):
    import pandas as pd

    runs = {r["info"]["run_name"]: r for r in all_runs(pipelines.server)}
    table3 = pd.read_csv(pipelines.smk / "results/table3.csv", dtype={"K": str})
    run = runs["table3"]
    expected = {}
    for _, row in table3.iterrows():
        key = f"top1/{row['method']}/K{row['K']}" + (
            "" if pd.isna(row["Ks"]) else f"/Ks{int(row['Ks'])}"
        )
        expected[key] = row["top1"]
    got = {k: v for k, v in run["metrics"].items() if k.startswith("top1/")}
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-4), key
    assert "top1/condi_sr/K1" in got
    assert {"seed", "tables.bootstrap.resamples"} <= set(run["params"]), run["params"]
    assert {"table3.csv", "table3.md", "table3_paper.csv"} <= artifacts(
        pipelines.server, run["info"]["run_id"]
    )
    metrics = json.loads((pipelines.smk / "results/metrics.json").read_text())["synthetic"]
    for method, ks in metrics.items():
        for k, v in ks.items():
            assert runs["metrics"]["metrics"][tracking.metric_key(f"top1/{method}/K{k}")] == v
    # the grid and the other tables
    (name,) = [n for n in runs if n.startswith("evaluate_baselines@")]
    csv = pd.read_csv(
        pipelines.smk / json.loads(runs[name]["tags"]["outputs"])[0], dtype={"K": str}
    )
    assert runs[name]["metrics"] == {
        f"top1/{r['method']}/K{r['K']}": pytest.approx(r["top1"], abs=1e-4)  # CSV: 4 decimals
        for _, r in csv.iterrows()
    }
    assert {"instances", "classes"} <= {k.split("/")[0] for k in runs["table1"]["metrics"]}
    assert any(k.startswith("time_s/") for k in runs["table4"]["metrics"])


@pytest.mark.slow
def test_checkpoints_and_result_files_are_copied_into_the_store(pipelines):
    """A trained model: its checkpoint under the run's checkpoint/ (bytes equal to the DVC-
    tracked file) and a logged model naming that file; result files copied to the server's
    artifact store, none referred to by its path in the project."""
    server, smk = pipelines.server, pipelines.smk
    runs = {r["info"]["run_name"]: r for r in all_runs(server)}
    trained = [r for name, r in runs.items() if name.startswith(("train_", "ablation_train"))]
    assert len(trained) == len(
        [j for j in expected_jobs(pipelines.params) if j.startswith(("train_", "ablation_train"))]
    )
    store = pipelines.root / "mlartifacts"
    for r in trained:
        t = r["tags"]
        name = Path(t["model_path"]).name
        assert artifacts(server, r["info"]["run_id"]) == {f"checkpoint/{name}"}
        rel = r["info"]["artifact_uri"].removeprefix("mlflow-artifacts:/")
        copy = store / rel / "checkpoint" / name
        assert file_md5(copy) == file_md5(smk / t["model_path"]) == t["model_dvc_md5"]
    for exp in {r["experiment"] for r in trained}:
        exp_id = server.api(f"/api/2.0/mlflow/experiments/get-by-name?experiment_name={exp}")
        body = {"experiment_ids": [exp_id["experiment"]["experiment_id"]], "max_results": 100}
        models = server.api("/api/2.0/mlflow/logged-models/search", body)["models"]
        by_run = {m["info"]["source_run_id"]: m for m in models}
        for r in [r for r in trained if r["experiment"] == exp]:
            m = by_run[r["info"]["run_id"]]
            tags = {t["key"]: t["value"] for t in m["info"]["tags"]}
            assert tags["dvc_path"] == r["tags"]["model_path"]
            assert tags["dvc_md5"] == r["tags"]["model_dvc_md5"]
            assert m["info"]["status"] == "LOGGED_MODEL_READY"
    for name, files in (
        ("metrics", {"metrics.json", "accuracy_vs_k.csv", "accuracy_vs_k.png"}),
        ("evaluate_baselines@synthetic-1-resnext14", {"baselines_resnext14.csv"}),
        ("index@synthetic-1", set()),
    ):
        assert artifacts(server, runs[name]["info"]["run_id"]) == files, name


@pytest.mark.slow
def test_every_run_names_its_own_dvc_stage(pipelines):
    """Each run's dvc_stage is the DVC stage (= Snakemake job) that writes its first output, and
    its params are the stage's params values (the ones DVC watches for it)."""
    by_output = {}
    for job in expected_jobs(pipelines.params).values():
        for files in job.outputs.values():
            for out in files:
                by_output[out] = job.name
    runs = [r for r in all_runs(pipelines.server) if r["tags"]["stage"] != "pipeline"]
    wrong = []
    for r in runs:
        t = r["tags"]
        outputs = json.loads(t["outputs"])
        if outputs and t.get("dvc_stage") != by_output.get(outputs[0]):
            wrong.append((t["stage"], t.get("dvc_stage"), by_output.get(outputs[0])))
    assert not wrong, wrong
    student = next(r for r in runs if r["tags"]["rule"] == "train_student")
    params = set(student["params"])
    assert {"training.student.epochs", "condi.lam", "st_conf.beta", "data.clip_len"} <= params
    assert {"seed", "device"} <= params
    assert not any(p.startswith(("evaluation.K", "timing")) for p in params)
    # the DVC md5 tags are the ones DVC computes (its own lock, its own run)
    lock = yaml.safe_load(git(pipelines.dvc, "show", "HEAD:dvc.lock").stdout)["stages"]
    lock |= yaml.safe_load(git(pipelines.dvc, "show", "HEAD:ablation/dvc.lock").stdout)["stages"]
    recorded = {o["path"]: o["md5"] for st in lock.values() for o in st.get("outs", [])}
    md5_tags = {
        k.split("/", 1)[1]: v
        for r in runs
        for k, v in r["tags"].items()
        if k.startswith("dvc_md5/")
    }
    assert len(md5_tags) >= 10
    for path, md5 in md5_tags.items():
        assert file_md5(pipelines.smk / path) == md5, path
        # checkpoints hold per-epoch timings, and the timing CSVs and the tables made from
        # them measured times: their bytes differ between two runs
        measured = (
            "results/timing/",
            "results/table4.",
            "results/table5.",
            "results/stage_",
            "results/figures/accuracy_vs_cost_",
        )
        if not path.endswith(".pt") and not path.startswith(measured):
            assert recorded[path] == md5, path


def test_parallel_jobs_share_one_sqlite_store(tmp_path):
    """Four processes at once, each logging two runs to one SQLite file after `condi tracking
    init`: every run arrives, none is left in .mlflow_pending/."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**__import__("os").environ, "MLFLOW_TRACKING_URI": uri, "CONDI_ROOT": str(tmp_path)}
    run(["condi", "tracking", "init"], tmp_path, env=env, timeout=120)
    code = textwrap.dedent(
        """
        import sys
        from condi.tracking import Run
        for i in range(2):
            with Run("train_student", "parallel", {"i": i}, {"worker": sys.argv[1]}) as r:
                r.log_metrics({"loss": 1.0 / (i + 1)}, step=i)
                if r.client is None:
                    sys.exit(3)
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(w)], cwd=tmp_path, env=env)
        for w in range(4)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0] * 4
    import mlflow

    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("parallel")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    assert len(runs) == 8
    assert all(r.info.status == "FINISHED" and r.data.metrics for r in runs)
    assert not (tmp_path / ".mlflow_pending").exists()
    assert json.loads(json.dumps(sorted(r.data.tags["worker"] for r in runs))) == sorted(
        str(w) for w in range(4) for _ in range(2)
    )


def test_with_tracking_off_init_and_end_touch_no_store(tmp_path):
    """`CONDI_TRACKING=0`: the Snakefile's onstart/onsuccess commands succeed, say so, and
    create no store."""
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "CONDI_TRACKING": "0"}
    env["CONDI_INVOCATION"] = "off-1"
    for cmd in (["init", "--params", "params.yaml"], ["end", "--status", "FINISHED"]):
        out = run(["condi", "tracking", *cmd], tmp_path, env=env, timeout=120)
        assert out.stdout.strip() == "tracking off (CONDI_TRACKING=0): no MLflow store touched"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A SQLite store in ``tmp_path`` (the project), and a client reading it beside the job."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("CONDI_ROOT", str(tmp_path))
    monkeypatch.delenv("CONDI_TRACKING", raising=False)
    monkeypatch.delenv("CONDI_INVOCATION", raising=False)
    monkeypatch.setattr(tracking, "_retry", lambda fn, tries=4, delay=0.2: fn())
    return mlflow.MlflowClient(uri)


def test_metrics_reach_the_store_while_the_run_runs(store):
    """Each log_metrics call (an epoch) is in the store at once; params from the start."""
    with tracking.Run("train_teacher", "stream", {"lr": 0.1}, name="t@stream") as run:
        for epoch in (1, 2, 3):
            run.log_metrics({"loss": 1 / epoch, "val_acc": 10.0 * epoch}, step=epoch)
            seen = store.get_metric_history(run.run_id, "loss")
            assert [(m.step, m.value) for m in seen] == [(e, 1 / e) for e in range(1, epoch + 1)]
            live = store.get_run(run.run_id)
            assert live.info.status == "RUNNING" and live.data.params == {"lr": "0.1"}
    done = store.get_run(run.run_id)
    assert done.info.status == "FINISHED" and done.info.run_name == "t@stream"
    assert [m.step for m in store.get_metric_history(run.run_id, "val_acc")] == [1, 2, 3]


def test_a_store_failing_mid_run_keeps_the_whole_record(store, tmp_path, monkeypatch):
    """The store fails after epoch 1: the job goes on, its store run ends FAILED, and the kept
    record has every epoch (the streamed one too), which `condi tracking import` sends."""
    with tracking.Run("train_teacher", "stream", {"lr": 0.1}, name="t@stream") as run:
        run.log_metrics({"loss": 1.0}, step=1)
        first = run.run_id

        def down(*args, **kwargs):
            raise ConnectionError("store went away")

        monkeypatch.setattr(run.client, "log_batch", down)
        run.log_metrics({"loss": 0.5}, step=2)
        assert run.client is None  # no more tries during this run
        run.log_metrics({"loss": 0.25}, step=3)
    assert store.get_run(first).info.status == "FAILED"
    (kept,) = (tmp_path / tracking.PENDING_DIR).glob("train_teacher-*.json")
    rec = json.loads(kept.read_text())
    assert [(m[0], m[1], m[3]) for m in rec["metrics"]] == [
        ("loss", 1.0, 1),
        ("loss", 0.5, 2),
        ("loss", 0.25, 3),
    ]
    assert rec["name"] == "t@stream" and rec["params"] == {"lr": "0.1"}
    assert rec["tags"]["mlflow.user"]  # MLflow's context tags, resolved when the run started
    assert tracking.import_pending().imported == 1
    (again,) = [
        r
        for r in store.search_runs([store.get_experiment_by_name("stream").experiment_id])
        if r.info.status == "FINISHED"
    ]
    assert again.info.run_name == "t@stream"
    assert [m.value for m in store.get_metric_history(again.info.run_id, "loss")] == [1, 0.5, 0.25]


def test_a_copied_project_shows_its_own_artifacts(store, tmp_path):
    """With the SQLite store the artifacts are copied to mlartifacts/ beside it and named by a
    relative URI: a copy of the project (database and folder) resolves to the copy's files."""
    import shutil

    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "t.csv").write_text("a\n1\n")
    with tracking.Run("table3", "copy", {}, name="table3") as run:
        run.log_artifact(tmp_path / "results" / "t.csv")
    uri = store.get_run(run.run_id).info.artifact_uri
    assert uri == f"mlflow-artifacts:/copy/{run.run_id}/artifacts"
    assert str(tmp_path) not in uri
    copy = tmp_path.parent / (tmp_path.name + "-copy")
    shutil.copytree(tmp_path, copy)
    folder = tracking.local_artifact_dir(uri, f"sqlite:///{copy / 'mlflow.db'}")
    assert folder == copy / "mlartifacts" / "copy" / run.run_id / "artifacts"
    assert (folder / "t.csv").read_text() == "a\n1\n"


def test_context_tags_come_from_mlflow_and_are_not_repeated(store):
    with tracking.Run("index", "tags", {}, name="index@tags-1") as run:
        pass
    tags = store.get_run(run.run_id).data.tags
    assert tags["mlflow.user"] and tags["mlflow.source.type"] == "LOCAL"
    assert tags["mlflow.runName"] == "index@tags-1"
    assert not {"git_commit", "run_name"} & set(tags)


def test_context_tags_skip_the_notebook_providers_outside_a_notebook():
    """A job is a command: the Jupyter and Databricks providers, whose checks import IPython
    (a third of a second per job), are skipped; in an IPython shell the Jupyter one is kept."""
    code = (
        "import sys, json; from condi import tracking; "
        "tags = tracking._context_tags({'a': 'b'}); "
        "print(json.dumps([tags, 'IPython' in sys.modules]))"
    )
    env = {k: v for k, v in os.environ.items() if k != "DATABRICKS_RUNTIME_VERSION"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    tags, ipython = json.loads(out.stdout)
    assert tags["mlflow.source.type"] == "LOCAL" and tags["a"] == "b"
    assert ipython is False
    from mlflow.tracking.context.databricks_job_context import DatabricksJobRunContext
    from mlflow.tracking.context.jupyter_notebook_context import JupyterNotebookRunContext

    skipped = tracking._inapplicable_context_providers()
    assert DatabricksJobRunContext in skipped
    assert (JupyterNotebookRunContext in skipped) == ("IPython" not in sys.modules)


def test_table_metric_keys():
    """A long table's rows as metric keys: the key columns, then fold, teacher and student only
    where they vary ("-", a baseline's student, says nothing); MLflow-safe names."""
    import numpy as np
    import pandas as pd

    from condi.cli.common import table_metrics

    df = pd.DataFrame(
        {
            "dataset": ["d"] * 4,
            "fold": [1] * 4,
            "teacher": ["t"] * 4,
            "student": ["-", "s", "s", "s"],
            "method": ["random", "condi_sr", "condi_sr_split", "st_ent"],
            "K": ["1", "1", "5", "dense"],
            "Ks": pd.array([pd.NA, pd.NA, 3, pd.NA], dtype="Int64"),  # as table3 reads it
            "top1": [10.0, 20.0, 30.0, 40.0],
        }
    )
    keys = ["method", "K", "Ks"]
    assert table_metrics(df, keys, ["top1"]) == {
        "top1/random/K1": 10.0,
        "top1/condi_sr/K1": 20.0,
        "top1/condi_sr_split/K5/Ks3": 30.0,
        "top1/st_ent/Kdense": 40.0,
    }
    floats = df.assign(Ks=[np.nan, np.nan, 3.0, np.nan])  # a CSV read without dtypes
    assert table_metrics(floats, keys, ["top1"]) == table_metrics(df, keys, ["top1"])
    two = pd.concat([df, df.assign(student="s2", top1=df["top1"] + 1)], ignore_index=True)
    got = table_metrics(two, keys, ["top1"])
    assert got["top1/s/condi_sr/K1"] == 20.0 and got["top1/s2/condi_sr/K1"] == 21.0
    assert got["top1/random/K1"] == 10.0 and "top1/s2/random/K1" in got  # s2's baseline copy
    for raw, safe in (
        ("value/teacher//rate", "value/teacher/rate"),
        ("top1/condi_sr@t+s/K1", "top1/condi_sr_t_s/K1"),
        ("a/../b", "a/_/b"),
    ):
        assert tracking.metric_key(raw) == safe
