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


def _random_bn_stats(model):
    """BatchNorm statistics and affine parameters away from the identity, so folding matters."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
    return model


@pytest.mark.parametrize(
    "arch, kwargs, student",
    [
        (*SMALL_TEACHER, False),
        ("shufflenetv2", {"width_mult": 0.25}, True),
        ("mobilenetv2", {"width_mult": 0.25}, True),
    ],
)
def test_fuse_conv_bn_folds_every_batchnorm_and_keeps_the_outputs(arch, kwargs, student, clip):
    from condi.models.switches import fuse_conv_bn

    torch.manual_seed(0)
    model = _random_bn_stats((build_student if student else build_model)(arch, 7, **kwargs))
    model.train()
    n_bn = sum(isinstance(m, torch.nn.BatchNorm3d) for m in model.modules())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fused = fuse_conv_bn(model, clip[:1])
    assert fused is not model and fused.fused_bn == n_bn > 0
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in fused.modules())
    assert fused.arch == arch and fused.arch_kwargs == kwargs
    # the original is untouched (weights, buffers, train mode)
    assert model.training
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    with torch.no_grad():
        want, got = model.eval()(clip), fused(clip)
    for w, g in zip(want if student else (want,), got if student else (got,), strict=True):
        assert (w - g).abs().max() < 1e-4


def test_fuse_conv_bn_leaves_a_conv_output_used_twice_alone():
    from condi.models.switches import fuse_conv_bn

    class Twice(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv3d(3, 4, 3, padding=1)
            self.bn = torch.nn.BatchNorm3d(4)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + y  # folding the BN into the conv would change y here

    model = _random_bn_stats(Twice()).eval()
    x = torch.randn(1, 3, 4, 6, 6, generator=torch.Generator().manual_seed(0))
    assert fuse_conv_bn(model, x) is model
    plain = torch.nn.Sequential(torch.nn.Conv3d(3, 4, 3), torch.nn.ReLU())
    assert fuse_conv_bn(plain, x) is plain  # nothing to fold


def test_pointwise_linear_is_the_convolution():
    from condi.models.switches import PointwiseLinear

    torch.manual_seed(0)
    conv = torch.nn.Conv3d(6, 5, 1)
    pw = PointwiseLinear(conv)
    x = torch.randn(2, 6, 3, 4, 5)
    with torch.no_grad():
        for inp in (x, to_channels_last_3d(x)):
            got = pw(inp)
            assert got.shape == (2, 5, 3, 4, 5)
            assert (got - conv(x)).abs().max() < 1e-5
        assert pw(to_channels_last_3d(x)).is_contiguous(memory_format=torch.channels_last_3d)


@pytest.mark.parametrize(
    "arch, kwargs, student",
    [
        (*SMALL_TEACHER, False),
        ("shufflenetv2", {"width_mult": 0.25}, True),
        ("mobilenetv2", {"width_mult": 0.25}, True),
    ],
)
def test_inference_copy_keeps_the_outputs(arch, kwargs, student, clip):
    from condi.models.switches import PointwiseLinear, _is_pointwise, inference_copy

    torch.manual_seed(0)
    model = _random_bn_stats((build_student if student else build_model)(arch, 7, **kwargs))
    n_pw = sum(_is_pointwise(m) for m in model.modules())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = to_channels_last_3d(inference_copy(model, clip[:1]))
    assert n_pw > 0 and fast.pointwise_linear == n_pw
    assert sum(isinstance(m, PointwiseLinear) for m in fast.modules()) == n_pw
    assert not any(isinstance(m, torch.nn.BatchNorm3d) or _is_pointwise(m) for m in fast.modules())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    with torch.no_grad():
        want, got = model.eval()(clip), fast(to_channels_last_3d(clip))
    for w, g in zip(want if student else (want,), got if student else (got,), strict=True):
        assert (w - g).abs().max() < 1e-4


def test_inference_copy_of_a_model_with_nothing_to_rewrite_is_the_model():
    from condi.models.switches import inference_copy

    plain = torch.nn.Sequential(torch.nn.Conv3d(3, 4, 3), torch.nn.ReLU())
    assert inference_copy(plain, torch.randn(1, 3, 4, 6, 6)) is plain
