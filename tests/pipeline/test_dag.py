"""Snakemake and DVC run the same pipeline: same commands, inputs and outputs (issue 2.8)."""

import re
import subprocess

import yaml

from condi.cli.pipeline import render
from tests.conftest import REPO, workflow_copy


def snakemake_commands(workdir):
    out = subprocess.run(
        ["snakemake", "--dry-run", "--printshellcmds", "--cores", "1", "results/table3.csv"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr + out.stdout
    cmds = re.findall(
        r"^(?:Shell command: )?\s*\((condi .*?)\) > logs/\S+ 2>&1\s*$", out.stdout, flags=re.M
    )
    assert cmds, out.stdout
    return sorted(" ".join(c.split()) for c in cmds)


def test_dvc_yaml_is_generated_from_the_same_stage_list(tmp_path):
    workdir = workflow_copy(tmp_path)
    dvc = yaml.safe_load(render(workdir / "params.yaml"))["stages"]
    dvc_cmds = sorted(" ".join(s["cmd"].split()) for s in dvc.values())
    assert snakemake_commands(workdir) == dvc_cmds
    # every DVC output is produced by exactly one command and every dep is produced or raw data
    outs = [o for s in dvc.values() for o in s["outs"]]
    assert len(outs) == len(set(outs))
    for stage in dvc.values():
        for o in stage["outs"]:
            assert o in stage["cmd"]
        for d in stage.get("deps", []):
            assert d in outs or d.startswith("data/"), d


def test_committed_dvc_yaml_is_up_to_date():
    assert (REPO / "dvc.yaml").read_text() == render(REPO / "params.yaml"), (
        "run `condi pipeline dvc`"
    )


def test_editing_k_changes_only_evaluation_and_table_params():
    dvc = yaml.safe_load(render(REPO / "params.yaml"))["stages"]
    readers = sorted(
        name.split("--")[0]
        for name, s in dvc.items()
        if any(p == "evaluation" or p.startswith("evaluation.K") for p in s.get("params", []))
    )
    assert set(readers) == {"evaluate_baselines", "evaluate_students"}
