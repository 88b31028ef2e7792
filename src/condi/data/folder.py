r"""A user's own videos as a dataset (``condi data index --kind folder --root DIR``).

Three layouts are recognised, tried in this order:

1. **List files** (the MMAction2 / PySlowFast convention): ``root/train.txt`` and, optionally,
   ``root/test.txt`` and ``root/val.txt``, one video a line as ``path label``: ``path`` relative to
   ``root`` (it may contain spaces: the label is the last field), ``label`` a 0-based class id.
   Blank lines and lines starting with ``#`` are skipped. Class names come from
   ``root/classes.txt`` (one name a line, line k naming class k) when present, else they are the
   ids as text (``"0"``, ``"1"``, ...).
2. **Split folders**: ``root/train/<class>/<videos>`` and ``root/test/<class>/<videos>``
   (``root/val/<class>/...`` optional).
3. **Class folders**: ``root/<class>/<videos>``, all of them training videos.

In layouts 2 and 3 the class ids are the class folder names sorted (case-sensitive, Python string
order), files may sit in sub-folders of a class folder, and video files are recognised by their
extension (:data:`VIDEO_EXTENSIONS`); hidden files and folders are ignored. Where no test set is
given (layout 3, or layouts 1-2 without ``test``), a seeded, stratified 20% of the training videos
becomes the test set (:func:`stratified_holdout`). A ``val`` split is only given where the user
gave one; otherwise the index builder carves it out of ``train``.

Groups (optional, ``group_pattern``): videos cut from one source (one long recording, one actor
and scene) are near-duplicates and must stay on one side of every split. ``group_pattern`` is a
regular expression searched in each video's path relative to ``root``; its first capture group
(or, without one, the whole match) names the video's group, e.g. ``v_(.+)_c\d+`` for UCF-101-style
names or ``^([^/]+/[^/_]+)_`` for ``<class>/<source>_<n>.mp4``. A video whose path does not match
is its own group. The 20% test holdout, the validation split and the cross-fitting folds are
then drawn by group. Without a pattern every video is its own group.

Listed videos that don't exist are not an error: they are counted, logged with a warning and
returned in :attr:`Listing.missing` (:func:`scan`). ``fold`` must be 1 (one split only).

This module also holds the helpers the other readers share: :class:`Listing`,
:func:`stratified_holdout`, :data:`VIDEO_EXTENSIONS`.
"""

from __future__ import annotations

import logging
import os
import random
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from condi.data.records import VideoRecord, holdout_by_unit, unit_key

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset(
    {
        ".avi",
        ".mp4",
        ".m4v",
        ".mkv",
        ".webm",
        ".mov",
        ".mpg",
        ".mpeg",
        ".flv",
        ".wmv",
        ".ogv",
        ".3gp",
    }
)
TEST_FRACTION = 0.2
SEED = 0


@dataclass
class Listing:
    """What a reader found: the records, the class names in id order, and the listed-but-missing
    videos (paths relative to the root, as they were expected)."""

    records: list[VideoRecord]
    class_names: list[str]
    missing: list[str] = field(default_factory=list)

    def warn_missing(self, dataset: str) -> None:
        """Log one warning with the count of missing videos, if any."""
        if self.missing:
            total = len(self.records) + len(self.missing)
            log.warning(
                "%s: %d of %d listed videos are missing (first: %s)",
                dataset,
                len(self.missing),
                total,
                ", ".join(self.missing[:3]),
            )


def stratified_holdout(labels: Sequence[int], fraction: float, seed: int = SEED) -> list[bool]:
    """Per item, whether it is held out: in each class, ``round(fraction * n)`` items chosen at
    random with a generator seeded by ``seed`` and the class id (so one class's choice doesn't
    depend on the others'), at least one where the class has two or more items, never all.

    Deterministic for a given order of ``labels``: callers sort their items first.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"holdout fraction must be in [0, 1), got {fraction}")
    by_class: dict[int, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_class[label].append(i)
    held = [False] * len(labels)
    for label, indices in by_class.items():
        n = len(indices)
        k = int(round(fraction * n))
        if fraction > 0 and n >= 2:
            k = min(max(k, 1), n - 1)
        elif n < 2:
            k = 0
        rng = random.Random(seed * 1_000_003 + label)
        for i in rng.sample(indices, k):
            held[i] = True
    return held


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS and not path.name.startswith(".")


def find_videos(folder: Path) -> list[Path]:
    """Video files under ``folder`` (recursively, hidden entries skipped), sorted."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found.extend(Path(dirpath) / name for name in filenames if is_video(Path(name)))
    return sorted(found)


def _class_dirs(folder: Path) -> list[str]:
    return sorted(
        entry.name
        for entry in folder.iterdir()
        if entry.is_dir() and not entry.name.startswith(".")
    )


def check_fold(fold: int) -> None:
    if fold != 1:
        raise ValueError(f"this dataset has a single split: fold must be 1, got {fold}")


def _holdout_test(records: list[VideoRecord], fraction: float, seed: int) -> list[VideoRecord]:
    """Turn a seeded stratified ``fraction`` of the ``train`` records into ``test`` records
    (whole groups where the records have groups: :func:`condi.data.records.holdout_by_unit`)."""
    train = sorted((r for r in records if r.split == "train"), key=lambda r: r.path)
    others = [r for r in records if r.split != "train"]
    if any(r.group is not None for r in train):
        held = holdout_by_unit(
            [r.label for r in train],
            [unit_key(r.path, r.group) for r in train],
            fraction,
            lambda label, n: random.Random(seed * 1_000_003 + label).sample(range(n), n),
        )
    else:
        held = stratified_holdout([r.label for r in train], fraction, seed)
    moved = [
        VideoRecord(r.path, r.label, r.label_name, "test" if h else "train", r.group)
        for r, h in zip(train, held, strict=True)
    ]
    return moved + others


def compile_group_pattern(pattern: str | None) -> re.Pattern[str] | None:
    """The compiled ``group_pattern`` (module docstring); a clear error for a bad one."""
    if pattern is None or pattern == "":
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(
            f"group_pattern {pattern!r} is not a valid regular expression: {exc}"
        ) from None


def group_of(path: str, pattern: re.Pattern[str] | None) -> str | None:
    """The group ``pattern`` names in ``path`` (first capture group, else the whole match)."""
    if pattern is None:
        return None
    m = pattern.search(path)
    if m is None:
        return None
    return m.group(1) if pattern.groups else m.group(0)


# ----------------------------------------------------------------------------------------------
# Layout 1: list files
# ----------------------------------------------------------------------------------------------


def read_list_file(path: Path) -> list[tuple[str, int]]:
    """``(path, label)`` pairs from a ``path label`` list file."""
    entries = []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(None, 1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise ValueError(f"{path}:{number}: expected 'path label', got {raw!r}")
        label = int(parts[1])
        if label < 0:
            raise ValueError(f"{path}:{number}: negative label {label}")
        video = parts[0].replace("\\", "/")
        while video.startswith("./"):
            video = video[2:]
        entries.append((video, label))
    return entries


def _scan_list_files(
    root: Path, test_fraction: float, seed: int, pattern: re.Pattern[str] | None = None
) -> Listing:
    lists = {split: root / f"{split}.txt" for split in ("train", "val", "test")}
    entries = {split: read_list_file(p) for split, p in lists.items() if p.exists()}
    classes_file = root / "classes.txt"
    if classes_file.exists():
        names = [line.strip() for line in classes_file.read_text().splitlines() if line.strip()]
    else:
        top = max((label for rows in entries.values() for _, label in rows), default=-1)
        names = [str(i) for i in range(top + 1)]
    records, missing = [], []
    for split, rows in entries.items():
        for video, label in rows:
            if label >= len(names):
                raise ValueError(f"{lists[split]}: label {label} but only {len(names)} classes")
            if (root / video).is_file():
                records.append(
                    VideoRecord(video, label, names[label], split, group_of(video, pattern))
                )
            else:
                missing.append(video)
    if "test" not in entries:
        records = _holdout_test(records, test_fraction, seed)
    return Listing(records, names, missing)


# ----------------------------------------------------------------------------------------------
# Layouts 2 and 3: folders
# ----------------------------------------------------------------------------------------------


def _scan_folders(
    root: Path,
    split_dirs: dict[str, Path],
    test_fraction: float,
    seed: int,
    pattern: re.Pattern[str] | None = None,
) -> Listing:
    names = sorted({name for folder in split_dirs.values() for name in _class_dirs(folder)})
    train_names = _class_dirs(split_dirs["train"])
    extra = sorted(set(names) - set(train_names))
    if extra:
        log.warning("%s: classes without training videos: %s", root, ", ".join(extra))
    ids = {name: i for i, name in enumerate(names)}
    records = []
    for split, folder in split_dirs.items():
        for name in _class_dirs(folder):
            for video in find_videos(folder / name):
                rel = video.relative_to(root).as_posix()
                records.append(VideoRecord(rel, ids[name], name, split, group_of(rel, pattern)))
    if "test" not in split_dirs:
        records = _holdout_test(records, test_fraction, seed)
    if not records:
        raise FileNotFoundError(f"no videos found under {root} (see condi.data.folder)")
    return Listing(records, names)


def scan(
    root: Path | str,
    fold: int = 1,
    *,
    test_fraction: float = TEST_FRACTION,
    seed: int = SEED,
    group_pattern: str | None = None,
) -> Listing:
    """Read a user's dataset in any of the module's three layouts; see the module docstring."""
    check_fold(fold)
    pattern = compile_group_pattern(group_pattern)
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root not found: {root}")
    if (root / "train.txt").is_file():
        listing = _scan_list_files(root, test_fraction, seed, pattern)
    elif (root / "train").is_dir():
        split_dirs = {s: root / s for s in ("train", "val", "test") if (root / s).is_dir()}
        listing = _scan_folders(root, split_dirs, test_fraction, seed, pattern)
    else:
        listing = _scan_folders(root, {"train": root}, test_fraction, seed, pattern)
    listing.warn_missing(f"folder dataset {root}")
    return listing


def list_videos(
    root: Path, fold: int = 1, group_pattern: str | None = None
) -> tuple[list[VideoRecord], list[str]]:
    """The index builder's entry point: records (paths relative to ``root``) and class names."""
    listing = scan(root, fold, group_pattern=group_pattern)
    return listing.records, listing.class_names
