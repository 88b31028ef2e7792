"""Model complexity for Table II: parameters, multiply-adds and depth.

* :func:`count_params`: trainable parameters.
* :func:`multiply_adds`: ``torch.utils.flop_counter.FlopCounterMode`` total / 2 for one forward
  pass, i.e. multiply-adds (MACs) of convolutions and matrix products (batch-norm, activations
  and pooling are not counted). The paper's "GFLOPs" column does not reproduce with any public
  code (``reference/models.md``); Table II reports these MACs and says so.
* :func:`depth`: the number of weighted layers (Conv and Linear) on the longest input-to-output
  path of the forward graph, found by tracing one forward pass: every tensor carries the count
  of weighted layers it has gone through, a conv/linear op adds one to the maximum of its
  inputs, any other op passes the maximum on. Residual shortcuts with a conv (ResNeXt's
  shortcut B) are parallel paths and do not add depth. With this definition ResNeXt-101 has
  depth 101 (stem + 33 x 3 + fc), as its name and the paper say; R(2+1)D-34 has 67 because each
  factorised (2+1)D conv counts as two layers (the paper's 34 counts them as one: 1 + 16 x 2 +
  1); 3D-ShuffleNetV2 has 51 (stem + 16 x 3 + conv_last + fc) and 3D-MobileNetV2 53 (stem + 2 +
  16 x 3 + last conv + fc, the usual "53 layers"); the paper lists 22 for both, which no layer
  count of these networks gives.

Measurements run on a ``meta``-device copy when ``meta=True`` (shapes only: fast, no memory
for activations), so a full-size R(2+1)D-34 costs nothing to measure.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode
from torch.utils.weak import WeakTensorKeyDictionary

DEFAULT_INPUT = (1, 3, 16, 112, 112)

# The paper's Table II (GFLOPs, params in M, depth), by our arch name and configuration.
PAPER_TABLE2: dict[str, dict[str, float]] = {
    "resnext101": {"gflops": 6.932, "params_M": 48.34, "depth": 101},
    "r2plus1d_34": {"gflops": 6.321, "params_M": 38.76, "depth": 34},
    "shufflenetv2": {"gflops": 0.360, "params_M": 6.64, "depth": 22},
    "mobilenetv2": {"gflops": 0.446, "params_M": 3.12, "depth": 22},
}
# Multiply-adds (G) of the public reference code at 1x3x16x112x112 (reference/models.md).
REFERENCE_GMACS: dict[str, float] = {
    "resnext101": 9.568,
    "r2plus1d_34": 76.18,
    "shufflenetv2": 0.425,
    "mobilenetv2": 0.519,
}

# The paper's four models as Table II describes them, at the class counts whose parameter
# counts equal the paper's (R(2+1)D-34's 38.76M matches no public code; 400 classes as VMZ).
PAPER_CONFIGS: list[dict[str, Any]] = [
    {
        "model": "3D ResNeXt-101",
        "arch": "resnext101",
        "kwargs": {},
        "num_classes": 400,
        "paper": "resnext101",
    },
    {
        "model": "R(2+1)D-34",
        "arch": "r2plus1d_34",
        "kwargs": {},
        "num_classes": 400,
        "paper": "r2plus1d_34",
    },
    {
        "model": "3D-ShuffleNet-V2 2.0x",
        "arch": "shufflenetv2",
        "kwargs": {"width_mult": 2.0},
        "num_classes": 600,
        "paper": "shufflenetv2",
    },
    {
        "model": "3D-MobileNet-V2 1.0x",
        "arch": "mobilenetv2",
        "kwargs": {"width_mult": 1.0},
        "num_classes": 600,
        "paper": "mobilenetv2",
    },
]

TABLE2_COLUMNS = [
    "model",
    "arch",
    "kwargs",
    "num_classes",
    "input",
    "params_M",
    "gmacs",
    "depth",
    "paper_params_M",
    "paper_gflops",
    "paper_depth",
    "params",
    "ref_gmacs",
    "gmacs_vs_ref",
]


def count_params(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters; shared parameters are counted once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _prepare(model: nn.Module, meta: bool) -> tuple[nn.Module, torch.device]:
    if meta and _model_device(model).type != "meta":
        model = copy.deepcopy(model).to("meta")
    return model, _model_device(model)


def _run_eval(model: nn.Module, x: torch.Tensor) -> Any:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(x)
    finally:
        model.train(was_training)


def multiply_adds(
    model: nn.Module, input_shape: Sequence[int] = DEFAULT_INPUT, meta: bool = True
) -> int:
    """Multiply-adds of one forward pass = ``FlopCounterMode`` total FLOPs / 2.

    FlopCounterMode counts 2 FLOPs per multiply-add of convolutions and (batched) matrix
    products, so half of its total is the MAC count that Table II reports. The model runs in
    eval mode under ``no_grad`` (on a ``meta`` copy by default; the model is not modified).
    """
    model, device = _prepare(model, meta)
    x = torch.zeros(tuple(input_shape), device=device)
    counter = FlopCounterMode(display=False)
    with counter:
        _run_eval(model, x)
    return counter.get_total_flops() // 2


_WEIGHTED_FUNCS = {
    torch.conv1d,
    torch.conv2d,
    torch.conv3d,
    torch.conv_transpose1d,
    torch.conv_transpose2d,
    torch.conv_transpose3d,
    nn.functional.linear,
    torch._C._nn.linear,
}


class _DepthMode(TorchFunctionMode):
    """Propagates 'weighted layers so far' through every torch function call."""

    def __init__(self) -> None:
        super().__init__()
        self.depth: WeakTensorKeyDictionary = WeakTensorKeyDictionary()
        self.max_depth = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = [
            t
            for t in tree_leaves((args, kwargs))
            if isinstance(t, torch.Tensor) and not isinstance(t, nn.Parameter)
        ]
        d = max((self.depth.get(t, 0) for t in inputs), default=0)
        if func in _WEIGHTED_FUNCS:
            d += 1
        for o in tree_leaves(out):
            if isinstance(o, torch.Tensor):
                self.depth[o] = max(self.depth.get(o, 0), d)
                self.max_depth = max(self.max_depth, self.depth[o])
        return out


def depth(model: nn.Module, input_shape: Sequence[int] = DEFAULT_INPUT, meta: bool = True) -> int:
    """Weighted layers (Conv/Linear) on the longest path of one forward pass (module docstring).

    Returns the depth of the outputs (for a tuple output, such as a student's, the deepest).
    """
    model, device = _prepare(model, meta)
    x = torch.zeros(tuple(input_shape), device=device)
    mode = _DepthMode()
    with mode:
        out = _run_eval(model, x)
    return max(
        (mode.depth.get(o, 0) for o in tree_leaves(out) if isinstance(o, torch.Tensor)), default=0
    )


def table2_rows(configs: Sequence[dict[str, Any]]) -> Any:
    """One Table II row per config: params, multiply-adds and depth, beside the paper's figures.

    A config is ``{"arch", "num_classes", "kwargs"?, "model"? (display name), "input"?
    (default 1x3x16x112x112), "paper"? (a key of :data:`PAPER_TABLE2` to compare with)}``.
    Models are built on the ``meta`` device (no memory, no init cost). Columns:
    :data:`TABLE2_COLUMNS`; ``gmacs`` = multiply-adds / 1e9 (FlopCounterMode / 2),
    ``paper_gflops`` is the paper's figure as printed, ``ref_gmacs`` the public reference code's
    multiply-adds from ``reference/models.md`` for the paper configs, ``gmacs_vs_ref`` their
    ratio.
    """
    import pandas as pd

    from condi.models import build_model

    rows = []
    for cfg in configs:
        arch = cfg["arch"]
        kwargs = dict(cfg.get("kwargs") or {})
        n = int(cfg["num_classes"])
        shape = tuple(cfg.get("input") or DEFAULT_INPUT)
        with torch.device("meta"):
            model = build_model(arch, n, **kwargs)
        params = count_params(model)
        macs = multiply_adds(model, shape)
        paper = PAPER_TABLE2.get(cfg.get("paper") or "", {})
        ref = REFERENCE_GMACS.get(cfg.get("paper") or "", math.nan)
        gmacs = macs / 1e9
        rows.append(
            {
                "model": cfg.get("model", arch),
                "arch": arch,
                "kwargs": json.dumps(kwargs, sort_keys=True),
                "num_classes": n,
                "input": "x".join(str(s) for s in shape),
                "params_M": params / 1e6,
                "gmacs": gmacs,
                "depth": depth(model, shape),
                "paper_params_M": paper.get("params_M", math.nan),
                "paper_gflops": paper.get("gflops", math.nan),
                "paper_depth": paper.get("depth", math.nan),
                "params": params,
                "ref_gmacs": ref,
                "gmacs_vs_ref": gmacs / ref if ref == ref else math.nan,
            }
        )
    return pd.DataFrame(rows, columns=TABLE2_COLUMNS)
