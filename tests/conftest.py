"""Shared fixtures: the repository root and a copy of the workflow in a temp dir."""

from __future__ import annotations

import os
import shutil
import tempfile
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


TINY_SHORT_SIDE = 36


def cached_input(name: str, dest: Path, make) -> Path:
    """``make(dest)`` writes test input files into ``dest``. With ``$CONDI_TEST_INPUT_CACHE``
    set (``benchmarks/mutation.py`` sets it: every mutant's test process would otherwise build
    the same inputs again), a copy built once under that folder is reused instead. Only for
    inputs no code under test writes (generated videos, not indexes or caches)."""
    cache = os.environ.get("CONDI_TEST_INPUT_CACHE")
    dest.mkdir(parents=True, exist_ok=True)
    if not cache:
        make(dest)
        return dest
    src = Path(cache) / name
    if not src.is_dir():
        Path(cache).mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=cache, prefix=f".{name}."))
        make(tmp)
        try:
            tmp.rename(src)
        except OSError:  # another process was first
            shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, dest, dirs_exist_ok=True)
    return dest


def tiny_synthetic(dest: Path) -> Path:
    """The ``tiny`` synthetic dataset (seed 0) at ``dest``."""
    from condi.data.synthetic import GENERATOR_VERSION, generate

    return cached_input(
        f"synth-tiny-0-v{GENERATOR_VERSION}", dest, lambda d: generate(d, preset="tiny", seed=0)
    )


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """The ``tiny`` synthetic dataset indexed and cached once per session:
    ``(root, index_path, cache_path)``."""
    from condi.data.clips import build_clip_cache
    from condi.data.index import build_index, write_index

    root = tiny_synthetic(tmp_path_factory.mktemp("tiny_root"))
    df, skipped = build_index("ucf101", root, 1, clip_len=16, val_fraction=0.1, seed=0)
    work = tmp_path_factory.mktemp("tiny_work")
    index = work / "index.parquet"
    write_index(df, index, skipped=skipped)
    cache = build_clip_cache(
        df, root, work / "clips.npy", 16, TINY_SHORT_SIDE, workers=1, progress=False
    )
    return root, index, cache


def tiny_params(**overrides) -> dict:
    """The repository's params with a fast training setup for tests; ``protocol: scratch``
    (the models train on the tiny dataset alone) unless overridden."""
    from condi.config import apply_overrides, validate

    p = load_yaml(REPO / "params.yaml")
    p["protocol"] = "scratch"
    p["training"]["teacher"].update(epochs=2, batch_size=16, lr_milestones=[])
    p["training"]["student"].update(epochs=1, batch_size=16)
    p["threads"] = 1
    p["device"] = "cpu"
    apply_overrides(p, [f"{k}={v}" for k, v in overrides.items()], "tests")
    return validate(p)


def dataset_params(dest: Path, root: Path, kind: str = "ucf101", **synth) -> Path:
    """A params file (at ``dest``) whose dataset ``synthetic`` is ``root``: what a stage
    command (``condi data index|cache|synth --dataset synthetic``) reads its values from.
    With ``synth`` (preset, seed, overrides) the dataset is generated there."""
    p = load_yaml(REPO / "params.yaml")
    ds = {"kind": kind, "root": str(root), "folds": [1]}
    if synth:
        ds["synth"] = synth
    p["datasets"] = {"synthetic": ds}
    p["protocol"] = "scratch"  # the one dataset: no source to pre-train on
    p.pop("pretrain", None)
    dest.write_text(yaml.safe_dump(p))
    return dest
