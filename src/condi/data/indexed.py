"""A dataset fold as the stages read it: its clip index (``condi data index``) with the clip
cache beside it (``condi data cache``), checked to agree."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from condi.data.index import read_index
from condi.io import load_npy


@dataclass
class IndexedData:
    """An index (one row per clip) with its metadata and clip cache."""

    index: pd.DataFrame
    meta: dict[str, Any]
    cache_path: str

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
    df, meta = read_index(index_path)
    cache_path = Path(cache_path)
    if not cache_path.is_file():
        raise FileNotFoundError(f"{cache_path}: clip cache not found (run `condi data cache`)")
    arr = load_npy(cache_path, mmap_mode="r")
    if arr.shape[0] != len(df):
        raise ValueError(
            f"{cache_path}: clip cache has {arr.shape[0]} clips but {index_path} lists {len(df)}"
        )
    return IndexedData(df, meta, str(cache_path))
