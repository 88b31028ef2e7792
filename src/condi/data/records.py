"""The one record every dataset reader produces, before clip indexing (docs/method.md, section 7)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class VideoRecord:
    """One video listed by a dataset's annotations.

    ``path`` is relative to the dataset root (POSIX separators); ``label`` is the 0-based class
    id; ``split`` is ``train`` or ``test`` as the dataset's official lists say (``val`` is carved
    out of ``train`` later by :func:`condi.data.index.assign_val_split`, or given by the reader
    where the dataset defines it, e.g. SSv2's seeded 0.9/0.1 split).

    ``group`` names the videos that share a source and must never be split apart (validation
    and cross-fitting folds are drawn by group, :func:`condi.data.index.assign_val_split`):
    UCF-101's ``<class>/gGG`` (the clips of one group are cut from one long video or share
    actor and background), Kinetics' YouTube id, a folder dataset's optional group pattern.
    ``None``: the video is its own group (SSv2).
    """

    path: str
    label: int
    label_name: str
    split: str
    group: str | None = None

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"{self.path}: split must be one of {SPLITS}, got {self.split!r}")
        if self.label < 0:
            raise ValueError(f"{self.path}: negative label {self.label}")


def unit_key(path: str, group: str | None) -> tuple[str, str]:
    """The unit a video is drawn with: its group, or the video itself when it has none."""
    return ("g", group) if group is not None else ("v", path)


def holdout_by_unit(
    labels: Sequence[int],
    units: Sequence[Hashable],
    fraction: float,
    permutation: Callable[[int, int], Sequence[int]],
) -> list[bool]:
    """Per item, whether it is held out, drawing whole units (groups), stratified by class.

    A unit's class is its most frequent label (ties: the smallest id). Per class, in id order,
    with n items in u units, the target is ``round(fraction * n)`` items, at least one unit when
    ``fraction > 0`` and u >= 2. The class's units, sorted by key, are visited in the order
    ``permutation(label, u)`` gives: the first is taken (when the target is >= 1), each later
    one only if it brings the held count closer to the target (its size < 2 x what is still
    missing), and never all u units. With one item per unit this holds out the first
    ``min(target, u - 1)`` items of the permutation.
    """
    items_of: dict[Hashable, list[int]] = {}
    for i, unit in enumerate(units):
        items_of.setdefault(unit, []).append(i)
    by_class: dict[int, list[Hashable]] = {}
    for unit, items in items_of.items():
        counts = Counter(labels[i] for i in items)
        label = min(counts, key=lambda c: (-counts[c], c))
        by_class.setdefault(label, []).append(unit)
    held = [False] * len(labels)
    for label in sorted(by_class):
        keys = sorted(by_class[label])
        n = sum(len(items_of[u]) for u in keys)
        target = round(fraction * n)
        if fraction > 0 and len(keys) >= 2:
            target = max(target, 1)
        taken, n_units = 0, 0
        for j in permutation(label, len(keys)):
            size = len(items_of[keys[j]])
            if n_units == len(keys) - 1:
                break
            if (taken == 0 and target >= 1) or size < 2 * (target - taken):
                for i in items_of[keys[j]]:
                    held[i] = True
                taken += size
                n_units += 1
    return held
