"""3D-ResNeXt, as okankop/Efficient-3DCNNs ``models/resnext.py`` (at 9db09f6) builds it.

Reference (``resnext101(shortcut_type='B', cardinality=32, sample_size=112,
sample_duration=16)``): stem Conv3d 3->64 kernel 7 stride (1, 2, 2) pad 3, BN, ReLU,
MaxPool3d(3, stride 2, pad 1); four layers of bottlenecks (expansion 2) with planes
128/256/512/1024, the 3x3x3 conv grouped by ``cardinality``, stride 2 (T, H, W) in the grouped
conv of the first block of layers 2-4; shortcut B (1x1x1 conv with the stride, then BN) where
the shape changes; head AvgPool3d((ceil(T/16), ceil(S/32), ceil(S/32))) and Linear(2048, n), no
dropout; convs kaiming-normal (fan_out), BN weight 1, bias 0. The state_dict keys equal the
reference's (``tests/models/data/efficient3dcnns_resnext101_32x4d_B_400.txt``).

Scale knobs (beyond the reference, for the small default pipeline) and how they generalise it:

* ``layers`` (default ``[3, 4, 23, 3]``): blocks per layer.
* ``base_width`` (default 128): planes of layer1; planes double per layer.
* ``cardinality`` (default 32): groups of the 3x3x3 conv.
* ``stem_width`` (default ``base_width // 2``, i.e. 64 at the reference size): stem channels.
* Bottleneck inner width = ``planes``. The reference computes
  ``cardinality * int(planes / 32)``, which equals ``planes`` for cardinality 32 (the only
  setting it ships) but collapses to 0 channels for small widths; ``planes`` must be divisible
  by ``cardinality``. The classifier input is ``planes[3] * 2`` (the reference's
  ``cardinality * 32 * 2`` = 2048).
* Pooling: the reference kernel covers exactly the final feature map at the nominal input, so
  it is the global mean there; a global mean is used for every input size, which lets small
  clips (e.g. 16x32x32) through. ``sample_size``/``sample_duration`` are kept for reference.
* Only shortcut ``'B'`` is implemented (the paper's ResNeXt-101); ``'A'`` raises.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from condi.models.base import VideoClassifier, global_avg_pool


class ResNeXtBottleneck(nn.Module):
    """Bottleneck 1x1x1 -> grouped 3x3x3 (stride) -> 1x1x1 (x2 expansion), residual add, ReLU."""

    expansion = 2

    def __init__(
        self,
        inplanes: int,
        planes: int,
        cardinality: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        mid_planes = planes
        self.conv1 = nn.Conv3d(inplanes, mid_planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm3d(mid_planes)
        self.conv2 = nn.Conv3d(
            mid_planes,
            mid_planes,
            kernel_size=3,
            stride=stride,
            padding=1,
            groups=cardinality,
            bias=False,
        )
        self.bn2 = nn.BatchNorm3d(mid_planes)
        self.conv3 = nn.Conv3d(mid_planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm3d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            residual = self.downsample(x)
        out = out + residual
        return self.relu(out)


class ResNeXt3D(VideoClassifier):
    """3D-ResNeXt with shortcut B (Efficient-3DCNNs ``ResNeXt``); see the module docstring."""

    def __init__(
        self,
        num_classes: int = 400,
        layers: Sequence[int] = (3, 4, 23, 3),
        cardinality: int = 32,
        base_width: int = 128,
        stem_width: int | None = None,
        sample_size: int = 112,
        sample_duration: int = 16,
        shortcut_type: str = "B",
    ) -> None:
        super().__init__()
        if shortcut_type != "B":
            raise ValueError(
                f"resnext101: only shortcut_type 'B' is implemented, got {shortcut_type!r}"
            )
        layers = [int(n) for n in layers]
        if len(layers) != 4 or min(layers) < 1:
            raise ValueError(f"resnext101: layers must be 4 positive ints, got {layers}")
        planes = [base_width * 2**i for i in range(4)]
        if base_width % cardinality:
            raise ValueError(
                f"resnext101: base_width ({base_width}) must be divisible by cardinality ({cardinality})"
            )
        stem_width = int(stem_width) if stem_width is not None else max(1, base_width // 2)
        self.layers_cfg = layers
        self.cardinality = cardinality
        self.sample_size = sample_size
        self.sample_duration = sample_duration
        # The reference's AvgPool3d kernel (parameter-free); at the nominal input it spans the map.
        self.reference_pool_kernel = (
            int(math.ceil(sample_duration / 16)),
            int(math.ceil(sample_size / 32)),
            int(math.ceil(sample_size / 32)),
        )

        self.inplanes = stem_width
        self.conv1 = nn.Conv3d(
            3, stem_width, kernel_size=7, stride=(1, 2, 2), padding=(3, 3, 3), bias=False
        )
        self.bn1 = nn.BatchNorm3d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(kernel_size=(3, 3, 3), stride=2, padding=1)
        self.layer1 = self._make_layer(planes[0], layers[0], cardinality)
        self.layer2 = self._make_layer(planes[1], layers[1], cardinality, stride=2)
        self.layer3 = self._make_layer(planes[2], layers[2], cardinality, stride=2)
        self.layer4 = self._make_layer(planes[3], layers[3], cardinality, stride=2)
        self.num_features = planes[3] * ResNeXtBottleneck.expansion
        self.fc = nn.Linear(self.num_features, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(
        self, planes: int, blocks: int, cardinality: int, stride: int = 1
    ) -> nn.Sequential:
        expansion = ResNeXtBottleneck.expansion
        downsample = None
        if stride != 1 or self.inplanes != planes * expansion:
            downsample = nn.Sequential(
                nn.Conv3d(
                    self.inplanes, planes * expansion, kernel_size=1, stride=stride, bias=False
                ),
                nn.BatchNorm3d(planes * expansion),
            )
        layers = [ResNeXtBottleneck(self.inplanes, planes, cardinality, stride, downsample)]
        self.inplanes = planes * expansion
        layers += [ResNeXtBottleneck(self.inplanes, planes, cardinality) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return global_avg_pool(x)

    def get_classifier(self) -> nn.Module:
        return self.fc
