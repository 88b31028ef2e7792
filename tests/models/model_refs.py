"""Helpers for the model tests: the reference state_dict listings and the default configs.

``data/*.txt`` are copies of ``shared/reference/state_dicts`` (one ``<key> <dtype> <shape>``
line per state_dict entry of the public reference checkpoints).
"""

from __future__ import annotations

from pathlib import Path

import torch

DATA = Path(__file__).resolve().parent / "data"

# file -> (arch, constructor kwargs, classes)
REFERENCES = {
    "efficient3dcnns_shufflenetv2_2.0x_600.txt": ("shufflenetv2", {"width_mult": 2.0}, 600),
    "efficient3dcnns_mobilenetv2_1.0x_600.txt": ("mobilenetv2", {"width_mult": 1.0}, 600),
    "efficient3dcnns_resnext101_32x4d_B_400.txt": ("resnext101", {}, 400),
    "vmz_r2plus1d_34_400.txt": ("r2plus1d_34", {}, 400),
}

# The pipeline's default teacher and student (params.yaml).
SMALL_TEACHER = ("resnext101", {"layers": [1, 1, 1, 1], "base_width": 16, "cardinality": 8})
SMALL_STUDENT = ("shufflenetv2", {"width_mult": 0.25})


def parse_reference(name: str) -> dict[str, tuple[torch.dtype, tuple[int, ...]]]:
    """``key -> (dtype, shape)`` from a reference listing, in file order."""
    out: dict[str, tuple[torch.dtype, tuple[int, ...]]] = {}
    for line in (DATA / name).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, dtype, shape = line.split()
        dims = () if shape == "scalar" else tuple(int(s) for s in shape.split(","))
        out[key] = (getattr(torch, dtype), dims)
    return out


def header_params(name: str) -> int:
    """The trainable parameter count stated in a listing's ``#`` line."""
    first = (DATA / name).read_text().splitlines()[0]
    return int(first.split("trainable params:")[1].split(";")[0])


def random_state(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors with the listed keys, dtypes and shapes."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, (dtype, shape) in parse_reference(name).items():
        if dtype.is_floating_point:
            state[key] = torch.randn(shape, generator=g, dtype=dtype)
        else:
            state[key] = torch.randint(0, 100, shape, generator=g, dtype=dtype)
    return state


def efficient3dcnns_checkpoint(state: dict[str, torch.Tensor], arch: str) -> dict:
    """Wrap a state_dict as Efficient-3DCNNs' main.py saves it (DataParallel ``module.``)."""
    return {
        "epoch": 7,
        "arch": arch,
        "state_dict": {f"module.{k}": v for k, v in state.items()},
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "momentum": 0.9, "params": [0]}]},
        "best_prec1": 0.5,
    }
