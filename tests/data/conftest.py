"""Fixtures for the data tests: the ``tiny`` synthetic dataset, its index and clip cache
(built once per session), and writers for deliberately broken videos."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from condi.data.clips import build_clip_cache
from condi.data.index import build_index
from condi.data.synthetic import encode_avi
from tests.conftest import tiny_synthetic, write_video  # noqa: F401 (tests import it here)

SHORT_SIDE = 36


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    return tiny_synthetic(tmp_path_factory.mktemp("synth_tiny"))


@pytest.fixture(scope="session")
def tiny_index(tiny_root):
    return build_index("ucf101", tiny_root, 1, clip_len=16, val_fraction=0.1, seed=0)


@pytest.fixture(scope="session")
def tiny_cache(tiny_root, tiny_index, tmp_path_factory) -> Path:
    df, _ = tiny_index
    out = tmp_path_factory.mktemp("cache") / "clips.npy"
    return build_clip_cache(df, tiny_root, out, 16, SHORT_SIDE, workers=1, progress=False)


def _decoded_frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.fixture
def decoded_frame_count():
    """Frames PyAV decodes from a file, counted independently of condi's code."""
    return _decoded_frame_count


def random_frames(n: int, height: int = 32, width: int = 40, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (n, height, width, 3), dtype=np.uint8)


def write_empty_avi(path: Path) -> Path:
    """A valid AVI header with a video stream and no frames."""
    out = av.open(str(path), "w", format="avi")
    stream = out.add_stream("mpeg4", rate=25)
    stream.width, stream.height, stream.pix_fmt = 40, 32, "yuv420p"
    out.start_encoding()
    out.close()
    return path


@pytest.fixture
def video_file():
    """Writer of one encoded video: ``video_file(path, frames, codec=, fmt=, options=, ...)``."""
    return write_video


@pytest.fixture
def bad_videos():
    """Write one file of each bad kind into a folder; returns {file name: expected reason start}."""

    def make(folder: Path) -> dict[str, str]:
        folder.mkdir(parents=True, exist_ok=True)
        frames = random_frames(40)
        (folder / "empty.avi").write_bytes(b"")
        encode_avi(folder / "full.avi", frames, 25)
        data = (folder / "full.avi").read_bytes()
        (folder / "truncated.avi").write_bytes(data[: len(data) // 2])
        (folder / "codec.avi").write_bytes(data.replace(b"FMP4", b"ZZZZ"))
        (folder / "full.avi").unlink()
        write_video(folder / "full.mp4", frames)
        data = (folder / "full.mp4").read_bytes()
        (folder / "nomoov.mp4").write_bytes(data[: len(data) // 2])
        (folder / "full.mp4").unlink()
        write_empty_avi(folder / "noframes.avi")
        return {
            "empty.avi": "empty file",
            "truncated.avi": "truncated",
            "codec.avi": "unknown codec",
            "nomoov.mp4": "cannot open",
            "noframes.avi": "no decodable frames",
            "missing.avi": "missing",
        }

    return make
