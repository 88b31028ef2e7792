"""Horizontal flips per dataset (``data.flip``): what a mirrored training clip's label is.

A horizontal flip keeps most actions (a jump mirrored is a jump) but turns a direction class into
its mirror image: SSv2's "Pushing something from left to right" flipped shows "... from right to
left", the synthetic ``MoveLeft`` becomes ``MoveRight``. Flipping such a clip and keeping its label
trains the model on a wrong label. ``data.flip`` says what the training transform does:

* ``true``: flip every training clip with probability 0.5, label unchanged (the 3D-ResNets
  convention; right only where no class has a direction);
* ``false``: never flip;
* ``swap``: flip with probability 0.5; a clip of a class with a mirror partner (the
  :func:`mirror_pairs` table) gets the partner's label, a clip of a class that names a direction
  but has no partner is never flipped, every other clip keeps its label;
* ``auto`` (default): the dataset's default: ``false`` for SSv2 (many of its classes are
  direction- or handedness-sensitive in ways their names do not say; the usual SSv2 recipes do
  not flip), ``swap`` for every other kind (identical to ``true`` where no class names a
  direction).

The mirror-pair table comes from the class names: two classes are a pair when swapping the words
``left`` and ``right`` (also ``leftward(s)``/``rightward(s)``) turns one name into the other, word
by word, ignoring case and separators (``MoveLeft``/``MoveRight``, ``Pushing something from left
to right``/``Pushing something from right to left``). Other mirror-dependent words (clockwise,
handedness) are not recognised.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

FLIP_MODES = ("auto", True, False, "swap")
MIRROR_WORDS = {
    "left": "right",
    "right": "left",
    "leftward": "rightward",
    "rightward": "leftward",
    "leftwards": "rightwards",
    "rightwards": "leftwards",
}
NO_FLIP = -1

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def words(name: str) -> tuple[str, ...]:
    """The lower-case words of a class name, split at separators and case changes
    (``MoveLeft`` -> ``("move", "left")``)."""
    return tuple(w.lower() for w in _WORD.findall(name))


def names_direction(name: str) -> bool:
    """Whether a class name holds a direction word (``left``, ``right``, ...)."""
    return any(w in MIRROR_WORDS for w in words(name))


def mirror_pairs(class_names: Sequence[str]) -> dict[int, int]:
    """Class id -> the id of its mirror image, for every class that has one (symmetric)."""
    by_words: dict[tuple[str, ...], int] = {}
    for i, name in enumerate(class_names):
        by_words.setdefault(words(name), i)
    pairs: dict[int, int] = {}
    for i, name in enumerate(class_names):
        w = words(name)
        mirrored = tuple(MIRROR_WORDS.get(x, x) for x in w)
        j = by_words.get(mirrored)
        if mirrored != w and j is not None and j != i:
            pairs[i] = j
    return pairs


def resolve_mode(mode: str | bool, kind: str | None) -> str | bool:
    """``auto`` -> the dataset kind's default (module docstring); other modes unchanged."""
    if mode not in FLIP_MODES:
        raise ValueError(f"data.flip must be one of auto, true, false, swap; got {mode!r}")
    if mode == "auto":
        return False if kind == "ssv2" else "swap"
    return mode


def flip_table(mode: str | bool, class_names: Sequence[str], kind: str | None = None) -> np.ndarray:
    """Per class, the label of its horizontally flipped clip, or ``NO_FLIP`` (-1) where a clip
    of the class must not be flipped; (C,) int64."""
    mode = resolve_mode(mode, kind)
    n = len(class_names)
    if mode is False:
        return np.full(n, NO_FLIP, dtype=np.int64)
    table = np.arange(n, dtype=np.int64)
    if mode is True:
        return table
    pairs = mirror_pairs(class_names)
    for i, name in enumerate(class_names):
        if i in pairs:
            table[i] = pairs[i]
        elif names_direction(name):
            table[i] = NO_FLIP
    return table


def table_for(data_cfg: dict, meta: dict) -> np.ndarray:
    """The flip table of an index (its ``meta``: kind, class_names) under ``data_cfg['flip']``."""
    return flip_table(data_cfg.get("flip", "auto"), meta["class_names"], meta.get("kind"))


def logit_permutation(table: np.ndarray) -> np.ndarray:
    """The class permutation a flip applies to a prediction: pairs swapped, others fixed."""
    return np.where(table >= 0, table, np.arange(len(table)))
