"""Something-Something V2 (``condi data ssv2`` and ``condi data index --kind ssv2``), docs/method.md, section 5 and 7.

SSv2 needs a login, so it cannot be downloaded for the user. :func:`instructions` says which
files to place where; :func:`prepare` then joins the video chunks (streaming, like
``cat 20bn-something-something-v2-?? | tar xz``, without writing the 19 GB joined archive) and
extracts them, giving the layout :func:`scan` reads::

    root/20bn-something-something-v2/<id>.webm     VP9 in WebM
    root/labels/labels.json       {"Approaching something with your camera": "0", ...}
    root/labels/train.json        [{"id": "78687", "label": "...", "template": "Holding [something]
    root/labels/validation.json     next to [something]", "placeholders": [...]}, ...]

Decisions:

- The class of an entry is its ``template`` with ``[`` and ``]`` removed, looked up in
  ``labels.json`` (whose ids are strings); a case-insensitive match is the fallback, and a
  template found neither way is an error. Class names are ``labels.json``'s keys in id order.
- docs/method.md, section 5: the official validation set is the test set (split ``test``); the official
  training set is split 0.9/0.1 into ``train``/``val``, stratified by class, seeded (seed 0):
  the entries are sorted by id first, so the split depends neither on the JSON order nor on
  which videos are present (see :func:`condi.data.folder.stratified_holdout`).
- Listed videos without a file are counted, logged with a warning and returned in
  :attr:`Listing.missing`, never an error. ``fold`` must be 1.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from condi.data.archives import ExtractionError, extract_tar_stream, safe_extract, zip_plan
from condi.data.folder import Listing, check_fold, stratified_holdout
from condi.data.records import VideoRecord
from condi.io import atomic_path

log = logging.getLogger(__name__)

VIDEO_DIR = "20bn-something-something-v2"
LABEL_DIR = "labels"
LABEL_FILES = ("labels.json", "train.json", "validation.json")
LABELS_ZIP = "20bn-something-something-download-package-labels.zip"
CHUNK_PATTERN = re.compile(r"^20bn-something-something-v2-(\d\d)$")
CHUNK_ZIP_PATTERN = re.compile(r"^20bn-something-something-v2-(\d\d)\.zip$")
EXTRACTED_MARKER = ".condi-extracted"
VAL_FRACTION = 0.1
SEED = 0


# ----------------------------------------------------------------------------------------------
# Preparing the files the user placed
# ----------------------------------------------------------------------------------------------


def instructions(root: Path | str) -> str:
    """What the user must download and where to put it, for ``root``."""
    root = Path(root)
    return f"""\
Something-Something V2 needs a (free) account, so condi cannot download it for you.
From the dataset's page (Qualcomm AI Research, "Something-Something v2"), download and place:

  videos: the chunks 20bn-something-something-v2-00, -01, ... (all of them, about 19 GB) into
            {root}/
          (the 20bn-something-something-v2-NN.zip files that hold them may be placed as they are)
  labels: labels.json, train.json and validation.json (test.json is not needed) into
            {root / LABEL_DIR}/
          (or the archive {LABELS_ZIP} into {root}/)

Then run again:  condi data ssv2 --root {root}
It joins the chunks in order and extracts them (like `cat 20bn-something-something-v2-?? | tar xz`)
into {root / VIDEO_DIR}/<id>.webm, after which
  condi data index --kind ssv2 --root {root} ...
reads it."""


@dataclass
class PrepareReport:
    """What :func:`prepare` found and did; ``missing`` lists what the user still has to place."""

    labels_ready: bool
    videos_ready: bool
    chunks: list[Path]
    missing: list[str]

    @property
    def ready(self) -> bool:
        return self.labels_ready and self.videos_ready


def _labels_ready(root: Path) -> bool:
    return all((root / LABEL_DIR / name).is_file() for name in LABEL_FILES)


def _extract_labels_zip(root: Path) -> None:
    """Unpack the labels archive (checked, :func:`condi.data.archives.safe_extract`) and move
    its JSON files to ``root/labels``."""
    archive = root / LABELS_ZIP
    staging = root / ".labels-unzip"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        safe_extract(archive, staging, kind="zip")
    except ExtractionError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ValueError(str(exc)) from exc
    found = sorted(staging.rglob("labels.json"))
    if not found:
        shutil.rmtree(staging)
        raise FileNotFoundError(f"{archive} holds no labels.json")
    target = root / LABEL_DIR
    target.mkdir(parents=True, exist_ok=True)
    for path in found[0].parent.glob("*.json"):
        shutil.move(str(path), target / path.name)
    shutil.rmtree(staging)
    log.info("labels extracted from %s into %s", archive, target)


def _unzip_chunk(archive: Path, root: Path) -> None:
    """Copy the chunk(s) out of ``archive`` into ``root``, each through a temporary file
    renamed when complete: a killed unzip leaves no partial chunk that a later run would
    take for a whole one."""
    with zipfile.ZipFile(archive) as zf:
        plan = zip_plan(archive, zf)  # no links, devices, absolute paths or ..
        names = [i for i, rel in plan if not i.is_dir() and CHUNK_PATTERN.match(rel.name)]
        if not names:
            raise FileNotFoundError(f"{archive} holds no 20bn-something-something-v2-NN chunk")
        for info in names:
            target = root / Path(info.filename.replace("\\", "/")).name
            with (
                zf.open(info) as src,
                atomic_path(target, suffix="") as tmp,
                open(tmp, "wb") as dst,
            ):
                shutil.copyfileobj(src, dst, 1 << 20)


def find_chunks(root: Path) -> list[Path]:
    """The video chunks in ``root``, in order; unzips ``-NN.zip`` files whose chunk is absent.

    Raises ``FileNotFoundError`` naming the first gap when the numbers are not 00, 01, ... .
    """
    for stale in root.glob(".20bn-something-something-v2-*.tmp"):
        log.info("removing %s, left by an interrupted unzip", stale)  # see condi.io.atomic_path
        stale.unlink(missing_ok=True)
    for archive in sorted(root.iterdir()):
        m = CHUNK_ZIP_PATTERN.match(archive.name)
        if m and not (root / archive.name[: -len(".zip")]).exists():
            log.info("unzipping %s", archive)
            try:
                _unzip_chunk(archive, root)
            except (zipfile.BadZipFile, ExtractionError) as exc:
                raise ValueError(f"{archive}: cannot unzip ({exc})") from exc
    chunks = sorted(p for p in root.iterdir() if CHUNK_PATTERN.match(p.name) and p.is_file())
    for expected, chunk in enumerate(chunks):
        number = int(CHUNK_PATTERN.match(chunk.name).group(1))
        if number != expected:
            raise FileNotFoundError(
                f"SSv2 chunk 20bn-something-something-v2-{expected:02d} is missing in {root}"
            )
    return chunks


class ChainedReader(io.RawIOBase):
    """A read-only stream over several files, one after the other (``cat``); ``current`` is
    the file being read (for error messages)."""

    def __init__(self, paths: list[Path]) -> None:
        super().__init__()
        self._paths = list(paths)
        self._current = None
        self.current: Path | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while True:
            if self._current is None:
                if not self._paths:
                    return 0
                self.current = self._paths.pop(0)
                self._current = open(self.current, "rb")  # noqa: SIM115 - closed in readinto/close
            n = self._current.readinto(buffer)
            if n:
                return n
            self._current.close()
            self._current = None

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None
        super().close()


def join_and_extract(chunks: list[Path], dest: Path) -> None:
    """Stream the concatenated ``chunks`` (a tar, gzip-compressed or not) into ``dest``.

    Through :func:`condi.data.archives.extract_tar_stream`: every member is checked before it
    is written (regular files and folders, no absolute path, no ``..``), into a staging
    folder in ``dest`` that is moved in only once the whole stream is extracted. A damaged or
    incomplete chunk, a refused member or a kill leaves nothing in ``dest`` (a killed run's
    staging folder is removed by the next) and raises a ``ValueError`` naming the chunks.
    """
    reader = ChainedReader(chunks)
    first = chunks[0]
    try:
        with io.BufferedReader(reader, buffer_size=1 << 20) as stream:
            extract_tar_stream(stream, dest, first)
    except ExtractionError as exc:
        where = reader.current.name if reader.current else first.name
        raise ValueError(
            f"SSv2 chunk {where} (or one before it) is damaged or incomplete, or holds a "
            f"refused member: {exc}. Nothing was extracted from the chunks {first.name} ... "
            f"{chunks[-1].name}: check that every chunk is complete (re-download the bad one)"
        ) from exc


def prepare(root: Path | str, *, delete_chunks: bool = False) -> PrepareReport:
    """Unpack what the user placed in ``root`` (see :func:`instructions`); idempotent.

    Labels: ``root/labels/*.json`` as they are, or extracted from the labels archive. Videos:
    the chunks are joined and extracted into ``root``; a marker in the video folder makes a second
    run skip that step; ``delete_chunks`` removes the chunks afterwards. A video folder the user
    extracted already (``.webm`` files, no chunks) counts as ready.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"SSv2 root not found: {root} (create it and place the files)")
    missing: list[str] = []
    if not _labels_ready(root) and (root / LABELS_ZIP).is_file():
        _extract_labels_zip(root)
    labels_ready = _labels_ready(root)
    if not labels_ready:
        missing += [
            f"{root / LABEL_DIR / n}" for n in LABEL_FILES if not (root / LABEL_DIR / n).is_file()
        ]
    marker = root / VIDEO_DIR / EXTRACTED_MARKER
    chunks: list[Path] = []
    if marker.exists():
        videos_ready = True
    else:
        chunks = find_chunks(root)
        if chunks:
            log.info("joining %d chunks into %s", len(chunks), root / VIDEO_DIR)
            join_and_extract(chunks, root)
            (root / VIDEO_DIR).mkdir(exist_ok=True)
            marker.write_text("\n".join(c.name for c in chunks) + "\n")
            if delete_chunks:
                for chunk in chunks:
                    chunk.unlink()
            videos_ready = True
        elif (root / VIDEO_DIR).is_dir() and any((root / VIDEO_DIR).glob("*.webm")):
            videos_ready = True  # extracted by the user
        else:
            videos_ready = False
            missing.append(f"{root}/20bn-something-something-v2-00 ... (the video chunks)")
    return PrepareReport(labels_ready, videos_ready, chunks, missing)


# ----------------------------------------------------------------------------------------------
# Listing
# ----------------------------------------------------------------------------------------------


def class_of(template: str) -> str:
    """The class name of a template: the template without ``[`` and ``]``."""
    return template.replace("[", "").replace("]", "")


def read_label_map(root: Path) -> dict[str, int]:
    """``labels.json``: class name (template without brackets) -> class id (an int)."""
    path = root / LABEL_DIR / "labels.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    mapping = {name: int(value) for name, value in raw.items()}
    if sorted(mapping.values()) != list(range(len(mapping))):
        raise ValueError(f"{path}: class ids are not 0..{len(mapping) - 1}")
    return mapping


def read_entries(path: Path) -> list[dict]:
    entries = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a JSON list of entries")
    return entries


def _id_key(video_id: str) -> tuple[int, str]:
    return (int(video_id), "") if video_id.isdigit() else (1 << 62, video_id)


def scan(
    root: Path | str, fold: int = 1, *, val_fraction: float = VAL_FRACTION, seed: int = SEED
) -> Listing:
    """Read SSv2 at ``root``: train/val (seeded stratified split of the official training set),
    test (the official validation set), class names, missing videos."""
    check_fold(fold)
    root = Path(root)
    mapping = read_label_map(root)
    lowered = {name.lower(): i for name, i in mapping.items()}
    names = [""] * len(mapping)
    for name, i in mapping.items():
        names[i] = name

    def label_of(entry: dict, source: Path) -> int:
        name = class_of(entry["template"])
        if name in mapping:
            return mapping[name]
        if name.lower() in lowered:
            return lowered[name.lower()]
        raise ValueError(f"{source}: entry {entry.get('id')}: template {name!r} not in labels.json")

    rows: list[tuple[str, int, str]] = []  # (id, label, split)
    train_path = root / LABEL_DIR / "train.json"
    train = sorted(
        ((str(e["id"]), label_of(e, train_path)) for e in read_entries(train_path)),
        key=lambda item: _id_key(item[0]),
    )
    held = stratified_holdout([label for _, label in train], val_fraction, seed)
    rows += [
        (vid, label, "val" if h else "train") for (vid, label), h in zip(train, held, strict=True)
    ]
    val_path = root / LABEL_DIR / "validation.json"
    rows += [(str(e["id"]), label_of(e, val_path), "test") for e in read_entries(val_path)]

    video_dir = root / VIDEO_DIR
    present = set(os.listdir(video_dir)) if video_dir.is_dir() else set()
    records: list[VideoRecord] = []
    missing: list[str] = []
    for vid, label, split in rows:
        rel = f"{VIDEO_DIR}/{vid}.webm"
        if f"{vid}.webm" in present:
            records.append(VideoRecord(rel, label, names[label], split))
        else:
            missing.append(rel)
    listing = Listing(records, names, missing)
    listing.warn_missing(f"SSv2 at {root}")
    return listing


def list_videos(root: Path, fold: int = 1) -> tuple[list[VideoRecord], list[str]]:
    """The index builder's entry point: records (paths relative to ``root``) and class names."""
    listing = scan(root, fold)
    return listing.records, listing.class_names
