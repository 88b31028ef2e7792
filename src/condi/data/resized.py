"""The resized store: the second data path (``datasets.<d>.storage: resized``), for datasets
whose clip cache would not fit on disk (docs/method.md, section 7, "Two data paths").

``condi data resize`` re-encodes every video of a dataset's clip index(es) once, as the clip
cache sees it: :func:`condi.data.video.read_video_frames` (short side resized to S, center
crop S x S, RGB), cut or padded to exactly the index's ``num_frames`` frames (the index wins,
as in :mod:`condi.data.clips`). Training and scoring then decode each clip on the fly, in
DataLoader worker processes (:class:`condi.data.dataset.ResizedClipDataset`), and crop, flip
and normalise it exactly as the cache path does. The clip index, the clips' rows and their
seeded crops and flips are the same; only the pixels may differ, by the codec's error.

The codec (``resize.crf``, ``resize.preset`` in params.yaml):

* ``crf: 0``: H.264 lossless in RGB (``libx264rgb``, qp 0). A clip decodes to the cache's clip
  bit for bit, so every crop, score and table equals the cache path's. About half the size of
  the cache on noisy video, far more on clean synthetic video (``benchmarks/data_path.py``).
* ``crf > 0`` (default 18, x264's "visually lossless"): H.264 in YUV 4:2:0 (4:4:4 when S is
  odd), BT.601 limited range, converted from and back to RGB with swscale. Some 60x smaller
  than the cache; a decoded clip differs from the cache's by the codec's error, which the
  tests bound (:data:`LOSSY_MEAN_TOLERANCE`, :data:`LOSSY_CLIP_TOLERANCE`) and the benchmark reports.

Every clip starts on a keyframe: an IDR frame every L frames (L = the index's clip length),
exactly at the clip starts (clip i is frames ``[iL, iL + L)``), closed GOPs, no scene-cut
keyframes. A clip is thus one seek and at most L decoded frames, and the file is still an
ordinary MP4 that any player opens.

Layout of a store folder: ``manifest.parquet`` (one row per video: ``video`` (the index's path),
``file`` (relative to the store), ``num_frames``, ``fps_num``, ``fps_den``, ``bytes``; its schema
metadata holds JSON under ``b"condi"``: version, short_side, clip_len, crf, preset, codec,
pix_fmt) and ``videos/<video>.mp4``. It is built in a hidden ``.<name>.partial`` folder beside
it and renamed when complete, so the store is complete or absent; a killed build resumes there,
keeping every video already written (with the same settings).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from av.video.frame import PictureType
from av.video.reformatter import ColorRange, Colorspace, VideoReformatter
from tqdm import tqdm

from condi.data.video import VideoError, clip_frame_indices, read_video_frames
from condi.io import atomic_path, write_json

log = logging.getLogger(__name__)

STORE_VERSION = 1
MANIFEST = "manifest.parquet"
META_KEY = b"condi"
SETTINGS = "settings.json"  # in the partial folder: what the videos there were written with
MANIFEST_COLUMNS = ("video", "file", "num_frames", "fps_num", "fps_den", "bytes")
# The lossy store's stated tolerance at crf 18: mean absolute error per uint8 value (0-255)
# of its decoded clips against the cache's, over all clips and for any one clip, on the
# project's fixtures (tests/data/test_resized.py; 36x36 frames, where 4:2:0 chroma costs most).
# A property of the content as much as of the codec: benchmarks/data_path.py measures it on
# its own videos. Pixel noise is the worst case (4:2:0 cannot keep per-pixel colour).
LOSSY_MEAN_TOLERANCE = 2.5
LOSSY_CLIP_TOLERANCE = 8.0
PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)
_COLOR = {"colorspace": Colorspace.ITU601, "range": ColorRange.MPEG}


@dataclass(frozen=True)
class ResizeSettings:
    """How a store's videos are written (the module docstring)."""

    short_side: int
    clip_len: int
    crf: int = 18
    preset: str = "medium"

    def __post_init__(self) -> None:
        if self.short_side < 1 or self.clip_len < 1:
            raise ValueError(f"short_side and clip_len must be >= 1, got {self}")
        if not 0 <= self.crf <= 51:
            raise ValueError(f"crf must be in 0..51 (0: lossless), got {self.crf}")
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {PRESETS}, got {self.preset!r}")

    @property
    def lossless(self) -> bool:
        return self.crf == 0

    @property
    def codec(self) -> str:
        return "libx264rgb" if self.lossless else "libx264"

    @property
    def pix_fmt(self) -> str:
        if self.lossless:
            return "rgb24"
        return "yuv420p" if self.short_side % 2 == 0 else "yuv444p"

    def meta(self) -> dict[str, Any]:
        return {
            "version": STORE_VERSION,
            **asdict(self),
            "codec": self.codec,
            "pix_fmt": self.pix_fmt,
        }


def video_file(video: str) -> str:
    """The store's file of an index video (relative to the store): ``videos/<video>.mp4``."""
    return f"videos/{video}.mp4"


def store_rate(fps: float) -> Fraction:
    """The frame rate a store file is written with: the index's fps as a fraction (29.97 ->
    30000/1001); 25 when the index has none."""
    if not fps or not np.isfinite(fps) or fps <= 0:
        return Fraction(25)
    return Fraction(float(fps)).limit_denominator(1001)


# -- writing ---------------------------------------------------------------------------------


def encode_frames(
    path: str | os.PathLike, frames: np.ndarray, rate: Fraction, settings: ResizeSettings
) -> int:
    """Write ``frames`` ((T, S, S, 3) uint8 RGB) to ``path`` as an MP4 with ``settings``'s codec
    and a keyframe at every multiple of ``clip_len``; atomically. Returns the file's bytes."""
    if frames.ndim != 4 or frames.shape[1:] != (settings.short_side, settings.short_side, 3):
        raise ValueError(f"expected (T, {settings.short_side}, {settings.short_side}, 3) frames")
    L = settings.clip_len
    x264 = f"keyint={L}:min-keyint={L}:scenecut=0:open-gop=0:forced-idr=1"
    options = {"preset": settings.preset, "x264-params": x264}
    options.update({"qp": "0"} if settings.lossless else {"crf": str(settings.crf)})
    path = Path(path)
    to_yuv = VideoReformatter()
    with atomic_path(path, suffix=".mp4") as tmp, av.open(str(tmp), "w", format="mp4") as out:
        stream = out.add_stream(settings.codec, rate=rate, options=options)
        stream.width = stream.height = settings.short_side
        stream.pix_fmt = settings.pix_fmt
        stream.thread_type = "NONE"
        cc = stream.codec_context
        if not settings.lossless:
            cc.colorspace = _COLOR["colorspace"]
            cc.color_range = _COLOR["range"]
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            if not settings.lossless:
                frame = to_yuv.reformat(
                    frame,
                    format=settings.pix_fmt,
                    dst_colorspace=_COLOR["colorspace"],
                    dst_color_range=_COLOR["range"],
                    threads=1,
                )
            frame.pts = i
            frame.pict_type = PictureType.I if i % L == 0 else PictureType.NONE
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path.stat().st_size


def _resize_one(
    src: str, dest: str, num_frames: int, fps: float, settings: ResizeSettings
) -> tuple[int, Fraction, int]:
    """Decode ``src`` as the cache does, cut or pad it to ``num_frames`` and encode it to
    ``dest``; returns ``(frames decoded, rate, bytes)``. Runs in a worker process."""
    frames = read_video_frames(src, settings.short_side, "AUTO")
    decoded = len(frames)
    frames = frames[clip_frame_indices(min(num_frames, decoded), np.array([0]), num_frames)[0]]
    rate = store_rate(fps)
    return decoded, rate, encode_frames(dest, frames, rate, settings)


def _videos_of(indexes: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """One row per video (``video``, ``num_frames``, ``fps``) over every index, in first-seen
    order; a video two indexes disagree on is an error."""
    frames = [df.drop_duplicates("video")[["video", "num_frames", "fps"]] for df in indexes]
    if not frames:
        raise ValueError("no clip index given")
    videos = pd.concat(frames, ignore_index=True)
    counts = videos.groupby("video", sort=False)["num_frames"].nunique()
    if (counts > 1).any():
        bad = list(counts[counts > 1].index[:3])
        raise ValueError(f"the indexes disagree on the frame counts of {bad}; rebuild them")
    return videos.drop_duplicates("video").reset_index(drop=True)


def partial_path(out: Path) -> Path:
    return out.with_name(f".{out.name}.partial")


def _prepare_partial(out: Path, settings: ResizeSettings) -> Path:
    """The partial folder of ``out``: reused when it was written with ``settings``, else new."""
    work = partial_path(out)
    stamp = work / SETTINGS
    if work.is_dir():
        try:
            same = json.loads(stamp.read_text()) == settings.meta()
        except (OSError, ValueError):
            same = False
        if same:
            log.info("%s: resuming the build left by an interrupted run", work)
            return work
        shutil.rmtree(work)
    work.mkdir(parents=True)
    write_json(stamp, settings.meta())
    return work


def _results(
    jobs: list[tuple[str, str, int, float]], settings: ResizeSettings, workers: int
) -> Iterator[tuple[str, tuple[int, Fraction, int] | VideoError]]:
    """(video, result or error) for each job, ``workers`` processes at a time, in order."""

    def call(fn, *args):
        try:
            return fn(*args)
        except VideoError as exc:
            return exc

    if workers <= 1:
        for video, *args in jobs:
            yield video, call(_resize_one, *args, settings)
        return
    with ProcessPoolExecutor(workers) as pool:
        window: list[tuple[str, Future]] = []
        for video, *args in jobs:
            window.append((video, pool.submit(_resize_one, *args, settings)))
            if len(window) > 2 * workers:
                done, future = window.pop(0)
                yield done, call(future.result)
        for done, future in window:
            yield done, call(future.result)


def build_resized_store(
    indexes: Iterable[pd.DataFrame],
    root: str | os.PathLike,
    out: str | os.PathLike,
    settings: ResizeSettings,
    workers: int | None = None,
    progress: bool | None = None,
) -> Path:
    """Re-encode every video of ``indexes`` (one dataset's clip indexes: every fold) under
    ``root`` into the store ``out`` (module docstring); returns ``out``.

    ``workers`` processes (default: the CPU count, at most 8) decode and encode one video each
    at a time. A video already in the partial folder of an interrupted build with the same
    settings is kept. A video that no longer decodes is an error naming it (the index listed it
    as usable), raised after the others are written, so a re-run only redoes the missing ones.
    """
    root, out = Path(root), Path(out)
    indexes = list(indexes)
    clip_lens = {
        int(df.attrs.get("condi", {}).get("clip_len", settings.clip_len)) for df in indexes
    }
    if clip_lens != {settings.clip_len}:
        raise ValueError(
            f"the indexes' clip length {sorted(clip_lens)} differs from {settings.clip_len}"
        )
    videos = _videos_of(indexes)
    work = _prepare_partial(out, settings)
    workers = workers or min(8, os.cpu_count() or 1)
    todo, rows = [], []
    for video, num_frames, fps in videos.itertuples(index=False):
        dest = work / video_file(video)
        rate = store_rate(fps)
        rows.append([video, video_file(video), int(num_frames), rate.numerator, rate.denominator])
        if not dest.is_file():
            todo.append((video, str(root / video), str(dest), int(num_frames), float(fps)))
    log.info(
        "resize: %d videos, %d to encode (S=%d, L=%d, crf %d, %s) into %s",
        len(videos),
        len(todo),
        settings.short_side,
        settings.clip_len,
        settings.crf,
        settings.codec,
        out,
    )
    failed: list[str] = []
    frame_counts = dict(zip(videos["video"], videos["num_frames"].astype(int), strict=True))
    bar = tqdm(
        total=len(todo),
        desc="resize",
        unit="video",
        disable=None if progress is None else not progress,
    )
    for video, result in _results(todo, settings, workers):
        bar.update()
        if isinstance(result, VideoError):
            failed.append(str(result))
            continue
        decoded, _, _ = result
        expected = frame_counts[video]
        if decoded != expected:
            log.warning(
                "%s: decodes to %d frames, the index says %d; using the index",
                video,
                decoded,
                expected,
            )
    bar.close()
    if failed:
        raise VideoError(
            out,
            f"{len(failed)} indexed video(s) could not be re-encoded (the others are kept in "
            f"{work}): " + "; ".join(failed[:5]),
        )
    manifest = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS[:-1]))
    manifest["bytes"] = [(work / f).stat().st_size for f in manifest["file"]]
    _write_manifest(manifest, work / MANIFEST, settings.meta())
    (work / SETTINGS).unlink()
    if out.exists():
        shutil.rmtree(out)
    os.replace(work, out)
    log.info(
        "resized store: %d videos, %.1f MB in %s",
        len(manifest),
        manifest["bytes"].sum() / 1e6,
        out,
    )
    return out


def _write_manifest(df: pd.DataFrame, path: Path, meta: dict[str, Any]) -> None:
    table = pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), META_KEY: json.dumps(meta).encode()}
    )
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


# -- reading ---------------------------------------------------------------------------------


def read_manifest(store: str | os.PathLike) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The store's manifest and its metadata; a clear error when ``store`` is not one."""
    store = Path(store)
    path = store / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"{store}: not a resized store (no {MANIFEST}; run `condi data resize`)"
        )
    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise ValueError(f"{path}: not a condi store manifest (no {META_KEY!r} metadata)")
    meta = json.loads(raw)
    if meta.get("version") != STORE_VERSION:
        raise ValueError(
            f"{store}: store version {meta.get('version')}, this condi reads {STORE_VERSION}; "
            "re-run `condi data resize`"
        )
    return table.to_pandas(), meta


def check_store(store: str | os.PathLike, index: pd.DataFrame, clip_len: int) -> dict[str, Any]:
    """Check that the store holds every video of ``index`` with its frame count, at the
    index's clip length, and that their files exist; returns the store's metadata."""
    manifest, meta = read_manifest(store)
    if int(meta["clip_len"]) != int(clip_len):
        raise ValueError(
            f"{store}: written for clips of {meta['clip_len']} frames, the index has {clip_len}"
        )
    have = manifest.set_index("video")["num_frames"]
    videos = index.drop_duplicates("video").set_index("video")["num_frames"]
    missing = videos.index.difference(have.index)
    if len(missing):
        raise ValueError(
            f"{store}: {len(missing)} video(s) of the index are not in the store, e.g. "
            f"{list(missing[:3])}; re-run `condi data resize`"
        )
    differ = videos[have.reindex(videos.index).to_numpy() != videos.to_numpy()]
    if len(differ):
        raise ValueError(
            f"{store}: frame counts differ from the index for {list(differ.index[:3])}; "
            "re-run `condi data resize`"
        )
    files = manifest.loc[manifest["video"].isin(videos.index), "file"]
    absent = [f for f in files if not (Path(store) / f).is_file()]
    if absent:
        raise FileNotFoundError(f"{store}: {len(absent)} video file(s) missing, e.g. {absent[:3]}")
    return meta


class ClipReader:
    """Decodes clips from a store's files, as RGB frames; one per process (it keeps the file
    of the last clip open, for the next clip of the same video, and reopens in a forked child).

    :meth:`read` returns ``(L, S, S, 3)`` uint8: frames ``[start, start + L)`` of a file of
    ``num_frames`` frames, those past its end repeating its final frame (as the cache does).
    """

    def __init__(self, clip_len: int, lossless: bool) -> None:
        self.clip_len = int(clip_len)
        self.lossless = bool(lossless)
        self._pid: int | None = None
        self._path: str | None = None
        self._container = None
        self._rgb = VideoReformatter()

    def __getstate__(self) -> dict:
        return {"clip_len": self.clip_len, "lossless": self.lossless}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["clip_len"], state["lossless"])

    def close(self) -> None:
        if self._container is not None and self._pid == os.getpid():
            self._container.close()
        self._container = self._path = self._pid = None

    def _open(self, path: str):
        if self._pid != os.getpid():  # inherited from the parent by fork: never shared
            self._container = self._path = None
            self._rgb = VideoReformatter()
        if self._path != path:
            self.close()
            try:
                self._container = av.open(path)
            except (FileNotFoundError, av.error.FFmpegError) as exc:
                raise VideoError(path, f"cannot open the resized video: {exc}") from exc
            stream = self._container.streams.video[0]
            stream.thread_type = "NONE"
            self._path, self._pid = path, os.getpid()
        return self._container

    def _to_rgb(self, frame: av.VideoFrame) -> np.ndarray:
        if self.lossless:
            return self._rgb.reformat(frame, format="rgb24", threads=1).to_ndarray()
        return self._rgb.reformat(
            frame,
            format="rgb24",
            src_colorspace=_COLOR["colorspace"],
            src_color_range=_COLOR["range"],
            dst_color_range=ColorRange.JPEG,
            threads=1,
        ).to_ndarray()

    def _decode(self, path: str, start: int, count: int, from_start: bool) -> list[np.ndarray]:
        container = self._open(path)
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        t0 = stream.start_time or 0
        per_pts = float(stream.time_base * rate)  # frames per pts unit
        target = 0 if from_start else t0 + int(round(start / per_pts))
        container.seek(target, stream=stream, backward=True, any_frame=False)
        out: list[np.ndarray] = []
        for frame in container.decode(stream):
            i = round((frame.pts - t0) * per_pts)
            if i < start:
                continue
            if not out and i > start:  # the seek overshot: decode from the file's start
                if from_start:
                    raise VideoError(path, f"frame {start} is not in the resized video")
                return self._decode(path, start, count, True)
            out.append(self._to_rgb(frame))
            if len(out) == count:
                break
        return out

    def read(self, path: str | os.PathLike, start: int, num_frames: int) -> np.ndarray:
        L = self.clip_len
        count = min(L, num_frames - start)
        if count <= 0:
            raise ValueError(f"{path}: clip start {start} is past its {num_frames} frames")
        path = str(path)
        try:
            frames = self._decode(path, start, count, False)
        except av.error.FFmpegError as exc:
            self.close()
            raise VideoError(path, f"decode error: {exc.strerror or exc}") from exc
        if len(frames) != count:
            self.close()
            raise VideoError(
                path,
                f"{len(frames)} of frames {start}..{start + count - 1} decode; "
                "re-run `condi data resize`",
            )
        clip = np.stack(frames)
        return clip[np.minimum(np.arange(L), count - 1)]
