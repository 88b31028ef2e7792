"""Table II measurements: multiply-adds, depth, params and the rows."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from condi.models import build_model
from condi.models.complexity import (
    PAPER_CONFIGS,
    TABLE2_COLUMNS,
    count_params,
    depth,
    multiply_adds,
    table2_rows,
)


def _meta(arch, n, **kwargs):
    with torch.device("meta"):
        return build_model(arch, n, **kwargs)


@pytest.mark.parametrize(
    ("arch", "kwargs", "gmacs"),
    [("shufflenetv2", {"width_mult": 2.0}, 0.425), ("mobilenetv2", {"width_mult": 1.0}, 0.519)],
)
def test_macs_match_reference_code(arch, kwargs, gmacs):
    """reference/models.md, 1x3x16x112x112, 600 classes: within 1%."""
    macs = multiply_adds(_meta(arch, 600, **kwargs))
    assert abs(macs / 1e9 - gmacs) / gmacs < 0.01


def test_macs_on_real_weights_equal_meta_and_count_only_convs_and_matmuls():
    model = build_model("shufflenetv2", 600, width_mult=0.25)
    meta = multiply_adds(model, (1, 3, 16, 32, 32))
    assert meta == multiply_adds(model, (1, 3, 16, 32, 32), meta=False)
    assert next(model.parameters()).device.type == "cpu"  # not moved
    lin = nn.Sequential(nn.Flatten(), nn.Linear(3 * 2 * 4 * 4, 10))
    assert multiply_adds(lin, (1, 3, 2, 4, 4)) == 96 * 10
    conv = nn.Conv3d(3, 8, kernel_size=3, padding=1, bias=False)
    assert multiply_adds(conv, (1, 3, 4, 4, 4)) == 8 * 64 * 3 * 27


def test_depth_definition():
    seq = nn.Sequential(nn.Conv3d(3, 4, 1), nn.BatchNorm3d(4), nn.ReLU(), nn.Conv3d(4, 4, 1))
    assert depth(seq, (1, 3, 2, 2, 2)) == 2

    class Residual(nn.Module):  # a shortcut with its own conv does not add depth
        def __init__(self):
            super().__init__()
            self.a, self.b, self.short = nn.Conv3d(3, 3, 1), nn.Conv3d(3, 3, 1), nn.Conv3d(3, 3, 1)

        def forward(self, x):
            return self.b(self.a(x)) + self.short(x)

    assert depth(Residual(), (1, 3, 2, 2, 2)) == 2


def test_depth_of_the_paper_models():
    """ResNeXt-101 is 101 deep; see complexity.py for the others' relation to the paper."""
    assert depth(_meta("resnext101", 400)) == 101
    assert depth(_meta("r2plus1d_34", 400)) == 67  # 33 factorised convs x 2 + fc
    assert depth(_meta("shufflenetv2", 600, width_mult=2.0)) == 51
    assert depth(_meta("mobilenetv2", 600, width_mult=1.0)) == 53


def test_count_params():
    model = nn.Linear(4, 3)
    assert count_params(model) == 15
    model.bias.requires_grad_(False)
    assert count_params(model) == 12 and count_params(model, trainable_only=False) == 15


def test_table2_rows():
    configs = PAPER_CONFIGS[2:] + [
        {
            "arch": "shufflenetv2",
            "kwargs": {"width_mult": 0.25},
            "num_classes": 101,
            "input": (1, 3, 16, 32, 32),
        }
    ]
    df = table2_rows(configs)
    assert list(df.columns) == TABLE2_COLUMNS
    assert list(df["params"]) == [6_639_816, 3_122_648, 318_181]
    shuffle, mobile, small = (df.iloc[i] for i in range(3))
    assert (shuffle.paper_params_M, shuffle.paper_gflops, shuffle.paper_depth) == (6.64, 0.360, 22)
    assert (mobile.paper_params_M, mobile.paper_gflops) == (3.12, 0.446)
    assert abs(shuffle.gmacs_vs_ref - 1) < 0.01 and abs(mobile.gmacs_vs_ref - 1) < 0.01
    assert small.input == "1x3x16x32x32" and math.isnan(small.paper_gflops)
    assert small.kwargs == '{"width_mult": 0.25}' and small.depth == 51
    assert {c["paper"] for c in PAPER_CONFIGS} == {
        "resnext101",
        "r2plus1d_34",
        "shufflenetv2",
        "mobilenetv2",
    }
