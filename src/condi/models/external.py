"""Bring-your-own teachers: torchvision (``tv:<name>``) and PyTorchVideo (``ptv:<name>``) models.

Both are built with random weights and never download anything (torchvision with
``weights=None``; PyTorchVideo hub functions with ``pretrained=False``). A public checkpoint is
loaded afterwards with :func:`condi.models.load_pretrained`, which adds the wrapper's ``net.``
prefix when the checkpoint lacks it.

The wrappers keep the original model untouched as ``self.net`` (so its state_dict keys are the
library's, behind ``net.``) and re-run its forward in two halves to provide the
:class:`~condi.models.base.VideoClassifier` interface; ``forward`` returns logits (no softmax:
PyTorchVideo's X3D/ResNet heads end with a softmax in eval mode, which is dropped here).

Pooling: where the library pools with a fixed-size ``AvgPool3d`` sized for its nominal input
(torchvision S3D (2, 7, 7); PyTorchVideo ResNet/X3D heads), the wrapper takes the global mean
instead. At the nominal input both are the same; other sizes (e.g. 16x32x32 clips) then work.
MViT models need their nominal input size (16x224x224 for ``tv:mvit_v2_s``).

Supported: ``tv:`` r3d_18, mc3_18, r2plus1d_18, s3d, mvit_v1_b, mvit_v2_s, swin3d_t, swin3d_s,
swin3d_b; ``ptv:`` the single-pathway classification hub models (x3d_xs/s/m/l, slow_r50,
c2d_r50, i3d_r50, csn_r101, r2plus1d_r50, mvit_base_16x4, mvit_base_32x3) and the builders
``create_x3d``, ``create_resnet``, ``create_csn``, ``create_r2plus1d``. SlowFast (two input
pathways), detection models and the accelerator's efficient X3D raise a ``ValueError``.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch
from torch import nn

from condi.models.base import VideoClassifier, global_avg_pool

TV_MODELS = (
    "r3d_18",
    "mc3_18",
    "r2plus1d_18",
    "s3d",
    "mvit_v1_b",
    "mvit_v2_s",
    "swin3d_t",
    "swin3d_s",
    "swin3d_b",
)
PTV_HUB_MODELS = (
    "x3d_xs",
    "x3d_s",
    "x3d_m",
    "x3d_l",
    "slow_r50",
    "c2d_r50",
    "i3d_r50",
    "csn_r101",
    "r2plus1d_r50",
    "mvit_base_16x4",
    "mvit_base_32x3",
)
PTV_BUILDERS = {
    "create_x3d": "pytorchvideo.models.x3d",
    "create_resnet": "pytorchvideo.models.resnet",
    "create_csn": "pytorchvideo.models.csn",
    "create_r2plus1d": "pytorchvideo.models.r2plus1d",
}
PTV_UNSUPPORTED = {
    "slowfast_r50": "SlowFast takes two input pathways, not one (B, 3, T, H, W) clip",
    "slowfast_r101": "SlowFast takes two input pathways, not one (B, 3, T, H, W) clip",
    "slowfast_16x8_r101_50_50": "SlowFast takes two input pathways, not one (B, 3, T, H, W) clip",
    "slow_r50_detection": "a detection model (needs boxes)",
    "slowfast_r50_detection": "a detection model (needs boxes)",
    "mvit_base_16": "an image model (2D input)",
    "efficient_x3d_xs": "the accelerator model has no separable classifier head",
    "efficient_x3d_s": "the accelerator model has no separable classifier head",
}


class TorchvisionVideo(VideoClassifier):
    """A ``torchvision.models.video`` model behind the :class:`VideoClassifier` interface."""

    def __init__(self, name: str, num_classes: int, **kwargs: Any) -> None:
        super().__init__()
        import torchvision.models.video as tvv

        if name not in TV_MODELS:
            raise ValueError(
                f"tv:{name}: unknown torchvision video model; supported: {', '.join(TV_MODELS)}"
            )
        if kwargs.pop("weights", None) is not None:
            raise ValueError(
                f"tv:{name}: weights are never downloaded; build it and use load_pretrained()"
            )
        self.name = name
        self.net = getattr(tvv, name)(weights=None, num_classes=num_classes, **kwargs)
        if name in ("r3d_18", "mc3_18", "r2plus1d_18"):
            self.family = "resnet"
            self.num_features = self.net.fc.in_features
        elif name == "s3d":
            self.family = "s3d"
            self.num_features = self.net.classifier[1].in_channels
        elif name.startswith("mvit"):
            self.family = "mvit"
            self.num_features = self.net.head[1].in_features
        else:
            self.family = "swin"
            self.num_features = self.net.head.in_features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        net = self.net
        if self.family == "resnet":
            x = net.stem(x)
            x = net.layer4(net.layer3(net.layer2(net.layer1(x))))
            return global_avg_pool(x)
        if self.family == "s3d":
            return global_avg_pool(net.features(x))
        if self.family == "mvit":
            x = net.conv_proj(x)
            x = x.flatten(2).transpose(1, 2)
            x = net.pos_encoding(x)
            thw = (net.pos_encoding.temporal_size,) + net.pos_encoding.spatial_size
            for block in net.blocks:
                x, thw = block(x, thw)
            return net.norm(x)[:, 0]
        x = net.pos_drop(net.patch_embed(x))
        x = net.norm(net.features(x))
        return x.mean(dim=(1, 2, 3))  # (B, T, H, W, C) -> (B, C), = avgpool + flatten

    def get_dropout(self) -> nn.Module:
        if self.family == "s3d":
            return self.net.classifier[0]
        if self.family == "mvit":
            return self.net.head[0]
        return nn.Identity()

    def get_classifier(self) -> nn.Module:
        if self.family == "resnet":
            return self.net.fc
        if self.family == "s3d":
            return self.net.classifier[1]  # a 1x1x1 Conv3d
        if self.family == "mvit":
            return self.net.head[1]
        return self.net.head

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        if self.family == "s3d":
            out = self.net.classifier(features[:, :, None, None, None])
            return out.flatten(1)
        return self.get_classifier()(self.get_dropout()(features))


def _globalise_avgpool(module: nn.Module | None) -> nn.Module | None:
    """Replace a fixed-size AvgPool3d (sized for the nominal input) by a global mean."""
    if isinstance(module, nn.AvgPool3d):
        return nn.AdaptiveAvgPool3d(1)
    return module


class PyTorchVideoNet(VideoClassifier):
    """A PyTorchVideo single-pathway classifier behind the :class:`VideoClassifier` interface."""

    def __init__(self, name: str, num_classes: int, **kwargs: Any) -> None:
        super().__init__()
        if name in PTV_UNSUPPORTED:
            raise ValueError(f"ptv:{name}: not supported: {PTV_UNSUPPORTED[name]}")
        if kwargs.get("pretrained"):
            raise ValueError(
                f"ptv:{name}: pretrained weights are never downloaded; use load_pretrained()"
            )
        kwargs.pop("pretrained", None)
        self.name = name
        if name in PTV_HUB_MODELS:
            hub = importlib.import_module("pytorchvideo.models.hub")
            builder = getattr(hub, name)
            kwargs["pretrained"] = False
        elif name in PTV_BUILDERS:
            builder = getattr(importlib.import_module(PTV_BUILDERS[name]), name)
        else:
            known = ", ".join(PTV_HUB_MODELS + tuple(PTV_BUILDERS))
            raise ValueError(f"ptv:{name}: unknown PyTorchVideo model; supported: {known}")
        if name.startswith("mvit"):
            kwargs.setdefault("head_num_classes", num_classes)
        else:
            kwargs.setdefault("model_num_class", num_classes)
        self.net = builder(**kwargs)

        if hasattr(self.net, "cls_positional_encoding"):
            self.family = "mvit"
            head = self.net.head
        elif hasattr(self.net, "blocks") and hasattr(self.net.blocks[-1], "proj"):
            self.family = "net"
            head = self.net.blocks[-1]
            head.pool = _globalise_avgpool(head.pool)
            if head.pool is not None and hasattr(head.pool, "pool"):
                head.pool.pool = _globalise_avgpool(head.pool.pool)
        else:
            raise ValueError(f"ptv:{name}: built a {type(self.net).__name__} with no known head")
        proj = head.proj
        if not isinstance(proj, nn.Linear):
            raise ValueError(f"ptv:{name}: the head's projection is not a Linear layer")
        self.num_features = proj.in_features

    @property
    def head(self) -> nn.Module:
        """The library's head module (inside ``self.net``; not registered twice)."""
        return self.net.head if self.family == "mvit" else self.net.blocks[-1]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        net = self.net
        if self.family == "net":
            for block in net.blocks[:-1]:
                x = block(x)
            if self.head.pool is not None:
                x = self.head.pool(x)
            return global_avg_pool(x)
        if net.patch_embed is not None:
            x = net.patch_embed(x)
        x = net.cls_positional_encoding(x)
        if net.pos_drop is not None:
            x = net.pos_drop(x)
        if net.norm_patch_embed is not None:
            x = net.norm_patch_embed(x)
        thw = net.cls_positional_encoding.patch_embed_shape
        for blk in net.blocks:
            x, thw = blk(x, thw)
        if net.norm_embed is not None:
            x = net.norm_embed(x)
        return self.head.sequence_pool(x)

    def get_dropout(self) -> nn.Module:
        return self.head.dropout if self.head.dropout is not None else nn.Identity()

    def get_classifier(self) -> nn.Module:
        return self.head.proj
