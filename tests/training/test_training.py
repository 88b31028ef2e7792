"""Teacher and student training on the tiny synthetic dataset: resume, determinism, every
objective, Eq. 1 pseudo-labels and their cross-fitted variant (SPEC 1-3, issue 5)."""

import numpy as np
import pytest
import torch

from condi.data.indexed import load_data
from condi.methods import METHODS
from condi.metrics import eq1_labels
from condi.models.checkpoint import load_model
from condi.training.loop import state_path_for
from condi.training.pseudo_labels import (
    compute_pseudo_labels,
    crossfit_folds,
    load_pseudo_labels,
    save_pseudo_labels,
)
from condi.training.student import train_student
from condi.training.teacher import train_teacher
from tests.conftest import tiny_params


class Interrupt(Exception):
    pass


class StopAfter:
    """A tracker that kills the job after epoch ``n`` (its checkpoint is already written)."""

    def __init__(self, n):
        self.n = n

    def log_metrics(self, metrics, step=0):
        if step == self.n:
            raise Interrupt


def weights(path):
    return load_model(path)[1]["model"]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def data(tiny_data):
    _, index, cache = tiny_data
    return load_data(index, cache)


@pytest.fixture(scope="module")
def teacher_ckpt(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "teacher.pt"
    summary = train_teacher(tiny_params(), "resnext", data, out)
    assert summary["resumed_from"] == 0
    return out


def test_interrupted_teacher_resumes_to_the_same_weights(data, teacher_ckpt, tmp_path):
    params = tiny_params(**{"training.teacher.epochs": 2})
    out = tmp_path / "teacher.pt"
    with pytest.raises(Interrupt):
        train_teacher(params, "resnext", data, out, tracker=StopAfter(0))
    assert not out.exists() and state_path_for(out).exists()
    summary = train_teacher(params, "resnext", data, out)
    assert summary["resumed_from"] == 1
    assert not state_path_for(out).exists()
    assert_same_weights(weights(out), weights(teacher_ckpt))


def test_teacher_checkpoint_records_best_on_val(teacher_ckpt):
    model, ckpt = load_model(teacher_ckpt, role="teacher")
    accs = [h["val_video_acc"] for h in ckpt["history"]]
    assert ckpt["best_epoch"] == int(np.argmax(accs))
    assert ckpt["class_names"] and len(ckpt["class_names"]) == ckpt["num_classes"]


def test_pseudo_labels_are_eq1_of_the_stored_logits(params_pl, data):
    pl, _ = params_pl
    assert set(pl["split"]) == {"train", "val"}
    assert len(pl["rows"]) == len(data.rows("train")) + len(data.rows("val"))
    assert pl["logits"].dtype == np.float16
    np.testing.assert_array_equal(
        pl["z"], eq1_labels(pl["logits"].astype(np.float32), data.labels(pl["rows"]))
    )


@pytest.fixture(scope="module")
def params_pl(data, teacher_ckpt, tmp_path_factory):
    model, _ = load_model(teacher_ckpt, role="teacher")
    pl = compute_pseudo_labels(tiny_params(), model, data)
    path = tmp_path_factory.mktemp("pl") / "pl.npz"
    save_pseudo_labels(path, pl)
    return load_pseudo_labels(path), path


@pytest.mark.parametrize("method", METHODS)
def test_every_objective_trains_and_is_deterministic(method, data, params_pl, tmp_path):
    pl, _ = params_pl
    params = tiny_params()
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    summary = train_student(params, "resnext8", method, data, pl, a)
    train_student(params, "resnext8", method, data, pl, b)
    assert_same_weights(weights(a), weights(b))
    model, ckpt = load_model(a, role="student")
    assert ckpt["method"] == method
    assert np.isfinite(ckpt["history"][-1]["train_loss"])
    assert 0.0 <= summary["val_video_acc"] <= 100.0


def test_crossfit_folds_are_stratified_by_video(data):
    folds = crossfit_folds(data, 2, seed=0)
    rows = data.rows("train")
    per_video = {}
    for vid, f in zip(data.video_ids(rows), folds, strict=True):
        assert per_video.setdefault(vid, f) == f  # a video never straddles folds
    labels = data.labels(rows)
    for y in np.unique(labels):
        vids = {v for v, lab in zip(data.video_ids(rows), labels, strict=True) if lab == y}
        fs = [per_video[v] for v in vids]
        assert abs(fs.count(0) - fs.count(1)) <= 1


def test_crossfit_pseudo_labels_keep_the_teachers_logits(data, teacher_ckpt, params_pl, tmp_path):
    model, _ = load_model(teacher_ckpt, role="teacher")
    params = tiny_params(**{"pseudo_labels.source": "crossfit", "training.teacher.epochs": 1})
    pl = compute_pseudo_labels(params, model, data, teacher="resnext", work_dir=tmp_path)
    faithful, _ = params_pl
    np.testing.assert_array_equal(pl["logits"], faithful["logits"])  # KD targets unchanged
    assert len(list(tmp_path.glob("crossfit_*_*of2.pt"))) == 2
    val = pl["split"] == "val"
    np.testing.assert_array_equal(pl["z"][val], faithful["z"][val])  # val judged by the teacher
