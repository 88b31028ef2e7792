"""3D-MobileNetV2 as okankop/Efficient-3DCNNs ``models/mobilenetv2.py`` (at 9db09f6) builds it.

Reference (``get_model(num_classes, sample_size=112, width_mult)``): ``features`` = stem Conv3d
3 -> int(32 w) kernel 3 stride (1, 2, 2) pad 1, BN, ReLU6 (no pool); inverted residual groups
(t, c, n, s) = (1,16,1,1), (6,24,2,2), (6,32,3,2), (6,64,4,2), (6,96,3,1), (6,160,3,2),
(6,320,1,1) with stride s in T, H and W on the first block of a group, channels int(c w),
hidden ``round(inp * t)``; last 1x1x1 conv to 1280 (int(1280 w) if w > 1), BN, ReLU6; global
average pool; ``classifier`` = Sequential(Dropout(0.2), Linear). Init: conv weights
N(0, sqrt(2 / (k^3 out))), BN 1/0, Linear N(0, 0.01) with zero bias.
Keys equal ``tests/models/data/efficient3dcnns_mobilenetv2_1.0x_600.txt``.

Difference: the reference asserts ``sample_size % 16 == 0``; any input size works here.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from condi.models.base import VideoClassifier, global_avg_pool

# t (expansion), c (channels), n (blocks), s (stride of the first block)
INVERTED_RESIDUAL_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def conv_bn(inp: int, oup: int, stride: tuple[int, int, int] | int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(inp, oup, kernel_size=3, stride=stride, padding=(1, 1, 1), bias=False),
        nn.BatchNorm3d(oup),
        nn.ReLU6(inplace=True),
    )


def conv_1x1x1_bn(inp: int, oup: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(inp, oup, 1, 1, 0, bias=False), nn.BatchNorm3d(oup), nn.ReLU6(inplace=True)
    )


class InvertedResidual(nn.Module):
    """Expand (pointwise), depthwise 3x3x3, project (linear); residual if stride 1 and in == out."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        self.stride = stride
        hidden_dim = round(inp * expand_ratio)
        self.use_res_connect = stride == 1 and inp == oup
        dw = [
            nn.Conv3d(hidden_dim, hidden_dim, 3, stride, 1, groups=hidden_dim, bias=False),
            nn.BatchNorm3d(hidden_dim),
            nn.ReLU6(inplace=True),
        ]
        pw_linear = [nn.Conv3d(hidden_dim, oup, 1, 1, 0, bias=False), nn.BatchNorm3d(oup)]
        if expand_ratio == 1:
            self.conv = nn.Sequential(*dw, *pw_linear)
        else:
            expand = [
                nn.Conv3d(inp, hidden_dim, 1, 1, 0, bias=False),
                nn.BatchNorm3d(hidden_dim),
                nn.ReLU6(inplace=True),
            ]
            self.conv = nn.Sequential(*expand, *dw, *pw_linear)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(VideoClassifier):
    """3D-MobileNetV2 with width multiplier ``width_mult``."""

    def __init__(
        self,
        num_classes: int = 600,
        width_mult: float = 1.0,
        sample_size: int = 112,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if width_mult <= 0:
            raise ValueError(f"mobilenetv2: width_mult must be > 0, got {width_mult}")
        self.width_mult = float(width_mult)
        self.sample_size = sample_size
        input_channel = int(32 * width_mult)
        last_channel = int(1280 * width_mult) if width_mult > 1.0 else 1280
        features: list[nn.Module] = [conv_bn(3, input_channel, (1, 2, 2))]
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            output_channel = int(c * width_mult)
            for i in range(n):
                features.append(
                    InvertedResidual(input_channel, output_channel, s if i == 0 else 1, t)
                )
                input_channel = output_channel
        features.append(conv_1x1x1_bn(input_channel, last_channel))
        self.features = nn.Sequential(*features)
        self.num_features = last_channel
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last_channel, num_classes))
        self._initialize_weights()

    def _initialize_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.kernel_size[2] * m.out_channels
                nn.init.normal_(m.weight, 0, math.sqrt(2.0 / n))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return global_avg_pool(self.features(x))

    def get_dropout(self) -> nn.Module:
        return self.classifier[0]

    def get_classifier(self) -> nn.Module:
        return self.classifier[1]

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(features)
