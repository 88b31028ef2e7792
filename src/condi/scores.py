"""Per-clip scores a student offers (docs/method.md, section 3, "clip ranking at test time"); each method
ranks clips by one of them (``ranking`` in :mod:`condi.methods`)."""

from __future__ import annotations

import numpy as np

from condi.methods import get_method
from condi.metrics import softmax_np


def sigmoid(x: np.ndarray) -> np.ndarray:
    from scipy.special import expit  # here: scipy costs every command 0.3-0.8 s to import

    return expit(np.asarray(x, dtype=np.float64))


def entropy_np(probs: np.ndarray) -> np.ndarray:
    p = np.clip(probs, 1e-12, 1.0)
    return -(probs * np.log(p)).sum(axis=1)


def student_clip_scores(
    logits: np.ndarray, confidence_logit: np.ndarray | None
) -> dict[str, np.ndarray]:
    """Every score a student offers per clip: ``z_tilde`` (sigmoid of the confidence logit),
    ``entropy`` / ``neg_entropy`` (of its softmax), ``max_prob``."""
    probs = softmax_np(np.asarray(logits, dtype=np.float64))
    h = entropy_np(probs)
    out = {"entropy": h, "neg_entropy": -h, "max_prob": probs.max(axis=1)}
    if confidence_logit is not None:
        out["z_tilde"] = sigmoid(confidence_logit)
    return out


def ranking_score(
    method: str, logits: np.ndarray, confidence_logit: np.ndarray | None
) -> np.ndarray:
    """The score ``method`` ranks clips by (higher = send to the teacher first)."""
    return student_clip_scores(logits, confidence_logit)[get_method(method).ranking]
