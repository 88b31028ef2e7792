"""Snakemake and DVC run the same pipeline: same commands, inputs and outputs (issue 2.8, 7.2).

DVC's own parser expands the generated dvc.yaml (matrix / foreach stages) here, so these tests
compare what DVC would run with what Snakemake would run, not two renderings of one template.
"""

import copy
import re
import subprocess

import pytest
import yaml

from condi.cli.pipeline import render
from condi.config import validate
from condi.pipeline import jobs
from tests.conftest import REPO, load_yaml, workflow_copy


def snakemake_jobs(workdir, target="results/table3.csv"):
    """{normalised command: (rule, outputs)} of a Snakemake dry run."""
    out = subprocess.run(
        ["snakemake", "--dry-run", "--printshellcmds", "--cores", "1", target],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr + out.stdout
    jobs_ = {}
    for block in re.split(r"\n(?=\[\w{3} \w{3} +\d+ [\d:]+ \d{4}\]\n)", out.stdout):
        rule = re.search(r"^(?:local)?rule (\w+):", block, flags=re.M)
        cmd = re.search(
            r"^(?:Shell command: )?\s*\((condi .*?)\) > logs/\S+ 2>&1\s*$", block, flags=re.M
        )
        outs = re.search(r"^\s+output: (.*)$", block, flags=re.M)
        if rule and cmd:
            jobs_[" ".join(cmd.group(1).split())] = (
                rule.group(1),
                sorted(outs.group(1).split(", ")),
            )
    assert jobs_, out.stdout
    return jobs_


def dvc_stages(workdir):
    """{normalised command: (stage name, outs, deps)} of dvc.yaml as DVC itself expands it."""
    from dvc.repo import Repo

    subprocess.run(["dvc", "init", "--no-scm", "-q", "-f"], cwd=workdir, check=True, timeout=120)
    with Repo(str(workdir)) as repo:
        return {
            " ".join(st.cmd.split()): (
                st.name,
                sorted(str(o.def_path) for o in st.outs),
                [str(d.def_path) for d in st.deps if str(d.def_path) != "params.yaml"],
            )
            for st in repo.index.stages
        }


def write_dvc_yaml(workdir):
    (workdir / "dvc.yaml").write_text(render(workdir / "params.yaml"))


def check_same_dag(workdir):
    write_dvc_yaml(workdir)
    smk = snakemake_jobs(workdir, target="all")
    dvc = dvc_stages(workdir)
    assert sorted(smk) == sorted(dvc)
    outs = {o for _, o, _ in dvc.values() for o in o}
    params = load_yaml(workdir / "params.yaml")
    roots = {d["root"] for d in params["datasets"].values()}
    roots |= {m["checkpoint"] for m in params["teachers"].values() if m.get("checkpoint")}
    for cmd, (rule, smk_outs) in smk.items():
        name, dvc_outs, deps = dvc[cmd]
        assert name.split("@")[0].split("--")[0] == rule
        # Snakemake's synth output is the manifest inside the root DVC tracks as a directory
        assert dvc_outs == smk_outs or (rule == "synth" and smk_outs[0].startswith(dvc_outs[0]))
        for d in deps:  # produced by a stage (or inside a produced directory), or raw data
            assert d in outs or any(d.startswith(o + "/") for o in outs) or d in roots, d
    return dvc


def test_dvc_yaml_expands_to_the_snakemake_jobs(tmp_path):
    workdir = workflow_copy(tmp_path)
    dvc = check_same_dag(workdir)
    names = {name for name, _, _ in dvc.values()}
    assert "train_student@synthetic-1-resnext-resnext8-condi_sr" in names
    assert {"table3", "metrics"} <= names
    # every stage group of the repository's config is a matrix stage
    stages = yaml.safe_load(render(workdir / "params.yaml"))["stages"]
    grouped = {k for k, v in stages.items() if "matrix" in v}
    assert grouped == {k for k in stages if k not in ("table3", "metrics")}


def test_several_datasets_folds_and_models(tmp_path):
    """A real dataset with three folds beside the synthetic one, two teachers and two students:
    the jobs are no longer one product per stage, and DVC still runs what Snakemake runs."""
    p = load_yaml(REPO / "params.yaml")
    (tmp_path / "ucf").mkdir()
    p["datasets"]["ucf"] = {"kind": "ucf101", "root": "ucf", "folds": [1, 2, 3]}
    p["teachers"]["r2plus1d"] = {"arch": "r2plus1d_34", "kwargs": {}}
    p["students"]["mobilenet"] = {"arch": "mobilenetv2", "kwargs": {}}
    p["methods"] = ["condi_sr", "st_ent"]
    p["tables"] = {}
    workdir = workflow_copy(tmp_path, p)
    dvc = check_same_dag(workdir)
    stages = yaml.safe_load(render(workdir / "params.yaml"))["stages"]
    assert "foreach" in stages["index"] or "index--ucf-1" in stages  # roots differ per dataset
    assert "matrix" in stages["train_student"] or "foreach" in stages["train_student"]
    n_train = sum(1 for name, _, _ in dvc.values() if name.startswith("train_student@"))
    assert n_train == 4 * 2 * 2 * 2  # (dataset, fold) pairs x teachers x students x methods


def test_an_adopted_teacher_checkpoint_is_an_input(tmp_path):
    p = load_yaml(REPO / "params.yaml")
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "mine.pt").write_bytes(b"")
    p["teachers"]["mine"] = {"arch": "resnext101", "kwargs": {}, "checkpoint": "ckpt/mine.pt"}
    workdir = workflow_copy(tmp_path, p)
    dvc = check_same_dag(workdir)
    deps = {name: d for name, _, d in dvc.values()}
    assert "ckpt/mine.pt" in deps["train_teacher--synthetic-1-mine"]
    assert "ckpt/mine.pt" not in deps["train_teacher--synthetic-1-resnext"]


def test_committed_dvc_yaml_is_up_to_date():
    assert (REPO / "dvc.yaml").read_text() == render(REPO / "params.yaml"), (
        "run `condi pipeline dvc`"
    )


def test_params_are_narrowed_per_stage():
    """Editing the K list touches only evaluation (and what follows: table3, metrics)."""
    stages = yaml.safe_load(render(REPO / "params.yaml"))["stages"]
    readers = {
        name
        for name, s in stages.items()
        if any(p == "evaluation" or p.startswith("evaluation.K") for p in s.get("params", []))
    }
    assert readers == {"evaluate_baselines", "evaluate_students"}
    assert "teachers.${item.teacher}" in stages["train_teacher"]["params"]
    assert "students.${item.student}" in stages["train_student"]["params"]
    assert not any("threads" in s.get("params", []) for s in stages.values())


def test_metrics_and_plots_are_declared_uncached():
    stages = yaml.safe_load(render(REPO / "params.yaml"))["stages"]
    m = stages["metrics"]
    assert m["metrics"] == [{"results/metrics.json": {"cache": False}}]
    csv = next(p for p in m["plots"] if "results/plots/accuracy_vs_k.csv" in p)
    assert csv["results/plots/accuracy_vs_k.csv"]["x"] == "K"
    assert csv["results/plots/accuracy_vs_k.csv"]["y"] == "top1"
    assert (REPO / ".dvc" / "plots" / "accuracy_vs_k.json").is_file()


@pytest.mark.parametrize("overrides", [{}, {"num_classes": 3, "kind_probs": {"blur": 1}}])
def test_synth_overrides_reach_the_command(overrides):
    p = validate(copy.deepcopy(load_yaml(REPO / "params.yaml")))
    p["datasets"]["synthetic"]["synth"]["overrides"] = overrides
    cmd = next(j.cmd for j in jobs(p) if j.name.startswith("synth@"))
    for k in overrides:
        assert re.search(rf"--set '?{k}=", cmd), cmd
    assert ("--set" in cmd) == bool(overrides)
