"""Issue 4.6 switches: channels-last 3D memory format and bf16 autocast."""

from __future__ import annotations

import pytest
import torch
from model_refs import SMALL_STUDENT, SMALL_TEACHER

from condi.models import autocast_context, build_model, build_student, to_channels_last_3d


@pytest.mark.parametrize("spec", [SMALL_TEACHER, SMALL_STUDENT])
def test_channels_last_3d_gives_the_same_outputs(spec, clip):
    arch, kwargs = spec
    torch.manual_seed(0)
    model = build_model(arch, 10, **kwargs).eval()
    with torch.no_grad():
        expected = model(clip)
        to_channels_last_3d(model)
        conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv3d))
        assert conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
        x = to_channels_last_3d(clip)
        assert x.is_contiguous(memory_format=torch.channels_last_3d)
        got = model(x)
    assert (got - expected).abs().max() < 1e-4


def test_channels_last_3d_trains(clip):
    student = to_channels_last_3d(build_student(*SMALL_STUDENT[:1], 4, **SMALL_STUDENT[1]))
    logits, conf = student(to_channels_last_3d(clip))
    (logits.sum() + conf.sum()).backward()
    assert all(p.grad is not None for p in student.parameters())


def test_autocast_context(clip):
    model = build_model(*SMALL_STUDENT[:1], 4, **SMALL_STUDENT[1]).eval()
    with torch.no_grad():
        with autocast_context("cpu", enabled=True):
            low = model(clip)
        with autocast_context(torch.device("cpu"), enabled=False):
            full = model(clip)
    assert low.dtype == torch.bfloat16 and full.dtype == torch.float32
    assert (low.float() - full).abs().max() < 0.1 * full.abs().max() + 0.05
    with autocast_context("mps", enabled=True):  # unsupported device: a no-op
        assert model(clip).dtype == torch.float32
