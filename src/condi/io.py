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


class UnsafeFileError(ValueError):
    """A file that holds something other than data (a pickled object that could run code):
    refused, never loaded. A ``ValueError``, so the command line exits 2 with its message."""


def _numpy_safe_globals() -> list[Any]:
    """NumPy scalars/arrays that old checkpoints carry (Efficient-3DCNNs' ``best_prec1``, a
    NumPy RNG state): data, not code. Their unpickling only rebuilds arrays of plain dtypes."""
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    return [
        np.ndarray,
        np.dtype,
        core.multiarray.scalar,
        core.multiarray._reconstruct,
        *(getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")),
    ]


def plain_data(obj: Any, where: str = "value") -> Any:
    """``obj`` with NumPy scalars made Python numbers and NumPy arrays made tensors; raises
    ``TypeError`` naming ``where`` for anything that is not a tensor or plain data (dict,
    list, tuple, str, bytes, int, float, bool, None), which :func:`load_torch` would refuse."""
    import numpy as np
    import torch

    if obj is None or isinstance(obj, (str, bytes, bool, int, float, torch.Tensor)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, dict):
        return type(obj)((k, plain_data(v, f"{where}[{k!r}]")) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(plain_data(v, f"{where}[{i}]") for i, v in enumerate(obj))
    if isinstance(obj, (torch.dtype, torch.device)):
        return obj
    raise TypeError(f"{where}: {type(obj).__name__} is not a tensor or plain data")


def save_torch(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` through :func:`atomic_path`. Write only tensors and plain types (dict,
    list, tuple, str, int, float, bool, None) so that :func:`load_torch` reads it back."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


# What torch's weights-only unpickler says when a file asks for an object it does not allow
# (rather than when the bytes are not a pickle at all: "Unsupported operand", a zip error).
_OBJECT_REFUSALS = ("GLOBAL", "reduce for unrecognized", "Can only build", "new object for")


def _refused_global(exc: BaseException) -> str | None:
    """The object a ``weights_only`` load refused (``posix.system``), from torch's message;
    None when the load failed for another reason (a truncated or corrupt file)."""
    import re

    text = str(exc)
    if "Weights only load failed" not in text or not any(r in text for r in _OBJECT_REFUSALS):
        return None
    m = re.search(r"GLOBAL ([\w.]+)", text) or re.search(r"function (\S+)", text)
    return m.group(1) if m else "an object that is not a tensor or plain data"


def load_torch(path: str | os.PathLike, allow: tuple[type, ...] = ()) -> Any:
    """Read a ``torch.save`` file (a checkpoint, a training state) on the CPU, safely.

    This is condi's one ``torch.load``: always ``weights_only=True``, so only tensors, plain
    containers and scalars, NumPy arrays/scalars and the types in ``allow`` are rebuilt, and
    nothing in the file can run code. A file holding any other object raises
    :class:`UnsafeFileError` naming the file and the object; a missing, empty, truncated or
    corrupt file a ``FileNotFoundError``/``ValueError`` naming the file.
    """
    import torch

    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, not a checkpoint file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: checkpoint is empty (0 bytes)")
    try:
        with torch.serialization.safe_globals([*_numpy_safe_globals(), *allow]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError/EOFError/UnpicklingError/zipfile errors
        refused = _refused_global(exc)
        if refused is not None:
            raise UnsafeFileError(
                f"{path}: refused: it holds a Python object ({refused}), not only tensors and "
                "plain data; condi never loads code from a file (is it really a condi or "
                "PyTorch checkpoint, from a source you know?)"
            ) from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"{path}: cannot read checkpoint (truncated or corrupt?): {first}"
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
