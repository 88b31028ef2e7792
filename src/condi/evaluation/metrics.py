"""Metrics: top-1 video accuracy (SPEC 5) and AUROC for "teacher correct" (ambiguity detection)."""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import rankdata


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for the binary target ``positive``
    (Mann-Whitney U with average ranks for ties); NaN when one class is absent."""
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive).astype(bool)
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
