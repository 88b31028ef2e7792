"""The four paper backbones: reference state_dict layout, parameter formulas, shapes, knobs."""

from __future__ import annotations

import pytest
import torch
from model_refs import REFERENCES, SMALL_STUDENT, SMALL_TEACHER, header_params, parse_reference

from condi.models import MODELS, build_model
from condi.models.complexity import count_params

# reference/models.md: trainable params = a + b * n
FORMULAS = {
    ("shufflenetv2", 2.0): (5_410_416, 2049),
    ("mobilenetv2", 1.0): (2_354_048, 1281),
    ("resnext101", None): (47_521_216, 2049),
    ("r2plus1d_34", None): (63_491_975, 513),
}


@pytest.mark.parametrize("ref_file", list(REFERENCES))
def test_state_dict_equals_reference(ref_file):
    """Keys, dtypes and shapes equal the public reference checkpoint's, nothing more or less."""
    arch, kwargs, n = REFERENCES[ref_file]
    model = build_model(arch, n, **kwargs)
    ours = {k: (v.dtype, tuple(v.shape)) for k, v in model.state_dict().items()}
    ref = parse_reference(ref_file)
    assert set(ours) - set(ref) == set()
    assert set(ref) - set(ours) == set()
    assert ours == ref
    assert count_params(model) == header_params(ref_file)


@pytest.mark.parametrize("n", [101, 400, 600])
@pytest.mark.parametrize(("arch", "width"), list(FORMULAS))
def test_parameter_formulas(arch, width, n):
    a, b = FORMULAS[(arch, width)]
    kwargs = {"width_mult": width} if width is not None else {}
    with torch.device("meta"):
        model = build_model(arch, n, **kwargs)
    assert count_params(model) == a + b * n


@pytest.mark.parametrize(
    ("arch", "kwargs", "d"),
    [
        (*SMALL_TEACHER, 256),
        (*SMALL_STUDENT, 1024),
        ("shufflenetv2", {"width_mult": 0.5}, 1024),
        ("mobilenetv2", {"width_mult": 0.25}, 1280),
        ("r2plus1d_34", {"layers": [1, 1, 1, 1], "base_width": 8}, 64),
        ("r2plus1d_34", {"layers": [1, 1, 1, 1], "base_width": 8, "use_pool1": True}, 64),
    ],
)
def test_small_inputs_logits_and_features(arch, kwargs, d, clip):
    """16x32x32 clips work; forward = head(features); features are (B, num_features)."""
    model = build_model(arch, 11, **kwargs).eval()
    with torch.no_grad():
        logits = model(clip)
        feats = model.forward_features(clip)
        again = model.forward_head(feats)
    assert logits.shape == (2, 11)
    assert feats.shape == (2, d) and model.num_features == d
    assert torch.allclose(logits, again, atol=1e-6)
    assert torch.isfinite(logits).all()
    assert model.arch == arch and model.arch_kwargs == kwargs and model.num_classes == 11


def test_train_mode_backward_reaches_every_parameter(clip):
    for arch, kwargs in (SMALL_TEACHER, SMALL_STUDENT):
        model = build_model(arch, 5, **kwargs).train()
        model(clip).logsumexp(1).sum().backward()
        assert all(p.grad is not None for p in model.parameters()), arch


def test_other_clip_sizes_run():
    """Temporal length and crop need not be the nominal 16x112x112."""
    model = build_model(*SMALL_STUDENT[:1], 3, **SMALL_STUDENT[1]).eval()
    teacher = build_model(SMALL_TEACHER[0], 3, **SMALL_TEACHER[1]).eval()
    with torch.no_grad():
        for shape in [(1, 3, 8, 48, 40), (1, 3, 1, 16, 16), (1, 3, 32, 64, 64)]:
            x = torch.randn(shape)
            assert model(x).shape == (1, 3)
            assert teacher(x).shape == (1, 3)


def test_resnext_small_config_structure():
    """base_width 16 doubles per layer; inner width = planes, grouped by cardinality."""
    model = build_model(*SMALL_TEACHER[:1], 101, **SMALL_TEACHER[1])
    assert [len(getattr(model, f"layer{i}")) for i in range(1, 5)] == [1, 1, 1, 1]
    convs = [model.layer1[0].conv2, model.layer4[0].conv2]
    assert [(c.in_channels, c.groups) for c in convs] == [(16, 8), (128, 8)]
    assert model.conv1.out_channels == 8  # stem = base_width // 2 (64 at the reference's 128)
    assert model.fc.in_features == 256
    with pytest.raises(ValueError, match="divisible"):
        build_model("resnext101", 10, base_width=20, cardinality=8)


def test_reference_initialisations():
    torch.manual_seed(0)
    mobile = build_model("mobilenetv2", 600, width_mult=1.0)
    fc = mobile.classifier[1]
    assert abs(fc.weight.std().item() - 0.01) < 0.001 and fc.bias.abs().max() == 0
    conv = mobile.features[18][0]  # 1x1x1, 1280 out: std sqrt(2 / 1280)
    assert abs(conv.weight.std().item() - (2 / 1280) ** 0.5) < 0.002
    vmz = build_model("r2plus1d_34", 10, layers=[1, 1, 1, 1], base_width=8)
    bns = [m for m in vmz.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    assert bns and all(m.eps == 1e-3 and m.momentum == 0.9 for m in bns)
    assert vmz.fc.bias.abs().max() == 0
    shuffle = build_model("shufflenetv2", 10, width_mult=0.25)
    assert isinstance(shuffle.classifier[0], torch.nn.Dropout) and shuffle.classifier[0].p == 0.2
    resnext = build_model(*SMALL_TEACHER[:1], 10, **SMALL_TEACHER[1])
    assert not any(isinstance(m, torch.nn.Dropout) for m in resnext.modules())


def test_vmz_midplanes_recomputed_per_conv():
    model = build_model("r2plus1d_34", 400)
    assert model.layer2[0].conv1[0][0].out_channels == 230
    assert model.layer2[0].conv2[0][0].out_channels == 288
    assert model.stem[0].out_channels == 45 and len(model.stem) == 6
    assert len(build_model("r2plus1d_34", 400, use_pool1=True).stem) == 7


def test_bad_names_and_kwargs():
    assert set(MODELS) == {"resnext101", "r2plus1d_34", "shufflenetv2", "mobilenetv2"}
    with pytest.raises(ValueError, match="unknown model"):
        build_model("resnet50", 10)
    with pytest.raises(ValueError, match="width_mult"):
        build_model("shufflenetv2", 10, width_mult=0.75)
    with pytest.raises(ValueError, match="shufflenetv2: bad keyword"):
        build_model("shufflenetv2", 10, depth=3)
    with pytest.raises(ValueError, match="num_classes"):
        build_model("mobilenetv2", 0)
    with pytest.raises(ValueError, match="unknown model family"):
        build_model("keras:foo", 10)
