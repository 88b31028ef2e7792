"""params.yaml validation: a wrong value stops the run before any work, naming the key."""

import copy
import subprocess
import sys

import pytest
import yaml

from condi.config import ConfigError, load_params, validate
from tests.conftest import REPO, load_yaml

BASE = load_yaml(REPO / "params.yaml")


def params_with(**edits):
    p = copy.deepcopy(BASE)
    for dotted, value in edits.items():
        node = p
        *parents, last = dotted.split("__")
        for part in parents:
            node = node[part]
        if value is KeyError:
            del node[last]
        else:
            node[last] = value
    return p


def test_repository_params_are_valid_and_get_defaults():
    p = load_params(REPO / "params.yaml")
    assert p["st_conf"]["budget"] == pytest.approx(0.3)
    assert p["pseudo_labels"]["source"] == "train"
    assert p["condi"]["detach_confidence_in_target"] is False


@pytest.mark.parametrize(
    ("edits", "key"),
    [
        ({"evaluation__K": []}, "evaluation.K"),
        ({"condi__tau": "hot"}, "condi.tau"),
        ({"training__teacher__epochs": 0}, "training.teacher.epochs"),
        ({"device": "tpu"}, "device"),
        ({"methods": ["condi_sr", "magic"]}, "methods.1"),
        ({"data__crop_size": KeyError}, "data"),
        ({"bogus_key": 1}, "bogus_key"),
        ({"evaluation__Ks": [0, 9]}, "evaluation.Ks"),
    ],
)
def test_wrong_values_name_the_key(edits, key):
    with pytest.raises(ConfigError) as err:
        validate(params_with(**edits))
    assert key in str(err.value)


def test_missing_dataset_root_is_reported_by_path(tmp_path):
    p = params_with()
    p["datasets"]["ucf"] = {"kind": "ucf101", "root": str(tmp_path / "nowhere"), "folds": [1]}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(p))
    with pytest.raises(ConfigError, match="datasets.ucf.root.*nowhere"):
        load_params(path, check_roots=True)


def test_cli_stops_with_exit_2_before_work(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params_with(evaluation__K=[])))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "condi",
            "pipeline",
            "dvc",
            "--params",
            str(path),
            "--out",
            str(tmp_path / "d.yaml"),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert "evaluation.K" in out.stderr
    assert not (tmp_path / "d.yaml").exists()


def test_protocol_transfer_needs_a_one_fold_source_beside_a_target():
    """docs/method.md, section 2.5: the errors name the key before any work."""
    import copy

    from condi.config import ConfigError, pipeline_datasets, target_datasets, validate
    from tests.conftest import REPO, load_yaml

    p = validate(load_yaml(REPO / "params.yaml"))
    assert target_datasets(p) == ["synthetic"]
    assert pipeline_datasets(p) == ["synthetic", "synthetic_source"]
    bad = copy.deepcopy(p)
    bad["pretrain"]["dataset"] = "kinetics"
    with pytest.raises(ConfigError, match=r"pretrain\.dataset: 'kinetics' is not in datasets"):
        validate(bad)
    bad = copy.deepcopy(p)
    bad["datasets"]["synthetic_source"]["folds"] = [1, 2]
    with pytest.raises(ConfigError, match="exactly one fold"):
        validate(bad)
    bad = copy.deepcopy(p)
    del bad["pretrain"]
    with pytest.raises(ConfigError, match="protocol: transfer needs a pretrain section"):
        validate(bad)
    bad = copy.deepcopy(p)
    del bad["datasets"]["synthetic"]
    bad["tables"] = {}
    with pytest.raises(ConfigError, match="the only dataset"):
        validate(bad)
    scratch = copy.deepcopy(p)
    scratch["protocol"] = "scratch"
    assert pipeline_datasets(validate(scratch)) == ["synthetic"]  # the source is not made
    del scratch["pretrain"]
    validate(scratch)  # nothing to pre-train: no pretrain section needed
