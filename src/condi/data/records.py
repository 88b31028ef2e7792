"""The one record every dataset reader produces, before clip indexing (SPEC section 7)."""

from __future__ import annotations

from dataclasses import dataclass

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class VideoRecord:
    """One video listed by a dataset's annotations.

    ``path`` is relative to the dataset root (POSIX separators); ``label`` is the 0-based class
    id; ``split`` is ``train`` or ``test`` as the dataset's official lists say (``val`` is carved
    out of ``train`` later by :func:`condi.data.index.assign_val_split`, or given by the reader
    where the dataset defines it, e.g. SSv2's seeded 0.9/0.1 split).
    """

    path: str
    label: int
    label_name: str
    split: str

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"{self.path}: split must be one of {SPLITS}, got {self.split!r}")
        if self.label < 0:
            raise ValueError(f"{self.path}: negative label {self.label}")
