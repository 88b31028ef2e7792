"""The second data path (condi.data.resized, issue 19): the resized store against the clip
cache, clip by clip, on the tiny synthetic dataset and the Kinetics-format fixture.

Lossless (crf 0): every decoded clip and every dataset item (crop, flip, label, normalisation)
equals the cache's bit for bit. Lossy (crf 18): the same rows, windows, flips and labels, and
pixels within the stated tolerance (condi.data.resized.LOSSY_MEAN_TOLERANCE and
LOSSY_CLIP_TOLERANCE, mean absolute error on uint8 values).
"""

from __future__ import annotations

import shutil

import av
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from condi.cli import main
from condi.data import flips
from condi.data.clips import build_clip_cache
from condi.data.dataset import ClipDataset, ResizedClipDataset
from condi.data.index import build_index, write_index
from condi.data.indexed import IndexedData, clip_dataset, load_data, loader_workers
from condi.data.resized import (
    LOSSY_CLIP_TOLERANCE,
    LOSSY_MEAN_TOLERANCE,
    MANIFEST,
    ClipReader,
    ResizeSettings,
    build_resized_store,
    encode_frames,
    partial_path,
    read_manifest,
    video_file,
)
from condi.data.video import VideoError
from condi.training.trainer import train_loader
from tests.conftest import REPO, kinetics_dataset, load_yaml

S, L, CROP = 36, 16, 32
MEAN, STD = [0.45, 0.4, 0.35], [0.2, 0.25, 0.3]


@pytest.fixture(scope="module")
def lossless(tiny_root, tiny_index, tmp_path_factory):
    df, _ = tiny_index
    out = tmp_path_factory.mktemp("resized") / "lossless"
    return build_resized_store([df], tiny_root, out, ResizeSettings(S, L, crf=0), progress=False)


@pytest.fixture(scope="module")
def lossy(tiny_root, tiny_index, tmp_path_factory):
    df, _ = tiny_index
    out = tmp_path_factory.mktemp("resized") / "crf18"
    return build_resized_store([df], tiny_root, out, ResizeSettings(S, L, crf=18), progress=False)


@pytest.fixture(scope="module")
def kinetics(tmp_path_factory):
    """The Kinetics-format fixture indexed, cached and resized (lossless): (df, cache, store)."""
    root = kinetics_dataset(tmp_path_factory.mktemp("k400"))
    df, skipped = build_index("kinetics", root, 1, clip_len=L, val_fraction=0.2, seed=0)
    assert skipped.empty
    work = tmp_path_factory.mktemp("k400_work")
    cache = build_clip_cache(df, root, work / "clips.npy", L, S, workers=1, progress=False)
    store = build_resized_store(
        [df], root, work / "store", ResizeSettings(S, L, crf=0), workers=2, progress=False
    )
    return df, cache, store


def items(ds) -> list[tuple[torch.Tensor, int, int]]:
    return [(x, int(y), int(r)) for x, y, r in (ds[i] for i in range(len(ds)))]


def both(df, cache, store, train, seed=None, flip_labels=None):
    rows = np.arange(len(df))
    kw = dict(
        crop_size=CROP, train=train, mean=MEAN, std=STD, aug_seed=seed, flip_labels=flip_labels
    )
    labels = df["label"].to_numpy()
    return ClipDataset(cache, rows, labels, **kw), ResizedClipDataset(store, df, rows, labels, **kw)


# -- lossless: the cache's clips, bit for bit ------------------------------------------------


def test_lossless_clips_equal_the_cache(tiny_index, tiny_cache, lossless):
    df, _ = tiny_index
    cache = np.load(tiny_cache, mmap_mode="r")
    manifest, meta = read_manifest(lossless)
    assert meta["codec"] == "libx264rgb" and meta["crf"] == 0
    reader = ClipReader(L, lossless=True)
    files = manifest.set_index("video")["file"]
    # in a shuffled order: every clip is one seek, whatever came before it
    for row in np.random.default_rng(0).permutation(len(df)):
        r = df.iloc[row]
        clip = reader.read(lossless / files[r["video"]], r["start_frame"], r["num_frames"])
        assert clip.dtype == np.uint8 and np.array_equal(clip, cache[row]), (row, r["video"])


@pytest.mark.parametrize("train", [False, True])
def test_lossless_items_equal_the_cache_items(tiny_index, tiny_cache, lossless, train):
    """Crops, flips (with the mirror classes' label swap), labels and normalisation: the same
    items on both paths, seeded per (epoch, clip)."""
    df, _ = tiny_index
    meta = {"kind": "ucf101", "class_names": sorted(df.groupby("label")["label_name"].first())}
    table = flips.table_for({"flip": "swap"}, meta) if train else None
    a, b = both(df, tiny_cache, lossless, train, seed=1009 * 3 + 2 if train else None,
                flip_labels=table)  # fmt: skip
    ia, ib = items(a), items(b)
    if train:  # the draw did flip and swap some clips: the test sees both
        assert sum(y != lab for (_, y, _), lab in zip(ia, df["label"], strict=True)) > 0
    for (xa, ya, ra), (xb, yb, rb) in zip(ia, ib, strict=True):
        assert (ya, ra) == (yb, rb)
        assert torch.equal(xa, xb), ra


def test_kinetics_fixture_lossless_clip_by_clip(kinetics):
    """Portrait and landscape frames, 30000/1001, 25, 24 and 15 fps, padded last clips, paths
    with spaces and commas: every clip and every training item as the cache has it."""
    df, cache, store = kinetics
    assert df["video"].str.contains(", ").any() and (df["end_frame"] > df["num_frames"]).any()
    arr = np.load(cache, mmap_mode="r")
    reader = ClipReader(L, lossless=True)
    for row, r in df.iterrows():
        clip = reader.read(store / video_file(r["video"]), r["start_frame"], r["num_frames"])
        assert np.array_equal(clip, arr[row]), (row, r["video"])
    a, b = both(df, cache, store, train=True, seed=7)
    for (xa, ya, ra), (xb, yb, rb) in zip(items(a), items(b), strict=True):
        assert (ya, ra) == (yb, rb) and torch.equal(xa, xb)


# -- lossy: the same items within the codec's tolerance --------------------------------------


def test_lossy_clips_within_the_stated_tolerance(tiny_index, tiny_cache, lossy, lossless):
    df, _ = tiny_index
    cache = np.load(tiny_cache, mmap_mode="r")
    _, meta = read_manifest(lossy)
    assert (meta["codec"], meta["pix_fmt"], meta["crf"]) == ("libx264", "yuv420p", 18)
    reader = ClipReader(L, lossless=False)
    errors = []
    for row, r in df.iterrows():
        clip = reader.read(lossy / video_file(r["video"]), r["start_frame"], r["num_frames"])
        errors.append(np.abs(clip.astype(np.int16) - cache[row]).mean())
    errors = np.array(errors)
    assert errors.mean() < LOSSY_MEAN_TOLERANCE and errors.max() < LOSSY_CLIP_TOLERANCE
    assert errors.min() > 0  # it is lossy: the comparison is not vacuous
    size = lambda store: sum(f.stat().st_size for f in (store / "videos").rglob("*.mp4"))  # noqa: E731
    assert size(lossy) < size(lossless) / 3 < tiny_cache.stat().st_size / 3


def test_lossy_items_share_rows_windows_flips_and_labels(tiny_index, tiny_cache, lossy):
    df, _ = tiny_index
    a, b = both(df, tiny_cache, lossy, train=True, seed=11)
    for i in range(len(a)):
        assert a._window(int(a.rows[i])) == b._window(int(b.rows[i]))
        (xa, ya, ra), (xb, yb, rb) = a[i], b[i]
        assert (int(ya), int(ra)) == (int(yb), int(rb))
        # back to uint8 units: |dx| * 255 * std
        err = ((xa - xb).abs() * torch.tensor(STD).view(3, 1, 1, 1) * 255).mean()
        assert float(err) < LOSSY_CLIP_TOLERANCE


def test_odd_short_side_is_stored_in_444(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (20, 35, 35, 3), dtype=np.uint8)
    frames = np.repeat(np.repeat(frames[:, ::5, ::5], 5, 1), 5, 2)  # flat 5x5 blocks
    settings = ResizeSettings(35, 8, crf=10)
    assert settings.pix_fmt == "yuv444p"
    encode_frames(tmp_path / "a.mp4", frames, 25, settings)
    clip = ClipReader(8, lossless=False).read(tmp_path / "a.mp4", 16, 20)
    assert clip.shape == (8, 35, 35, 3)
    expected = frames[[16, 17, 18, 19, 19, 19, 19, 19]]
    assert np.abs(clip.astype(int) - expected).mean() < LOSSY_CLIP_TOLERANCE


# -- the files -------------------------------------------------------------------------------


def _keyframes(path) -> tuple[list[int], int]:
    """Frame numbers of the keyframe packets and the frame count, read by PyAV directly."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        per_pts = float(s.time_base * s.average_rate)
        t0 = s.start_time or 0
        packets = [p for p in c.demux(s) if p.size]
        keys = sorted(round((p.pts - t0) * per_pts) for p in packets if p.is_keyframe)
        return keys, len(packets)


@pytest.mark.parametrize("store", ["lossless", "lossy"])
def test_a_keyframe_at_every_clip_start_and_the_index_frame_count(store, tiny_index, request):
    df, _ = tiny_index
    store = request.getfixturevalue(store)
    manifest, _ = read_manifest(store)
    videos = df.drop_duplicates("video").set_index("video")
    assert sorted(manifest["video"]) == sorted(videos.index)
    for _, m in manifest.iterrows():
        keys, frames = _keyframes(store / m["file"])
        t = int(videos.loc[m["video"], "num_frames"])
        assert frames == t == m["num_frames"]
        assert keys == list(range(0, t, L)), m["video"]
        assert m["bytes"] == (store / m["file"]).stat().st_size


def test_a_video_that_decodes_short_is_padded_to_the_index(tiny_root, tiny_index, tmp_path):
    """The index wins, as for the cache: frames the video no longer has repeat its last one."""
    df, _ = tiny_index
    video = df["video"].iloc[0]
    t = int(df["num_frames"].iloc[0])
    root = tmp_path / "root"
    shutil.copytree(tiny_root, root)
    with av.open(str(root / video)) as c:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    from condi.data.synthetic import encode_avi

    encode_avi(root / video, frames[: t - 5], 25)
    one = df[df["video"] == video]
    store = build_resized_store(
        [one], root, tmp_path / "store", ResizeSettings(S, L, crf=0), progress=False
    )
    cache = build_clip_cache(one, root, tmp_path / "c.npy", L, S, workers=1, progress=False)
    keys, count = _keyframes(store / video_file(video))
    assert count == t
    reader = ClipReader(L, lossless=True)
    for row, (_, r) in enumerate(one.iterrows()):
        clip = reader.read(store / video_file(video), r["start_frame"], t)
        assert np.array_equal(clip, np.load(cache)[row])


# -- determinism: workers, the training loader ---------------------------------------------


def test_training_batches_with_workers_equal_those_without(tiny_index, lossy, tmp_path):
    """trainer.train_loader over the store: the same batches with 0 and 2 worker processes,
    each decoding its own clips."""
    df, _ = tiny_index
    meta = df.attrs["condi"]
    data = IndexedData(df, meta, str(lossy), "resized")
    cfg = load_yaml(REPO / "params.yaml")["data"]
    cfg.update(crop_size=CROP, flip="swap")
    rows = data.rows("train")
    batches = []
    for workers in (0, 2):
        loader = train_loader(data, rows, cfg, 8, seed=3, epoch=1, num_workers=workers)
        batches.append(list(loader))
    assert len(batches[0]) == len(batches[1]) == -(-len(rows) // 8)
    for (x0, y0, r0), (x1, y1, r1) in zip(*batches, strict=True):
        assert torch.equal(r0, r1) and torch.equal(y0, y1) and torch.equal(x0, x1)
    seen = torch.cat([r for _, _, r in batches[0]]).sort().values.numpy()
    assert np.array_equal(seen, np.sort(rows))


def test_loader_workers_setting():
    data = IndexedData(pd.DataFrame(), {}, "x", "resized")
    assert loader_workers({"workers": "auto", "threads": 3}, data) == 3
    assert loader_workers({"workers": "auto", "threads": 1}, data) == 1
    assert (
        loader_workers({"workers": "auto", "threads": 3}, IndexedData(pd.DataFrame(), {}, "x")) == 0
    )
    assert loader_workers({"workers": 0, "threads": 3}, data) == 0
    assert loader_workers({"workers": 5}, data) == 5


# -- the store as the stages read it -------------------------------------------------------


def test_load_data_tells_the_paths_apart_and_checks_the_store(
    tiny_index, tiny_cache, lossless, tmp_path
):
    df, skipped = tiny_index
    index = tmp_path / "index.parquet"
    write_index(df, index, skipped=skipped)
    data = load_data(index, lossless)
    assert data.storage == "resized" and data.cache_path == str(lossless)
    ds = clip_dataset(data, data.rows("test"), data.labels(data.rows("test")),
                      {"crop_size": CROP, "mean": MEAN, "std": STD}, train=False)  # fmt: skip
    assert isinstance(ds, ResizedClipDataset)
    assert load_data(index, tiny_cache).storage == "cache"

    # a store missing one indexed video, or written for another clip length: refused, named
    broken = tmp_path / "broken"
    shutil.copytree(lossless, broken)
    manifest, meta = read_manifest(broken)
    from condi.data.resized import _write_manifest

    _write_manifest(manifest.iloc[1:], broken / MANIFEST, meta)
    with pytest.raises(ValueError, match=r"broken: 1 video\(s\) of the index are not in the store"):
        load_data(index, broken)
    _write_manifest(manifest, broken / MANIFEST, {**meta, "clip_len": 8})
    with pytest.raises(ValueError, match="written for clips of 8 frames"):
        load_data(index, broken)
    _write_manifest(manifest, broken / MANIFEST, meta)
    (broken / manifest["file"].iloc[2]).unlink()
    with pytest.raises(FileNotFoundError, match="1 video file"):
        load_data(index, broken)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="not a resized store"):
        load_data(index, empty)


def test_an_interrupted_build_resumes_with_what_it_wrote(tiny_root, tiny_index, tmp_path):
    """A video that fails is named after the others are written; the re-run encodes only the
    missing ones (the partial folder keeps the rest), with the same settings only."""
    df, _ = tiny_index
    root = tmp_path / "root"
    shutil.copytree(tiny_root, root)
    bad = df["video"].iloc[-1]
    good = root / bad
    saved = good.read_bytes()
    good.write_bytes(saved[:100])
    out = tmp_path / "store"
    settings = ResizeSettings(S, L, crf=23, preset="ultrafast")
    with pytest.raises(VideoError, match=r"1 indexed video\(s\) could not be re-encoded"):
        build_resized_store([df], root, out, settings, workers=1, progress=False)
    assert not out.exists()
    work = partial_path(out)
    written = {p: p.stat().st_mtime_ns for p in (work / "videos").rglob("*.mp4")}
    assert len(written) == df["video"].nunique() - 1
    good.write_bytes(saved)
    build_resized_store([df], root, out, settings, workers=1, progress=False)
    assert not work.exists()
    for p, mtime in written.items():
        assert (out / p.relative_to(work)).stat().st_mtime_ns == mtime
    assert len(read_manifest(out)[0]) == df["video"].nunique()
    # other settings: the partial folder is started afresh, never mixed
    good.write_bytes(saved[:100])
    s2 = tmp_path / "s2"
    with pytest.raises(VideoError):
        build_resized_store([df], root, s2, settings, workers=1, progress=False)
    first = {p: p.stat().st_mtime_ns for p in (partial_path(s2) / "videos").rglob("*.mp4")}
    other = ResizeSettings(S, L, crf=30, preset="ultrafast")
    with pytest.raises(VideoError):
        build_resized_store([df], root, s2, other, workers=1, progress=False)
    assert (partial_path(s2) / "settings.json").read_text().find('"crf": 30') >= 0
    assert all(p.stat().st_mtime_ns != first[p] for p in first)


def test_settings_are_checked():
    with pytest.raises(ValueError, match="crf"):
        ResizeSettings(S, L, crf=52)
    with pytest.raises(ValueError, match="preset"):
        ResizeSettings(S, L, preset="quick")
    assert ResizeSettings(S, L, crf=0).codec == "libx264rgb"


def test_cli_resize_stage(kinetics, tmp_path, monkeypatch):
    """`condi data resize` as the pipeline runs it: values from params.yaml (short side,
    resize.crf), every fold's index, the store loadable beside the index."""
    df, _, _ = kinetics
    root = kinetics_dataset(tmp_path / "k")
    p = load_yaml(REPO / "params.yaml")
    p["datasets"] = {"k400": {"kind": "kinetics", "root": str(root), "storage": "resized"}}
    p["protocol"] = "scratch"  # one dataset: no source to pre-train on
    p["tables"]["table3_columns"] = {}
    p["data"]["short_side"] = S
    p["resize"] = {"crf": 0, "preset": "ultrafast"}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    index = tmp_path / "index.parquet"
    write_index(df, index, {**df.attrs["condi"], "root": str(root)})
    monkeypatch.chdir(tmp_path)
    argv = ["data", "resize", "--params", "params.yaml", "--dataset", "k400", "--index",
            str(index), "--out", "store", "--workers", "1"]  # fmt: skip
    assert main(argv) == 0
    manifest, meta = read_manifest(tmp_path / "store")
    assert (meta["short_side"], meta["clip_len"], meta["crf"], meta["preset"]) == (
        S, L, 0, "ultrafast"
    )  # fmt: skip
    assert load_data(index, tmp_path / "store").storage == "resized"
    assert len(manifest) == df["video"].nunique()


def test_preloaded_items_are_the_decoded_ones(tiny_index, lossy):
    """Timing decodes a video's clips before its timed runs (decoding excluded): the items it
    then reads are those decoded on demand, and nothing is left decoding."""
    df, _ = tiny_index
    rows = np.flatnonzero(df["split"].to_numpy() == "test")
    ds = ResizedClipDataset(lossy, df, rows, df["label"].to_numpy()[rows], CROP, False, MEAN, STD)
    fresh = items(ds)
    ds.preload(slice(2, 6))
    assert sorted(ds._preloaded) == [2, 3, 4, 5]
    ds._reader = None  # a preloaded item must not decode
    for i in range(2, 6):
        x, y, r = ds[i]
        assert torch.equal(x, fresh[i][0]) and (int(y), int(r)) == fresh[i][1:]
