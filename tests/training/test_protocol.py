"""The transfer protocol on tiny fixtures (docs/method.md, section 2.5): teacher and student
pre-trained on a source dataset with other classes and appearance, then fine-tuned on the
target from those weights (classifier re-initialised, confidence head fresh), every student
method from the very same weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import condi.training.trainer as trainer
from condi.data.clips import build_clip_cache
from condi.data.index import build_index, write_index
from condi.data.indexed import load_data
from condi.data.synthetic import generate
from condi.models import build_model, build_student
from condi.models.checkpoint import load_model
from condi.training.protocol import pretrain, recipe
from condi.training.pseudo_labels import compute_pseudo_labels
from condi.training.schedule import student_lrs
from condi.training.student import train_student
from condi.training.teacher import train_teacher
from tests.conftest import TINY_SHORT_SIDE, tiny_params

SOURCE_CLASSES = 5  # the tiny target has 4


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A tiny source dataset: 5 classes (the target has 4), the colour palette, seed 7."""
    root = tmp_path_factory.mktemp("source_root")
    generate(root, preset="tiny", seed=7, num_classes=SOURCE_CLASSES, palette="colour")
    df, skipped = build_index("ucf101", root, 1, clip_len=16, val_fraction=0.1, seed=0)
    work = tmp_path_factory.mktemp("source_work")
    write_index(df, work / "index.parquet", skipped=skipped)
    cache = build_clip_cache(
        df, root, work / "clips.npy", 16, TINY_SHORT_SIDE, workers=1, progress=False
    )
    return load_data(work / "index.parquet", cache)


@pytest.fixture(scope="module")
def target(tiny_data):
    _, index, cache = tiny_data
    return load_data(index, cache)


def transfer_params(**overrides):
    base = {
        "protocol": "transfer",
        "pretrain.teacher.epochs": 1,
        "pretrain.student.epochs": 1,
        "pretrain.teacher.batch_size": 16,
        "pretrain.student.batch_size": 16,
    }
    return tiny_params(**{**base, **overrides})


@pytest.fixture(scope="module")
def pretrained(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrained")
    params = transfer_params()
    pretrain(params, "teacher", "resnext14", source, out / "teacher.pt")
    pretrain(params, "student", "resnext14half", source, out / "student.pt")
    return out / "teacher.pt", out / "student.pt"


@pytest.fixture
def initial_weights(monkeypatch):
    """The weights every training starts from: a copy of the model's state when the epoch
    loop begins (after initialisation and any loading)."""
    seen: list[dict[str, torch.Tensor]] = []
    real_fit = trainer.fit

    def fit(*, model, **kw):
        seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return real_fit(model=model, **kw)

    monkeypatch.setattr(trainer, "fit", fit)
    return seen


def test_pretrained_checkpoints_are_source_classifiers(pretrained, source):
    for path, arch_of in zip(pretrained, ("teachers", "students"), strict=True):
        model, ckpt = load_model(path)
        assert ckpt["role"] == "pretrained" and ckpt["pretrained_for"] == arch_of[:-1]
        assert ckpt["num_classes"] == SOURCE_CLASSES == source.num_classes
        assert not hasattr(model, "confidence")  # the student is pre-trained as a classifier
        with pytest.raises(ValueError, match="expected a teacher checkpoint"):
            load_model(path, role="teacher")  # never taken for a target teacher


def head(state, prefix=""):
    return {k for k in state if k.startswith(prefix + "fc.")}


def test_finetuned_teacher_starts_from_the_pretrained_backbone(
    pretrained, target, initial_weights, tmp_path
):
    params = transfer_params()
    train_teacher(params, "resnext14", target, tmp_path / "t.pt", pretrained=pretrained[0])
    (start,) = initial_weights
    source_state = load_model(pretrained[0])[1]["model"]
    fresh = build_model(
        "resnext101", target.num_classes, **params["teachers"]["resnext14"]["kwargs"]
    )
    assert head(start) == {"fc.weight", "fc.bias"}
    for k, v in start.items():
        if k in head(start):  # re-initialised at the target's class count
            assert v.shape[0] == target.num_classes != source_state[k].shape[0]
        else:  # every other tensor, BatchNorm statistics included, is the pre-trained one
            assert torch.equal(v, source_state[k]), k
    # the head is what a fresh model with the job's seed has, not something loaded
    torch.manual_seed(params["seed"])
    fresh = build_model(
        "resnext101", target.num_classes, **params["teachers"]["resnext14"]["kwargs"]
    )
    assert torch.equal(start["fc.weight"], fresh.state_dict()["fc.weight"])
    ckpt = load_model(tmp_path / "t.pt", role="teacher")[1]
    assert ckpt["init_from"] == str(pretrained[0])
    assert ckpt["history"][0]["lr"] == params["training"]["finetune"]["teacher"]["lr"]


def test_every_student_method_starts_from_the_same_pretrained_weights(
    pretrained, target, initial_weights, tmp_path
):
    params = transfer_params()
    teacher = build_model(
        "resnext101", target.num_classes, **params["teachers"]["resnext14"]["kwargs"]
    )
    pl = compute_pseudo_labels(params, teacher.eval(), target)
    methods = ["condi_sr", "st_ent", "bce_conf"]
    for m in methods:
        train_student(
            params, "resnext14half", m, target, pl, tmp_path / f"{m}.pt", pretrained=pretrained[1]
        )
    assert len(initial_weights) == len(methods)
    first = initial_weights[0]
    for other in initial_weights[1:]:  # identical, tensor for tensor
        assert first.keys() == other.keys()
        assert all(torch.equal(first[k], other[k]) for k in first)
    source_state = load_model(pretrained[1])[1]["model"]
    for k, v in first.items():
        if k.startswith(("backbone.fc.", "confidence.")):
            continue
        assert k.startswith("backbone.") and torch.equal(v, source_state[k[len("backbone.") :]]), k
    assert first["backbone.fc.weight"].shape[0] == target.num_classes
    assert source_state["fc.weight"].shape[0] == SOURCE_CLASSES
    # heads: those of a fresh student built with the job's seed (classifier and confidence)
    torch.manual_seed(params["seed"])
    fresh = build_student(
        "resnext101", target.num_classes, **params["students"]["resnext14half"]["kwargs"]
    )
    for k in ("backbone.fc.weight", "backbone.fc.bias", "confidence.weight", "confidence.bias"):
        assert torch.equal(first[k], fresh.state_dict()[k]), k
    # the fine-tuning rates: alpha 0.01 for the base group, conf_lr for the confidence branch
    ckpt = load_model(tmp_path / "condi_sr.pt", role="student")[1]
    assert ckpt["history"][0]["lr"] == 0.01 == recipe(params, "student")["lr"]


def test_the_protocol_and_the_pretrained_checkpoint_must_agree(pretrained, target, tmp_path):
    with pytest.raises(ValueError, match="protocol transfer needs the pre-trained"):
        train_teacher(transfer_params(), "resnext14", target, tmp_path / "a.pt")
    with pytest.raises(ValueError, match="protocol scratch trains from scratch"):
        train_teacher(
            tiny_params(), "resnext14", target, tmp_path / "b.pt", pretrained=pretrained[0]
        )
    assert not (tmp_path / "a.pt").exists() and not (tmp_path / "b.pt").exists()


def test_recipe_and_confidence_rate():
    scratch, transfer = tiny_params(), transfer_params()
    assert recipe(scratch, "student") == scratch["training"]["student"]
    t = recipe(transfer, "student")
    assert t["lr"] == 0.01 and t["conf_lr"] == 0.1
    ft = transfer["training"]["finetune"]["student"]
    kept = [k for k in transfer["training"]["student"] if k not in ft]
    assert kept and all(t[k] == transfer["training"]["student"][k] for k in kept)
    assert recipe(transfer, "teacher")["lr"] == transfer["training"]["finetune"]["teacher"]["lr"]
    # the confidence branch: its own start, then / 5 per epoch from the second on
    assert student_lrs(0, 0.01, 1.25, 5.0, 0.1) == (0.01, 0.1)
    assert student_lrs(3, 0.01, 1.25, 5.0, 0.1) == pytest.approx((0.01 / 1.25**3, 0.1 / 25))
    assert student_lrs(3, 0.01, 1.25, 5.0) == pytest.approx((0.01 / 1.25**3, 0.01 / 25))
    assert np.isclose(student_lrs(1, 0.1)[1], 0.1)
