"""The two data paths at paper scale (issue 19): the clip cache against the resized store.

    PYTHONPATH=src python benchmarks/data_path.py [--root DIR --kind KIND] [--crf 0 18 23]

Measures, in this one run, on the same videos (short side 128, 112x112 crops, 16-frame clips):

* **storage per hour of video**: the clip cache (uint8 frames, ``condi data cache``) and the
  resized store at each ``--crf`` (``condi data resize``), with the time the resize took per
  hour of video (one process) and each store's mean absolute error against the cache (uint8);
* **clips/s per worker**: training items (decode where needed, random 112x112 crop, flip,
  normalise) read one after another in one process with one thread, as one DataLoader worker
  reads them, in a shuffled order;
* **step times** of the paper's teacher (3D-ResNeXt-101 32x4d) and students (3D-ShuffleNetV2
  2.0x, 3D-MobileNetV2 1.0x), forward + backward + SGD step at ``--batch`` clips on this CPU,
  measured here with ``condi.models`` (``condi report speed`` times inference only; on a GPU the
  steps are far shorter and need proportionally more workers);
* with ``--speed results/speed.csv`` (``condi report speed``, on CPU and on CUDA where it ran),
  the **inference** time per clip of each model from that command (the teacher's from dense,
  the student's from ConDi at its largest K) and the workers each data path needs to keep the
  scoring jobs (every clip through a model, no backward) under the same 10% wait;
* **workers needed** to keep the data wait under 10% of a step: a step of compute time T
  waits ``max(0, B / (W r) - T)`` for W workers of r clips/s each, whose share stays under 10%
  when ``W >= 0.9 B / (r T)``, for workers on cores of their own (``--check N`` measures what
  a real DataLoader with 1 and 2 workers delivers over N batches against W x r: on a shared
  machine, less);
* an **extrapolation** of these measured rates to full Kinetics-400 (about 240k training
  videos of about 10 s: 667 hours), stated as such.

Without ``--root`` the videos are stand-ins made here: ``--videos`` clips of ``--seconds`` s at
25 fps and 320x240 (Kinetics' and UCF-101's usual size), H.264 CRF 23 as YouTube serves them,
each a camera panning and zooming over a photograph (matplotlib's sample
``grace_hopper.jpg``) with mild sensor noise and a moving object. Real videos compress
differently (more texture and motion cost more bits): give ``--root`` and ``--kind`` (any
reader: ucf101, kinetics, ssv2, folder) to measure on them.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
import torch

from condi.data.clips import build_clip_cache
from condi.data.dataset import ClipDataset, ResizedClipDataset
from condi.data.index import build_index
from condi.data.resized import ClipReader, ResizeSettings, build_resized_store, video_file
from condi.models import build_model

KINETICS_VIDEOS = 240_000
KINETICS_SECONDS = 10.0
MODELS = {
    "teacher ResNeXt-101": ("resnext101", {}),
    "student ShuffleNetV2 2.0x": ("shufflenetv2", {"width_mult": 2.0}),
    "student MobileNetV2 1.0x": ("mobilenetv2", {"width_mult": 1.0}),
}


# -- stand-in videos -------------------------------------------------------------------------


def _photo() -> np.ndarray:
    import matplotlib.cbook as cbook
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        return np.asarray(Image.open(f).convert("RGB"))


def make_videos(root: Path, n: int, seconds: float, seed: int = 0) -> Path:
    """``n`` stand-in videos in class folders (``kind: folder``), 320x240 at 25 fps."""
    from PIL import Image

    photo = _photo()
    h, w = photo.shape[:2]
    rng = np.random.default_rng(seed)
    frames_n = round(seconds * 25)
    for i in range(n):
        path = root / f"class{i % 2}" / f"video{i:02d}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        phase = rng.uniform(0, 6, 4)
        with av.open(str(path), "w") as out:
            stream = out.add_stream("libx264", rate=Fraction(25), options={"crf": "23"})
            stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
            for t in range(frames_n):
                zoom = 1.0 + 0.25 * math.sin(t / 45 + phase[0])
                cw, ch = int(360 / zoom), int(270 / zoom)
                x0 = int((w - cw) / 2 + 50 * math.sin(t / 35 + phase[1]))
                y0 = int((h - ch) / 2 + 50 * math.cos(t / 30 + phase[2]))
                view = Image.fromarray(photo[y0 : y0 + ch, x0 : x0 + cw]).resize(
                    (320, 240), Image.BILINEAR
                )
                f = np.asarray(view).astype(np.float32)
                yy, xx = np.mgrid[0:240, 0:320]
                cx = 160 + 120 * math.sin(t / 20 + phase[3])
                ball = ((xx - cx) ** 2 + (yy - 170) ** 2) < 20**2
                f[ball] = (220, 60, 40)
                f += rng.normal(0, 1.5, f.shape)
                frame = np.clip(f, 0, 255).astype(np.uint8)
                out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            out.mux(stream.encode())
    return root


# -- measurements ----------------------------------------------------------------------------


def items_per_second(ds, n: int, seed: int) -> float:
    """Items read one after another in this process (one thread), in a shuffled order."""
    order = np.random.default_rng(seed).permutation(len(ds))
    order = np.resize(order, n)
    ds[int(order[0])]  # open / map once
    t = time.perf_counter()
    for i in order:
        ds[int(i)]
    return n / (time.perf_counter() - t)


def store_error(df: pd.DataFrame, cache: Path, store: Path, clip_len: int, crf: int) -> float:
    """Mean absolute error (uint8) of every clip of the store against the cache's."""
    arr = np.load(cache, mmap_mode="r")
    reader = ClipReader(clip_len, crf == 0)
    total = 0.0
    for row, r in df.iterrows():
        clip = reader.read(store / video_file(r["video"]), r["start_frame"], r["num_frames"])
        total += np.abs(clip.astype(np.int16) - arr[row]).mean()
    return total / len(df)


def step_time(arch: str, kwargs: dict, batch: int, clip_len: int, crop: int, steps: int) -> float:
    """Median seconds of forward + backward + SGD step on random clips (after one warm-up)."""
    torch.manual_seed(0)
    model = build_model(arch, 400, **kwargs)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, clip_len, crop, crop)
    y = torch.randint(0, 400, (batch,))
    times = []
    for i in range(steps + 1):
        t = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t)
    return float(np.median(times))


def workers_needed(batch: int, rate: float, step: float, share: float = 0.1) -> int:
    """Fewest workers of ``rate`` clips/s each that keep the wait under ``share`` of a step of
    compute time ``step`` (module docstring)."""
    return max(1, math.ceil((1 - share) * batch / (rate * step)))


def inference_clip_times(speed_csv: Path) -> pd.DataFrame:
    """Seconds per clip of each model at inference, from ``condi report speed``'s CSV (mode
    ``model``, the models alone at their fastest batch sizes): the teacher's from dense (time per
    video over clips per video); the student's from ConDi at its largest K without a split,
    whose time is ``teacher_clips x teacher's + student_clips x student's`` per video. One row
    per (device, dataset, model)."""
    df = pd.read_csv(speed_csv, dtype={"K": str})
    df = df[df["mode"] == "model"]
    if df.empty:
        raise SystemExit(f"{speed_csv}: no rows of mode 'model' (condi report speed's CSV?)")
    rows = []
    for (device, dataset, teacher, student), g in df.groupby(
        ["device", "dataset", "teacher", "student"], sort=False
    ):
        dense = g[g["method"] == "dense"].iloc[0]
        t_teacher = dense["time_s"] / dense["teacher_clips_per_video"]
        condi = g[(g["method"] == "condi_sr") & g["Ks"].isna()]
        best = condi.loc[pd.to_numeric(condi["K"]).idxmax()]
        t_student = (best["time_s"] - best["teacher_clips_per_video"] * t_teacher) / best[
            "student_clips_per_video"
        ]
        for model, seconds in ((teacher, t_teacher), (student, t_student)):
            rows.append(
                {"device": device, "dataset": dataset, "model": model, "s_per_clip": seconds}
            )
    return pd.DataFrame(rows).drop_duplicates(["device", "dataset", "model"])


def loader_rate(ds, batch: int, workers: int, batches: int) -> float:
    """Clips/s a real DataLoader with ``workers`` workers delivers to a training loop that
    does nothing else (the first batch, the workers' start, is not timed)."""
    n = batch * (batches + 1)
    sampler = torch.utils.data.RandomSampler(ds, replacement=True, num_samples=n)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, sampler=sampler, num_workers=workers)
    it = iter(loader)
    next(it)
    t = time.perf_counter()
    for _ in it:
        pass
    return batch * batches / (time.perf_counter() - t)


def size_of(path: Path) -> int:
    return (
        path.stat().st_size
        if path.is_file()
        else sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--root", type=Path, help="a dataset to measure on (default: stand-ins)")
    ap.add_argument("--kind", default="folder", help="its reader (with --root)")
    ap.add_argument("--videos", type=int, default=6, help="stand-in videos")
    ap.add_argument("--seconds", type=float, default=10.0, help="stand-in video length")
    ap.add_argument("--short-side", type=int, default=128)
    ap.add_argument("--crop", type=int, default=112)
    ap.add_argument("--clip-len", type=int, default=16)
    ap.add_argument("--crf", type=int, nargs="+", default=[0, 18, 23])
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--items", type=int, default=300, help="training items timed per path")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=2, help="timed training steps per model")
    ap.add_argument("--models", nargs="*", default=list(MODELS), help="subset of the models")
    ap.add_argument("--check", type=int, default=0, help="steps of the DataLoader check")
    ap.add_argument(
        "--speed", type=Path, help="condi report speed's CSV: workers for its inference times"
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    S, L, C = args.short_side, args.clip_len, args.crop
    print(
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start; "
        f"torch {torch.__version__}, PyAV {av.__version__}"
    )

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.root is None:
            t = time.perf_counter()
            root = make_videos(tmp / "videos", args.videos, args.seconds)
            kind = "folder"
            print(f"{args.videos} stand-in videos of {args.seconds:g} s made in "
                  f"{time.perf_counter() - t:.1f} s")  # fmt: skip
        else:
            root, kind = args.root, args.kind
        df, _ = build_index(kind, root, 1, clip_len=L, val_fraction=0.0, seed=0)
        videos = df.drop_duplicates("video")
        hours = float(videos["duration"].sum()) / 3600
        sources = sum((root / v).stat().st_size for v in videos["video"])
        print(
            f"{len(videos)} videos, {hours * 3600:.0f} s, {len(df)} clips of {L} frames; "
            f"sources {sources / hours / 1e9:.2f} GB per hour"
        )

        # -- storage and build time --------------------------------------------------------
        t = time.perf_counter()
        cache = build_clip_cache(df, root, tmp / "clips.npy", L, S, workers=1, progress=False)
        rows = [("cache (uint8 memmap)", size_of(cache), time.perf_counter() - t, 0.0)]
        stores = {}
        for crf in args.crf:
            t = time.perf_counter()
            store = build_resized_store(
                [df], root, tmp / f"store{crf}", ResizeSettings(S, L, crf, args.preset),
                workers=1, progress=False,
            )  # fmt: skip
            took = time.perf_counter() - t
            stores[crf] = store
            name = f"resized crf {crf}" + (" (lossless)" if crf == 0 else "")
            rows.append((name, size_of(store), took, store_error(df, cache, store, L, crf)))
        print(f"\nstorage at short side {S} (per hour of video; build time 1 process):")
        print(f"  {'path':<26}{'GB/hour':>9}{'vs cache':>10}{'build s/hour':>14}{'MAE uint8':>11}")
        cache_bytes = rows[0][1]
        for name, size, took, err in rows:
            print(
                f"  {name:<26}{size / hours / 1e9:>9.3f}{cache_bytes / size:>9.1f}x"
                f"{took / hours:>14.0f}{err:>11.3f}"
            )

        # -- clips/s per worker ----------------------------------------------------------
        labels = df["label"].to_numpy()
        all_rows = np.arange(len(df))
        kw = dict(crop_size=C, train=True, mean=[0.45] * 3, std=[0.225] * 3, aug_seed=0)
        datasets = {"cache": ClipDataset(cache, all_rows, labels, **kw)}
        for crf, store in stores.items():
            datasets[f"resized crf {crf}"] = ResizedClipDataset(store, df, all_rows, labels, **kw)
        rates = {name: items_per_second(ds, args.items, 0) for name, ds in datasets.items()}
        print(f"\ntraining items ({C}x{C}, {L} frames) per second, one worker (1 thread):")
        for name, r in rates.items():
            print(f"  {name:<26}{r:>8.0f} clips/s  ({1000 / r:.2f} ms a clip)")

        # -- step times and workers --------------------------------------------------------
        torch.set_num_threads(os.cpu_count() or 1)
        steps = {}
        for label in args.models:
            arch, mkw = MODELS[label]
            steps[label] = step_time(arch, mkw, args.batch, L, C, args.steps)
        lossy = [n for n in rates if n.startswith("resized") and not n.endswith(" 0")]
        main_store = lossy[0] if lossy else next(n for n in rates if n.startswith("resized"))
        print(f"\nworkers for a data wait < 10% at batch {args.batch}:")
        if steps:
            print(
                f"  step time on this CPU ({torch.get_num_threads()} threads, measured here with "
                "condi.models) and the workers it needs per path:"
            )
            header = "".join(f"{n:>22}" for n in rates)
            print(f"  {'model':<28}{'step s':>8}{header}")
        for label, t_step in steps.items():
            need = "".join(f"{workers_needed(args.batch, r, t_step):>22d}" for r in rates.values())
            print(f"  {label:<28}{t_step:>8.2f}{need}")
        for label, t_step in steps.items():
            r = rates[main_store]
            share0 = (args.batch / r) / (t_step + args.batch / r)
            print(f"  {label}: {main_store} without workers (decoded in the training "
                  f"process) waits {share0:.1%} of a step")  # fmt: skip
        print("  by the step's compute time T (a GPU's step: W >= 0.9 B / (r T) with its T):")
        grid = (1.0, 0.3, 0.1, 0.03, 0.01)
        print(f"  {'path':<26}" + "".join(f"{f'T={t * 1000:g} ms':>12}" for t in grid))
        for name, r in rates.items():
            need = "".join(f"{workers_needed(args.batch, r, t):>12d}" for t in grid)
            print(f"  {name:<26}{need}")
        if args.speed is not None:
            clip_times = inference_clip_times(args.speed)
            print(
                f"  scoring (inference) at {args.speed}'s time per clip (models alone, fastest "
                "batch; W >= 0.9 / (r t)), workers per path:"
            )
            header = "".join(f"{n:>22}" for n in rates)
            print(f"  {'device, dataset, model':<44}{'ms/clip':>8}{header}")
            for r in clip_times.itertuples():
                need = "".join(
                    f"{workers_needed(1, rate, r.s_per_clip):>22d}" for rate in rates.values()
                )
                name = f"{r.device}, {r.dataset}, {r.model}"
                print(f"  {name:<44}{r.s_per_clip * 1000:>8.1f}{need}")
        if args.check:
            # the estimate's premise: W workers deliver W times one worker's rate
            torch.set_num_threads(1)
            r = rates[main_store]
            for w in sorted({1, min(2, os.cpu_count() or 1)}):
                got = loader_rate(datasets[main_store], args.batch, w, args.check)
                print(f"  check ({main_store}): a DataLoader with {w} worker(s) delivers "
                      f"{got:.0f} clips/s, {got / (w * r):.0%} of {w} x {r:.0f}")  # fmt: skip

        # -- extrapolation -----------------------------------------------------------------
        k_hours = KINETICS_VIDEOS * KINETICS_SECONDS / 3600
        clips = KINETICS_VIDEOS * math.ceil(KINETICS_SECONDS * 25 / L)
        print(
            f"\nEXTRAPOLATION (not measured) to full Kinetics-400: {KINETICS_VIDEOS} training "
            f"videos x {KINETICS_SECONDS:g} s = {k_hours:.0f} hours at 25 fps, "
            f"{clips / 1e6:.2f} M clips an epoch, from the rates above:"
        )
        for name, size, took, _ in rows:
            print(
                f"  {name:<26}{size / hours * k_hours / 1e12:>8.2f} TB on disk, built in "
                f"{took / hours * k_hours / 3600:>6.0f} core-hours"
            )
        for name, r in rates.items():
            print(f"  {name:<26}{clips / r / 3600:>8.0f} worker-hours of data loading an epoch")
        for label, t_step in steps.items():
            print(
                f"  {label:<28}{clips / args.batch * t_step / 3600:>8.0f} hours an epoch of "
                f"compute on this CPU at batch {args.batch}"
            )
        print(
            "  (source videos of other sizes and content decode and compress at other rates; "
            "Kinetics' originals are often larger than 320x240, which slows the resize)"
        )
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
