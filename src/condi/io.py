"""Atomic writes: every output is written to a temporary file in the same directory and then
renamed over the target, so a crash never leaves a truncated file for a later stage to read."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Files are created 0o666 minus the umask, as ``open()`` would; mkstemp's 0o600 would leave every
# output unreadable to the group (a shared results/ directory, a DVC cache, a second user).
_FILE_MODE = 0o666 & ~_umask()


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (best effort: not every file system allows it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``.

    ``suffix`` defaults to the target's suffix so that writers that look at the extension
    (``numpy.save``, ``DataFrame.to_parquet``) behave. If the body raises (or the process dies)
    the target is untouched; the temporary file is removed (after a SIGKILL it stays behind as
    ``.<name>.*.tmp``, which no stage reads).
    """
    yield from _atomic_steps(path, suffix)


def _atomic_steps(path: str | os.PathLike, suffix: str | None) -> Iterator[Path]:
    """The steps of :func:`atomic_path`, as a plain generator (the context manager delegates to
    it; mutation testing, ``benchmarks/mutation.py``, cannot reach into decorated functions)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.",
        suffix=(suffix if suffix is not None else path.suffix) + ".tmp",
        dir=path.parent,
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp_path, _FILE_MODE)
        os.replace(tmp_path, path)
        _fsync_dir(path.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_csv(df: pd.DataFrame, path: str | os.PathLike, **kwargs: Any) -> None:
    kwargs.setdefault("index", False)
    kwargs.setdefault("float_format", "%.6g")
    kwargs.setdefault("lineterminator", "\n")
    with atomic_path(path) as tmp:
        df.to_csv(tmp, **kwargs)


def write_parquet(df: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def save_torch(obj: Any, path: str | os.PathLike) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_torch(path: str | os.PathLike) -> Any:
    """``torch.load`` with a clear error for a missing, empty or truncated file."""
    import torch

    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, not a checkpoint file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: checkpoint is empty (0 bytes)")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises RuntimeError/EOFError/UnpicklingError/zipfile errors
        raise ValueError(
            f"{path}: not a readable checkpoint (truncated or corrupt?): {exc}"
        ) from exc


def load_npy(path: str | os.PathLike, mmap_mode: str | None = None):
    """``numpy.load`` of a ``.npy`` array with a clear error naming a missing, empty or
    truncated file (NumPy's own says e.g. "mmap length is greater than file size")."""
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: array file not found")
    try:
        return np.load(path, mmap_mode=mmap_mode)
    except Exception as exc:  # ValueError/OSError/EOFError/UnpicklingError from a bad file
        raise ValueError(
            f"{path}: not a readable .npy array (truncated or corrupt?): {exc}"
        ) from exc
