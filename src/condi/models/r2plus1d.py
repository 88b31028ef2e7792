"""R(2+1)D-34 as facebookresearch/VMZ ``pt/vmz/models/r2plus1d.py`` (at 4cc542d) builds it.

Reference (``r2plus1d_34(pretraining='', use_pool1=False, num_classes=400)``), on top of
torchvision's ``VideoResNet``:

* stem ``R2Plus1dStem4MARC``: Conv3d 3->45 kernel (1, 7, 7) stride (1, 2, 2) pad (0, 3, 3), BN,
  ReLU, Conv3d 45->64 kernel (3, 1, 1) pad (1, 0, 0), BN, ReLU (no bias anywhere);
  ``use_pool1`` appends MaxPool3d((1, 3, 3), stride (1, 2, 2), pad (0, 1, 1)) (no parameters);
* BasicBlocks ``[3, 4, 6, 3]``, planes 64/128/256/512; each 3x3x3 conv is a ``Conv2Plus1D``
  (``Sequential(Conv (1,3,3) -> midplanes, BN, ReLU, Conv (3,1,1) -> planes)``) with
  ``midplanes = in * out * 27 // (in * 9 + 3 * out)`` computed for every conv (so
  ``layer2.0.conv2`` has 288, not the 230 of ``layer2.0.conv1``); stride 2 of the first block of
  layers 2-4 split into spatial (1,3,3) and temporal (3,1,1) parts; shortcut 1x1x1 conv with
  stride 2 and BN;
* every BatchNorm3d gets ``eps=1e-3, momentum=0.9`` (VMZ sets this "for exact Caffe2 momentum";
  in PyTorch's convention 0.9 weights the new batch statistics, which is what the reference
  does, so it is reproduced as written);
* head: AdaptiveAvgPool3d(1), Linear(512, n), no dropout; torchvision init (kaiming normal
  fan_out for convs, BN 1/0, Linear N(0, 0.01) with zero bias).

Scale knobs: ``layers`` (default ``[3, 4, 6, 3]``), ``base_width`` (planes of layer1, default
64; planes double per layer; the stem's 45 becomes ``45 * base_width // 64``), ``use_pool1``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from condi.models.base import VideoClassifier, global_avg_pool

BN_EPS = 1e-3
BN_MOMENTUM = 0.9


def _bn(channels: int) -> nn.BatchNorm3d:
    return nn.BatchNorm3d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


def midplanes(in_planes: int, out_planes: int) -> int:
    """Channels between the spatial and temporal convs: parameters of a full 3x3x3 conv."""
    return (in_planes * out_planes * 27) // (in_planes * 9 + 3 * out_planes)


class Conv2Plus1D(nn.Sequential):
    """(1, 3, 3) spatial conv, BN, ReLU, (3, 1, 1) temporal conv (torchvision ``Conv2Plus1D``)."""

    def __init__(self, in_planes: int, out_planes: int, stride: int = 1) -> None:
        mid = midplanes(in_planes, out_planes)
        super().__init__(
            nn.Conv3d(
                in_planes,
                mid,
                kernel_size=(1, 3, 3),
                stride=(1, stride, stride),
                padding=(0, 1, 1),
                bias=False,
            ),
            _bn(mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(
                mid,
                out_planes,
                kernel_size=(3, 1, 1),
                stride=(stride, 1, 1),
                padding=(1, 0, 0),
                bias=False,
            ),
        )


class BasicBlock(nn.Module):
    """Two factorised convs with BN, residual add, ReLU."""

    expansion = 1

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            Conv2Plus1D(inplanes, planes, stride), _bn(planes), nn.ReLU(inplace=True)
        )
        self.conv2 = nn.Sequential(Conv2Plus1D(planes, planes), _bn(planes))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.conv2(self.conv1(x))
        return self.relu(out + residual)


class R2Plus1D(VideoClassifier):
    """VMZ R(2+1)D (default: R(2+1)D-34 without pool1); see the module docstring."""

    def __init__(
        self,
        num_classes: int = 400,
        layers: Sequence[int] = (3, 4, 6, 3),
        base_width: int = 64,
        use_pool1: bool = False,
    ) -> None:
        super().__init__()
        layers = [int(n) for n in layers]
        if len(layers) != 4 or min(layers) < 1:
            raise ValueError(f"r2plus1d_34: layers must be 4 positive ints, got {layers}")
        planes = [base_width * 2**i for i in range(4)]
        stem_mid = max(1, 45 * base_width // 64)
        stem: list[nn.Module] = [
            nn.Conv3d(
                3, stem_mid, kernel_size=(1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False
            ),
            _bn(stem_mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(stem_mid, base_width, kernel_size=(3, 1, 1), padding=(1, 0, 0), bias=False),
            _bn(base_width),
            nn.ReLU(inplace=True),
        ]
        if use_pool1:
            stem.append(nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)))
        self.stem = nn.Sequential(*stem)
        self.use_pool1 = use_pool1
        self.inplanes = base_width
        self.layer1 = self._make_layer(planes[0], layers[0])
        self.layer2 = self._make_layer(planes[1], layers[1], stride=2)
        self.layer3 = self._make_layer(planes[2], layers[2], stride=2)
        self.layer4 = self._make_layer(planes[3], layers[3], stride=2)
        self.num_features = planes[3] * BasicBlock.expansion
        self.fc = nn.Linear(self.num_features, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * BasicBlock.expansion:
            downsample = nn.Sequential(
                nn.Conv3d(
                    self.inplanes,
                    planes * BasicBlock.expansion,
                    kernel_size=1,
                    stride=stride,
                    bias=False,
                ),
                _bn(planes * BasicBlock.expansion),
            )
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * BasicBlock.expansion
        layers += [BasicBlock(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return global_avg_pool(x)

    def get_classifier(self) -> nn.Module:
        return self.fc
