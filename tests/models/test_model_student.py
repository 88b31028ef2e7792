"""StudentModel: shared features, two heads, parameter groups (docs/method.md, sections 2-3)."""

from __future__ import annotations

import pytest
import torch
from model_refs import SMALL_STUDENT, SMALL_TEACHER

from condi.models import StudentModel, build_model, build_student


@pytest.mark.parametrize(
    "spec", [SMALL_STUDENT, SMALL_TEACHER, ("mobilenetv2", {"width_mult": 0.25})]
)
def test_outputs_and_shared_features(spec, clip):
    arch, kwargs = spec
    student = build_student(arch, 12, **kwargs).eval()
    assert isinstance(student, StudentModel)
    with torch.no_grad():
        logits, conf = student(clip)
        feats = student.forward_features(clip)
        # both heads read the same pooled features; the class head is the backbone's own
        assert torch.allclose(logits, student.backbone(clip), atol=1e-6)
        assert torch.allclose(conf, student.confidence(feats).squeeze(1), atol=1e-6)
    assert logits.shape == (2, 12) and conf.shape == (2,)
    assert student.confidence.in_features == student.num_features == feats.shape[1]


def test_classifier_is_the_backbones_module_and_keys():
    student = build_student(*SMALL_STUDENT[:1], 12, **SMALL_STUDENT[1])
    assert student.classifier is student.backbone.classifier[1]
    assert student.dropout is student.backbone.classifier[0]
    assert isinstance(
        build_student(*SMALL_TEACHER[:1], 3, **SMALL_TEACHER[1]).dropout, torch.nn.Identity
    )
    keys = list(student.state_dict())
    assert keys[-2:] == ["confidence.weight", "confidence.bias"]
    assert all(k.startswith("backbone.") for k in keys[:-2])
    # no duplicate registration of the head
    backbone_keys = {f"backbone.{k}" for k in student.backbone.state_dict()}
    assert set(keys[:-2]) == backbone_keys


def test_parameter_groups_partition_the_model():
    student = build_student(*SMALL_STUDENT[:1], 12, **SMALL_STUDENT[1])
    conf = list(student.confidence_parameters())
    base = list(student.base_parameters())
    ids = [id(p) for p in conf + base]
    assert len(ids) == len(set(ids)) == len(list(student.parameters()))
    assert {id(p) for p in conf} == {id(student.confidence.weight), id(student.confidence.bias)}
    opt = torch.optim.SGD([{"params": base, "lr": 0.1}, {"params": conf, "lr": 0.1}], momentum=0.9)
    assert len(opt.param_groups) == 2


def test_gradients_reach_both_heads_and_the_shared_trunk(clip):
    student = build_student(*SMALL_STUDENT[:1], 5, **SMALL_STUDENT[1]).train()
    logits, conf = student(clip)
    conf.sum().backward()  # the confidence loss alone trains the trunk (shared representation)
    assert student.backbone.conv1[0].weight.grad.abs().sum() > 0
    assert student.classifier.weight.grad is None
    student.zero_grad(set_to_none=True)
    logits, conf = student(clip)
    logits.logsumexp(1).sum().backward()
    assert student.classifier.weight.grad is not None and student.confidence.weight.grad is None


def test_confidence_dropout_switch(clip):
    student = build_student(*SMALL_STUDENT[:1], 5, confidence_dropout=True, **SMALL_STUDENT[1])
    student.backbone.classifier[0].p = 0.9
    student.train()
    torch.manual_seed(0)
    _, c1 = student(clip)
    torch.manual_seed(1)
    _, c2 = student(clip)
    assert not torch.allclose(c1, c2)  # dropout now reaches the confidence input
    plain = build_student(*SMALL_STUDENT[:1], 5, **SMALL_STUDENT[1]).eval()
    with torch.no_grad():
        assert torch.equal(plain(clip)[1], plain(clip)[1])


def test_student_over_external_backbone(clip):
    student = build_student("tv:mc3_18", 4)
    logits, conf = student(clip[:, :, :8])
    assert logits.shape == (2, 4) and conf.shape == (2,)
    assert student.classifier is student.backbone.net.fc
    assert isinstance(build_model("tv:mc3_18", 4), torch.nn.Module)
