"""Metrics shared by training and evaluation: top-1 video accuracy (docs/method.md, section 5), Eq. 1's "teacher
correct" labels and the AUROC of a score for them (ambiguity detection)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for the binary target ``positive``
    (Mann-Whitney U with average ranks for ties); NaN when one class is absent."""
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive).astype(bool)
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = pd.Series(scores).rank(method="average").to_numpy()  # ties: average ranks
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def video_accuracy(probs: np.ndarray, video_ids: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 VIDEO accuracy (docs/method.md, section 5): clip softmax probabilities averaged per video."""
    df = pd.DataFrame(probs)
    mean = df.groupby(video_ids).mean()
    video_label = pd.Series(labels).groupby(video_ids).first().loc[mean.index]
    return float((mean.to_numpy().argmax(1) == video_label.to_numpy()).mean() * 100.0)


def softmax_np(logits: np.ndarray) -> np.ndarray:
    x = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=1, keepdims=True)


def eq1_labels(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Eq. 1: 1 where ``argmax softmax(logits) == y`` (softmax keeps the argmax), else 0."""
    return (np.asarray(logits).argmax(axis=1) == np.asarray(labels)).astype(np.uint8)
