"""Clip samplers (docs/method.md, sections 3-4): which of a video's N clips the teacher sees.

Every sampler returns clip positions (0..N-1) in the order they would be sent; the video
prediction is the mean of the teacher's softmax probabilities over the first K of them
(MMAction2's ``average_clips='prob'``). When K >= N every method equals dense.
"""

from __future__ import annotations

import numpy as np


def equidistant(n: int, k: int) -> np.ndarray:
    """The centres of K equal segments of the video: ``floor((2j + 1) N / (2K))``, j < K."""
    if k >= n:
        return np.arange(n)
    return np.floor((2 * np.arange(k) + 1) * n / (2 * k)).astype(np.int64)


def random_order(n: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random order; its first K clips are K clips drawn without replacement."""
    return rng.permutation(n)


def ranked(score: np.ndarray) -> np.ndarray:
    """Clips by descending ``score`` (stable: ties keep temporal order)."""
    return np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")


def prefix_means(probs: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``out[K-1]`` = the mean of ``probs`` over the first K clips of ``order``, for every K."""
    csum = np.cumsum(probs[order], axis=0)
    return csum / np.arange(1, len(order) + 1)[:, None]


def split_choice(
    z_tilde: np.ndarray, entropy: np.ndarray, k: int, ks: int
) -> tuple[np.ndarray, np.ndarray]:
    """Which clips the student and the teacher classify (docs/method.md, section 4): the Ks lowest-entropy
    clips go to the student, the K - Ks highest-z~ of the rest to the teacher; with K >= N the
    teacher takes every clip. Returns ``(student clips, teacher clips)``."""
    n = len(z_tilde)
    if k >= n:
        return np.zeros(0, np.int64), np.arange(n)
    ks = min(ks, k)
    student_clips = np.argsort(entropy, kind="stable")[:ks]
    rest = np.setdiff1d(np.arange(n), student_clips, assume_unique=True)
    return student_clips, rest[ranked(z_tilde[rest])][: k - ks]


def split_prediction(
    teacher_probs: np.ndarray,
    student_probs: np.ndarray,
    z_tilde: np.ndarray,
    entropy: np.ndarray,
    k: int,
    ks: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ConDi-SR inference with a student share Ks (docs/method.md, section 4, paper Fig. 2c).

    The Ks lowest-entropy clips are classified by the student; from the remaining clips the
    Kt = K - Ks with the highest z~ go to the teacher. The prediction is the weighted mean of
    the K probability vectors: teacher vectors weighted by z~, student vectors by
    ``1 - H / log C``. Returns ``(probability vector, student clips, teacher clips)``.
    With K >= N the video is classified densely by the teacher.
    """
    n, c = teacher_probs.shape
    student_clips, teacher_clips = split_choice(z_tilde, entropy, k, ks)
    if k >= n:
        return teacher_probs.mean(axis=0), student_clips, teacher_clips
    w_t = z_tilde[teacher_clips]
    w_s = 1.0 - entropy[student_clips] / np.log(c)
    total = (w_t[:, None] * teacher_probs[teacher_clips]).sum(0) + (
        w_s[:, None] * student_probs[student_clips]
    ).sum(0)
    norm = w_t.sum() + w_s.sum()
    if norm <= 0:  # all weights zero: fall back to the plain mean of the chosen vectors
        total = np.concatenate([teacher_probs[teacher_clips], student_probs[student_clips]]).sum(0)
        norm = len(teacher_clips) + len(student_clips)
    return total / norm, student_clips, teacher_clips
