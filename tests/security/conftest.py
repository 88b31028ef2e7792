"""Hostile inputs for the security tests (issue 12), each built in the test's tmp_path.

:class:`Payload` is what an attacker pickles into a checkpoint: unpickled by ``pickle`` (or
``torch.load(weights_only=False)``) it runs ``touch <marker>``. ``payload_is_live`` proves that
on a copy, so that "the marker does not exist" really means "nothing ran".
"""

from __future__ import annotations

import os
import pickle
import shlex
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO
from tests.data_sources.conftest import http_server  # noqa: F401 - the local test server

PARAMS = REPO / "params.yaml"


class Payload:
    """Runs ``touch marker`` when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = Path(marker)

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def payload_is_live(tmp_path: Path) -> bool:
    """The same payload, unpickled by plain ``pickle``, does create its marker."""
    marker = tmp_path / "control-marker"
    pickle.loads(pickle.dumps(Payload(marker)))
    live = marker.exists()
    marker.unlink(missing_ok=True)
    return live


def hostile_checkpoint(path: Path, marker: Path | None, **fields) -> Path:
    """A file that looks like a condi checkpoint (weights, arch, role...) and carries a payload
    (none when ``marker`` is None: a clean checkpoint)."""
    from condi.models import build_model

    model = build_model("resnext101", 5, layers=[1, 1, 1, 1], base_width=8, cardinality=4)
    obj = {
        "model": model.state_dict(),
        "role": "teacher",
        "arch": "resnext101",
        "kwargs": {"layers": [1, 1, 1, 1], "base_width": 8, "cardinality": 4},
        "num_classes": 5,
        "history": [{"epoch": 0, "note": Payload(marker) if marker else "clean"}],
        **fields,
    }
    torch.save(obj, path)
    return path


@pytest.fixture
def no_tracking(monkeypatch):
    """Stage commands without MLflow (faster; tracking is not what these tests are about)."""
    monkeypatch.setenv("CONDI_TRACKING", "0")


@pytest.fixture
def marker(tmp_path) -> Path:
    path = tmp_path / "PAYLOAD-RAN"
    yield path
    assert not path.exists(), "the payload ran"
