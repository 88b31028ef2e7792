"""ConDi's saving at paper scale: time per video against dense, with and without decoding
(docs/method.md, section 6, "Speed at paper scale"; ``condi report speed``).

For every teacher/student pair of params ``speed`` (default: the paper's 3D-ResNeXt-101 teacher
with 3D-ShuffleNetV2 2.0x and 3D-MobileNetV2 1.0x students), at the paper's clip size
(16 x 112 x 112 after resizing the short side to 128), with random weights (this is about
time, not accuracy):

* **videos**: per dataset, ``videos`` lengths at evenly spaced quantiles ``(i + 0.5) / n`` of a
  lognormal with the dataset's published mean length and a spread ``cv`` (clipped to the
  published minimum and maximum; ``cv: 0``: every video the mean length), a frame rate from its
  list in turn, and N = ceil(T / L) clips. The command writes them with PyAV (UCF-101:
  320x240 H.264 in AVI; Kinetics: 340x256 H.264 in MP4), as textured moving frames;
* **configurations**: dense (the teacher over all N clips), ConDi-SR at every K (the student
  over all N clips, the teacher over the K with the highest z~) and the Ks split at ``Ks_K``
  (the student classifies Ks clips itself, the teacher K - Ks), run by the very code of Tables
  IV/V (:class:`condi.evaluation.timing.VideoRunner`), each model at its fastest batch size
  (:mod:`condi.batching`);
* **modes**: ``model``: the models alone on clips decoded beforehand (what Tables IV/V time);
  ``end_to_end``: decoding, resizing, cropping and normalising the video's file included
  (read by :func:`condi.data.video.read_video_clips`, as ``condi predict`` does);
* **ratios**: per (device, dataset, pair, mode), the mean time per video of a configuration
  over dense's (``time_ratio``), its multiply-adds per video over dense's (``mac_ratio``,
  :func:`condi.models.complexity.multiply_adds`) and their quotient (``time_over_mac``: 1 when
  time follows the multiply-adds saved). ``cpu_s`` / ``cpu_ratio``: the same with the
  process's CPU time, which on a busy machine (other processes taking turns on the cores)
  stays close to what an idle machine's wall clock would show for one torch thread.

Configurations run interleaved per video in a seeded random order after an untimed warm-up
(every batch size the plans use, then every configuration once on the shortest video).
Devices: the CPU (``threads`` torch threads) and CUDA where available (skipped with a note
otherwise).
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from condi.evaluation.timing import Config, VideoRunner, clip_macs, sync
from condi.runtime import device_name

log = logging.getLogger(__name__)

MEAN, STD = [0.45, 0.45, 0.45], [0.225, 0.225, 0.225]  # any values: this is about time
# issue 18's targets for ConDi K=5 at paper scale on CPU: time ratio / MAC ratio per student
# family, and the paper's Table IV ratio on UCF-101 (2.31 s for ConDi-SR at K = 5 against
# 3.7 s dense)
TARGET_TIME_OVER_MAC = {"shufflenetv2": 1.15, "mobilenetv2": 1.3}
PAPER_TIME_RATIO = 2.31 / 3.7
TARGET_K = 5

SPEED_COLUMNS = [
    "device",
    "device_name",
    "threads",
    "dataset",
    "teacher",
    "student",
    "mode",
    "method",
    "K",
    "Ks",
    "n_videos",
    "clips_per_video",
    "time_s",
    "time_s_std",
    "time_ratio",
    "gmacs_per_video",
    "mac_ratio",
    "time_over_mac",
    "cpu_s",
    "cpu_ratio",
    "decode_s",
    "teacher_clips_per_video",
    "student_clips_per_video",
    "teacher_gmacs_per_clip",
    "student_gmacs_per_clip",
    "teacher_batch",
    "student_batch",
    "clip_shape",
    "video_file",
    "channels_last",
    "fuse",
    "repeats",
    "load_avg",
    "torch",
]
GROUP = ["device", "dataset", "teacher", "student", "mode"]


@dataclass(frozen=True)
class VideoSpec:
    """One generated test video."""

    dataset: str
    index: int
    seconds: float
    fps: float
    frames: int
    n_clips: int
    width: int
    height: int
    codec: str
    container: str

    @property
    def file_label(self) -> str:
        return f"{self.width}x{self.height} {self.codec} {self.container}"

    @property
    def name(self) -> str:
        return (
            f"{self.dataset}_{self.index}_{self.width}x{self.height}_{self.frames}f_"
            f"{self.fps:g}fps_{self.codec}.{self.container}"
        )


def length_quantiles(
    mean: float, cv: float, n: int, lo: float | None = None, hi: float | None = None
) -> np.ndarray:
    """``n`` lengths at the quantiles ``(i + 0.5) / n`` of a lognormal with mean ``mean`` and
    coefficient of variation ``cv`` (``cv = 0``: all ``mean``), clipped to ``[lo, hi]``."""
    from statistics import NormalDist

    if cv <= 0:
        out = np.full(n, float(mean))
    else:
        sigma = math.sqrt(math.log1p(cv * cv))
        mu = math.log(mean) - sigma * sigma / 2
        z = np.array([NormalDist().inv_cdf((i + 0.5) / n) for i in range(n)])
        out = np.exp(mu + sigma * z)
    return np.clip(out, lo if lo is not None else -np.inf, hi if hi is not None else np.inf)


def video_specs(cfg: dict[str, Any]) -> list[VideoSpec]:
    """The test videos of every dataset of params ``speed`` (module docstring)."""
    out = []
    for name, ds in cfg["datasets"].items():
        lengths = length_quantiles(
            ds["seconds"], ds.get("cv", 0.0), cfg["videos"], ds.get("min_seconds"),
            ds.get("max_seconds"),
        )  # fmt: skip
        for i, seconds in enumerate(lengths):
            fps = float(ds["fps"][i % len(ds["fps"])])
            frames = max(1, round(seconds * fps))
            out.append(
                VideoSpec(
                    name, i, float(seconds), fps, frames, math.ceil(frames / cfg["clip_len"]),
                    int(ds["width"]), int(ds["height"]), ds.get("codec", "h264"),
                    ds.get("container", "mp4"),
                )
            )  # fmt: skip
    return out


def synthetic_frames(width: int, height: int, n: int, seed: int = 0):
    """``n`` RGB frames (height, width, 3) uint8: a smoothed random texture panning in a loop
    (moving, detailed content, so the encoder makes a realistic bitstream)."""
    rng = np.random.default_rng(seed)
    pad = 64
    base = rng.integers(0, 256, (height + pad, width + pad, 3), dtype=np.uint16)
    base = (base + np.roll(base, 1, 0) + np.roll(base, 1, 1) + np.roll(base, 1, (0, 1))) // 4
    base = base.astype(np.uint8)
    for t in range(n):
        dx = int(pad / 2 + (pad / 2 - 1) * math.sin(t / 15))
        dy = int(pad / 2 + (pad / 2 - 1) * math.cos(t / 20))
        yield np.ascontiguousarray(base[dy : dy + height, dx : dx + width])


def write_video(path: str | os.PathLike, spec: VideoSpec, seed: int = 0) -> Path:
    """Encode ``spec``'s video at ``path`` with PyAV (H.264 via libx264, or MPEG-4 part 2)."""
    from fractions import Fraction

    import av

    from condi.io import atomic_path

    codec = {"h264": "libx264", "mpeg4": "mpeg4"}[spec.codec]
    path = Path(path)
    with atomic_path(path) as tmp, av.open(str(tmp), "w", format=spec.container) as out:
        stream = out.add_stream(codec, rate=Fraction(spec.fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p"
        for frame in synthetic_frames(spec.width, spec.height, spec.frames, seed):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    return path


def configurations(cfg: dict[str, Any]) -> list[Config]:
    """Dense, ConDi-SR at every K and the Ks split at ``Ks_K`` for every Ks <= Ks_K."""
    out = [Config("dense")]
    out += [Config("condi_sr", int(k)) for k in sorted(cfg["K"])]
    out += [
        Config("condi_sr_split", int(cfg["Ks_K"]), int(s))
        for s in sorted(cfg["Ks"])
        if s <= cfg["Ks_K"]
    ]
    return out


class _Clips:
    """One video's normalised clips as :class:`VideoRunner` reads them (``dataset[i][0]``)."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x
        self.clip_len, self.crop_size = int(x.shape[2]), int(x.shape[3])

    def __getitem__(self, i: int) -> tuple[torch.Tensor]:
        return (self.x[i],)

    def __len__(self) -> int:
        return len(self.x)


def decode(path: Path, cfg: dict[str, Any]) -> torch.Tensor:
    """A video file's normalised clips (N, 3, L, crop, crop): decode, resize, crop, normalise."""
    from condi.data.video import read_video_clips
    from condi.evaluation.predict import normalise_clips

    clips = read_video_clips(path, cfg["clip_len"], cfg["short_side"])
    return normalise_clips(clips, cfg["crop_size"], MEAN, STD)


def _warm_up(runner: VideoRunner, configs: Sequence[Config], shortest: torch.Tensor, n_max: int):
    """Untimed: every batch size the plans use for up to ``n_max`` clips, then every
    configuration once on the shortest video."""
    from condi.models import autocast_context, to_channels_last_3d

    shape = (3, shortest.shape[2], shortest.shape[3], shortest.shape[4])
    for model in [runner.teacher, *runner.students.values()]:
        profile = runner.profiles[id(model)]
        sizes = sorted({b for n in range(1, n_max + 1) for b in profile.plan(n)})
        with torch.inference_mode(), autocast_context(runner.device, enabled=runner.amp):
            for b in sizes:
                x = torch.zeros((b, *shape), device=runner.device)
                model(to_channels_last_3d(x) if runner.channels_last else x)
    runner.dataset = _Clips(shortest)
    for cfg in configs:
        runner.run(cfg, slice(0, len(shortest)))


def time_pair(
    runner: VideoRunner,
    specs: Sequence[VideoSpec],
    files: dict[VideoSpec, Path],
    cfg: dict[str, Any],
    configs: Sequence[Config],
    seed: int = 0,
) -> pd.DataFrame:
    """Per (video, mode, configuration): median seconds over ``repeats`` (and, end to end, the
    seconds spent decoding), the clips each model ran on."""
    rng = np.random.default_rng(seed)
    decoded = {s: decode(files[s], cfg) for s in specs}
    shortest = min(decoded.values(), key=len)
    _warm_up(runner, configs, shortest, max(len(x) for x in decoded.values()))
    records = []
    for v, spec in enumerate(specs):
        x = decoded[spec]
        n = len(x)
        log.info("speed: video %d/%d (%s, N = %d)", v + 1, len(specs), spec.dataset, n)
        for mode in cfg["modes"]:
            for j in rng.permutation(len(configs)):
                c = configs[j]
                times, decode_times, cpu_times = [], [], []
                for _ in range(cfg["repeats"]):
                    sync(runner.device)
                    c0 = time.process_time()
                    t0 = time.perf_counter()
                    if mode == "end_to_end":
                        clips = decode(files[spec], cfg)
                        t_dec = time.perf_counter()
                    else:
                        clips, t_dec = x, t0
                    runner.dataset = _Clips(clips)
                    out = runner.run(c, slice(0, n))
                    sync(runner.device)
                    times.append(time.perf_counter() - t0)
                    cpu_times.append(time.process_time() - c0)
                    decode_times.append(t_dec - t0)
                records.append(
                    {
                        "dataset": spec.dataset,
                        "video": spec.index,
                        "video_seconds": spec.seconds,
                        "fps": spec.fps,
                        "frames": spec.frames,
                        "n_clips": n,
                        "video_file": spec.file_label,
                        "mode": mode,
                        "method": c.method,
                        "K": c.k_label,
                        "Ks": c.ks,
                        "seconds": float(np.median(times)),
                        "cpu_s": float(np.median(cpu_times)),
                        "decode_s": float(np.median(decode_times)),
                        "teacher_clips": out.teacher_clips,
                        "student_clips": out.student_clips,
                    }
                )
    df = pd.DataFrame(records)
    df["Ks"] = df["Ks"].astype("Int64")
    return df


def summarise(
    per_video: pd.DataFrame,
    teacher_macs: int,
    student_macs: int,
    configs: Sequence[Config] = (),
) -> pd.DataFrame:
    """One row per (device, dataset, pair, mode, configuration): mean time per video, its
    ratio to dense's, the multiply-adds per video and their ratio to dense's (module
    docstring). ``per_video`` holds the columns of :func:`time_pair` plus device, teacher and
    student. Rows follow ``configs``' order within each group when given."""
    df = per_video.copy()
    df["gmacs"] = (df["teacher_clips"] * teacher_macs + df["student_clips"] * student_macs) / 1e9
    df["_ks"] = df["Ks"].astype("float").fillna(-1)
    keys = [*GROUP, "method", "K", "_ks"]
    g = df.groupby(keys, sort=False)
    out = g.agg(
        n_videos=("seconds", "size"),
        clips_per_video=("n_clips", "mean"),
        time_s=("seconds", "mean"),
        time_s_std=("seconds", lambda s: s.std(ddof=1) if len(s) > 1 else np.nan),
        cpu_s=("cpu_s", "mean"),
        gmacs_per_video=("gmacs", "mean"),
        decode_s=("decode_s", "mean"),
        teacher_clips_per_video=("teacher_clips", "mean"),
        student_clips_per_video=("student_clips", "mean"),
        video_file=("video_file", "first"),
    ).reset_index()
    dense = out[out["method"] == "dense"].set_index(GROUP)[["time_s", "cpu_s", "gmacs_per_video"]]
    ref = dense.reindex(pd.MultiIndex.from_frame(out[GROUP]))
    out["time_ratio"] = out["time_s"].to_numpy() / ref["time_s"].to_numpy()
    out["cpu_ratio"] = out["cpu_s"].to_numpy() / ref["cpu_s"].to_numpy()
    out["mac_ratio"] = out["gmacs_per_video"].to_numpy() / ref["gmacs_per_video"].to_numpy()
    out["time_over_mac"] = out["time_ratio"] / out["mac_ratio"]
    out["Ks"] = out["_ks"].where(out["_ks"] >= 0).astype("Int64")
    out["teacher_gmacs_per_clip"] = teacher_macs / 1e9
    out["student_gmacs_per_clip"] = student_macs / 1e9
    if configs:
        rank = {
            (c.method, c.k_label, -1 if c.ks is None else c.ks): i for i, c in enumerate(configs)
        }
        groups = {k: i for i, k in enumerate(dict.fromkeys(map(tuple, out[GROUP].to_numpy())))}
        out["_g"] = [groups[tuple(k)] for k in out[GROUP].to_numpy()]
        out["_c"] = [rank.get((m, k, int(q)), len(rank)) for m, k, q in
                     zip(out["method"], out["K"], out["_ks"], strict=True)]  # fmt: skip
        out = out.sort_values(["_g", "_c"], kind="stable").drop(columns=["_g", "_c"])
    return out.drop(columns="_ks").reset_index(drop=True)


@dataclass
class SpeedResult:
    summary: pd.DataFrame
    per_video: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    specs: list[VideoSpec] = field(default_factory=list)


def _build(spec: dict[str, Any], num_classes: int, student: bool, seed: int) -> torch.nn.Module:
    from condi.models import build_model, build_student

    torch.manual_seed(seed)
    make = build_student if student else build_model
    return make(spec["arch"], num_classes, **(spec.get("kwargs") or {})).eval()


def available_devices(names: Sequence[str]) -> tuple[list[torch.device], list[str]]:
    """The devices of ``names`` this machine has, and a note for each one it lacks."""
    out, notes = [], []
    for name in names:
        if name == "cuda" and not torch.cuda.is_available():
            notes.append("cuda: skipped, no CUDA device is available on this machine")
            continue
        out.append(torch.device(name))
    return out, notes


def run_speed(
    cfg: dict[str, Any],
    seed: int = 0,
    work_dir: str | os.PathLike | None = None,
    devices: Sequence[str] | None = None,
) -> SpeedResult:
    """Time every configuration of every pair on every device (module docstring).

    ``cfg`` is params ``speed``; the videos are written in ``work_dir`` (default: a temporary
    folder, removed after). Returns the summary (:data:`SPEED_COLUMNS`), the per-video times
    and notes (skipped devices)."""
    specs = video_specs(cfg)
    configs = configurations(cfg)
    devs, notes = available_devices(devices or cfg["devices"])
    with tempfile.TemporaryDirectory(prefix="condi-speed-") as tmp:
        folder = Path(work_dir) if work_dir is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        files = {}
        for s in specs:
            path = folder / s.name
            files[s] = path if path.is_file() else write_video(path, s, seed + s.index)
        frames, summaries = [], []
        for dev in devs:
            threads = torch.get_num_threads() if dev.type == "cpu" else 0
            for t_name, t_spec in cfg["teachers"].items():
                teacher = _build(t_spec, cfg["num_classes"], False, seed).to(dev)
                for s_name, s_spec in cfg["students"].items():
                    student = _build(s_spec, cfg["num_classes"], True, seed + 1).to(dev)
                    t_macs, s_macs = clip_macs(teacher, student, cfg["clip_len"], cfg["crop_size"])
                    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else np.nan
                    runner = VideoRunner(
                        _Clips(torch.zeros(1, 3, cfg["clip_len"], cfg["crop_size"],
                                           cfg["crop_size"])),
                        teacher, {"condi_sr": student}, dev, cfg["batch_size"],
                        channels_last=cfg["channels_last"], fuse=cfg["fuse"],
                    )  # fmt: skip
                    log.info(
                        "speed: %s + %s on %s (%d threads): %.3f / %.3f GMACs per clip, "
                        "batches %s, %d videos x %d configurations x %s",
                        t_name, s_name, dev, threads, t_macs / 1e9, s_macs / 1e9,
                        runner.batch_size, len(specs), len(configs), "+".join(cfg["modes"]),
                    )  # fmt: skip
                    pv = time_pair(runner, specs, files, cfg, configs, seed)
                    pv.insert(0, "student", s_name)
                    pv.insert(0, "teacher", t_name)
                    pv.insert(0, "device", dev.type)
                    summ = summarise(pv, t_macs, s_macs, configs)
                    summ["device_name"] = device_name(dev)
                    summ["threads"] = threads
                    summ["teacher_batch"] = runner.profiles[id(runner.teacher)].label()
                    summ["student_batch"] = runner.profiles[id(runner.students["condi_sr"])].label()
                    summ["load_avg"] = load
                    frames.append(pv)
                    summaries.append(summ)
                    del student, runner
                del teacher
    summary = pd.concat(summaries, ignore_index=True) if summaries else pd.DataFrame()
    summary = summary.reindex(columns=SPEED_COLUMNS)
    if len(summary):
        summary["clip_shape"] = f"3x{cfg['clip_len']}x{cfg['crop_size']}x{cfg['crop_size']}"
        summary["channels_last"] = bool(cfg["channels_last"])
        summary["fuse"] = bool(cfg["fuse"])
        summary["repeats"] = int(cfg["repeats"])
        summary["torch"] = torch.__version__
        summary["Ks"] = summary["Ks"].astype("Int64")
    per_video = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return SpeedResult(summary, per_video, notes, specs)


# -- the report ------------------------------------------------------------------------------


def _fmt(v: float, digits: int = 3) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def target_rows(summary: pd.DataFrame, students: dict[str, Any]) -> pd.DataFrame:
    """ConDi-SR at K = 5, models alone, on CPU: the time ratio and time / MAC ratio against
    issue 18's targets (:data:`TARGET_TIME_OVER_MAC`, :data:`PAPER_TIME_RATIO`)."""
    sel = summary[
        (summary["device"] == "cpu")
        & (summary["mode"] == "model")
        & (summary["method"] == "condi_sr")
        & (summary["K"] == str(TARGET_K))
    ]
    rows = []
    for r in sel.itertuples():
        arch = (students.get(r.student) or {}).get("arch", "")
        target = TARGET_TIME_OVER_MAC.get(arch, np.nan)
        rows.append(
            {
                "dataset": r.dataset,
                "pair": f"{r.teacher} + {r.student}",
                "time_ratio": r.time_ratio,
                "mac_ratio": r.mac_ratio,
                "time_over_mac": r.time_over_mac,
                "cpu_ratio": r.cpu_ratio,
                "cpu_over_mac": r.cpu_ratio / r.mac_ratio,
                "target_time_over_mac": target,
                "meets_time_over_mac": bool(r.time_over_mac <= target)
                if target == target
                else None,
                "meets_paper_ratio": bool(r.time_ratio <= PAPER_TIME_RATIO),
            }
        )
    return pd.DataFrame(rows)


def markdown(result: SpeedResult, cfg: dict[str, Any]) -> str:
    """The report: setup, the video lengths and their sources, one table per device and
    dataset (models alone and end to end side by side), the targets."""
    s = result.summary
    lines = [
        "# ConDi's time per video at paper scale",
        "",
        f"Random weights; clips 3x{cfg['clip_len']}x{cfg['crop_size']}x{cfg['crop_size']} "
        f"(short side resized to {cfg['short_side']}); each model at its fastest batch size "
        f"(`batch_size: {cfg['batch_size']}`, condi.batching); channels-last "
        f"{'on' if cfg['channels_last'] else 'off'}; inference rewrites (BatchNorm folded into "
        f"the convolutions, pointwise convolutions as matrix products) "
        f"{'on' if cfg['fuse'] else 'off'}; median of {cfg['repeats']} run(s) per video "
        f"and configuration, configurations interleaved per video in a seeded order. "
        "*models*: the models alone on decoded clips (as Tables IV/V); *end to end*: decoding "
        "the file, resizing, cropping and normalising included. Ratios are to dense's mean time "
        "(or multiply-adds) per video in the same run; *time/MAC* = time ratio / MAC ratio; "
        "*CPU ratio*: the ratio of the process's CPU time, robust to other processes on a busy "
        "machine.",
        "",
        "Video lengths (N = ceil(T / 16) clips):",
        "",
    ]
    for name, ds in cfg["datasets"].items():
        got = [v for v in result.specs if v.dataset == name]
        ns = ", ".join(str(v.n_clips) for v in got)
        secs = ", ".join(f"{v.seconds:.2f}" for v in got)
        mean_n = np.mean([v.n_clips for v in got]) if got else float("nan")
        lines.append(
            f"- **{name}**: {secs} s at {'/'.join(f'{f:g}' for f in ds['fps'])} fps -> N = {ns} "
            f"(mean {mean_n:.1f}); {ds['width']}x{ds['height']} {ds.get('codec', 'h264')} in "
            f"{ds.get('container', 'mp4')}, written by the command with PyAV. "
            f"Source: {ds.get('source') or 'params speed.datasets'}"
            + (f"; spread: lognormal, cv {ds['cv']:g} (assumed)" if ds.get("cv") else "")
            + "."
        )
    lines.append("")
    for note in result.notes:
        lines += [f"Note: {note}.", ""]
    if s.empty:
        return "\n".join(lines) + "\n"
    for dev, dsub in s.groupby("device", sort=False):
        first = dsub.iloc[0]
        threads = f", {int(first['threads'])} torch thread(s)" if dev == "cpu" else ""
        lines += [f"## {dev} ({first['device_name']}){threads}", ""]
        for ds_name, sub in dsub.groupby("dataset", sort=False):
            lines += [f"### {ds_name}", ""]
            modes = [m for m in ("model", "end_to_end") if m in set(sub["mode"])]
            head = "| teacher + student | method | K | Ks | GMACs | MAC ratio |"
            rule = "|---|---|---|---|---|---|"
            for m in modes:
                label = "models" if m == "model" else "end to end"
                head += f" {label} s | ratio | time/MAC | CPU ratio |"
                rule += "---|---|---|---|"
            lines += [head, rule]
            base = sub[sub["mode"] == modes[0]]
            for r in base.itertuples():
                ks = "" if pd.isna(r.Ks) else str(int(r.Ks))
                row = (
                    f"| {r.teacher} + {r.student} | {r.method} | {r.K} | {ks} | "
                    f"{_fmt(r.gmacs_per_video, 2)} | {_fmt(r.mac_ratio)} |"
                )
                for m in modes:
                    o = sub[
                        (sub["mode"] == m)
                        & (sub["teacher"] == r.teacher)
                        & (sub["student"] == r.student)
                        & (sub["method"] == r.method)
                        & (sub["K"] == r.K)
                        & (sub["Ks"].astype("float").fillna(-1) == (-1 if ks == "" else int(ks)))
                    ].iloc[0]
                    row += (
                        f" {_fmt(o['time_s'])} | {_fmt(o['time_ratio'])} | "
                        f"{_fmt(o['time_over_mac'], 2)} | {_fmt(o['cpu_ratio'])} |"
                    )
                lines.append(row)
            batches = sub.drop_duplicates(["teacher", "student"])
            lines += [
                "",
                "Batch sizes (fastest per clip): "
                + "; ".join(
                    f"{r.teacher} {r.teacher_batch}, {r.student} {r.student_batch}"
                    for r in batches.itertuples()
                )
                + "."
                + (
                    f" Decoding per video (end to end): {_fmt(e2e['decode_s'].max())} s at most."
                    if len(e2e := sub[sub["mode"] == "end_to_end"])
                    else ""
                )
                + f" Load average at the start: {_fmt(float(sub['load_avg'].max()), 2)}.",
                "",
            ]
    targets = target_rows(s, cfg["students"])
    if len(targets):
        lines += [
            f"## Targets (issue 18): ConDi-SR at K = {TARGET_K}, models alone, CPU",
            "",
            f"time/MAC at most {TARGET_TIME_OVER_MAC['shufflenetv2']} (ShuffleNetV2) or "
            f"{TARGET_TIME_OVER_MAC['mobilenetv2']} (MobileNetV2); time ratio at most the "
            f"paper's Table IV {PAPER_TIME_RATIO:.3f} (2.31 s / 3.7 s on UCF-101).",
            "",
            "| dataset | pair | time ratio | MAC ratio | time/MAC | target | time/MAC met | "
            "ratio <= 0.62 | CPU ratio | CPU/MAC |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in targets.itertuples():
            met = (
                "" if r.meets_time_over_mac is None else ("yes" if r.meets_time_over_mac else "NO")
            )
            lines.append(
                f"| {r.dataset} | {r.pair} | {_fmt(r.time_ratio)} | {_fmt(r.mac_ratio)} | "
                f"{_fmt(r.time_over_mac, 2)} | {_fmt(r.target_time_over_mac, 2)} | {met} | "
                f"{'yes' if r.meets_paper_ratio else 'NO'} | {_fmt(r.cpu_ratio)} | "
                f"{_fmt(r.cpu_over_mac, 2)} |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


def write(
    result: SpeedResult, cfg: dict[str, Any], out_csv: str | os.PathLike, out_md: str | os.PathLike
) -> None:
    """``out_csv`` (:data:`SPEED_COLUMNS`, one row per device, dataset, pair, mode and
    configuration) and ``out_md`` (:func:`markdown`), atomically."""
    from condi.io import write_csv, write_text

    write_csv(result.summary.reindex(columns=SPEED_COLUMNS), out_csv)
    write_text(out_md, markdown(result, cfg))
