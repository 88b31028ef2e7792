"""Kinetics-400/600/700 (``condi data index --kind kinetics --root DIR``), docs/method.md, section 5 and 7.

Layout read (what :func:`condi.data.download.download_kinetics` writes)::

    root/annotations/train.csv                      label,youtube_id,time_start,time_end,split[,is_cc]
    root/annotations/validate.csv | val.csv         the same columns
    root/train/{ytid}_{start:06d}_{end:06d}.mp4      flat per split ...
    root/val/<label>/{ytid}_{start:06d}_{end:06d}.mp4   ... or nested in label folders
    (root/validate/ is accepted for root/val/)

The CSVs may also sit in ``root`` itself. Labels are quoted where they hold spaces or commas
(``"passing American football (in game)"``) and are read with :mod:`csv`. Video files are found
by their stem anywhere below the split folder (any video extension, hidden entries skipped), so
flat and label-nested layouts both work; a file named only ``{ytid}.<ext>`` is accepted too.

Decisions:

- Class ids are the **sorted** unique labels of the training CSV; validation rows whose label is
  not among them are dropped with a warning.
- docs/method.md, section 5: the official validation set is the test set, so training rows become split
  ``train`` and validation rows split ``test``; ``val`` is carved out of ``train`` by the index
  builder. The official test CSV is not read (it has no labels in the CVDF release).
- About 3-10% of the listed videos are missing from any copy of Kinetics (deleted from YouTube):
  they are counted, logged with one warning and returned in :attr:`Listing.missing` (expected
  paths ``<split dir>/{ytid}_{start:06d}_{end:06d}.mp4``), never an error.
- ``fold`` must be 1.
- Every record's ``group`` is its YouTube id: clips cut from one YouTube video share actor,
  scene and camera, so validation and cross-fitting folds keep them together
  (:mod:`condi.data.index`).
"""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from condi.data.folder import Listing, check_fold, is_video
from condi.data.records import VideoRecord

log = logging.getLogger(__name__)

ANNOTATION_NAMES = {
    "train": ("train.csv",),
    "val": ("validate.csv", "val.csv", "validation.csv"),
}
VIDEO_DIRS = {
    "train": ("train",),
    "val": ("val", "validate", "validation"),
}
# Official split -> VideoRecord split (docs/method.md, section 5: Kinetics test = official validation set).
SPLIT_MAP = {"train": "train", "val": "test"}
REQUIRED_COLUMNS = ("label", "youtube_id", "time_start", "time_end")


@dataclass(frozen=True)
class Annotation:
    """One CSV row."""

    label: str
    youtube_id: str
    time_start: int
    time_end: int

    @property
    def key(self) -> str:
        """The file stem of the clip: ``{ytid}_{start:06d}_{end:06d}``."""
        return f"{self.youtube_id}_{self.time_start:06d}_{self.time_end:06d}"


def _seconds(value: str) -> int:
    return int(float(value))


def read_annotations(path: Path) -> list[Annotation]:
    """The rows of one Kinetics annotation CSV (``is_cc`` and ``split`` columns ignored)."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns = [c.strip() for c in reader.fieldnames or []]
        reader.fieldnames = columns
        absent = [c for c in REQUIRED_COLUMNS if c not in columns]
        if absent:
            raise ValueError(f"{path}: missing columns {absent} (has {columns})")
        return [
            Annotation(
                row["label"].strip(),
                row["youtube_id"].strip(),
                _seconds(row["time_start"]),
                _seconds(row["time_end"]),
            )
            for row in reader
        ]


def find_annotation(root: Path, split: str) -> Path:
    """The annotation CSV of ``split`` (``train`` or ``val``) under ``root/annotations`` or ``root``."""
    for folder in (root / "annotations", root):
        for name in ANNOTATION_NAMES[split]:
            if (folder / name).is_file():
                return folder / name
    names = " or ".join(ANNOTATION_NAMES[split])
    raise FileNotFoundError(f"Kinetics {split} annotations not found: {root}/annotations/{names}")


def index_videos(root: Path, split: str) -> tuple[dict[str, str], str]:
    """File stem -> path relative to ``root`` for the videos of ``split``; plus the split folder."""
    stems: dict[str, str] = {}
    existing = [name for name in VIDEO_DIRS[split] if (root / name).is_dir()]
    for name in existing:
        for dirpath, dirnames, filenames in os.walk(root / name):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for filename in sorted(filenames):
                path = Path(dirpath) / filename
                if is_video(path):
                    stems.setdefault(path.stem, path.relative_to(root).as_posix())
    return stems, (existing[0] if existing else VIDEO_DIRS[split][0])


def scan(root: Path | str, fold: int = 1) -> Listing:
    """Read Kinetics at ``root``: records for the videos present, class names, missing videos."""
    check_fold(fold)
    root = Path(root)
    annotations = {split: read_annotations(find_annotation(root, split)) for split in SPLIT_MAP}
    names = sorted({a.label for a in annotations["train"]})
    if not names:
        raise ValueError(f"{root}: the Kinetics training annotations list no videos")
    ids = {name: i for i, name in enumerate(names)}
    records: list[VideoRecord] = []
    missing: list[str] = []
    for split, rows in annotations.items():
        stems, folder = index_videos(root, split)
        unknown = 0
        for row in rows:
            if row.label not in ids:
                unknown += 1
                continue
            path = stems.get(row.key) or stems.get(row.youtube_id)
            if path is None:
                missing.append(f"{folder}/{row.key}.mp4")
                continue
            records.append(
                VideoRecord(path, ids[row.label], row.label, SPLIT_MAP[split], row.youtube_id)
            )
        if unknown:
            log.warning(
                "Kinetics %s: %d rows with labels not in the training set dropped", split, unknown
            )
    listing = Listing(records, names, missing)
    listing.warn_missing(f"Kinetics at {root}")
    return listing


def list_videos(root: Path, fold: int = 1) -> tuple[list[VideoRecord], list[str]]:
    """The index builder's entry point: records (paths relative to ``root``) and class names."""
    listing = scan(root, fold)
    return listing.records, listing.class_names
