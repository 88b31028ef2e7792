"""Checkpoints: condi's own format (written by :func:`save_model`, read back by
:func:`load_model`) and loading weights from Efficient-3DCNNs, VMZ/torchvision/PyTorchVideo
and condi checkpoints into a model (:func:`load_pretrained`).

A condi checkpoint is ``{'model': state_dict, 'role': 'teacher' | 'student', 'arch': str,
'kwargs': dict, 'num_classes': int, ...}`` (plus ``class_names``, ``history``, ``method``,
``config``...): ``config`` is the part of params.yaml the job trained with (its stage's keys,
PySlowFast-style), so that ``condi predict`` needs no params file: :func:`data_config` reads
the clip length, sizes and normalisation from it. The file holds tensors and plain types
only, so every file is read with ``weights_only`` (:func:`condi.io.load_torch`): one holding
anything else raises :class:`condi.io.UnsafeFileError` naming it, and nothing in it runs.

:func:`load_pretrained` accepts (a path or an already loaded object):

* Efficient-3DCNNs ``{'epoch', 'arch', 'state_dict', 'optimizer', 'best_prec1'}`` saved from an
  ``nn.DataParallel`` model (keys start with ``module.``; ``reference/state_dicts/README.md``);
* condi's own ``{'model': state_dict, 'arch': str, 'kwargs': dict, 'num_classes': int, ...}``;
* PyTorchVideo's ``{'model_state': state_dict}``;
* a plain state_dict.

``module.`` prefixes are stripped. A :class:`~condi.models.student.StudentModel` receives a
backbone checkpoint in ``.backbone`` (its confidence head keeps its initialisation), and a plain model receives a
student checkpoint's backbone (the ``confidence.*`` entries are reported as ``skipped``); a
``tv:``/``ptv:`` wrapper receives the library's keys under its ``net.`` prefix. With
``strict=True`` any missing key, unexpected key or shape mismatch raises a ``ValueError`` that
names the source and lists all three; with ``strict=False`` the matching entries are loaded
and the rest reported in the returned :class:`LoadResult`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from condi.io import load_torch, plain_data, save_torch
from condi.models.student import StudentModel

# history entries that vary run to run: kept in MLflow, not in the weights file
TIMING_KEYS = ("clips_per_s", "epoch_time_s")


@dataclass
class LoadResult:
    """What :func:`load_pretrained` did."""

    source: str
    target: str  # "model" or "backbone"
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    checkpoint_arch: str | None = None
    skipped: list[str] = field(default_factory=list)  # a student's confidence head, if any


def normalise_arch(name: str) -> str:
    """``resnext-101`` (Efficient-3DCNNs' ``arch``) == ``resnext101``; case and -/_ ignored."""
    return name.lower().replace("-", "").replace("_", "").replace(":", "")


def read_checkpoint(path: str | os.PathLike) -> Any:
    """A checkpoint file, read by :func:`condi.io.load_torch`: on the CPU, ``weights_only``
    (tensors, plain containers, NumPy scalars/arrays), never an arbitrary object: a file that
    holds one raises :class:`condi.io.UnsafeFileError` naming it."""
    return load_torch(path)


def extract_state_dict(
    obj: Any, source: str = "<state_dict>"
) -> tuple[dict[str, torch.Tensor], str | None]:
    """The state_dict inside a loaded checkpoint (``module.`` prefixes stripped) and its arch."""
    arch = None
    if isinstance(obj, Mapping):
        arch = obj.get("arch") if isinstance(obj.get("arch"), str) else None
        for key in ("state_dict", "model", "model_state"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(
            f"{source}: not a state_dict nor a checkpoint holding one under "
            "'state_dict' (Efficient-3DCNNs), 'model' (condi) or 'model_state' (PyTorchVideo)"
        )
    state = {}
    for key, value in obj.items():
        while key.startswith("module."):
            key = key[len("module.") :]
        state[key] = value
    return state, arch


def _adapt_prefix(state: dict[str, torch.Tensor], target_keys: set[str]) -> dict[str, torch.Tensor]:
    """Add ``net.`` (tv:/ptv: wrappers) when the target has it and the checkpoint does not."""
    target_wrapped = bool(target_keys) and all(k.startswith("net.") for k in target_keys)
    if target_wrapped and state and not any(k.startswith("net.") for k in state):
        return {f"net.{k}": v for k, v in state.items()}
    return state


def load_pretrained(
    model: nn.Module,
    path_or_state: str | os.PathLike | Mapping[str, Any],
    arch: str | None = None,
    strict: bool = True,
) -> LoadResult:
    """Load a checkpoint into ``model`` (or into ``model.backbone`` for a student).

    ``arch``, when given, must agree with the checkpoint's own ``arch`` field if it has one
    (``resnext-101`` matches ``resnext101``). Raises ``ValueError`` on any mismatch when
    ``strict`` (the message names the file and lists missing keys, unexpected keys and shape
    mismatches), ``FileNotFoundError`` for a missing file and
    :class:`condi.io.UnsafeFileError` for a file holding anything but data (no code runs).
    """
    if isinstance(path_or_state, (str, os.PathLike)):
        source = str(path_or_state)
        obj = read_checkpoint(path_or_state)
    else:
        source = "<state_dict>"
        obj = path_or_state
    state, ckpt_arch = extract_state_dict(obj, source)
    if (
        arch is not None
        and ckpt_arch is not None
        and normalise_arch(arch) != normalise_arch(ckpt_arch)
    ):
        raise ValueError(f"{source}: checkpoint is for arch {ckpt_arch!r}, not {arch!r}")

    target, target_name = model, "model"
    skipped: list[str] = []
    is_student_state = bool(state) and all(
        k.startswith(("backbone.", "confidence.")) for k in state
    )
    if isinstance(model, StudentModel) and not is_student_state:
        target, target_name = model.backbone, "backbone"
    elif not isinstance(model, StudentModel) and is_student_state:
        # a student checkpoint into a plain model: its backbone (head included) loads
        skipped = [k for k in state if k.startswith("confidence.")]
        state = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    own = target.state_dict()
    state = _adapt_prefix(state, set(own))

    result = LoadResult(
        source=source, target=target_name, checkpoint_arch=ckpt_arch, skipped=skipped
    )
    result.missing = [k for k in own if k not in state]
    result.unexpected = [k for k in state if k not in own]
    for k, v in state.items():
        if k in own:
            if tuple(v.shape) != tuple(own[k].shape):
                result.mismatched.append((k, tuple(v.shape), tuple(own[k].shape)))
            else:
                result.loaded.append(k)
    if strict and (result.missing or result.unexpected or result.mismatched):
        raise ValueError(_mismatch_message(result, type(target).__name__))
    target.load_state_dict({k: state[k] for k in result.loaded}, strict=False)
    return result


def head_keys(model: nn.Module) -> list[str]:
    """The state-dict keys of a classifier's final ``D -> C`` layer (``get_classifier()``; of a
    student's backbone), as the model's own ``state_dict`` names them."""
    target = model.backbone if isinstance(model, StudentModel) else model
    head = target.get_classifier()
    prefix = "backbone." if target is not model else ""
    names = [n for n, m in target.named_modules() if m is head]
    if not names:
        raise ValueError(f"{type(target).__name__}: its classifier is not one of its modules")
    return [f"{prefix}{names[0]}.{k}" if names[0] else f"{prefix}{k}" for k in head.state_dict()]


def load_backbone(
    model: nn.Module, path_or_state: str | os.PathLike | Mapping[str, Any], arch: str | None = None
) -> LoadResult:
    """Fine-tuning's initialisation (docs/method.md, section 2.5): every weight of ``model``
    (of a student's backbone) from a pre-trained checkpoint *except* the classifier, which keeps
    its fresh initialisation because the class count changes between source and target (it is
    re-initialised even when the two counts happen to agree). A student's confidence head is
    not in a classifier checkpoint and keeps its initialisation too; a student checkpoint's
    ``confidence.*`` entries are skipped.

    The file is read with ``weights_only`` (:func:`read_checkpoint`). Everything but the head
    must match exactly: a missing, unexpected or differently shaped entry raises a
    ``ValueError`` naming the file. The result lists the head's keys in ``skipped``.
    """
    if isinstance(path_or_state, (str, os.PathLike)):
        source, obj = str(path_or_state), read_checkpoint(path_or_state)
    else:
        source, obj = "<state_dict>", path_or_state
    state, ckpt_arch = extract_state_dict(obj, source)
    if (
        arch is not None
        and ckpt_arch is not None
        and normalise_arch(arch) != normalise_arch(ckpt_arch)
    ):
        raise ValueError(f"{source}: checkpoint is for arch {ckpt_arch!r}, not {arch!r}")
    target = model.backbone if isinstance(model, StudentModel) else model
    strip = "backbone." if isinstance(model, StudentModel) else ""
    head = {k[len(strip) :] for k in head_keys(model)}
    skipped = [k for k in state if k.startswith("confidence.")]
    if skipped or any(k.startswith("backbone.") for k in state):  # a student checkpoint
        state = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    state = _adapt_prefix(state, set(target.state_dict()))
    body = {k: v for k, v in state.items() if k not in head}
    own = target.state_dict()
    check = LoadResult(source=source, target="backbone" if strip else "model")
    check.checkpoint_arch = ckpt_arch
    check.missing = [k for k in own if k not in body and k not in head]
    check.unexpected = [k for k in body if k not in own]
    check.mismatched = [
        (k, tuple(v.shape), tuple(own[k].shape))
        for k, v in body.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    if check.missing or check.unexpected or check.mismatched:  # checked before loading anything
        raise ValueError(_mismatch_message(check, type(target).__name__))
    result = load_pretrained(target, body, arch=None, strict=False)
    result.source, result.checkpoint_arch = source, ckpt_arch
    result.missing = []
    result.skipped = [*skipped, *sorted(head)]
    return result


def _mismatch_message(result: LoadResult, target_type: str, limit: int = 20) -> str:
    def listing(items: list[str]) -> str:
        shown = ", ".join(items[:limit])
        return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")

    lines = [f"{result.source}: checkpoint does not match {target_type} ({result.target}):"]
    if result.missing:
        lines.append(f"  missing keys ({len(result.missing)}): {listing(result.missing)}")
    if result.unexpected:
        lines.append(f"  unexpected keys ({len(result.unexpected)}): {listing(result.unexpected)}")
    if result.mismatched:
        shapes = [f"{k}: checkpoint {list(a)} vs model {list(b)}" for k, a, b in result.mismatched]
        lines.append(f"  shape mismatches ({len(shapes)}): {listing(shapes)}")
    return "\n".join(lines)


def model_from_checkpoint(
    path_or_obj: str | os.PathLike | Mapping[str, Any], student: bool | None = None
) -> nn.Module:
    """Rebuild and load a model from a condi checkpoint (``arch``, ``kwargs``, ``num_classes``).

    ``student=None`` decides from the checkpoint's ``role`` (``student``/``teacher``, as
    :func:`save_model` writes it), else from the keys (``confidence.*``).
    """
    from condi.models import build_model, build_student

    if isinstance(path_or_obj, (str, os.PathLike)):
        source, obj = str(path_or_obj), read_checkpoint(path_or_obj)
    else:
        source, obj = "<checkpoint>", path_or_obj
    if not isinstance(obj, Mapping) or not {"model", "arch", "num_classes"} <= set(obj):
        raise ValueError(f"{source}: not a condi checkpoint (needs 'model', 'arch', 'num_classes')")
    kwargs = dict(obj.get("kwargs") or {})
    if student is None and obj.get("role") in ("student", "teacher"):
        student = obj["role"] == "student"
    if student is None:
        student = any(k.startswith("confidence.") for k in obj["model"])
    builder = build_student if student else build_model
    model = builder(obj["arch"], int(obj["num_classes"]), **kwargs)
    load_pretrained(model, obj)
    return model


def save_model(
    path: str | Path,
    model: nn.Module | dict,
    *,
    role: str,
    arch: str,
    kwargs: dict,
    num_classes: int,
    **info: Any,
) -> None:
    """A condi checkpoint: ``{'model': state_dict, 'role', 'arch', 'kwargs', 'num_classes', ...}``,
    tensors and plain types only (NumPy scalars become numbers), so that it loads with
    ``weights_only`` (:func:`condi.io.load_torch`)."""
    state = model if isinstance(model, dict) else model.state_dict()
    if "history" in info:  # timings vary run to run: keep them in MLflow, not in the weights file
        info["history"] = [
            {k: v for k, v in h.items() if k not in TIMING_KEYS} for h in info["history"]
        ]
    meta = plain_data(
        {"role": role, "arch": arch, "kwargs": kwargs, "num_classes": num_classes, **info},
        "checkpoint",
    )
    save_torch({"model": state, **meta}, path)


# what a checkpoint's clips must look like: read by condi predict from ``config['data']``
DATA_KEYS = ("clip_len", "short_side", "crop_size", "mean", "std")


def training_config(params: dict[str, Any]) -> dict[str, Any]:
    """The params a job trained with, as a checkpoint keeps them (``config``): the stage's
    own keys (condi.pipeline.narrow) without the runtime ``threads``."""
    return {k: v for k, v in params.items() if k != "threads"}


def data_config(ckpt: dict[str, Any]) -> dict[str, Any] | None:
    """The clip settings (:data:`DATA_KEYS`) a condi checkpoint was trained with, from its
    ``config``; ``None`` for a checkpoint written without one (condi before issue 14)."""
    data = (ckpt.get("config") or {}).get("data")
    if not isinstance(data, dict) or not all(k in data for k in DATA_KEYS):
        return None
    return {k: data[k] for k in DATA_KEYS}


def load_model(path: str | Path, role: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a model from a condi checkpoint written by :func:`save_model`. The file is read
    with ``weights_only`` (:func:`condi.io.load_torch`): one that holds anything but tensors and
    plain data raises :class:`condi.io.UnsafeFileError` naming it, and nothing in it runs."""
    from condi.models import build_model, build_student

    ckpt = load_torch(path)
    if not isinstance(ckpt, dict) or "model" not in ckpt or "arch" not in ckpt:
        raise ValueError(f"{path}: not a condi checkpoint (expected keys 'model' and 'arch')")
    if role is not None and ckpt.get("role") != role:
        raise ValueError(f"{path}: expected a {role} checkpoint, got {ckpt.get('role')!r}")
    builder = build_student if ckpt["role"] == "student" else build_model
    model = builder(ckpt["arch"], ckpt["num_classes"], **ckpt["kwargs"])
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights do not fit {ckpt['arch']}: {exc}") from exc
    return model, ckpt
