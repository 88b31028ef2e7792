"""Decoding checked against an independent PyAV decode, the clip cache's edge cases, and the
training crop/flip draws (issue 16.3: tests that can see wrong decoding)."""

from __future__ import annotations

import io
import logging

import av
import numpy as np
import pytest
import torch

from condi.data import video as video_module
from condi.data.clips import build_clip_cache
from condi.data.dataset import ClipDataset
from condi.data.index import build_index
from condi.data.synthetic import encode_avi
from condi.data.video import VideoError, read_video_clips, read_video_frames

MEAN, STD = [0.45] * 3, [0.225] * 3


def ts_segment(width: int, height: int, n: int, level: int) -> bytes:
    """MPEG-TS bytes of n frames: a bright left quarter over a ``level`` grey."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mpegts") as out:
        stream = out.add_stream("mpeg2video", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(n):
            frame = np.full((height, width, 3), level, np.uint8)
            frame[:, : width // 4] = 255
            frame[: height // 2, width // 2 :, 2] = 10 * i
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    return buf.getvalue()


def reference(path, s):
    """Every frame resized so that its short side is s (one PyAV reformat), center-cropped."""
    out = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            w, h = frame.width, frame.height
            nw, nh = (round(w * s / h), s) if h <= w else (s, round(h * s / w))
            nw, nh = max(nw, s), max(nh, s)
            rgb = frame.reformat(width=nw, height=nh, format="rgb24").to_ndarray()
            y0, x0 = (nh - s) // 2, (nw - s) // 2
            out.append(rgb[y0 : y0 + s, x0 : x0 + s])
    return np.stack(out).astype(np.int16)


def test_decoding_follows_a_resolution_change(tmp_path):
    """A stream whose frame size changes (64x48, then 40x40; MPEG-TS, which also does not say
    how many frames it holds) decodes like an independent resize of every frame."""
    path = tmp_path / "change.ts"
    path.write_bytes(ts_segment(64, 48, 6, 50) + ts_segment(40, 40, 6, 150))
    got = read_video_frames(path, 32)
    want = reference(path, 32)
    assert got.dtype == np.uint8 and got.shape == want.shape
    diff = np.abs(got.astype(np.int16) - want).mean(axis=(1, 2, 3))
    assert diff.max() < 4, diff
    assert want[0].mean() < want[-1].mean() - 40  # both parts are there


def test_landscape_source_is_scaled_then_cropped(tmp_path):
    frame = np.zeros((48, 96, 3), np.uint8)
    frame[:, 40:56] = 255  # a bright band at the centre, 1/6 of the width
    encode_avi(tmp_path / "wide.avi", np.repeat(frame[None], 3, axis=0), 25, qscale=2)
    got = read_video_frames(tmp_path / "wide.avi", 24).astype(np.int16)
    want = reference(tmp_path / "wide.avi", 24)
    assert np.abs(got - want).mean() < 4
    # scaled by 1/2 (48 -> 24): the band is 8 px wide in the 24 px crop
    bright = (got[0].mean(axis=(0, 2)) > 128).sum()
    assert 7 <= bright <= 9


def test_the_audio_stream_is_ignored(tmp_path):
    """Real videos (UCF-101's AVIs among them) carry sound: only the video stream decodes."""
    path = tmp_path / "with_sound.mkv"
    with av.open(str(path), "w", format="matroska") as out:
        video = out.add_stream("mpeg4", rate=25)
        video.width, video.height, video.pix_fmt = 40, 32, "yuv420p"
        audio = out.add_stream("pcm_s16le", rate=8000, layout="mono")
        for i in range(6):
            frame = np.full((32, 40, 3), 40 * i, np.uint8)
            out.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            sound = av.AudioFrame.from_ndarray(
                np.zeros((1, 320), np.int16), format="s16", layout="mono"
            )
            sound.sample_rate, sound.pts = 8000, i * 320
            out.mux(audio.encode(sound))
        out.mux(video.encode())
        out.mux(audio.encode())
    got = read_video_frames(path, 16)
    assert got.shape == (6, 16, 16, 3)
    assert np.abs(got.astype(np.int16) - reference(path, 16)).mean() < 4


def test_one_frame_video(tmp_path):
    encode_avi(tmp_path / "one.avi", np.full((1, 32, 40, 3), 90, np.uint8), 25)
    out = read_video_frames(tmp_path / "one.avi", 16)
    assert out.shape == (1, 16, 16, 3)


@pytest.fixture
def short_videos(tmp_path):
    """A folder dataset: a 10-frame video (one padded clip) and two of 20 frames."""
    rng = np.random.default_rng(0)
    for name, n in (("a/short.avi", 10), ("a/long.avi", 20), ("b/long.avi", 20)):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        frames = rng.integers(0, 255, (n, 32, 40, 3), dtype=np.uint8)
        encode_avi(tmp_path / name, frames, 25)
    df, _ = build_index("folder", tmp_path, 1, clip_len=16, val_fraction=0.0)
    return tmp_path, df


def test_cache_of_a_one_clip_video(short_videos, tmp_path_factory):
    root, df = short_videos
    out = tmp_path_factory.mktemp("c") / "c.npy"
    cache = np.load(build_clip_cache(df, root, out, 16, 24, workers=1, progress=False))
    for video, rows in df.groupby("video").indices.items():
        assert np.array_equal(cache[rows], read_video_clips(root / video, 16, 24)), video


def test_the_index_wins_over_a_changed_video(short_videos, tmp_path_factory, caplog):
    root, df = short_videos
    df = df[df["video"] == "a/long.avi"].reset_index(drop=True)
    df = df.iloc[:1].assign(num_frames=12, num_clips=1)  # the index says 12 frames: 1 clip
    out = tmp_path_factory.mktemp("c") / "c.npy"
    with caplog.at_level(logging.WARNING):
        cache = np.load(build_clip_cache(df, root, out, 16, 24, workers=1, progress=False))
    assert "decodes to 20 frames, the index says 12" in caplog.text
    frames = read_video_frames(root / "a/long.avi", 24)
    assert np.array_equal(cache[0, :12], frames[:12])
    assert all(np.array_equal(cache[0, t], frames[11]) for t in range(12, 16))


def window_draws(ds, rows, aug_seeds):
    out = []
    for seed in aug_seeds:
        ds.aug_seed = seed
        out += [ds._window(int(r)) for r in rows]
    return np.array(out)


@pytest.fixture
def blob_cache(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "c.npy", rng.integers(0, 255, (3, 4, 12, 12, 3), dtype=np.uint8))
    return tmp_path / "c.npy"


def test_seeded_window_depends_on_seed_and_row_only(blob_cache):
    def make(seed):
        return ClipDataset(blob_cache, np.arange(3), np.zeros(3), 8, True, MEAN, STD, seed)

    a, b = make(7), make(7)
    for i in range(3):
        assert torch.equal(a[i][0], b[i][0])
    draws = window_draws(make(0), [0, 1, 2], range(400))
    # crop offsets cover 0..S-C = 0..4 uniformly, the flip is a fair coin
    assert set(draws[:, 0]) == set(range(5)) and set(draws[:, 1]) == set(range(5))
    assert 540 <= draws[:, 2].sum() <= 660  # 1200 draws, p = 0.5: mean 600, sd 17
    assert draws[:, 2].max() == 1
    assert not np.array_equal(draws[0::3], draws[1::3])  # rows draw differently


def test_unseeded_window_uses_torch(blob_cache):
    ds = ClipDataset(blob_cache, np.arange(3), np.zeros(3), 8, True, MEAN, STD)
    torch.manual_seed(0)
    draws = np.array([ds._window(0) for _ in range(400)])
    assert set(draws[:, 0]) == set(range(5)) and set(draws[:, 1]) == set(range(5))
    assert 170 <= draws[:, 2].sum() <= 230
    torch.manual_seed(0)
    assert np.array_equal(np.array([ds._window(0) for _ in range(400)]), draws)
    ds.train = False
    assert ds._window(0) == (2, 2, False)  # the center crop, never flipped


def test_a_file_without_a_video_stream_is_named_in_the_error(tmp_path):
    path = tmp_path / "sound.mka"
    with av.open(str(path), "w", format="matroska") as out:
        audio = out.add_stream("pcm_s16le", rate=8000, layout="mono")
        sound = av.AudioFrame.from_ndarray(
            np.zeros((1, 320), np.int16), format="s16", layout="mono"
        )
        sound.sample_rate, sound.pts = 8000, 0
        out.mux(audio.encode(sound))
        out.mux(audio.encode())
    with pytest.raises(VideoError, match="no video stream") as info:
        read_video_frames(path, 16)
    assert info.value.path == str(path) and str(info.value).startswith(str(path))


class GrowthRecorder:
    """NumPy for :mod:`condi.data.video`, recording the length of every buffer that
    ``concatenate`` builds, and refusing one past ``cap`` frames (a buffer that grows at every
    frame would otherwise fill the machine's memory before a test can fail)."""

    def __init__(self, cap: int) -> None:
        self.sizes: list[int] = []
        self.cap = cap

    def __getattr__(self, name):
        return getattr(np, name)

    def concatenate(self, arrays, *args, **kwargs):
        n = sum(len(a) for a in arrays)
        self.sizes.append(n)
        assert n <= self.cap, f"frame buffer grown to {n} frames"
        return np.concatenate(arrays, *args, **kwargs)


def test_the_frame_buffer_starts_at_the_frame_count_and_doubles(tmp_path, monkeypatch):
    """read_video_frames' buffer (docstring): it starts at the container's frame count, capped at
    INITIAL_FRAME_BUFFER (a header's count never sizes an allocation), or at 1 frame where the
    container says nothing, and doubles when full."""
    rng = np.random.default_rng(0)
    encode_avi(tmp_path / "v.avi", rng.integers(0, 255, (20, 32, 40, 3), dtype=np.uint8), 25)
    ts = tmp_path / "v.ts"
    ts.write_bytes(ts_segment(40, 32, 12, 80))  # MPEG-TS: no frame count
    rec = GrowthRecorder(cap=64)
    monkeypatch.setattr(video_module, "np", rec)
    frames = read_video_frames(tmp_path / "v.avi", 16)
    assert rec.sizes == [] and frames.shape == (20, 16, 16, 3)  # the AVI says 20: no growth
    monkeypatch.setattr(video_module, "INITIAL_FRAME_BUFFER", 4)
    again = read_video_frames(tmp_path / "v.avi", 16)
    assert rec.sizes == [8, 16, 32] and np.array_equal(again, frames)
    rec.sizes.clear()
    monkeypatch.setattr(video_module, "INITIAL_FRAME_BUFFER", 256)
    assert read_video_frames(ts, 16).shape == (12, 16, 16, 3)
    assert rec.sizes == [2, 4, 8, 16]
