"""Models: the paper's four backbones, bring-your-own teachers, the student, checkpoints.

``build_model(name, num_classes, **kwargs)`` returns a :class:`VideoClassifier`: input
``(B, 3, T, H, W)`` float, output logits ``(B, num_classes)``, plus ``forward_features(x) ->
(B, D)`` and ``num_features = D``. Names (:data:`MODELS` and the prefixed families):

* ``resnext101``: 3D-ResNeXt-101 32x4d shortcut B (Efficient-3DCNNs); knobs ``layers``,
  ``cardinality``, ``base_width``, ``stem_width``, ``sample_size``, ``sample_duration``;
* ``r2plus1d_34``: R(2+1)D-34 (VMZ); knobs ``layers``, ``base_width``, ``use_pool1``;
* ``shufflenetv2``: 3D-ShuffleNetV2 (Efficient-3DCNNs); ``width_mult`` in {0.25, 0.5, 1, 1.5, 2};
* ``mobilenetv2``: 3D-MobileNetV2 (Efficient-3DCNNs); ``width_mult``;
* ``tv:<name>``: torchvision.models.video, ``ptv:<name>``: PyTorchVideo (``external.py``).

Every built model carries ``arch``, ``arch_kwargs`` and ``num_classes`` attributes so that a
checkpoint can record how to rebuild it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from condi.models.base import VideoClassifier
from condi.models.checkpoint import LoadResult, load_pretrained, model_from_checkpoint
from condi.models.external import PyTorchVideoNet, TorchvisionVideo
from condi.models.mobilenetv2 import MobileNetV2
from condi.models.r2plus1d import R2Plus1D
from condi.models.resnext import ResNeXt3D
from condi.models.shufflenetv2 import ShuffleNetV2
from condi.models.student import StudentModel
from condi.models.switches import autocast_context, to_channels_last_3d

MODELS: dict[str, Callable[..., VideoClassifier]] = {
    "resnext101": ResNeXt3D,
    "r2plus1d_34": R2Plus1D,
    "shufflenetv2": ShuffleNetV2,
    "mobilenetv2": MobileNetV2,
}
PREFIXES: dict[str, Callable[..., VideoClassifier]] = {
    "tv": TorchvisionVideo,
    "ptv": PyTorchVideoNet,
}

__all__ = [
    "MODELS",
    "LoadResult",
    "StudentModel",
    "VideoClassifier",
    "autocast_context",
    "build_model",
    "build_student",
    "load_pretrained",
    "model_from_checkpoint",
    "to_channels_last_3d",
]


def build_model(name: str, num_classes: int, **kwargs: Any) -> VideoClassifier:
    """Build the model ``name`` with ``num_classes`` outputs; ``kwargs`` go to its constructor.

    Unknown names or keyword arguments raise ``ValueError`` naming the model.
    """
    if int(num_classes) < 1:
        raise ValueError(f"{name}: num_classes must be >= 1, got {num_classes}")
    num_classes = int(num_classes)
    if ":" in name:
        prefix, _, sub = name.partition(":")
        if prefix not in PREFIXES:
            raise ValueError(f"{name}: unknown model family {prefix!r}; known: tv:, ptv:")
        model = PREFIXES[prefix](sub, num_classes, **kwargs)
    else:
        if name not in MODELS:
            known = ", ".join(list(MODELS) + ["tv:<name>", "ptv:<name>"])
            raise ValueError(f"unknown model {name!r}; known: {known}")
        try:
            model = MODELS[name](num_classes=num_classes, **kwargs)
        except TypeError as exc:
            raise ValueError(f"{name}: bad keyword arguments {sorted(kwargs)}: {exc}") from exc
    model.arch = name
    model.arch_kwargs = dict(kwargs)
    model.num_classes = num_classes
    return model


def build_student(
    arch: str, num_classes: int, confidence_dropout: bool = False, **kwargs: Any
) -> StudentModel:
    """A :class:`StudentModel` over ``build_model(arch, num_classes, **kwargs)`` (docs/method.md, section 3)."""
    student = StudentModel(build_model(arch, num_classes, **kwargs), confidence_dropout)
    student.arch = arch
    student.arch_kwargs = dict(kwargs)
    student.num_classes = int(num_classes)
    return student
