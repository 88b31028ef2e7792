"""Bring-your-own teachers: tv:/ptv: wrappers built offline, same logits as the library."""

from __future__ import annotations

import pytest
import torch

from condi.models import build_model, load_pretrained


def test_torchvision_wrapper_matches_library_forward(clip):
    model = build_model("tv:mc3_18", 7).eval()
    x = clip[:, :, :8]
    with torch.no_grad():
        logits = model(x)
        assert torch.allclose(logits, model.net(x), atol=1e-5)
        assert model.forward_features(x).shape == (2, 512)
    assert model.num_features == 512 and model.get_classifier() is model.net.fc
    assert all(k.startswith("net.") for k in model.state_dict())


def test_torchvision_checkpoint_without_prefix_loads():
    import torchvision.models.video as tvv

    lib = tvv.mc3_18(weights=None, num_classes=7)
    model = build_model("tv:mc3_18", 7)
    load_pretrained(model, lib.state_dict())
    assert torch.equal(model.net.fc.weight, lib.fc.weight)


def test_pytorchvideo_x3d_offline_logits(clip):
    model = build_model("ptv:x3d_xs", 6).eval()
    with torch.no_grad():
        logits = model(clip)  # 16x32x32: works thanks to the global head pool
        assert logits.shape == (2, 6) and model.forward_features(clip).shape == (2, 2048)
        x = torch.randn(1, 3, 4, 160, 160)  # nominal input: the library's output = softmax(logits)
        assert torch.allclose(model(x).softmax(1), model.net(x), atol=1e-5)


def test_unsupported_external_names():
    with pytest.raises(ValueError, match="tv:resnet50: unknown torchvision video model"):
        build_model("tv:resnet50", 4)
    with pytest.raises(ValueError, match="two input pathways"):
        build_model("ptv:slowfast_r50", 4)
    with pytest.raises(ValueError, match="ptv:nope: unknown PyTorchVideo model"):
        build_model("ptv:nope", 4)
    with pytest.raises(ValueError, match="never downloaded"):
        build_model("ptv:x3d_xs", 4, pretrained=True)
    with pytest.raises(ValueError, match="never downloaded"):
        build_model("tv:r3d_18", 4, weights="DEFAULT")
