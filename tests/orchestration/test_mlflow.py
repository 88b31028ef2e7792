"""MLflow: the tiny pipeline logged to an `mlflow server`, checked through its REST API; and
parallel jobs writing to one SQLite store (issue 7.3)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import yaml

from condi.tracking import file_md5
from tests.orchestration.conftest import git, run

TRACKED = {
    "train_teacher",
    "pseudo_labels",
    "train_student",
    "teacher_scores",
    "student_scores",
    "evaluate_baselines",
    "evaluate_students",
    "table3",
    "metrics",
    "timing",
}


def ablation_outputs(params):
    """What the ablation's jobs write (their runs are checked apart from the main ones)."""
    from condi.config import validate
    from condi.pipeline import jobs

    return {
        o for j in jobs(validate(params), ablation=True) for fs in j.outputs.values() for o in fs
    }


def search_runs(server, experiment_id):
    body = {"experiment_ids": [experiment_id], "max_results": 1000}
    return server.api("/api/2.0/mlflow/runs/search", body).get("runs", [])


@pytest.mark.slow
def test_runs_on_an_mlflow_server(pipelines):
    server, p = pipelines.server, pipelines.params
    exp = server.api("/api/2.0/mlflow/experiments/get-by-name?experiment_name=synthetic")
    all_runs = search_runs(server, exp["experiment"]["experiment_id"])
    all_tags = [{t["key"]: t["value"] for t in r["data"].get("tags", [])} for r in all_runs]
    assert all(r["info"]["status"] == "FINISHED" for r in all_runs)
    # the ablation's runs: its student, scores, evaluation, crossfit pseudo-labels and table
    abl_outs = ablation_outputs(p)

    def is_ablation(t):
        return bool(set(json.loads(t["outputs"])) & abl_outs)

    ablation = [t for t in all_tags if is_ablation(t)]
    # two variants (tests/orchestration/conftest.py), each protocol's teacher-level jobs
    per_protocol = [
        "ablation_train_teacher",
        "ablation_pseudo_labels",
        "ablation_teacher_scores",
        "ablation_evaluate_baselines",
    ]
    per_variant = ["ablation_train_student", "ablation_student_scores", "ablation_evaluate"]
    assert sorted(t["stage"] for t in ablation) == sorted(
        [*per_protocol * 2, *per_variant * 2, "ablation_table"]
    )
    main = [(r, t) for r, t in zip(all_runs, all_tags, strict=True) if not is_ablation(t)]
    runs, tags = [r for r, _ in main], [t for _, t in main]
    stages = [t["stage"] for t in tags]
    assert set(stages) == TRACKED, stages
    n_students = len(p["teachers"]) * len(p["students"]) * len(p["methods"])
    assert stages.count("train_student") == n_students
    assert stages.count("train_teacher") == len(p["teachers"])
    assert all(r["info"]["status"] == "FINISHED" for r in runs)
    by_rule = {}
    for r, t in zip(runs, tags, strict=True):
        for key in ("dataset", "git_commit", "params_hash", "rule", "dvc_stage", "inputs"):
            assert key in t, (t["stage"], key)
        assert t["rule"] == t["stage"]
        assert t["dataset"] == "synthetic"
        by_rule.setdefault(t.get("rule"), []).append((r, t))
    teacher_run, teacher = by_rule["train_teacher"][0]
    assert teacher["model_path"] == "models/synthetic/fold1/teacher_resnext.pt"
    assert len(teacher["model_dvc_md5"]) == 32
    assert {
        "dvc_md5/data/index/synthetic_fold1.parquet",
        "dvc_md5/data/cache/synthetic_fold1.npy",
    } <= set(teacher)
    for r, t in by_rule["train_student"]:
        assert {"fold", "teacher", "student", "method"} <= set(t)
        assert (
            t["model_path"] == f"models/synthetic/fold1/student_resnext_resnext8_{t['method']}.pt"
        )
        assert t["dvc_stage"] == f"train_student@synthetic-1-resnext-resnext8-{t['method']}"
        assert "dvc_md5/data/pseudo_labels/synthetic/fold1/resnext.npz" in t
        # nested under the run that trained the teacher
        assert t["mlflow.parentRunId"] == teacher_run["info"]["run_id"]
        metrics = {m["key"] for m in r["data"].get("metrics", [])}
        assert metrics, t["dvc_stage"]
    for rule in ("evaluate_baselines", "evaluate_students"):
        ((r, t),) = by_rule[rule]
        metrics = {m["key"] for m in r["data"]["metrics"]}
        assert any(k.startswith("top1_") for k in metrics), metrics
        assert t["mlflow.parentRunId"] == teacher_run["info"]["run_id"]
    # the md5s are the ones DVC computes: of the files as they are in the Snakemake workspace,
    # and, for everything but the checkpoints, as DVC recorded them in its own run (HEAD's
    # dvc.lock: the workspace one may already hold an experiment with another K list). The
    # checkpoints hold per-epoch timings (history.clips_per_s), so their bytes differ between
    # two runs whose weights are equal.
    lock = yaml.safe_load(git(pipelines.dvc, "show", "HEAD:dvc.lock").stdout)["stages"]
    lock |= yaml.safe_load(git(pipelines.dvc, "show", "HEAD:ablation/dvc.lock").stdout)["stages"]
    recorded = {o["path"]: o["md5"] for st in lock.values() for o in st.get("outs", [])}
    md5_tags = {
        k.split("/", 1)[1]: v for t in all_tags for k, v in t.items() if k.startswith("dvc_md5/")
    }
    assert len(md5_tags) >= 10
    for path, md5 in md5_tags.items():
        assert file_md5(pipelines.smk / path) == md5, path
        if not path.endswith(".pt"):
            assert recorded[path] == md5, path
    assert file_md5(pipelines.smk / teacher["model_path"]) == teacher["model_dvc_md5"]
    # tables and figures as artifacts
    for rule, names in (
        ("table3", {"table3.csv", "table3.md"}),
        ("metrics", {"metrics.json", "accuracy_vs_k.csv", "accuracy_vs_k.png"}),
    ):
        ((r, _),) = by_rule[rule]
        listed = server.api(f"/api/2.0/mlflow/artifacts/list?run_id={r['info']['run_id']}")
        assert names <= {f["path"] for f in listed.get("files", [])}, listed


@pytest.mark.slow
def test_every_run_names_its_own_dvc_stage(pipelines):
    """Each run's dvc_stage is the DVC stage (= Snakemake job) that writes its first output, and
    its params are the stage's params values (the ones DVC watches for it)."""
    from condi.config import validate
    from condi.pipeline import jobs

    by_output = {}
    for job in jobs(validate(pipelines.params)):
        for files in job.outputs.values():
            for out in files:
                by_output[out] = job.name
    server = pipelines.server
    exp = server.api("/api/2.0/mlflow/experiments/get-by-name?experiment_name=synthetic")
    wrong = []
    runs = search_runs(server, exp["experiment"]["experiment_id"])
    for r in runs:
        t = {x["key"]: x["value"] for x in r["data"].get("tags", [])}
        expected = by_output.get(json.loads(t["outputs"])[0])
        if t.get("dvc_stage") != expected:
            wrong.append((t["stage"], t.get("dvc_stage"), expected))
    assert not wrong, wrong
    student = next(
        r
        for r in runs
        if any(x["key"] == "rule" and x["value"] == "train_student" for x in r["data"]["tags"])
    )
    params = {p["key"] for p in student["data"]["params"]}
    assert {"training.student.epochs", "condi.lam", "st_conf.beta", "data.clip_len"} <= params
    assert {"seed", "device"} <= params
    assert not any(p.startswith(("evaluation.K", "timing")) for p in params)


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
