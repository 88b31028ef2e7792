"""Issue 19.4: the Kinetics-format fixture end to end on the second data path
(``storage: resized``), under Snakemake and under DVC: the index, ``condi data resize`` (one
folder, DVC-tracked), a teacher and a condi_sr student trained on clips decoded in DataLoader
workers, scores, the grid and every table. Both runners give the same Table III; after
Snakemake, DVC finds everything up to date (the store folder included), and no clip cache is
ever written."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest
import yaml

from condi.data.resized import read_manifest
from tests.conftest import KINETICS_TRAIN, KINETICS_VAL, REPO, kinetics_dataset, load_yaml
from tests.orchestration.conftest import PIPELINE_TIMEOUT, dvc_repo, read_table3, run

pytestmark = pytest.mark.slow

STORE = "data/resized/k400"
TABLE3 = "results/table3.csv"


def kinetics_params() -> dict:
    p = load_yaml(REPO / "params.yaml")
    p["datasets"] = {
        "k400": {"kind": "kinetics", "root": "data/k400", "folds": [1], "storage": "resized"}
    }
    # the one dataset: no source to pre-train on
    p.update(device="cpu", threads=1, workers=2, methods=["condi_sr"], protocol="scratch")
    p["data"]["val_fraction"] = 0.2
    p["resize"] = {"crf": 18, "preset": "ultrafast"}
    p["training"]["teacher"].update(epochs=1, batch_size=8, lr_milestones=[])
    p["training"]["student"].update(epochs=1, batch_size=8)
    p["timing"] = {"max_videos": None, "warmup": 1, "repeats": 1}
    p["tables"]["table3_columns"] = {"k400": ["1", "3", "dense"]}
    return p


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same repository run by Snakemake (``smk/``) and by ``dvc repro`` (``dvc/``), one
    after the other."""
    root = tmp_path_factory.mktemp("kinetics_resized")
    params = kinetics_params()
    out = {}
    for name in ("smk", "dvc"):
        repo = dvc_repo(root / name, params)
        kinetics_dataset(repo / "data" / "k400")
        out[name] = repo
    env = {**os.environ, "CONDI_TRACKING": "0"}
    smk = run(["snakemake", "--cores", "2", "all"], out["smk"], env=env, timeout=PIPELINE_TIMEOUT)
    dvc = run(["dvc", "repro"], out["dvc"], env=env, timeout=PIPELINE_TIMEOUT)
    return out, smk.stdout + smk.stderr, dvc.stdout + dvc.stderr


def test_snakemake_and_dvc_resize_once_and_never_cache(runs):
    repos, _, dvc_log = runs
    n_videos = len(KINETICS_TRAIN) + len(KINETICS_VAL)
    for repo in repos.values():
        manifest, meta = read_manifest(repo / STORE)
        assert len(manifest) == n_videos
        assert (meta["crf"], meta["preset"], meta["short_side"]) == (18, "ultrafast", 36)
        assert not (repo / "data" / "cache").exists()
    log = (repos["smk"] / "logs" / "resize" / "k400.log").read_text()
    assert f"resize: {n_videos} videos, {n_videos} to encode" in log
    assert "Running stage 'resize@k400'" in dvc_log
    assert "Running stage 'cache@" not in dvc_log


def test_the_same_table3_from_both_runners(runs):
    repos, _, _ = runs
    a, b = (read_table3(repos[n] / TABLE3) for n in ("smk", "dvc"))
    assert set(a["dataset"]) == {"k400"}
    assert {"condi_sr", "dense", "random", "equidistant", "oracle"} <= set(a["method"])
    # every test video (the official validation set) is scored: n_videos of dense
    dense = a[a["method"] == "dense"]
    assert dense["n_videos"].tolist() == [len(KINETICS_VAL)]
    pd.testing.assert_frame_equal(a, b)
    for name in ("results/table3.md", "results/table1.csv", "results/table2.csv"):
        assert (repos["smk"] / name).read_text() == (repos["dvc"] / name).read_text(), name


def test_after_snakemake_dvc_is_up_to_date_with_the_store_folder(runs):
    repos, _, _ = runs
    smk = repos["smk"]
    status = run(["dvc", "status", "dvc.yaml"], smk).stdout
    assert "up to date" in status, status
    lock = yaml.safe_load((smk / "dvc.lock").read_text())["stages"]
    resize = lock["resize@k400"]
    (out,) = resize["outs"]
    assert out["path"] == STORE and out["md5"].endswith(".dir")
    # the videos, the manifest and Snakemake's .snakemake_timestamp (directory() outputs)
    assert out["nfiles"] == len(KINETICS_TRAIN) + len(KINETICS_VAL) + 2
    assert resize["params"]["params.yaml"]["resize"] == {"crf": 18, "preset": "ultrafast"}
    teacher = lock["train_teacher@k400-1-resnext14"]
    assert STORE in [d["path"] for d in teacher["deps"]]
    assert json.loads(json.dumps(teacher["params"]["params.yaml"]))["data"]["short_side"] == 36
    # and Snakemake has nothing left to do
    dry = run(["snakemake", "--cores", "1", "-n", "all"], smk).stdout
    assert "Nothing to be done" in dry, dry[-2000:]
