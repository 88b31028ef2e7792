"""3D-ShuffleNetV2 as okankop/Efficient-3DCNNs ``models/shufflenetv2.py`` (at 9db09f6) builds it.

Reference (``get_model(num_classes, sample_size=112, width_mult)``): stem ``conv1`` = Conv3d
3->24 kernel 3 stride (1, 2, 2) pad 1, BN, ReLU; MaxPool3d(3, stride 2, pad 1); ``features`` =
stages of [4, 8, 4] units whose first unit has stride 2 in T, H and W; ``conv_last`` 1x1x1, BN,
ReLU; global average pool; ``classifier`` = Sequential(Dropout(0.2), Linear). PyTorch default
init. The misspelt branch names (``banch1``/``banch2``) are the reference's and are kept so that
its checkpoints load (``tests/models/data/efficient3dcnns_shufflenetv2_2.0x_600.txt``).

Differences: the reference asserts ``sample_size % 16 == 0``; any input size works here (the
pooling is global in both). ``channel_shuffle`` uses ``reshape`` so it also works on
channels-last tensors; the result is the same.
"""

from __future__ import annotations

import torch
from torch import nn

from condi.models.base import VideoClassifier, global_avg_pool

STAGE_OUT_CHANNELS: dict[float, list[int]] = {
    0.25: [24, 32, 64, 128, 1024],
    0.5: [24, 48, 96, 192, 1024],
    1.0: [24, 116, 232, 464, 1024],
    1.5: [24, 176, 352, 704, 1024],
    2.0: [24, 224, 488, 976, 2048],
}
STAGE_REPEATS = (4, 8, 4)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of ``groups`` groups (ShuffleNet's channel shuffle)."""
    b, c, t, h, w = x.shape
    x = x.reshape(b, groups, c // groups, t, h, w).transpose(1, 2)
    return x.reshape(b, c, t, h, w)


def conv_bn(inp: int, oup: int, stride: tuple[int, int, int] | int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(inp, oup, kernel_size=3, stride=stride, padding=(1, 1, 1), bias=False),
        nn.BatchNorm3d(oup),
        nn.ReLU(inplace=True),
    )


def conv_1x1x1_bn(inp: int, oup: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(inp, oup, 1, 1, 0, bias=False), nn.BatchNorm3d(oup), nn.ReLU(inplace=True)
    )


class InvertedResidual(nn.Module):
    """ShuffleNetV2 unit: stride 1 splits channels in half, stride 2 has two branches."""

    def __init__(self, inp: int, oup: int, stride: int) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        self.stride = stride
        oup_inc = oup // 2
        if stride == 1:
            self.banch2 = nn.Sequential(
                nn.Conv3d(oup_inc, oup_inc, 1, 1, 0, bias=False),
                nn.BatchNorm3d(oup_inc),
                nn.ReLU(inplace=True),
                nn.Conv3d(oup_inc, oup_inc, 3, stride, 1, groups=oup_inc, bias=False),
                nn.BatchNorm3d(oup_inc),
                nn.Conv3d(oup_inc, oup_inc, 1, 1, 0, bias=False),
                nn.BatchNorm3d(oup_inc),
                nn.ReLU(inplace=True),
            )
        else:
            self.banch1 = nn.Sequential(
                nn.Conv3d(inp, inp, 3, stride, 1, groups=inp, bias=False),
                nn.BatchNorm3d(inp),
                nn.Conv3d(inp, oup_inc, 1, 1, 0, bias=False),
                nn.BatchNorm3d(oup_inc),
                nn.ReLU(inplace=True),
            )
            self.banch2 = nn.Sequential(
                nn.Conv3d(inp, oup_inc, 1, 1, 0, bias=False),
                nn.BatchNorm3d(oup_inc),
                nn.ReLU(inplace=True),
                nn.Conv3d(oup_inc, oup_inc, 3, stride, 1, groups=oup_inc, bias=False),
                nn.BatchNorm3d(oup_inc),
                nn.Conv3d(oup_inc, oup_inc, 1, 1, 0, bias=False),
                nn.BatchNorm3d(oup_inc),
                nn.ReLU(inplace=True),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            half = x.shape[1] // 2
            out = torch.cat((x[:, :half], self.banch2(x[:, half:])), 1)
        else:
            out = torch.cat((self.banch1(x), self.banch2(x)), 1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(VideoClassifier):
    """3D-ShuffleNetV2; ``width_mult`` in {0.25, 0.5, 1.0, 1.5, 2.0}."""

    def __init__(
        self,
        num_classes: int = 600,
        width_mult: float = 1.0,
        sample_size: int = 112,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        key = float(width_mult)
        if key not in STAGE_OUT_CHANNELS:
            raise ValueError(
                f"shufflenetv2: width_mult must be one of {sorted(STAGE_OUT_CHANNELS)}, got {width_mult}"
            )
        self.width_mult = key
        self.sample_size = sample_size
        channels = STAGE_OUT_CHANNELS[key]
        input_channel = channels[0]
        self.conv1 = conv_bn(3, input_channel, stride=(1, 2, 2))
        self.maxpool = nn.MaxPool3d(kernel_size=3, stride=2, padding=1)
        units: list[nn.Module] = []
        for stage, repeats in enumerate(STAGE_REPEATS):
            output_channel = channels[stage + 1]
            for i in range(repeats):
                units.append(InvertedResidual(input_channel, output_channel, 2 if i == 0 else 1))
                input_channel = output_channel
        self.features = nn.Sequential(*units)
        self.conv_last = conv_1x1x1_bn(input_channel, channels[-1])
        self.num_features = channels[-1]
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels[-1], num_classes))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        x = self.conv_last(self.features(x))
        return global_avg_pool(x)

    def get_dropout(self) -> nn.Module:
        return self.classifier[0]

    def get_classifier(self) -> nn.Module:
        return self.classifier[1]

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(features)
