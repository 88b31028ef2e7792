"""Table I, the dataset overview (docs/method.md, section 6), computed from the clip indexes.

An index is a parquet file with one row per clip and at least the columns ``video_id`` (or
``video``), ``split``, ``num_clips`` and ``duration`` (seconds), and the JSON metadata under key
``b"condi"`` with ``num_classes`` (and ``class_names``). Per dataset, :func:`table1_rows` gives:

- ``instances_train``, ``instances_val``, ``instances_test``, ``instances``: videos per split and
  in total (videos, not clips; a video is counted once even though it has many clip rows);
- ``mean_length_s``: the mean video duration in seconds over all the dataset's videos;
- ``classes``: ``num_classes`` from the metadata (the number of distinct labels if absent);
- ``clips_per_video_mean``, ``_min``, ``_max``: over all videos, N = ceil(T / L).

The CSV holds the full-precision numbers; the Markdown rounds to two decimals.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from condi.data.records import SPLITS

METADATA_KEY = b"condi"
COLUMNS = (
    ["dataset"]
    + [f"instances_{split}" for split in SPLITS]
    + [
        "instances",
        "mean_length_s",
        "classes",
        "clips_per_video_mean",
        "clips_per_video_min",
        "clips_per_video_max",
    ]
)


def read_index(path: Path | str) -> tuple[pd.DataFrame, dict]:
    """The clip rows of an index and its ``condi`` metadata (``{}`` when absent)."""
    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    return table.to_pandas(), (json.loads(raw) if raw else {})


def videos_of(clips: pd.DataFrame) -> pd.DataFrame:
    """One row per video: ``split``, ``label``, ``duration``, ``num_clips``."""
    key = "video_id" if "video_id" in clips.columns else "video"
    if key not in clips.columns:
        raise ValueError("index has neither a video_id nor a video column")
    grouped = clips.groupby(key, sort=False)
    videos = grouped.first()
    if "num_clips" in clips.columns:
        videos["num_clips"] = grouped["num_clips"].max()
    else:
        videos["num_clips"] = grouped.size()
    if "duration" not in videos.columns:
        videos["duration"] = float("nan")
    return videos


def dataset_row(name: str, clips: pd.DataFrame, meta: dict) -> dict:
    """Table I's row for one dataset."""
    videos = videos_of(clips)
    counts = videos["split"].value_counts()
    row: dict = {"dataset": name}
    for split in SPLITS:
        row[f"instances_{split}"] = int(counts.get(split, 0))
    classes = meta.get("num_classes")
    if classes is None:
        classes = int(clips["label"].nunique()) if "label" in clips.columns else None
    row.update(
        instances=len(videos),
        mean_length_s=float(videos["duration"].mean()),
        classes=classes,
        clips_per_video_mean=float(videos["num_clips"].mean()),
        clips_per_video_min=int(videos["num_clips"].min()),
        clips_per_video_max=int(videos["num_clips"].max()),
    )
    return row


def table1_rows(indexes: dict[str, Path]) -> pd.DataFrame:
    """Table I, one row per ``name -> index parquet`` item, in the dict's order."""
    rows = []
    for name, path in indexes.items():
        clips, meta = read_index(path)
        if clips.empty:
            raise ValueError(f"{path}: the index for {name} has no clips")
        rows.append(dataset_row(name, clips, meta))
    return pd.DataFrame(rows, columns=COLUMNS)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_table(df: pd.DataFrame, csv_path: Path | str, md_path: Path | str) -> None:
    """Write ``df`` as CSV (full precision) and Markdown (two decimals), each atomically."""
    _write_atomic(Path(csv_path), df.to_csv(index=False))
    _write_atomic(Path(md_path), df.to_markdown(index=False, floatfmt=".2f") + "\n")
