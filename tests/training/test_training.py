"""Teacher and student training on the tiny synthetic dataset: resume, determinism, every
objective, Eq. 1 pseudo-labels and their cross-fitted variant (docs/method.md, sections 1-3, issue 5)."""

import numpy as np
import pytest
import torch
from torch import nn

from condi.data.indexed import load_data
from condi.inference import forward_rows
from condi.methods import METHODS
from condi.models.checkpoint import DATA_KEYS, data_config, load_model
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
    """A tracker that kills the job after epoch ``n`` (1-based; its checkpoint is already
    written)."""

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
    summary = train_teacher(tiny_params(), "resnext14", data, out)
    assert summary["resumed_from"] == 0
    return out


def test_interrupted_teacher_resumes_to_the_same_weights(data, teacher_ckpt, tmp_path):
    params = tiny_params(**{"training.teacher.epochs": 2})
    out = tmp_path / "teacher.pt"
    with pytest.raises(Interrupt):
        train_teacher(params, "resnext14", data, out, tracker=StopAfter(1))
    assert not out.exists() and state_path_for(out).exists()
    summary = train_teacher(params, "resnext14", data, out)
    assert summary["resumed_from"] == 1
    assert not state_path_for(out).exists()
    assert_same_weights(weights(out), weights(teacher_ckpt))


def test_teacher_checkpoint_records_best_on_val(teacher_ckpt):
    model, ckpt = load_model(teacher_ckpt, role="teacher")
    accs = [h["val_video_acc"] for h in ckpt["history"]]
    assert ckpt["best_epoch"] == int(np.argmax(accs)) + 1  # epochs count from 1
    assert [h["epoch"] for h in ckpt["history"]] == list(range(1, len(accs) + 1))
    assert ckpt["class_names"] and len(ckpt["class_names"]) == ckpt["num_classes"]
    # the params it trained with travel with the weights (condi predict needs no params file)
    data = tiny_params()["data"]
    assert data_config(ckpt) == {k: data[k] for k in DATA_KEYS}
    assert ckpt["config"]["training"]["teacher"]["epochs"] == 2 and "threads" not in ckpt["config"]


def test_pseudo_labels_are_eq1_of_the_stored_logits(params_pl, data):
    pl, _ = params_pl
    assert set(pl["split"]) == {"train", "val"}
    assert len(pl["rows"]) == len(data.rows("train")) + len(data.rows("val"))
    assert pl["logits"].dtype == np.float16
    # Eq. 1 written out here: z = 1 where the teacher's top class is the video's label
    top = pl["logits"].astype(np.float32).argmax(axis=1)
    np.testing.assert_array_equal(pl["z"], (top == data.labels(pl["rows"])).astype(np.uint8))


class ConstantTeacher(nn.Module):
    """A teacher that predicts class ``cls`` for every clip: right exactly on that class's
    clips, so its Eq. 1 labels are known without running any code under test."""

    def __init__(self, num_classes: int, cls: int):
        super().__init__()
        logits = torch.zeros(num_classes)
        logits[cls] = 2.0
        self.register_buffer("logits", logits)

    def forward(self, x):
        return self.logits.expand(x.shape[0], -1).clone()


CONSTANT_CLASS = 0


@pytest.fixture(scope="module")
def constant_pl(data):
    teacher = ConstantTeacher(data.num_classes, CONSTANT_CLASS)
    return compute_pseudo_labels(tiny_params(), teacher, data)


def test_faithful_pseudo_labels_of_a_known_teacher(constant_pl, data):
    pl = constant_pl
    labels = data.labels(pl["rows"])
    np.testing.assert_array_equal(pl["z"], (labels == CONSTANT_CLASS).astype(np.uint8))
    assert 0 < pl["z"].sum() < len(pl["z"])  # right on some clips, wrong on the others
    expected = np.zeros(data.num_classes, np.float16)
    expected[CONSTANT_CLASS] = 2.0
    assert (pl["logits"] == expected).all()
    np.testing.assert_array_equal(
        pl["rows"], np.concatenate([data.rows("train"), data.rows("val")])
    )
    assert pl["split"].tolist() == ["train"] * len(data.rows("train")) + ["val"] * len(
        data.rows("val")
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
    summary = train_student(params, "resnext14half", method, data, pl, a)
    train_student(params, "resnext14half", method, data, pl, b)
    assert_same_weights(weights(a), weights(b))
    model, ckpt = load_model(a, role="student")
    assert ckpt["method"] == method
    assert np.isfinite(ckpt["history"][-1]["train_loss"])
    # the reported validation accuracy, recomputed from the saved weights: clip softmax
    # averaged per video, argmax against the video's label
    val = data.rows("val")
    out = forward_rows(model, data.cache_path, val, data.labels(val), params["data"], 64, "cpu")
    probs = torch.softmax(torch.from_numpy(out["logits"]).double(), dim=1).numpy()
    vids = data.video_ids(val)
    correct = [
        probs[vids == v].mean(0).argmax() == data.labels(val)[vids == v][0] for v in np.unique(vids)
    ]
    assert summary["val_video_acc"] == pytest.approx(100.0 * np.mean(correct), abs=1e-9)


def test_crossfit_folds_are_stratified_by_group(data):
    folds = crossfit_folds(data, 2, seed=0)
    rows = data.rows("train")
    groups = data.index["group"].to_numpy()[rows]
    per_group = {}
    for g, f in zip(groups, folds, strict=True):
        assert per_group.setdefault(g, f) == f  # a group (so a video) never straddles folds
    # every class with two or more training groups has groups in both folds
    labels = data.labels(rows)
    n_split = 0
    for y in np.unique(labels):
        if len(set(groups[labels == y])) >= 2:
            assert set(folds[labels == y]) == {0, 1}
            n_split += 1
    assert n_split >= 1


def fold_teacher_z(data, params, work_dir, folds):
    """Eq. 1 on every training clip by the fold teacher that did not train on it, computed
    here from the fold checkpoints (independently of compute_pseudo_labels)."""
    rows = data.rows("train")
    z = np.full(len(rows), 255, np.uint8)
    for j in range(2):
        (ckpt,) = work_dir.glob(f"crossfit_*_{j + 1}of2.pt")
        model, _ = load_model(ckpt, role="teacher")
        held = rows[folds == j]
        out = forward_rows(
            model, data.cache_path, held, data.labels(held), params["data"], 64, "cpu"
        )
        z[folds == j] = out["logits"].argmax(1) == data.labels(held)
    return z


def test_crossfit_pseudo_labels_are_judged_by_the_fold_teachers(data, constant_pl, tmp_path):
    params = tiny_params(**{"pseudo_labels.source": "crossfit", "training.teacher.epochs": 1})
    teacher = ConstantTeacher(data.num_classes, CONSTANT_CLASS)
    pl = compute_pseudo_labels(params, teacher, data, teacher="resnext14", work_dir=tmp_path)
    faithful = constant_pl
    np.testing.assert_array_equal(pl["logits"], faithful["logits"])  # KD targets unchanged
    assert len(list(tmp_path.glob("crossfit_*_*of2.pt"))) == 2
    val = pl["split"] == "val"
    np.testing.assert_array_equal(pl["z"][val], faithful["z"][val])  # val judged by the teacher
    train = ~val
    expected = fold_teacher_z(data, params, tmp_path, crossfit_folds(data, 2, params["seed"]))
    np.testing.assert_array_equal(pl["z"][train], expected)
    # and that differs from the main teacher's judgement: crossfit is not train in disguise
    assert (pl["z"][train] != faithful["z"][train]).any()
