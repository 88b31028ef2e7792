"""Performance switches (issue 4.6): channels-last 3D memory format and mixed precision."""

from __future__ import annotations

import contextlib
from typing import TypeVar

import torch
from torch import nn

T = TypeVar("T", nn.Module, torch.Tensor)


def to_channels_last_3d(obj: T) -> T:
    """Convert a model (in place, returned) or a 5-D tensor (a copy) to ``channels_last_3d``.

    Results are unchanged up to floating-point rounding; on CUDA with cuDNN this usually
    speeds up 3D convolutions, on CPU it may or may not.
    """
    if isinstance(obj, torch.Tensor):
        return obj.contiguous(memory_format=torch.channels_last_3d) if obj.dim() == 5 else obj
    for module in obj.modules():
        for param in module.parameters(recurse=False):
            if param.dim() == 5:
                param.data = param.data.contiguous(memory_format=torch.channels_last_3d)
        for name, buf in module.named_buffers(recurse=False):
            if buf.dim() == 5:
                setattr(module, name, buf.contiguous(memory_format=torch.channels_last_3d))
    return obj


def autocast_context(
    device: str | torch.device, enabled: bool = True, dtype: torch.dtype = torch.bfloat16
) -> contextlib.AbstractContextManager:
    """Mixed precision: ``torch.autocast`` with bfloat16 on CUDA and CPU, a no-op when disabled.

    bfloat16 needs no loss scaling. Other device types (e.g. ``mps``) get a no-op context.
    """
    device_type = torch.device(device).type
    if not enabled or device_type not in ("cuda", "cpu"):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=dtype)
