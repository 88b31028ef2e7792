"""``condi predict`` as a user runs it (issue 14): from a folder with no params.yaml (the
checkpoints carry their clip settings), each student method ranking with its own score (the
clip scores checked against the student's outputs computed here), a student it cannot rank
with refused with the reason, ``--`` before file names, and the options' spellings."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from condi.cli import main
from condi.data.synthetic import encode_avi
from condi.data.video import read_video_clips
from condi.evaluation.predict import normalise_clips
from condi.models import build_model, build_student
from condi.models.checkpoint import load_model, save_model
from condi.scores import student_clip_scores

KW = {"layers": [1, 1, 1, 1], "base_width": 8, "cardinality": 4}
DATA = {"clip_len": 4, "short_side": 20, "crop_size": 16, "mean": [0.4, 0.5, 0.6],
        "std": [0.2, 0.25, 0.3]}  # fmt: skip
NAMES = ["A", "B", "C"]


def checkpoint(path, role, method=None, data=DATA, seed=0):
    torch.manual_seed(seed)
    model = (build_student if role == "student" else build_model)("resnext101", 3, **KW)
    info = {"method": method} if method else {}
    if data is not None:
        info["config"] = {"data": dict(data, flip="auto", val_fraction=0.1), "seed": 0}
    save_model(path, model, role=role, arch="resnext101", kwargs=KW, num_classes=3,
               class_names=NAMES, **info)  # fmt: skip
    return path


def video(path, n=14, seed=0):
    frames = np.random.default_rng(seed).integers(0, 255, (n, 24, 30, 3), dtype=np.uint8)
    encode_avi(path, frames, 25)
    return path


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """A working folder with no params.yaml, the models and videos somewhere else."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    models = tmp_path / "models"
    models.mkdir()
    return models


def run(capsys, *argv):
    rc = main(["predict", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


def expected_scores(student_path, video_path, method):
    """The student's per-clip ranking score, computed here from the decoded clips."""
    model, _ = load_model(student_path, role="student")
    x = normalise_clips(
        read_video_clips(video_path, DATA["clip_len"], DATA["short_side"]),
        DATA["crop_size"],
        DATA["mean"],
        DATA["std"],
    )
    with torch.no_grad():
        logits, conf = model.eval()(x)
    scores = student_clip_scores(logits.numpy(), conf.numpy())
    key = {"condi_sr": "z_tilde", "bce_conf": "z_tilde", "st_conf": "z_tilde",
           "st_ent": "neg_entropy", "maxprob": "max_prob"}[method]  # fmt: skip
    return key, scores[key]


@pytest.mark.parametrize("method", ["condi_sr", "bce_conf", "st_ent", "st_conf", "maxprob"])
def test_each_student_ranks_by_its_own_score_with_no_params_file(elsewhere, capsys, method):
    teacher = checkpoint(elsewhere / "t.pt", "teacher")
    student = checkpoint(elsewhere / "s.pt", "student", method, seed=1)
    clip = video(elsewhere / "v.avi")
    rc, out, err = run(capsys, "--teacher-ckpt", teacher, "--student-ckpt", student, "--k", 2,
                       "--json", clip)  # fmt: skip
    assert rc == 0, err
    pred = json.loads(out)
    key, want = expected_scores(student, clip, method)
    assert pred["num_clips"] == 4  # 14 frames, 4-frame clips from the checkpoint's config
    assert (pred["method"], pred["ranking"]) == (method, key)
    assert pred["clip_scores"] == pytest.approx(want.tolist(), abs=1e-4)
    top2 = sorted(np.argsort(-want, kind="stable")[:2].tolist())
    assert pred["teacher_clips"] == top2 and pred["student_clips"] == []
    assert pred["label_name"] in NAMES


def test_a_student_it_cannot_rank_with_is_refused_with_the_reason(elsewhere, capsys):
    teacher = checkpoint(elsewhere / "t.pt", "teacher")
    clip = video(elsewhere / "v.avi")
    nameless = checkpoint(elsewhere / "s0.pt", "student")
    rc, out, err = run(capsys, "--teacher-ckpt", teacher, "--student-ckpt", nameless, clip)
    assert rc == 2 and out == ""
    assert f"{nameless}: the student checkpoint names no method" in err
    assert "which per-clip score ranks its clips" in err
    unknown = checkpoint(elsewhere / "s1.pt", "student", "mystery")
    rc, _, err = run(capsys, "--teacher-ckpt", teacher, "--student-ckpt", unknown, clip)
    assert rc == 2 and "trained with method 'mystery'" in err
    st_ent = checkpoint(elsewhere / "s2.pt", "student", "st_ent")
    rc, _, err = run(capsys, "--teacher-ckpt", teacher, "--student-ckpt", st_ent, "--ks", 1, clip)
    assert rc == 2 and "is a st_ent student; the student share Ks is ConDi-SR's" in err


def test_checkpoints_without_clip_settings_need_params(elsewhere, capsys, tmp_path):
    teacher = checkpoint(elsewhere / "t.pt", "teacher", data=None)
    student = checkpoint(elsewhere / "s.pt", "student", "condi_sr", data=None)
    clip = video(elsewhere / "v.avi")
    rc, _, err = run(capsys, "--teacher-ckpt", teacher, "--student-ckpt", student, clip)
    assert rc == 2 and "carries no clip settings" in err and "give --params" in err
    import yaml

    from tests.conftest import REPO

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update(DATA)
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(params))
    rc, out, err = run(capsys, "--teacher-ckpt", teacher, "--student-ckpt", student,
                       "--params", tmp_path / "p.yaml", "--json", clip)  # fmt: skip
    assert rc == 0, err
    assert json.loads(out)["num_clips"] == 4


def test_teacher_and_student_must_have_seen_the_same_clips(elsewhere, capsys):
    teacher = checkpoint(elsewhere / "t.pt", "teacher")
    student = checkpoint(elsewhere / "s.pt", "student", "condi_sr", data=dict(DATA, clip_len=8))
    rc, _, err = run(capsys, "--teacher-ckpt", teacher, "--student-ckpt", student,
                     video(elsewhere / "v.avi"))  # fmt: skip
    assert rc == 2 and "trained on other clips than teacher" in err and "clip_len 4 vs 8" in err


def test_file_names_starting_with_a_dash_go_after_double_dash(elsewhere, capsys):
    teacher = checkpoint(elsewhere / "t.pt", "teacher")
    student = checkpoint(elsewhere / "s.pt", "student", "condi_sr")
    video(elsewhere.parent / "work" / "-abc.mp4")  # in the working folder, a relative name
    plain = video(elsewhere / "v.avi", seed=1)
    opts = ["--teacher-ckpt", teacher, "--student-ckpt", student, "--k", 1]
    rc, out, err = run(capsys, *opts, "--json", plain, "--", "-abc.mp4")
    assert rc == 0, err
    assert [json.loads(line)["video"] for line in out.splitlines()] == [str(plain), "-abc.mp4"]
    # without --, the name is taken for an option, and the error says what to do
    with pytest.raises(SystemExit) as exc:
        main(["predict", *map(str, opts), "-abc.mp4"])
    assert exc.value.code == 2
    assert "a file name that starts with '-' goes after '--'" in capsys.readouterr().err
    # -- is documented
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    assert "-- -abc.mp4" in capsys.readouterr().out


def test_the_old_option_names_still_work_with_a_warning(elsewhere, capsys):
    teacher = checkpoint(elsewhere / "t.pt", "teacher")
    student = checkpoint(elsewhere / "s.pt", "student", "condi_sr")
    clip = video(elsewhere / "v.avi")
    rc, out, err = run(capsys, "--teacher", teacher, "--student", student, "--K", 1, clip)
    assert rc == 0, err
    assert "--teacher is deprecated here, use --teacher-ckpt" in err
    assert "teacher clips [" in out and "of 4" in out
