"""A dataset root full of shell characters works verbatim in both runners (issue 17.3): it
never reaches a shell (commands read it from params.yaml), and every path that does is
quoted."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from condi.data.index import read_index
from tests.conftest import REPO, load_yaml, workflow_copy

ROOT = "data/my videos/it's; $(touch PWNED) `touch PWNED2`"


def tiny_synthetic(root: str) -> dict:
    p = load_yaml(REPO / "params.yaml")
    p["datasets"]["synthetic"]["root"] = root
    p["datasets"]["synthetic"]["synth"]["preset"] = "tiny"
    return p


def run(cmd, cwd, timeout=600):
    env = {**os.environ, "CONDI_TRACKING": "0"}
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert out.returncode == 0, (cmd, out.stdout[-3000:], out.stderr[-3000:])
    return out


def check_index(workdir):
    _, meta = read_index(workdir / "data/index/synthetic_fold1.parquet")
    assert meta["root"] == ROOT
    assert meta["num_classes"] > 0
    assert (workdir / ROOT / "manifest.parquet").is_file()
    assert not list(workdir.rglob("PWNED*"))


@pytest.mark.slow
def test_a_shell_hostile_root_in_snakemake(tmp_path):
    wd = workflow_copy(tmp_path / "smk", tiny_synthetic(ROOT))
    run(["snakemake", "--cores", "1", "data/index/synthetic_fold1.parquet"], wd)
    check_index(wd)


@pytest.mark.slow
def test_a_shell_hostile_root_in_dvc(tmp_path):
    wd = workflow_copy(tmp_path / "dvc", tiny_synthetic(ROOT))
    run(["dvc", "init", "--no-scm", "-q"], wd)
    run(["condi", "pipeline", "dvc", "--params", "params.yaml"], wd)
    doc = yaml.safe_load((wd / "dvc.yaml").read_text())
    assert ROOT not in (wd / "dvc.yaml").read_text()  # a reference, resolved by DVC
    assert doc["stages"]["synth"]["do"]["outs"] == ["${item.root}"]
    run(["dvc", "repro", "index"], wd)
    check_index(wd)
    # and the committed dvc.yaml was made for another root: the same file
    shutil.copy(wd / "dvc.yaml", tmp_path / "weird.yaml")
    assert (tmp_path / "weird.yaml").read_text() == (REPO / "dvc.yaml").read_text()


def test_synth_overrides_reach_the_generator(tmp_path):
    """datasets.<d>.synth.overrides are read from params.yaml by `condi data synth`."""
    from condi.cli import main

    p = tiny_synthetic("gen")
    p["datasets"]["synthetic"]["synth"]["overrides"] = {"num_classes": 3}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert main(["data", "synth", "--params", "params.yaml", "--dataset", "synthetic"]) == 0
    finally:
        os.chdir(cwd)
    import pandas as pd

    manifest = pd.read_parquet(tmp_path / "gen" / "manifest.parquet")
    assert manifest["label"].nunique() == 3
