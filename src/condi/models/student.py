"""The student of docs/method.md, section 3: one backbone, a class head and a confidence head.

``StudentModel.forward(x)`` returns ``(logits (B, C), confidence_logit (B,))`` computed from the
SAME pooled features ``f = backbone.forward_features(x)``:

* ``logits = backbone.forward_head(f)``: the reference model's own dropout and classifier, so
  a public (or condi) backbone checkpoint loads into ``student.backbone`` head included;
* ``confidence_logit = confidence(f)``: a ``Linear(D, 1)``; z~ = sigmoid(confidence_logit).
  It reads the features before the classifier's dropout (DeVries and Taylor's branch is a
  sibling of the classifier on the penultimate layer; the paper says nothing about dropout on
  it); ``confidence_dropout=True`` feeds it the dropped-out features instead.

One definition serves every method: ``condi_sr`` (z~ of Eq. 5-6), ``bce_conf`` (BCE on z),
``st_conf`` (its own confidence c = sigmoid(confidence_logit)); ``st_ent`` and ``maxprob``
ignore the confidence output. The two learning-rate groups of docs/method.md, section 2 are
:meth:`StudentModel.base_parameters` and :meth:`StudentModel.confidence_parameters`.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from condi.models.base import VideoClassifier


class StudentModel(nn.Module):
    """A backbone with its own classifier plus a ``Linear(D, 1)`` confidence head."""

    def __init__(self, backbone: VideoClassifier, confidence_dropout: bool = False) -> None:
        super().__init__()
        if not hasattr(backbone, "forward_features") or not hasattr(backbone, "num_features"):
            raise TypeError(f"{type(backbone).__name__} lacks forward_features/num_features")
        self.backbone = backbone
        self.confidence = nn.Linear(backbone.num_features, 1)
        self.confidence_dropout = confidence_dropout

    @property
    def num_features(self) -> int:
        return int(self.backbone.num_features)

    @property
    def dropout(self) -> nn.Module:
        """The backbone's dropout before its classifier (``Identity`` if it has none)."""
        return self.backbone.get_dropout()

    @property
    def classifier(self) -> nn.Module:
        """The backbone's own ``D -> C`` classifier (the same module, not a copy)."""
        return self.backbone.get_classifier()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(x)

    def forward_heads(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both heads on given pooled features: ``(logits, confidence_logit)``."""
        logits = self.backbone.forward_head(features)
        conf_in = self.dropout(features) if self.confidence_dropout else features
        return logits, self.confidence(conf_in).squeeze(1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_heads(self.backbone.forward_features(x))

    def confidence_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the confidence branch (its own learning-rate schedule)."""
        return self.confidence.parameters()

    def base_parameters(self) -> Iterator[nn.Parameter]:
        """Everything else: backbone and classifier."""
        return self.backbone.parameters()
