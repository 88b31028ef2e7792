"""The interface every model built by :func:`condi.models.build_model` provides.

A :class:`VideoClassifier` maps a clip batch ``(B, 3, T, H, W)`` to logits ``(B, C)`` in two
steps that the student (docs/method.md, section 3) and the feature-level tools reuse:

* :meth:`VideoClassifier.forward_features` -> ``(B, D)`` pooled features, before any dropout;
* :meth:`VideoClassifier.forward_head` -> ``(B, C)``: the reference model's own head (its
  dropout, if it has one, then its classifier), applied to those features.

``forward(x) == forward_head(forward_features(x))``; ``num_features`` is ``D``;
:meth:`get_dropout` / :meth:`get_classifier` return the head's modules (not copies), so a
student that reuses them keeps the reference checkpoint's head keys.
"""

from __future__ import annotations

import torch
from torch import nn


class VideoClassifier(nn.Module):
    """Base class: subclasses set ``num_features`` and implement ``forward_features``."""

    num_features: int

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_dropout(self) -> nn.Module:
        """The dropout applied before the classifier (``nn.Identity`` when the reference has none)."""
        return nn.Identity()

    def get_classifier(self) -> nn.Module:  # pragma: no cover - abstract
        """The final ``D -> C`` layer."""
        raise NotImplementedError

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.get_classifier()(self.get_dropout()(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def global_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """Average over the whole remaining ``(T, H, W)`` volume: ``(B, D, T, H, W) -> (B, D)``.

    The Efficient-3DCNNs models pool with ``F.avg_pool3d(x, x.size()[-3:])`` (ShuffleNetV2,
    MobileNetV2) or with a fixed ``AvgPool3d`` whose kernel equals the final map at the nominal
    16x112x112 input (ResNeXt); VMZ uses ``AdaptiveAvgPool3d(1)``. All are this mean.
    """
    return x.mean(dim=(2, 3, 4))
