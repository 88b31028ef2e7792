"""The clip index: one row per clip of every usable video of one dataset fold.

A reader (``READERS``) lists the videos; each is probed with PyAV (:func:`probe_video`), bad
ones are skipped with their reason, a seeded class-stratified share of the training videos
becomes ``val`` (drawn by group: videos of one group never straddle train and val), and every video of T frames is cut into N = ceil(T / L) clips ``[start,
end)`` of L frames (the last clip's ``end`` may exceed T: it is padded with the final frame
when decoded; docs/method.md, notation).

Columns: ``video`` (path relative to the root), ``video_id`` (0..V-1, by sorted path),
``label``, ``label_name``, ``group`` (the reader's group, e.g. UCF-101's ``<Class>/gGG`` or a
Kinetics YouTube id; the video's own path where it has none), ``split`` (train | val | test), ``clip_index``, ``num_clips``,
``start_frame``, ``end_frame``, ``num_frames``, ``fps``, ``duration`` (s), ``width``,
``height``; rows sorted by (video_id, clip_index). The parquet file's schema metadata holds
JSON under ``b"condi"``: kind, root, fold, clip_len, class_names, num_classes (plus
val_fraction and seed).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from condi.data.records import VideoRecord, holdout_by_unit, unit_key
from condi.data.video import VideoError, VideoInfo, probe_video
from condi.io import atomic_path, write_csv

log = logging.getLogger(__name__)

META_KEY = b"condi"
SKIPPED_NAME = "skipped_videos.csv"
INDEX_COLUMNS = (
    "video",
    "video_id",
    "label",
    "label_name",
    "group",
    "split",
    "clip_index",
    "num_clips",
    "start_frame",
    "end_frame",
    "num_frames",
    "fps",
    "duration",
    "width",
    "height",
)
SKIPPED_COLUMNS = ("video", "label", "label_name", "split", "reason")

# kind -> "module:function" with the signature list_videos(root: Path, fold: int) ->
# (list[VideoRecord], class_names) (the folder reader also takes group_pattern=). Imported
# lazily, so a reader that does not exist yet only fails when that kind is asked for. Add a
# dataset by adding a line here.
READERS: dict[str, str] = {
    "ucf101": "condi.data.ucf101:list_videos",
    "kinetics": "condi.data.kinetics:list_videos",
    "ssv2": "condi.data.ssv2:list_videos",
    "folder": "condi.data.folder:list_videos",
}

Reader = Callable[..., tuple[list[VideoRecord], list[str]]]


def get_reader(kind: str) -> Reader:
    """The ``list_videos`` function for a dataset kind (imported on first use)."""
    if kind not in READERS:
        raise ValueError(f"unknown dataset kind {kind!r}; known: {sorted(READERS)}")
    module_name, func_name = READERS[kind].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise ValueError(
            f"dataset kind {kind!r} has no reader yet (module {module_name} is missing)"
        ) from None
    return getattr(module, func_name)


def assign_val_split(
    records: Sequence[VideoRecord], val_fraction: float, seed: int
) -> list[VideoRecord]:
    """Move a seeded, class-stratified ``val_fraction`` of the training videos to ``val``,
    drawn by group (:attr:`VideoRecord.group`; a video without one is its own group), so that
    near-duplicates (UCF-101's clips of one group, Kinetics clips of one YouTube video) never
    straddle train and val and inflate validation accuracy.

    Per class, whole groups in a seeded order, as close to ``round(val_fraction * n)`` of its n
    training videos as the group sizes allow, at least one group when ``val_fraction > 0`` and
    the class has two or more groups, and never all of them
    (:func:`condi.data.records.holdout_by_unit`). Without groups this is ``round(val_fraction *
    n)`` videos, at least one when n >= 2, never all. The choice depends only on the seed and
    the set of paths and groups, not on their order. Records already split into ``val`` by their
    reader (SSv2) are returned unchanged.
    """
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if any(r.split == "val" for r in records):
        return list(records)
    rng = np.random.default_rng(seed)
    train = [r for r in records if r.split == "train"]
    held = holdout_by_unit(
        [r.label for r in train],
        [unit_key(r.path, r.group) for r in train],
        val_fraction,
        lambda _label, n: rng.permutation(n),
    )
    val = {r.path for r, h in zip(train, held, strict=True) if h}
    return [replace(r, split="val") if r.path in val else r for r in records]


def _probe_all(
    root: Path, records: Sequence[VideoRecord], workers: int, count: str
) -> list[VideoInfo | VideoError]:
    def probe(rec: VideoRecord) -> VideoInfo | VideoError:
        try:
            return probe_video(root / rec.path, count=count)
        except VideoError as exc:
            return exc

    if workers <= 1:
        return [probe(r) for r in records]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(probe, records))


def clip_rows(videos: pd.DataFrame, clip_len: int) -> pd.DataFrame:
    """Expand one row per video (with ``num_frames``) into one row per clip, in order."""
    n = np.ceil(videos["num_frames"].to_numpy() / clip_len).astype(np.int64)
    rows = videos.loc[videos.index.repeat(n)].reset_index(drop=True)
    clip_index = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    rows.insert(rows.columns.get_loc("split") + 1, "clip_index", clip_index)
    rows.insert(rows.columns.get_loc("clip_index") + 1, "num_clips", np.repeat(n, n))
    rows.insert(rows.columns.get_loc("num_clips") + 1, "start_frame", clip_index * clip_len)
    rows.insert(rows.columns.get_loc("start_frame") + 1, "end_frame", (clip_index + 1) * clip_len)
    return rows


def build_index(
    kind: str,
    root: str | os.PathLike,
    fold: int,
    clip_len: int = 16,
    val_fraction: float = 0.1,
    seed: int = 0,
    workers: int | None = None,
    count: str = "auto",
    group_pattern: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clip index and skipped videos of one dataset fold (module docstring).

    Returns ``(index, skipped)``; ``index.attrs["condi"]`` holds the metadata for
    :func:`write_index`. ``workers`` threads probe videos in parallel (default: CPU count, at
    most 8); ``count`` is passed to :func:`probe_video`. ``group_pattern`` (folder datasets
    only, ``datasets.<name>.group_pattern``) names each video's group
    (:mod:`condi.data.folder`); UCF-101 and Kinetics have their groups built in.
    """
    if clip_len < 1:
        raise ValueError(f"clip_len must be >= 1, got {clip_len}")
    root = Path(root)
    if group_pattern and kind != "folder":
        raise ValueError(
            f"group_pattern applies to folder datasets only; {kind} has its own groups or none"
        )
    reader_kwargs = {"group_pattern": group_pattern} if group_pattern else {}
    records, class_names = get_reader(kind)(root, fold, **reader_kwargs)
    workers = workers or min(8, os.cpu_count() or 1)
    probed = _probe_all(root, records, workers, count)

    kept, skipped = [], []
    for rec, info in zip(records, probed, strict=True):
        if isinstance(info, VideoError):
            skipped.append((rec.path, rec.label, rec.label_name, rec.split, info.reason))
        else:
            kept.append((rec, info))
    skipped_df = pd.DataFrame(skipped, columns=list(SKIPPED_COLUMNS))
    if skipped:
        log.warning(
            "%s fold %d: skipped %d of %d videos (see %s)",
            kind,
            fold,
            len(skipped),
            len(records),
            SKIPPED_NAME,
        )

    split = {r.path: r.split for r in assign_val_split([r for r, _ in kept], val_fraction, seed)}
    videos = pd.DataFrame(
        {
            "video": [r.path for r, _ in kept],
            "label": [r.label for r, _ in kept],
            "label_name": [r.label_name for r, _ in kept],
            "group": [r.group if r.group is not None else r.path for r, _ in kept],
            "split": [split[r.path] for r, _ in kept],
            "num_frames": [i.num_frames for _, i in kept],
            "fps": [i.fps for _, i in kept],
            "duration": [i.duration for _, i in kept],
            "width": [i.width for _, i in kept],
            "height": [i.height for _, i in kept],
        }
    )
    videos = videos.sort_values("video", kind="stable").reset_index(drop=True)
    videos.insert(1, "video_id", np.arange(len(videos), dtype=np.int64))
    df = clip_rows(videos, clip_len)[list(INDEX_COLUMNS)]
    df = df.astype(
        {
            c: "int64"
            for c in INDEX_COLUMNS
            if c not in ("video", "label_name", "group", "split", "fps", "duration")
        }
    )
    df.attrs["condi"] = {
        "kind": kind,
        "root": str(root),
        "fold": int(fold),
        "clip_len": int(clip_len),
        "class_names": list(class_names),
        "num_classes": len(class_names),
        "val_fraction": float(val_fraction),
        "seed": int(seed),
        "group_pattern": group_pattern or None,
    }
    log.info(
        "%s fold %d: %d videos, %d clips (%s)",
        kind,
        fold,
        len(videos),
        len(df),
        ", ".join(f"{s} {n}" for s, n in videos["split"].value_counts().sort_index().items()),
    )
    return df, skipped_df


def write_index(
    df: pd.DataFrame,
    path: str | os.PathLike,
    meta: dict[str, Any] | None = None,
    skipped: pd.DataFrame | None = None,
) -> None:
    """Write the index as parquet with ``meta`` (default ``df.attrs["condi"]``) as JSON under
    ``b"condi"``; with ``skipped``, also ``skipped_videos.csv`` beside it. Both atomically."""
    path = Path(path)
    meta = meta if meta is not None else df.attrs.get("condi")
    if meta is None:
        raise ValueError("write_index: no metadata (pass meta= or use the frame from build_index)")
    plain = df.copy()
    plain.attrs = {}
    table = pa.Table.from_pandas(plain, preserve_index=False)
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), META_KEY: json.dumps(meta).encode()}
    )
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    if skipped is not None:
        csv = skipped.reindex(columns=list(SKIPPED_COLUMNS))
        write_csv(csv, path.parent / SKIPPED_NAME)


def read_index(path: str | os.PathLike) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The index frame and its metadata, as written by :func:`write_index`."""
    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise ValueError(f"{path}: not a condi index (no {META_KEY!r} metadata)")
    meta = json.loads(raw)
    df = table.to_pandas()
    df.attrs = {"condi": meta}
    return df, meta


def named_indexes(paths: list[str | os.PathLike], per_fold: bool = True) -> dict[str, Path]:
    """``{name: path}`` of clip indexes, named by the dataset their metadata records (and
    ``<dataset>_fold<f>`` where ``per_fold`` and a dataset comes with several folds; without
    ``per_fold``, a dataset's first index)."""
    metas = []
    for path in paths:
        raw = (pq.read_schema(path).metadata or {}).get(META_KEY)
        meta = json.loads(raw) if raw else {}
        metas.append((meta.get("dataset") or Path(path).stem, meta.get("fold"), Path(path)))
    counts: dict[str, int] = {}
    for name, _, _ in metas:
        counts[name] = counts.get(name, 0) + 1
    out: dict[str, Path] = {}
    for name, fold, path in metas:
        key = f"{name}_fold{fold}" if per_fold and counts[name] > 1 else name
        if key in out and (per_fold or key != name):
            raise ValueError(f"{path}: a second index for {key}")
        out.setdefault(key, path)
    return out
