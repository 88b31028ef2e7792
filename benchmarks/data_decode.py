"""Decode throughput of our clip path against the ``ffmpeg`` command line on the same files.

    PYTHONPATH=src python benchmarks/data_decode.py [--root DIR] [--short-side 128]

Without ``--root`` it generates two synthetic sets in a temporary folder: UCF-101-sized
videos (320x240, MPEG-4 part 2 in AVI, as the real dataset) and the default preset's 64x48
videos. For each set it reports frames per second of

* ``ffmpeg decode``: ``ffmpeg -f concat -i LIST -f null -`` (decode only, one process, its own
  threading), the reference of the target ratio (ours / ffmpeg >= 0.7);
* ``ffmpeg decode+scale``: the same with ``scale,crop,format=rgb24``: the same work as ours;
* ``read_video_frames``: our decoder, one video after another, per decoder threading mode;
* ``build_clip_cache``: the whole cache path (decode, resize, crop, clip, memmap write), with
  1 and 2 videos decoded concurrently.

Without ``ffmpeg`` on PATH the ffmpeg rows are skipped with a message.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from condi.data.clips import build_clip_cache
from condi.data.index import build_index
from condi.data.synthetic import generate
from condi.data.video import read_video_frames


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def _ffmpeg(files: list[Path], extra: list[str], workdir: Path) -> float:
    listing = workdir / "concat.txt"
    listing.write_text("".join(f"file '{f.resolve()}'\n" for f in files))
    cmd = [
        "ffmpeg",
        "-nostdin",
        "-v",
        "error",
        "-f",
        "concat",
        "-safe",
        "0",
        "-i",
        str(listing),
        *extra,
        "-f",
        "null",
        "-",
    ]
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t


def bench(root: Path, short_side: int, repeat: int, workdir: Path) -> None:
    index, _ = build_index("ucf101", root, 1, val_fraction=0.0)
    videos = list(dict.fromkeys(index["video"]))
    files = [root / v for v in videos]
    frames = int(index.groupby("video")["num_frames"].first().sum())
    w, h = int(index["width"].iloc[0]), int(index["height"].iloc[0])
    print(
        f"\n{root}: {len(files)} videos, {frames} frames of {w}x{h}, short side {short_side}, {os.cpu_count()} CPUs"
    )
    rows: list[tuple[str, float]] = []
    if shutil.which("ffmpeg"):
        rows.append(("ffmpeg decode", frames / _best(lambda: _ffmpeg(files, [], workdir), repeat)))
        vf = f"scale=-2:{short_side}:flags=bilinear,crop={short_side}:{short_side},format=rgb24"
        rows.append(
            (
                "ffmpeg decode+scale",
                frames / _best(lambda: _ffmpeg(files, ["-vf", vf], workdir), repeat),
            )
        )
    else:
        print("ffmpeg not found on PATH: skipping the ffmpeg comparison (apt-get install ffmpeg)")
    for mode in ("AUTO", "NONE"):
        dt = _best(
            lambda mode=mode: [read_video_frames(f, short_side, thread_type=mode) for f in files],
            repeat,
        )
        rows.append((f"read_video_frames thread_type={mode}", frames / dt))
    cache = workdir / "cache.npy"
    for mode in ("AUTO", "NONE"):
        for workers in (1, 2):
            dt = _best(
                lambda mode=mode, workers=workers: build_clip_cache(
                    index,
                    root,
                    cache,
                    16,
                    short_side,
                    workers=workers,
                    thread_type=mode,
                    progress=False,
                ),
                repeat,
            )
            rows.append((f"build_clip_cache workers={workers} thread_type={mode}", frames / dt))
    cache.unlink(missing_ok=True)
    ref = rows[0][1] if rows[0][0] == "ffmpeg decode" else None
    for name, fps in rows:
        ratio = f"  ratio to ffmpeg decode {fps / ref:.2f}" if ref else ""
        print(f"  {name:<45} {fps:9.0f} frames/s{ratio}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--root", type=Path, help="a dataset in the UCF-101 layout (fold 1); default: synthetic"
    )
    parser.add_argument(
        "--short-side", type=int, default=None, help="default: 128 for 320x240, 36 for 64x48"
    )
    parser.add_argument("--repeat", type=int, default=2, help="best of this many runs")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if args.root:
            bench(args.root, args.short_side or 128, args.repeat, workdir)
            return 0
        ucf = workdir / "ucf_sized"
        generate(
            ucf,
            num_classes=8,
            train_per_class=4,
            test_per_class=1,
            height=240,
            width=320,
            min_clips=8,
            max_clips=16,
        )
        bench(ucf, args.short_side or 128, args.repeat, workdir)
        small = workdir / "default_sized"
        generate(small, num_classes=4, train_per_class=8, test_per_class=2)
        bench(small, args.short_side or 36, args.repeat, workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
