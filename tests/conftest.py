"""Shared fixtures: the repository root and a copy of the workflow in a temp dir."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_tracking(tmp_path_factory, monkeypatch):
    """Each test logs to its own MLflow store (never the repository's mlflow.db)."""
    if "MLFLOW_TRACKING_URI" not in os.environ or os.environ.get("CONDI_TEST_KEEP_URI") != "1":
        db = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")


@pytest.fixture
def repo() -> Path:
    return REPO


def load_yaml(path: Path) -> dict:
    with open(path) as f:
        return yaml.safe_load(f)


def workflow_copy(dest: Path, params: dict | None = None) -> Path:
    """Copy the Snakefile, workflow/ and params.yaml (optionally replaced) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "Snakefile", dest / "Snakefile")
    shutil.copytree(REPO / "workflow", dest / "workflow", dirs_exist_ok=True)
    text = (
        yaml.safe_dump(params, sort_keys=False)
        if params is not None
        else (REPO / "params.yaml").read_text()
    )
    (dest / "params.yaml").write_text(text)
    return dest
