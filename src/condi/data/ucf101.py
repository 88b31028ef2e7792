"""UCF-101 reader (docs/method.md, section 7): the official train/test lists of one fold.

Layout under ``root``::

    UCF-101/<Class>/v_<Class>_gGG_cCC.avi
    ucfTrainTestlist/classInd.txt          "1 ApplyEyeMakeup" (1-based ids)
    ucfTrainTestlist/trainlist0{fold}.txt  "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"
    ucfTrainTestlist/testlist0{fold}.txt   "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"

A video's class is the folder part of its listed path, matched case-insensitively against
``classInd.txt`` (the real folder ``HandstandPushups`` holds ``v_HandStandPushups_*`` files).
The label given in a training list must agree with the folder. Whether the files exist is
checked later, by the index (a missing video is skipped there, with its reason).

Groups: the clips ``cCC`` of one group ``gGG`` of a class are cut from the same long video or
share actor and background; the official splits keep a group on one side. Every record's
``group`` is ``<Class>/gGG`` (class name as in ``classInd.txt``), so that the validation split
and the cross-fitting folds keep groups whole too (:mod:`condi.data.index`). A file name
without ``_gGG_cCC`` is its own group.
"""

from __future__ import annotations

import re
from pathlib import Path

from condi.data.records import VideoRecord

VIDEO_DIR = "UCF-101"
LIST_DIR = "ucfTrainTestlist"


GROUP_RE = re.compile(r"_g(\d+)_c\d+\.[^./]+$", re.IGNORECASE)


def video_group(class_name: str, rel: str) -> str | None:
    """``<Class>/gGG`` for ``.../v_<Class>_gGG_cCC.avi`` (GG as two digits), else None."""
    m = GROUP_RE.search(rel)
    return f"{class_name}/g{int(m.group(1)):02d}" if m else None


class ListError(ValueError):
    """A malformed annotation list; the message names the file and the line."""


def _lines(path: Path) -> list[tuple[int, str]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: annotation list not found")
    text = path.read_text(encoding="utf-8-sig")
    return [(i, line.strip()) for i, line in enumerate(text.splitlines(), 1) if line.strip()]


def read_class_index(path: Path) -> list[str]:
    """Class names in id order from ``classInd.txt``; ids must be exactly 1..C."""
    by_id: dict[int, str] = {}
    for lineno, line in _lines(path):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise ListError(f"{path}:{lineno}: expected '<id> <ClassName>', got {line!r}")
        cid, name = int(parts[0]), parts[1]
        if cid in by_id:
            raise ListError(f"{path}:{lineno}: class id {cid} listed twice")
        by_id[cid] = name
    if sorted(by_id) != list(range(1, len(by_id) + 1)):
        raise ListError(f"{path}: class ids must be 1..{len(by_id)}, got {sorted(by_id)}")
    names = [by_id[i] for i in range(1, len(by_id) + 1)]
    lowered = [n.lower() for n in names]
    if len(set(lowered)) != len(lowered):
        raise ListError(f"{path}: class names must differ ignoring case")
    return names


def _read_split(
    path: Path, split: str, classes: dict[str, int], names: list[str], with_label: bool
) -> list[VideoRecord]:
    """Records of one list; a line is ``path id`` when ``with_label``, else ``path`` (an id, if
    present anyway, is checked too)."""
    expected = "'<Class>/<file> <id>'" if with_label else "'<Class>/<file>'"
    records = []
    for lineno, line in _lines(path):
        parts = line.split()
        if len(parts) > 2 or (with_label and len(parts) != 2):
            raise ListError(f"{path}:{lineno}: expected {expected}, got {line!r}")
        rel = parts[0].replace("\\", "/")
        folder = rel.split("/")[0] if "/" in rel else ""
        if folder.lower() not in classes:
            raise ListError(
                f"{path}:{lineno}: {rel!r} is not under a class folder from classInd.txt"
            )
        label = classes[folder.lower()]
        if len(parts) == 2:
            if not parts[1].isdigit():
                raise ListError(f"{path}:{lineno}: class id {parts[1]!r} is not a positive integer")
            if int(parts[1]) != label + 1:
                raise ListError(
                    f"{path}:{lineno}: class id {parts[1]} disagrees with folder {folder!r} (id {label + 1})"
                )
        records.append(
            VideoRecord(
                f"{VIDEO_DIR}/{rel}", label, names[label], split, video_group(names[label], rel)
            )
        )
    return records


def list_videos(root: Path, fold: int) -> tuple[list[VideoRecord], list[str]]:
    """The videos of fold ``fold`` (train and test records) and the class names in id order."""
    root = Path(root)
    lists = root / LIST_DIR
    names = read_class_index(lists / "classInd.txt")
    classes = {n.lower(): i for i, n in enumerate(names)}
    train = _read_split(lists / f"trainlist0{fold}.txt", "train", classes, names, with_label=True)
    test = _read_split(lists / f"testlist0{fold}.txt", "test", classes, names, with_label=False)
    seen: dict[str, str] = {}
    for rec in train + test:
        if rec.path in seen:
            raise ListError(
                f"{lists}: {rec.path} is listed twice (in {seen[rec.path]} and {rec.split})"
            )
        seen[rec.path] = rec.split
    return train + test, names
