"""Issue 12.1: a checkpoint or training state carrying a pickle payload never runs it.

Every place condi reads a ``torch.save`` file (``condi predict``, ``evaluate scores``,
``train pseudo-labels``, ``report timing``, ``teachers.<t>.checkpoint``, the resume state)
reads it with ``weights_only=True``: the file is refused with exit 2 and its name, the
payload's marker file is never created, and nothing is written in place of the outputs.
"""

from __future__ import annotations

import pickle

import pytest
import torch

from condi.cli import main
from condi.io import UnsafeFileError, load_torch, plain_data
from condi.models import load_pretrained, model_from_checkpoint
from condi.models.checkpoint import load_model
from condi.training.loop import state_path_for
from tests.security.conftest import PARAMS, Payload, hostile_checkpoint, payload_is_live


def assert_refused(rc, capsys, path):
    err = capsys.readouterr().err
    assert rc == 2, err
    assert str(path) in err and "refused" in err, err
    assert "Traceback" not in err


def test_the_payload_is_live(tmp_path):
    assert payload_is_live(tmp_path)


def test_load_torch_refuses_the_payload_and_names_the_object(tmp_path, marker):
    evil = hostile_checkpoint(tmp_path / "evil.pt", marker)
    with pytest.raises(UnsafeFileError, match=r"evil\.pt: refused: .*posix\.system"):
        load_torch(evil)
    with pytest.raises(UnsafeFileError, match="evil.pt"):
        load_model(evil)
    with pytest.raises(UnsafeFileError, match="evil.pt"):
        model_from_checkpoint(evil)
    from condi.models import build_model

    model = build_model("resnext101", 5, layers=[1, 1, 1, 1], base_width=8, cardinality=4)
    with pytest.raises(UnsafeFileError, match="evil.pt"):
        load_pretrained(model, evil)


def test_a_plain_pickle_with_a_payload_is_refused(tmp_path, marker):
    """Not a torch zip at all: the legacy pickle format goes through the same unpickler."""
    evil = tmp_path / "legacy.pth"
    evil.write_bytes(pickle.dumps({"state_dict": Payload(marker)}, protocol=2))
    with pytest.raises(UnsafeFileError, match="legacy.pth"):
        load_torch(evil)


def test_predict_refuses_hostile_teacher_and_student(tmp_path, marker, capsys):
    evil = hostile_checkpoint(tmp_path / "evil.pt", marker)
    video = tmp_path / "v.avi"
    video.write_bytes(b"")
    rc = main(
        ["predict", str(video), "--teacher-ckpt", str(evil), "--student-ckpt", str(evil)]
        + ["--params", str(PARAMS)]
    )
    assert_refused(rc, capsys, evil)


@pytest.fixture
def stage_args(tiny_data):
    _, index, cache = tiny_data
    return ["--params", str(PARAMS), "--dataset", "synthetic", "--index", str(index)] + [
        "--cache",
        str(cache),
    ]


def test_evaluate_scores_refuses_a_hostile_checkpoint(
    tmp_path, marker, capsys, stage_args, no_tracking
):
    evil = hostile_checkpoint(tmp_path / "teacher_evil.pt", marker)
    out = tmp_path / "scores.npz"
    args = ["evaluate", "scores", *stage_args, "--teacher", "resnext14"]
    rc = main([*args, "--checkpoint", str(evil), "--out", str(out)])
    assert_refused(rc, capsys, evil)
    assert not out.exists()


def test_pseudo_labels_refuse_a_hostile_teacher(tmp_path, marker, capsys, stage_args, no_tracking):
    evil = hostile_checkpoint(tmp_path / "evil.pt", marker)
    out = tmp_path / "pl.npz"
    args = ["train", "pseudo-labels", *stage_args, "--teacher", "resnext14"]
    rc = main([*args, "--checkpoint", str(evil), "--out", str(out)])
    assert_refused(rc, capsys, evil)
    assert not out.exists()


def test_report_timing_refuses_a_hostile_student(tmp_path, marker, capsys, stage_args, no_tracking):
    teacher = hostile_checkpoint(tmp_path / "teacher.pt", None)  # clean: loads
    evil = hostile_checkpoint(tmp_path / "student_evil.pt", marker, role="student")
    out = tmp_path / "timing.csv"
    rc = main(
        [
            "report",
            "timing",
            *stage_args,
            "--teacher",
            "resnext14",
            "--student",
            "resnext14half",
        ]
        + ["--teacher-ckpt", str(teacher), "--student-ckpt", str(evil), "--out", str(out)]
    )
    assert_refused(rc, capsys, evil)
    assert not out.exists()


def test_teacher_checkpoint_in_params_is_refused(tmp_path, marker, capsys, stage_args, no_tracking):
    import yaml

    evil = hostile_checkpoint(tmp_path / "pretrained.pth", marker)
    out = tmp_path / "teacher.pt"
    params = yaml.safe_load(PARAMS.read_text())
    params["teachers"]["resnext14"]["checkpoint"] = str(evil)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    args = [*stage_args]
    args[args.index("--params") + 1] = str(tmp_path / "params.yaml")
    rc = main(["train", "teacher", *args, "--teacher", "resnext14", "--out", str(out)])
    assert_refused(rc, capsys, evil)
    assert not out.exists()


def test_hostile_resume_state_is_refused_not_resumed_nor_replaced(
    tmp_path, marker, capsys, stage_args, no_tracking
):
    out = tmp_path / "teacher.pt"
    state = state_path_for(out)
    torch.save({"version": 2, "cfg_hash": "x", "epoch": 1, "result": Payload(marker)}, state)
    before = state.read_bytes()
    rc = main(["train", "teacher", *stage_args, "--teacher", "resnext14", "--out", str(out)])
    assert_refused(rc, capsys, state)
    assert not out.exists() and state.read_bytes() == before


def test_plain_data_refuses_objects_before_they_are_saved():
    import numpy as np

    assert plain_data({"a": np.float64(0.5), "b": [np.int64(3)]}) == {"a": 0.5, "b": [3]}
    with pytest.raises(TypeError, match=r"checkpoint\['x'\]: Payload"):
        plain_data({"x": Payload("m")}, "checkpoint")
