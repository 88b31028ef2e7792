"""Fixtures for the model tests (helpers live in ``model_refs.py``)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: these tiny convolutions gain nothing from more, and with other
    processes on a 2-core machine OpenMP threads contending for cores slow them down 10-100x."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def clip() -> torch.Tensor:
    return torch.randn(2, 3, 16, 32, 32, generator=torch.Generator().manual_seed(0))
