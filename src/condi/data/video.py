"""Video probing and decoding with PyAV: one decode path for indexing, caching and prediction.

Decisions (docs/method.md, section 1 and 7):

* A video's frame count ``T`` is the number of frames *our* decoder yields
  (:func:`iter_frames`), because the clip cache splits exactly those frames. The container's
  promise (``stream.frames``: the AVI header, the MP4 sample table; without it the duration
  times the frame rate, e.g. WebM) is used only after a cheap check: seek near its end,
  decode the tail and confirm that the last frame's timestamp is frame ``promised - 1``.
  Otherwise (no promise, variable frame rate, truncated file) every frame is decoded and
  counted.
* A file is *truncated* when its container promises more frames than decode: more than
  ``TRUNCATION_TOLERANCE`` of them, and at least 3. Smaller shortfalls (a dropped frame in an
  AVI) keep the video with the decoded count. A container that promises nothing (no count,
  no duration) cannot be recognised as truncated.
* Frames are resized so that the short side is ``short_side`` (aspect kept, swscale bilinear,
  which averages over the source footprint when shrinking, applied in the decoder's YUV
  format), converted to RGB and center-cropped to ``short_side x short_side``.
  :func:`read_video_frames` is the only place this happens.
* A packet the decoder rejects (corrupt data) is skipped, the same way while counting and
  while reading, so that ``T`` and the decoded frames agree.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

log = logging.getLogger(__name__)

TRUNCATION_TOLERANCE = 0.05  # share of the promised frames that may fail to decode
# Frames the decode buffer starts with (it doubles as frames decode): a header that claims
# 4.29e9 frames must not size an allocation (15 TiB at 128 px).
INITIAL_FRAME_BUFFER = 256
_INTERPOLATION = "BILINEAR"


class VideoError(Exception):
    """A video cannot be used; ``reason`` is a short human-readable cause."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class VideoInfo:
    """What indexing needs to know about a video."""

    num_frames: int
    fps: float
    width: int
    height: int
    duration: float  # seconds, num_frames / fps
    codec: str


def _open(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise VideoError(path, "missing: listed but not on disk")
    if path.stat().st_size == 0:
        raise VideoError(path, "empty file (0 bytes)")
    try:
        return av.open(str(path), mode="r")
    except av.error.FFmpegError as exc:
        raise VideoError(path, f"cannot open: {exc.strerror or exc}") from exc


def _video_stream(
    container: av.container.InputContainer, path: Path
) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise VideoError(path, "no video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        raise VideoError(path, "unknown codec (no decoder)")
    stream.thread_type = "AUTO"
    return stream


def _fps(stream: av.video.stream.VideoStream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def iter_frames(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> Iterator[av.VideoFrame]:
    """Decoded frames in order; packets the decoder rejects as invalid are skipped."""
    for packet in container.demux(stream):
        try:
            yield from packet.decode()
        except (av.error.InvalidDataError, av.error.UndefinedError) as exc:
            log.debug("%s: skipping a corrupt packet: %s", container.name, exc)


def _promised_frames(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, fps: float
) -> int:
    """Frames the container promises: its frame count, else the video stream's duration times
    the rate, else (single-stream files, e.g. WebM) the file's duration times the rate; 0 if
    unknown."""
    if stream.frames:
        return int(stream.frames)
    if fps <= 0:
        return 0
    if stream.duration and stream.time_base:
        return round(float(stream.duration * stream.time_base) * fps)
    if len(container.streams) == 1 and container.duration:
        return round(container.duration / av.time_base * fps)
    return 0


def _tail_agrees(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, n: int, fps: float
) -> bool:
    """True if the frame decoded last is frame ``n - 1`` by its timestamp (constant frame rate)."""
    if n <= 0 or fps <= 0 or stream.time_base is None:
        return False
    start = stream.start_time or 0
    target = start + int((n - 1) / fps / stream.time_base)
    try:
        container.seek(target, stream=stream, backward=True, any_frame=False)
        last = None
        for frame in iter_frames(container, stream):
            if frame.pts is not None:
                last = frame.pts
    except av.error.FFmpegError:
        return False
    if last is None:
        return False
    return round(float((last - start) * stream.time_base) * fps) == n - 1


def _count_decoded(path: Path) -> int:
    with _open(path) as container:
        stream = _video_stream(container, path)
        try:
            return sum(1 for _ in iter_frames(container, stream))
        except av.error.FFmpegError as exc:
            raise VideoError(path, f"decode error: {exc.strerror or exc}") from exc


def probe_video(path: str | os.PathLike, count: str = "auto") -> VideoInfo:
    """Frame count, rate, size and codec of a video; raises :class:`VideoError` with a reason.

    ``count``: ``"auto"`` trusts the container's frame count when the decoded tail confirms it
    (module docstring), ``"decode"`` always decodes and counts every frame.
    """
    if count not in ("auto", "decode"):
        raise ValueError(f"count must be 'auto' or 'decode', got {count!r}")
    path = Path(path)
    with _open(path) as container:
        stream = _video_stream(container, path)
        cc = stream.codec_context
        fps = _fps(stream)
        promised = _promised_frames(container, stream, fps)
        width, height, codec = int(cc.width), int(cc.height), cc.name
        trusted = count == "auto" and _tail_agrees(container, stream, promised, fps)
    n = promised if trusted else _count_decoded(path)
    if n == 0:
        raise VideoError(path, "no decodable frames")
    if promised - n >= max(3, math.ceil(TRUNCATION_TOLERANCE * promised)):
        raise VideoError(path, f"truncated: the container promises {promised} frames, {n} decode")
    if width <= 0 or height <= 0:
        raise VideoError(path, f"invalid frame size {width}x{height}")
    if fps <= 0:
        raise VideoError(path, "unknown frame rate")
    return VideoInfo(n, fps, width, height, n / fps, codec)


def resized_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) after scaling the short side to ``short_side``, aspect ratio kept."""
    if height <= width:
        return max(short_side, round(width * short_side / height)), short_side
    return short_side, max(short_side, round(height * short_side / width))


def read_video_frames(
    path: str | os.PathLike, short_side: int, thread_type: str = "AUTO"
) -> np.ndarray:
    """All frames of a video, resized (short side) and center-cropped: (T, S, S, 3) uint8 RGB.

    The buffer grows as frames decode (from :data:`INITIAL_FRAME_BUFFER`, or the container's
    frame count when smaller); the container's count never sizes it.

    Scaling happens in the decoder's pixel format (YUV) and RGB conversion after it, at the
    small size, each with its own reused swscale context: twice as fast as one combined
    reformat for 320x240 sources (benchmarks/data_decode.py). ``thread_type`` is the decoder's
    threading (``"AUTO"``: frame and slice threads; ``"NONE"`` is faster for tiny frames).
    """
    path = Path(path)
    s = short_side
    scale, to_rgb = VideoReformatter(), VideoReformatter()
    with _open(path) as container:
        stream = _video_stream(container, path)
        stream.thread_type = thread_type
        # the header's frame count is a hint, never trusted with memory: start small, double
        n0 = min(max(int(stream.frames or 0), 1), INITIAL_FRAME_BUFFER)
        out = np.empty((n0, s, s, 3), np.uint8)
        t, size = 0, None
        try:
            for frame in iter_frames(container, stream):
                if size is None or (frame.width, frame.height) != size:
                    size = frame.width, frame.height
                    w, h = resized_size(frame.width, frame.height, s)
                    x0, y0 = (w - s) // 2, (h - s) // 2
                small = scale.reformat(
                    frame, width=w, height=h, interpolation=_INTERPOLATION, threads=1
                )
                rgb = to_rgb.reformat(small, format="rgb24", threads=1).to_ndarray()
                if t == len(out):
                    out = np.concatenate([out, np.empty_like(out)])
                out[t] = rgb[y0 : y0 + s, x0 : x0 + s]
                t += 1
        except av.error.FFmpegError as exc:
            raise VideoError(path, f"decode error after {t} frames: {exc.strerror or exc}") from exc
    if t == 0:
        raise VideoError(path, "no decodable frames")
    return out[:t]


def clip_frame_indices(num_frames: int, starts: np.ndarray, clip_len: int) -> np.ndarray:
    """(n, L) frame positions of clips starting at ``starts``; positions at or past
    ``num_frames`` repeat the last frame (docs/method.md, notation: padding)."""
    return np.minimum(np.asarray(starts)[:, None] + np.arange(clip_len), num_frames - 1)


def split_clips(frames: np.ndarray, clip_len: int) -> np.ndarray:
    """Cut (T, ...) frames into N = ceil(T / L) clips (N, L, ...), padding with the final frame."""
    n = math.ceil(len(frames) / clip_len)
    return frames[clip_frame_indices(len(frames), np.arange(n) * clip_len, clip_len)]


def read_video_clips(
    path: str | os.PathLike, clip_len: int, short_side: int, thread_type: str = "AUTO"
) -> np.ndarray:
    """All clips of one video: (N, L, S, S, 3) uint8, N = ceil(T / L), last clip padded
    (``thread_type``: the decoder's threading, :func:`read_video_frames`)."""
    return split_clips(read_video_frames(path, short_side, thread_type), clip_len)
