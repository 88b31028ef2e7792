"""load_pretrained: Efficient-3DCNNs / VMZ / condi checkpoints, students, clear errors."""

from __future__ import annotations

import pytest
import torch
from model_refs import (
    REFERENCES,
    SMALL_STUDENT,
    SMALL_TEACHER,
    efficient3dcnns_checkpoint,
    random_state,
)

from condi.models import build_model, build_student, load_pretrained, model_from_checkpoint

EFFICIENT_ARCH = {
    "shufflenetv2": "shufflenetv2",
    "mobilenetv2": "mobilenetv2",
    "resnext101": "resnext-101",
}


@pytest.mark.parametrize("ref_file", list(REFERENCES))
def test_reference_checkpoint_loads_strictly(ref_file, tmp_path):
    """A checkpoint with exactly the reference's keys/shapes loads strictly, values included."""
    arch, kwargs, n = REFERENCES[ref_file]
    state = random_state(ref_file)
    path = tmp_path / "ckpt.pth"
    if arch in EFFICIENT_ARCH:  # saved by Efficient-3DCNNs main.py from nn.DataParallel
        torch.save(efficient3dcnns_checkpoint(state, EFFICIENT_ARCH[arch]), path)
    else:  # VMZ: a plain state_dict
        torch.save(state, path)
    model = build_model(arch, n, **kwargs)
    result = load_pretrained(model, path, arch=arch)
    assert not (result.missing or result.unexpected or result.mismatched)
    assert len(result.loaded) == len(state)
    own = model.state_dict()
    for key in (next(iter(state)), list(state)[-1], list(state)[len(state) // 2]):
        assert torch.equal(own[key], state[key]), key


def test_shape_mismatch_is_a_clear_error(tmp_path):
    ref_file = "efficient3dcnns_shufflenetv2_2.0x_600.txt"
    state = random_state(ref_file)
    path = tmp_path / "kinetics_shufflenet_2.0x_RGB_16_best.pth"
    torch.save(efficient3dcnns_checkpoint(state, "shufflenetv2"), path)
    model = build_model("shufflenetv2", 101, width_mult=2.0)  # 101 classes, not 600
    before = model.classifier[1].weight.clone()
    with pytest.raises(ValueError) as err:
        load_pretrained(model, path, arch="shufflenetv2")
    msg = str(err.value)
    assert str(path) in msg and "shape mismatches (2)" in msg
    assert "classifier.1.weight: checkpoint [600, 2048] vs model [101, 2048]" in msg
    assert torch.equal(model.classifier[1].weight, before)  # nothing half-loaded

    # fine-tuning from it: strict=False loads everything but the head and says so
    result = load_pretrained(model, path, strict=False)
    assert [k for k, _, _ in result.mismatched] == ["classifier.1.weight", "classifier.1.bias"]
    assert torch.equal(model.conv1[0].weight, state["conv1.0.weight"])


def test_missing_and_unexpected_keys_are_listed():
    model = build_model(*SMALL_STUDENT[:1], 10, **SMALL_STUDENT[1])
    state = dict(model.state_dict())
    state.pop("conv_last.0.weight")
    state["extra.weight"] = torch.zeros(3)
    with pytest.raises(ValueError) as err:
        load_pretrained(model, state)
    msg = str(err.value)
    assert "<state_dict>" in msg
    assert "missing keys (1): conv_last.0.weight" in msg
    assert "unexpected keys (1): extra.weight" in msg


def test_arch_mismatch_and_bad_inputs(tmp_path):
    model = build_model(*SMALL_STUDENT[:1], 10, **SMALL_STUDENT[1])
    ckpt = efficient3dcnns_checkpoint(model.state_dict(), "mobilenetv2")
    with pytest.raises(ValueError, match="arch 'mobilenetv2', not 'shufflenetv2'"):
        load_pretrained(model, ckpt, arch="shufflenetv2")
    load_pretrained(model, ckpt)  # no arch requested: keys decide
    with pytest.raises(FileNotFoundError):
        load_pretrained(model, tmp_path / "nope.pth")
    with pytest.raises(ValueError, match="not a state_dict"):
        load_pretrained(model, {"epoch": 3})
    (tmp_path / "junk.pth").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="junk.pth: cannot read"):
        load_pretrained(model, tmp_path / "junk.pth")


def test_resnext_arch_names_match():
    model = build_model(*SMALL_TEACHER[:1], 7, **SMALL_TEACHER[1])
    ckpt = efficient3dcnns_checkpoint(model.state_dict(), "resnext-101")
    assert load_pretrained(model, ckpt, arch="resnext101").checkpoint_arch == "resnext-101"


def test_backbone_checkpoint_into_student(tmp_path):
    teacher_like = build_model(*SMALL_STUDENT[:1], 10, **SMALL_STUDENT[1])
    path = tmp_path / "backbone.pth"
    torch.save(efficient3dcnns_checkpoint(teacher_like.state_dict(), "shufflenetv2"), path)
    student = build_student(*SMALL_STUDENT[:1], 10, **SMALL_STUDENT[1])
    conf_before = student.confidence.weight.clone()
    result = load_pretrained(student, path, arch="shufflenetv2")
    assert result.target == "backbone"
    assert torch.equal(student.classifier.weight, teacher_like.classifier[1].weight)
    assert torch.equal(student.confidence.weight, conf_before)
    # into .backbone directly as well
    assert load_pretrained(student.backbone, path).target == "model"


def test_condi_checkpoint_round_trip(tmp_path, clip):
    """condi's own {'model', 'role', 'arch', 'kwargs', 'num_classes'} checkpoints."""
    arch, kwargs = SMALL_STUDENT
    student = build_student(arch, 9, **kwargs).eval()
    path = tmp_path / "student.pt"
    torch.save(
        {
            "model": student.state_dict(),
            "role": "student",
            "arch": arch,
            "kwargs": kwargs,
            "num_classes": 9,
        },
        path,
    )
    fresh = build_student(arch, 9, **kwargs)
    assert load_pretrained(fresh, path, arch=arch).target == "model"
    rebuilt = model_from_checkpoint(path).eval()
    with torch.no_grad():
        for other in (fresh.eval(), rebuilt):
            for a, b in zip(student(clip), other(clip), strict=True):
                assert torch.equal(a, b)
    teacher = build_model(*SMALL_TEACHER[:1], 9, **SMALL_TEACHER[1])
    ckpt = {
        "model": teacher.state_dict(),
        "role": "teacher",
        "arch": SMALL_TEACHER[0],
        "kwargs": SMALL_TEACHER[1],
        "num_classes": 9,
    }
    assert type(model_from_checkpoint(ckpt)) is type(teacher)
    with pytest.raises(ValueError, match="checkpoint is for arch 'resnext101'"):
        load_pretrained(build_model(arch, 9, **kwargs), ckpt, arch=arch)


def test_numpy_scalars_in_old_checkpoints_load(tmp_path):
    """Efficient-3DCNNs-era files often hold NumPy scalars (best_prec1); weights_only still works."""
    import numpy as np

    model = build_model(*SMALL_STUDENT[:1], 10, **SMALL_STUDENT[1])
    ckpt = efficient3dcnns_checkpoint(model.state_dict(), "shufflenetv2")
    ckpt["best_prec1"] = np.float64(0.61)
    ckpt["history"] = np.zeros(3, dtype=np.float32)
    torch.save(ckpt, tmp_path / "old.pth")
    assert load_pretrained(model, tmp_path / "old.pth").checkpoint_arch == "shufflenetv2"


def test_student_checkpoint_into_plain_model(clip):
    student = build_student(*SMALL_STUDENT[:1], 6, **SMALL_STUDENT[1]).eval()
    plain = build_model(*SMALL_STUDENT[:1], 6, **SMALL_STUDENT[1]).eval()
    result = load_pretrained(plain, student.state_dict())
    assert result.skipped == ["confidence.weight", "confidence.bias"]
    with torch.no_grad():
        assert torch.equal(plain(clip), student(clip)[0])


def test_load_backbone_reinitialises_the_head_even_at_the_same_class_count(tmp_path):
    """Fine-tuning (docs/method.md, 2.5): every tensor but the classifier from the checkpoint,
    including when source and target have the same number of classes."""
    from condi.models.checkpoint import head_keys, load_backbone, save_model

    arch, kwargs = SMALL_TEACHER
    torch.manual_seed(1)
    source = build_model(arch, 7, **kwargs)
    path = tmp_path / "pre.pt"
    save_model(path, source, role="pretrained", arch=arch, kwargs=kwargs, num_classes=7)
    torch.manual_seed(2)
    target = build_model(arch, 7, **kwargs)
    fresh_head = {k: v.clone() for k, v in target.state_dict().items() if k in head_keys(target)}
    result = load_backbone(target, path, arch=arch)
    assert sorted(head_keys(target)) == ["fc.bias", "fc.weight"] == sorted(result.skipped)
    own, src = target.state_dict(), source.state_dict()
    for k in own:
        expected = fresh_head[k] if k in fresh_head else src[k]
        assert torch.equal(own[k], expected), k
    assert result.loaded and not set(result.loaded) & set(fresh_head)


def test_load_backbone_into_a_student_and_its_errors(tmp_path):
    from condi.models.checkpoint import head_keys, load_backbone, save_model

    arch, kwargs = "resnext101", {"layers": [1, 1, 1, 1], "base_width": 8, "cardinality": 4}
    source = build_model(arch, 11, **kwargs)
    path = tmp_path / "pre.pt"
    save_model(path, source, role="pretrained", arch=arch, kwargs=kwargs, num_classes=11)
    student = build_student(arch, 4, **kwargs)
    conf = student.confidence.weight.clone()
    result = load_backbone(student, path, arch=arch)
    assert head_keys(student) == ["backbone.fc.weight", "backbone.fc.bias"]
    assert sorted(result.skipped) == ["fc.bias", "fc.weight"]
    assert torch.equal(student.confidence.weight, conf)  # the new head keeps its start
    src = source.state_dict()
    for k, v in student.backbone.state_dict().items():
        if not k.startswith("fc."):
            assert torch.equal(v, src[k]), k
    assert student.backbone.fc.weight.shape[0] == 4
    # anything but the head that does not fit is an error naming the file, nothing loaded
    wide = build_model(arch, 11, **{**kwargs, "base_width": 16})
    bad = tmp_path / "wide.pt"
    save_model(bad, wide, role="pretrained", arch=arch, kwargs=kwargs, num_classes=11)
    fresh = build_student(arch, 4, **kwargs)
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    with pytest.raises(ValueError, match=r"wide\.pt.*\n.*shape mismatches"):
        load_backbone(fresh, bad, arch=arch)
    assert all(torch.equal(before[k], v) for k, v in fresh.state_dict().items())
    with pytest.raises(ValueError, match="is for arch"):
        load_backbone(student, path, arch="mobilenetv2")
