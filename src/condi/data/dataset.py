"""Torch access to the clip cache: crops, flips and normalisation, per clip.

Training clips get a random ``crop_size`` square crop and a horizontal flip with probability
0.5 where the dataset allows it (``flip_labels``, :mod:`condi.data.flips`: a flipped clip of a
direction class takes its mirror partner's label, or is not flipped), drawn from torch's global RNG (in DataLoader workers, the per-worker RNG that torch seeds
from the loader's generator), so a fixed seed reproduces a run. Evaluation clips get the
center crop (docs/method.md, section 1's deterministic test transform). Pixels become
``(x / 255 - mean) / std`` per channel, and the clip is laid out (3, L, crop, crop).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset


class ClipDataset(Dataset):
    """Clips ``rows`` of a cache written by :func:`condi.data.clips.build_clip_cache`.

    ``__getitem__(i)`` returns ``(clip float32 (3, L, crop, crop), label int64, row int64)``
    where ``row = rows[i]`` is the clip's index row. The memmap is opened lazily, once per
    process (each DataLoader worker opens its own).

    ``flip_labels`` (training only): per class, the label of a horizontally flipped clip, or -1
    where a clip of that class is never flipped (:func:`condi.data.flips.flip_table`); the
    returned label is then the flipped clip's. ``None``: every class keeps its label (``data.flip:
    true``).
    """

    def __init__(
        self,
        cache_path: str | os.PathLike,
        rows: np.ndarray,
        labels: np.ndarray,
        crop_size: int,
        train: bool,
        mean: Sequence[float],
        std: Sequence[float],
        aug_seed: int | None = None,
        flip_labels: np.ndarray | None = None,
    ) -> None:
        self.cache_path = Path(cache_path)
        shape = np.load(self.cache_path, mmap_mode="r").shape  # header only; checks the file
        if len(shape) != 5 or shape[2] != shape[3] or shape[4] != 3:
            raise ValueError(
                f"{self.cache_path}: expected a (n, L, S, S, 3) clip cache, got shape {shape}"
            )
        self._data: np.ndarray | None = None
        self._setup(
            self.cache_path, shape[:3], rows, labels, crop_size, train, mean, std, aug_seed,
            flip_labels,
        )  # fmt: skip

    def _setup(
        self,
        source: Path,
        shape: tuple[int, int, int],
        rows: np.ndarray,
        labels: np.ndarray,
        crop_size: int,
        train: bool,
        mean: Sequence[float],
        std: Sequence[float],
        aug_seed: int | None,
        flip_labels: np.ndarray | None,
    ) -> None:
        """Checks and transforms shared by both data paths; ``shape`` is (rows of the index,
        L, S) of ``source``."""
        self.rows = np.asarray(rows, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int64)
        if self.rows.ndim != 1 or self.rows.shape != self.labels.shape:
            raise ValueError(
                f"rows and labels must be 1-D of equal length, got {self.rows.shape} and {self.labels.shape}"
            )
        self.crop_size = int(crop_size)
        self.train = bool(train)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1, 1)
        if self.mean.numel() != 3 or self.std.numel() != 3:
            raise ValueError("mean and std need 3 values (RGB)")
        self.num_rows, self.clip_len, self.size = (int(v) for v in shape)
        if self.crop_size > self.size:
            raise ValueError(
                f"crop_size {self.crop_size} exceeds the {self.size}x{self.size} frames of {source}"
            )
        if len(self.rows) and not (self.rows.min() >= 0 and self.rows.max() < self.num_rows):
            raise ValueError(f"rows out of range for {source} ({self.num_rows} clips)")
        self.flip_labels = None if flip_labels is None else np.asarray(flip_labels, np.int64)
        fl = self.flip_labels
        if fl is not None and len(self.labels) and self.labels.max() >= len(fl):
            raise ValueError(
                f"flip_labels has {len(fl)} classes, labels go up to {self.labels.max()}"
            )
        # With aug_seed, a clip's crop and flip depend only on (aug_seed, row): the same in one
        # process, in DataLoader workers and across DDP ranks (torch.distributed).
        self.aug_seed = aug_seed
        # (x / 255 - mean) / std == x * scale - shift, per channel
        self._scale = (1.0 / (255.0 * self.std.numpy())).astype(np.float32)
        self._shift = (self.mean.numpy() / self.std.numpy()).astype(np.float32)

    def __len__(self) -> int:
        return len(self.rows)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_data"] = None  # every worker maps the file itself
        return state

    @property
    def data(self) -> np.ndarray:
        if self._data is None:
            self._data = np.load(self.cache_path, mmap_mode="r")
        return self._data

    def _clip(self, i: int) -> np.ndarray:
        """The uncropped clip of item ``i``: (L, S, S, 3) uint8 (here a view of the memmap)."""
        return self.data[int(self.rows[i])]

    def _window(self, row: int) -> tuple[int, int, bool]:
        """(top, left, flip) of the crop."""
        c, s = self.crop_size, self.size
        if not self.train:
            return (s - c) // 2, (s - c) // 2, False
        if self.aug_seed is not None:
            top, left, flip = np.random.default_rng([self.aug_seed, row]).integers(
                0, [s - c + 1, s - c + 1, 2]
            )
            return int(top), int(left), bool(flip)
        top, left = (int(v) for v in torch.randint(0, s - c + 1, (2,)))
        return top, left, bool(torch.rand(()) < 0.5)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        row = int(self.rows[i])
        top, left, flip = self._window(row)
        label = self.labels[i]
        if flip and self.flip_labels is not None:
            mirrored = self.flip_labels[label]
            flip = bool(mirrored >= 0)
            label = mirrored if flip else label
        c = self.crop_size
        clip = self._clip(i)[:, top : top + c, left : left + c]  # (L, c, c, 3) uint8
        if flip:
            clip = clip[:, :, ::-1]
        # Per-clip arithmetic in NumPy (single-threaded): torch's intra-op threads cost more in
        # synchronisation than they save on one small clip, badly so on a busy machine.
        x = np.ascontiguousarray(clip.transpose(3, 0, 1, 2), dtype=np.float32)
        x *= self._scale
        x -= self._shift
        return torch.from_numpy(x), torch.tensor(label), torch.tensor(row)


class ResizedClipDataset(ClipDataset):
    """:class:`ClipDataset` over a resized store (:mod:`condi.data.resized`): the same items
    (crop windows, flips, labels, normalisation, per-clip seeds), each clip decoded on the fly
    from its video's file (in the DataLoader worker that asks for it).

    ``index`` is the clip index the rows refer to (its ``video``, ``start_frame`` and
    ``num_frames``); the store must hold every video of it (:func:`condi.data.resized.check_store`,
    done by :func:`condi.data.indexed.load_data`). :meth:`preload` decodes a set of items into
    memory, so that timing reads them as the cache path's memory-mapped clips (decoding
    excluded, docs/method.md, section 6).
    """

    def __init__(
        self,
        store: str | os.PathLike,
        index: pd.DataFrame,
        rows: np.ndarray,
        labels: np.ndarray,
        crop_size: int,
        train: bool,
        mean: Sequence[float],
        std: Sequence[float],
        aug_seed: int | None = None,
        flip_labels: np.ndarray | None = None,
    ) -> None:
        from condi.data.resized import ClipReader, read_manifest

        self.cache_path = self.store = Path(store)
        manifest, meta = read_manifest(self.store)
        shape = (len(index), int(meta["clip_len"]), int(meta["short_side"]))
        self._setup(
            self.store, shape, rows, labels, crop_size, train, mean, std, aug_seed, flip_labels
        )
        files = manifest.set_index("video")["file"]
        sub = index.iloc[self.rows]
        videos, codes = np.unique(sub["video"].to_numpy(), return_inverse=True)
        missing = [v for v in videos if v not in files.index]
        if missing:
            raise ValueError(f"{self.store}: no resized video for {missing[:3]}")
        self._files = [str(self.store / files[v]) for v in videos]
        self._file_of = codes.astype(np.int64)
        self._start = sub["start_frame"].to_numpy(np.int64)
        self._frames = sub["num_frames"].to_numpy(np.int64)
        self._reader = ClipReader(self.clip_len, int(meta["crf"]) == 0)
        self._preloaded: dict[int, np.ndarray] = {}

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["_preloaded"] = {}
        return state

    @property
    def data(self) -> np.ndarray:
        raise AttributeError("a resized store has no memory-mapped clips: use _clip(i)")

    def _clip(self, i: int) -> np.ndarray:
        clip = self._preloaded.get(i)
        if clip is not None:
            return clip
        return self._reader.read(self._files[self._file_of[i]], self._start[i], self._frames[i])

    def preload(self, items: Sequence[int] | slice) -> None:
        """Decode items ``items`` (positions) into memory; earlier preloaded ones are dropped."""
        positions = range(len(self))[items] if isinstance(items, slice) else items
        self._preloaded = {}
        self._preloaded = {int(i): self._clip(int(i)) for i in positions}


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    seed: int,
    num_workers: int = 0,
    drop_last: bool = False,
) -> DataLoader:
    """A DataLoader whose shuffling and worker RNGs derive from ``seed`` (a torch.Generator)."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        generator=generator,
        drop_last=drop_last,
        persistent_workers=num_workers > 0,
    )
