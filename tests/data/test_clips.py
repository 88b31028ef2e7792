"""Decoding, the clip cache and ClipDataset."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
import yaml

from condi.cli import main
from condi.data.clips import build_clip_cache
from condi.data.dataset import ClipDataset, make_loader
from condi.data.index import write_index
from condi.data.synthetic import encode_avi
from condi.data.video import read_video_clips, read_video_frames, resized_size, split_clips
from tests.conftest import dataset_params

S = 36  # conftest.SHORT_SIDE
MEAN, STD = [0.45, 0.4, 0.35], [0.2, 0.25, 0.3]


def test_cache_equals_reference_decode(tiny_root, tiny_index, tiny_cache):
    df, _ = tiny_index
    cache = np.load(tiny_cache, mmap_mode="r")
    assert cache.shape == (len(df), 16, S, S, 3) and cache.dtype == np.uint8
    for video, rows in df.groupby("video").indices.items():
        clips = read_video_clips(tiny_root / video, 16, S)
        assert len(clips) == len(rows)
        assert np.array_equal(cache[rows], clips), video


def test_last_clip_repeats_the_final_frame(tiny_root, tiny_index, tiny_cache):
    df, _ = tiny_index
    cache = np.load(tiny_cache, mmap_mode="r")
    padded = df[df["end_frame"] > df["num_frames"]]
    assert len(padded) > 0
    for row, r in padded.iterrows():
        k = r["num_frames"] - r["start_frame"]  # real frames in this clip
        clip = cache[row]
        assert np.array_equal(clip[k:], np.broadcast_to(clip[k - 1], clip[k:].shape))
        frames = read_video_frames(tiny_root / r["video"], S)
        assert np.array_equal(clip[k - 1], frames[-1]) and len(frames) == r["num_frames"]


def test_split_clips_pads():
    frames = np.arange(35)[:, None]
    clips = split_clips(frames, 16)
    assert clips.shape == (3, 16, 1)
    assert clips[2, :, 0].tolist() == [32, 33, 34] + [34] * 13
    assert split_clips(np.arange(32)[:, None], 16).shape == (2, 16, 1)


def test_resize_and_center_crop(tmp_path):
    assert resized_size(320, 240, 128) == (171, 128)
    assert resized_size(240, 320, 128) == (128, 171)
    # 64x32: left quarter red, right quarter blue, middle green; S = 32 keeps the size and the
    # center crop keeps only the green middle
    frame = np.zeros((32, 64, 3), np.uint8)
    frame[:, :16, 0] = 255
    frame[:, 16:48, 1] = 255
    frame[:, 48:, 2] = 255
    encode_avi(tmp_path / "bars.avi", np.repeat(frame[None], 5, axis=0), 25, qscale=2)
    out = read_video_frames(tmp_path / "bars.avi", 32)
    assert out.shape == (5, 32, 32, 3)
    inner = out[:, :, 4:-4].astype(int)
    assert (inner[..., 1] > 200).all() and (inner[..., 0] < 60).all() and (inner[..., 2] < 60).all()
    # portrait source: the crop is vertical
    portrait = np.ascontiguousarray(frame.transpose(1, 0, 2))
    encode_avi(tmp_path / "tall.avi", np.repeat(portrait[None], 3, axis=0), 25, qscale=2)
    tall = read_video_frames(tmp_path / "tall.avi", 16)
    assert tall.shape == (3, 16, 16, 3) and (tall[:, 2:-2, :, 1] > 200).all()


def test_workers_and_row_order(tiny_root, tiny_index, tiny_cache, tmp_path):
    df, _ = tiny_index
    ref = np.load(tiny_cache, mmap_mode="r")
    two = build_clip_cache(df, tiny_root, tmp_path / "two.npy", 16, S, workers=2, progress=False)
    assert np.array_equal(np.load(two), ref)
    order = np.random.default_rng(0).permutation(len(df))
    shuffled = df.iloc[order].reset_index(drop=True)
    out = build_clip_cache(
        shuffled, tiny_root, tmp_path / "shuffled.npy", 16, S, workers=1, progress=False
    )
    assert np.array_equal(np.load(out), ref[order])  # cache rows follow index rows
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "shuffled.npy",
        "two.npy",
    ]  # no temp files
    with pytest.raises(ValueError, match="not 8 frames long"):
        build_clip_cache(df, tiny_root, tmp_path / "x.npy", 8, S)


def test_cli_cache(tiny_root, tiny_index, tiny_cache, tmp_path):
    df, _ = tiny_index
    index = tmp_path / "index.parquet"
    write_index(df, index)
    out = tmp_path / "c.npy"
    params = dataset_params(tmp_path / "p.yaml", tiny_root)
    p = yaml.safe_load(params.read_text())
    p["data"]["short_side"] = S  # read from params.yaml by the stage
    params.write_text(yaml.safe_dump(p))
    argv = ["data", "cache", "--params", str(params), "--dataset", "synthetic"]
    argv += ["--index", str(index), "--out", str(out)]
    assert main(argv) == 0
    assert np.array_equal(np.load(out), np.load(tiny_cache))


def _dataset(cache, df, train, crop=32):
    rows = np.flatnonzero(df["split"].to_numpy() == "train")
    return ClipDataset(cache, rows, df["label"].to_numpy()[rows], crop, train, MEAN, STD)


def test_eval_items_are_center_crops_normalised(tiny_index, tiny_cache):
    df, _ = tiny_index
    ds = _dataset(tiny_cache, df, train=False)
    cache = np.load(tiny_cache)
    clip, label, row = ds[3]
    assert clip.shape == (3, 16, 32, 32) and clip.dtype == torch.float32
    assert label.dtype == torch.int64 and row.dtype == torch.int64
    assert int(row) == ds.rows[3] and int(label) == df["label"].iloc[int(row)]
    raw = (
        torch.from_numpy(cache[int(row), :, 2:34, 2:34].astype(np.float32)).permute(3, 0, 1, 2)
        / 255
    )
    expected = (raw - torch.tensor(MEAN).view(3, 1, 1, 1)) / torch.tensor(STD).view(3, 1, 1, 1)
    assert torch.allclose(clip, expected, atol=1e-6)
    assert torch.equal(ds[3][0], clip)  # deterministic


def test_train_items_random_crop_flip_seeded(tiny_index, tiny_cache):
    df, _ = tiny_index
    ds = _dataset(tiny_cache, df, train=True, crop=28)
    torch.manual_seed(0)
    first = [ds[0][0] for _ in range(12)]
    torch.manual_seed(0)
    again = [ds[0][0] for _ in range(12)]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert len({a.sum().item() for a in first}) > 1  # crops differ between draws
    # every draw is some crop of the clip, flipped or not
    cache = (
        torch.from_numpy(np.load(tiny_cache)[ds.rows[0]].astype(np.float32)).permute(3, 0, 1, 2)
        / 255
    )
    full = (cache - torch.tensor(MEAN).view(3, 1, 1, 1)) / torch.tensor(STD).view(3, 1, 1, 1)
    flips = 0
    for a in first:
        matches = [
            (top, left, flip)
            for top in range(S - 28 + 1)
            for left in range(S - 28 + 1)
            for flip in (False, True)
            if torch.allclose(
                (
                    full[..., top : top + 28, left : left + 28].flip(-1)
                    if flip
                    else full[..., top : top + 28, left : left + 28]
                ),
                a,
                atol=1e-6,
            )
        ]
        assert matches
        flips += matches[0][2]
    assert 0 < flips < len(first)


def test_loader_and_lazy_memmap(tiny_index, tiny_cache):
    df, _ = tiny_index
    ds = _dataset(tiny_cache, df, train=False)
    ds[0]
    assert pickle.loads(pickle.dumps(ds))._data is None  # workers map the file themselves
    order = lambda seed: torch.cat([b[2] for b in make_loader(ds, 8, shuffle=True, seed=seed)])  # noqa: E731
    assert torch.equal(order(1), order(1)) and not torch.equal(order(1), order(2))
    x, y, r = next(iter(make_loader(ds, 8, shuffle=False, seed=0)))
    assert x.shape == (8, 3, 16, 32, 32) and y.shape == (8,) and r.tolist() == ds.rows[:8].tolist()


def test_dataset_argument_checks(tiny_index, tiny_cache):
    df, _ = tiny_index
    with pytest.raises(ValueError, match="exceeds"):
        _dataset(tiny_cache, df, train=False, crop=S + 1)
    with pytest.raises(ValueError, match="equal length"):
        ClipDataset(tiny_cache, np.arange(3), np.zeros(2), 32, False, MEAN, STD)
    with pytest.raises(ValueError, match="out of range"):
        ClipDataset(tiny_cache, np.array([len(df)]), np.zeros(1), 32, False, MEAN, STD)
