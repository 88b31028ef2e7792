"""A dataset fold as the stages read it: its clip index (``condi data index``) with its decoded
clips beside it, checked to agree. The clips are a clip cache (``condi data cache``, a
``.npy`` file) or a resized store (``condi data resize``, a folder), as
``datasets.<d>.storage`` chose (docs/method.md, section 7, "Two data paths"); the stages get
whichever the pipeline made and tell them apart by the path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from condi.data.index import read_index
from condi.io import load_npy

STORAGES = ("cache", "resized")


@dataclass
class IndexedData:
    """An index (one row per clip) with its metadata and its clips: ``cache_path`` is the clip
    cache (``storage == "cache"``) or the resized store's folder (``"resized"``)."""

    index: pd.DataFrame
    meta: dict[str, Any]
    cache_path: str
    storage: str = "cache"

    @property
    def num_classes(self) -> int:
        return int(self.meta["num_classes"])

    def rows(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.index["split"].to_numpy() == split)

    def labels(self, rows: np.ndarray) -> np.ndarray:
        return self.index["label"].to_numpy()[rows]

    def video_ids(self, rows: np.ndarray) -> np.ndarray:
        return self.index["video_id"].to_numpy()[rows]


def load_data(index_path: str | Path, cache_path: str | Path) -> IndexedData:
    """The index and its clips: a clip cache file, or a resized store folder (checked to hold
    every indexed video with its frame count: :func:`condi.data.resized.check_store`)."""
    df, meta = read_index(index_path)
    cache_path = Path(cache_path)
    if cache_path.is_dir():
        from condi.data.resized import check_store

        check_store(cache_path, df, int(meta["clip_len"]))
        return IndexedData(df, meta, str(cache_path), "resized")
    if not cache_path.is_file():
        raise FileNotFoundError(
            f"{cache_path}: clips not found (run `condi data cache`, or `condi data resize` "
            "for a dataset with storage: resized)"
        )
    arr = load_npy(cache_path, mmap_mode="r")
    if arr.shape[0] != len(df):
        raise ValueError(
            f"{cache_path}: clip cache has {arr.shape[0]} clips but {index_path} lists {len(df)}"
        )
    return IndexedData(df, meta, str(cache_path))


def clip_dataset(
    data: IndexedData,
    rows: np.ndarray,
    labels: np.ndarray,
    data_cfg: dict[str, Any],
    train: bool,
    aug_seed: int | None = None,
    flip_labels: np.ndarray | None = None,
):
    """The torch dataset of ``rows`` on either data path: a
    :class:`~condi.data.dataset.ClipDataset` (cache) or a
    :class:`~condi.data.dataset.ResizedClipDataset` (resized store), with the same items."""
    from condi.data.dataset import ClipDataset, ResizedClipDataset

    kw = dict(
        crop_size=data_cfg["crop_size"],
        train=train,
        mean=data_cfg["mean"],
        std=data_cfg["std"],
        aug_seed=aug_seed,
        flip_labels=flip_labels,
    )
    if data.storage == "resized":
        return ResizedClipDataset(data.cache_path, data.index, rows, labels, **kw)
    return ClipDataset(data.cache_path, rows, labels, **kw)


def loader_workers(params: dict[str, Any], data: IndexedData | None = None) -> int:
    """DataLoader worker processes of a training or scoring job: params ``workers``; ``auto``
    is none for the clip cache (memory-mapped reads cost less than a worker's start) and
    ``threads`` (at least 1) for a resized store, whose clips are decoded in the workers."""
    workers = params.get("workers", "auto")
    if workers == "auto":
        if data is None or data.storage == "cache":
            return 0
        return max(1, int(params.get("threads", 1)))
    return int(workers)
