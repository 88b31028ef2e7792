"""Wall-clock time, multiply-adds and accuracy per video of the ConDi inference and its
baselines (docs/method.md, section 6, Tables IV and V).

What is timed, per test video and per configuration (method, K, Ks), with
``time.perf_counter`` around the whole call (``torch.cuda.synchronize`` on both ends on CUDA):

* the crop + normalisation of the clips the models see, read from the clip cache (the cache
  holds DECODED clips; a resized store's clips are decoded into memory before the video's
  configurations run: video decoding is EXCLUDED from every figure; ``condi predict`` and
  ``benchmarks/data_decode.py`` measure decoding separately). The video's cache rows are read
  once, untimed, before its configurations run, so the page cache, not the disk, serves them;
* ``dense``: the teacher over all N clips (batched), softmax probabilities averaged;
* ``equidistant``: the teacher over the K equidistant clips (no student);
* ``condi_sr`` / ``bce_conf`` / ``st_ent``: the student over all N clips (batched), its
  ranking score (``ranking`` in :mod:`condi.methods`), then the teacher over the top K clips
  (batched), averaged;
* ``condi_sr_split``: the student over all N clips; the Ks lowest-entropy clips are classified
  by the student itself and the teacher sees K - Ks clips (docs/method.md, section 4, paper Fig. 2c).

Clip selection and aggregation call the very functions of the evaluation grid
(:mod:`condi.evaluation.samplers`, :mod:`condi.scores`), so the accuracy equals
Table III's for the same K, given the same per-clip outputs (up to floating-point differences
of batched forward passes, which the optional cross-check against the stored scores reports
in ``top1_grid``). When K >= N every method is dense on that video (docs/method.md, section 3) and the student is
NOT run: its ranking cannot change which clips the teacher sees.

Multiply-adds per video = student MACs per clip x (clips the student ran on) + teacher MACs per
clip x (clips the teacher ran on), with :func:`condi.models.complexity.multiply_adds`
(FlopCounterMode / 2) at the clip shape ``1 x 3 x L x crop x crop``. Reported in G
(``gmacs_per_video``), the unit Table II uses for the paper's "GFLOPs".

Configurations run interleaved per video in a seeded random order (so a drift of the machine's
speed touches every configuration alike) after ``warmup`` untimed videos.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from condi.batching import BatchProfile, batch_profile, run_batched
from condi.data.dataset import ClipDataset, ResizedClipDataset
from condi.data.indexed import clip_dataset
from condi.evaluation.grid import Videos
from condi.evaluation.samplers import equidistant, prefix_means, ranked, split_prediction
from condi.evaluation.timing_columns import ALL_K
from condi.methods import METHOD_REGISTRY, get_method
from condi.metrics import softmax_np
from condi.models import autocast_context, to_channels_last_3d
from condi.models.complexity import multiply_adds
from condi.models.switches import inference_copy
from condi.runtime import device_name
from condi.scores import student_clip_scores

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Config:
    """One timed configuration: ``method`` with K clips (``k=None``: all, i.e. dense) and a
    student share ``ks`` (``condi_sr_split`` only)."""

    method: str
    k: int | None = None
    ks: int | None = None

    @property
    def k_label(self) -> str:
        return ALL_K if self.k is None else str(self.k)

    @property
    def uses_student(self) -> bool:
        return self.method not in ("dense", "equidistant")

    @property
    def student_method(self) -> str:
        return "condi_sr" if self.method == "condi_sr_split" else self.method


def configurations(
    student_methods: Sequence[str],
    ks: Sequence[int],
    split_k: int | None = None,
    split_ks: Sequence[int] = (),
) -> list[Config]:
    """Dense, equidistant at every K, every student-ranked method at every K and, with a
    ``condi_sr`` student, the Ks split at ``split_k`` for every Ks in ``split_ks``."""
    out = [Config("dense")]
    out += [Config("equidistant", int(k)) for k in ks]
    for m in student_methods:
        if m not in METHOD_REGISTRY:
            raise ValueError(f"{m}: not a student-ranked method; known: {sorted(METHOD_REGISTRY)}")
        out += [Config(m, int(k)) for k in ks]
    if "condi_sr" in student_methods and split_k is not None:
        out += [Config("condi_sr_split", int(split_k), int(s)) for s in split_ks]
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Outcome:
    probs: np.ndarray  # (C,) the video's prediction
    teacher_clips: int
    student_clips: int


class VideoRunner:
    """Runs one configuration on one video's cached clips, end to end (module docstring)."""

    def __init__(
        self,
        dataset: ClipDataset,
        teacher: nn.Module,
        students: dict[str, nn.Module],
        device: torch.device,
        batch_size: int | str = "auto",
        amp: bool = False,
        channels_last: bool = False,
        fuse: bool = False,
    ) -> None:
        self.dataset = dataset
        self.channels_last = bool(channels_last)
        self.fuse = bool(fuse)
        self.device = device
        self.amp = bool(amp)
        shape = (3, dataset.clip_len, dataset.crop_size, dataset.crop_size)
        sample = torch.randn((1, *shape), generator=torch.Generator().manual_seed(0))
        sample = sample.to(device)

        def prep(model: nn.Module) -> nn.Module:
            model = model.eval()
            if self.fuse:  # inference rewrites, condi.models.switches (rounding may differ)
                model = inference_copy(model, sample)
            return to_channels_last_3d(model) if self.channels_last else model

        self.teacher = prep(teacher)
        self.students = {m: prep(s) for m, s in students.items()}
        # each model's batches (condi.batching): dense and ConDi both at their fastest
        self.profiles = {
            id(m): batch_profile(m, device, shape, batch_size, self.channels_last, self.amp)
            for m in [self.teacher, *self.students.values()]
        }
        self.batch_size = batch_label(
            self.profiles[id(self.teacher)],
            [self.profiles[id(m)] for m in self.students.values()],
        )

    def clips(self, sl: slice, positions: np.ndarray) -> torch.Tensor:
        """Normalised clips (n, 3, L, crop, crop) of the video ``sl`` at ``positions``."""
        return torch.stack([self.dataset[sl.start + int(p)][0] for p in positions])

    def touch(self, sl: slice) -> None:
        """Read the video's cache rows once (untimed), so that timing sees memory, not disk;
        on a resized store, decode its clips into memory (decoding is excluded here too)."""
        if isinstance(self.dataset, ResizedClipDataset):
            self.dataset.preload(sl)
            return
        rows = self.dataset.rows[sl]
        np.asarray(self.dataset.data[rows.min() : rows.max() + 1]).sum()

    def forward(self, model: nn.Module, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        """Batched forward pass (the model's own batch plan): ``(logits (n, C) float32,
        confidence logit (n,) or None)``."""
        with torch.inference_mode(), autocast_context(self.device, enabled=self.amp):
            outs = run_batched(model, x, self.profiles[id(model)], self.device, self.channels_last)
        if isinstance(outs[0], tuple):
            logits = torch.cat([o[0] for o in outs]).float().cpu().numpy()
            conf = torch.cat([o[1] for o in outs]).float().cpu().numpy()
            return logits, conf
        return torch.cat(outs).float().cpu().numpy(), None

    def _teacher_probs(self, x: torch.Tensor) -> np.ndarray:
        logits, _ = self.forward(self.teacher, x)
        return softmax_np(logits.astype(np.float64))

    def _dense(self, sl: slice, n: int) -> Outcome:
        probs = self._teacher_probs(self.clips(sl, np.arange(n)))
        return Outcome(prefix_means(probs, np.arange(n))[-1], n, 0)

    def run(self, cfg: Config, sl: slice) -> Outcome:
        n = sl.stop - sl.start
        # dense, or K >= N: every method is dense (docs/method.md, section 3)
        if cfg.k is None or cfg.k >= n:
            if (
                cfg.method == "condi_sr_split"
            ):  # the grid's split path: plain mean via split_prediction
                probs = self._teacher_probs(self.clips(sl, np.arange(n)))
                z = np.zeros(n)
                p, _, _ = split_prediction(probs, probs, z, z, cfg.k or n, cfg.ks or 0)
                return Outcome(p, n, 0)
            return self._dense(sl, n)
        k = cfg.k
        if cfg.method == "equidistant":
            chosen = equidistant(n, k)
            probs = self._teacher_probs(self.clips(sl, chosen))
            return Outcome(prefix_means(probs, np.arange(len(chosen)))[-1], len(chosen), 0)
        x = self.clips(sl, np.arange(n))
        s_logits, conf = self.forward(self.students[cfg.student_method], x)
        scores = student_clip_scores(s_logits, conf)
        if cfg.method == "condi_sr_split":
            s_probs = softmax_np(s_logits.astype(np.float64))
            zero_t = np.zeros_like(s_probs)
            # the selection does not depend on the teacher's probabilities: ask the grid's own
            # function which clips go to the teacher, run it on those, then aggregate
            _, s_used, t_used = split_prediction(
                zero_t, s_probs, scores["z_tilde"], scores["entropy"], k, cfg.ks or 0
            )
            t_probs = zero_t
            if len(t_used):
                t_probs[t_used] = self._teacher_probs(x[torch.from_numpy(t_used)])
            p, _, _ = split_prediction(
                t_probs, s_probs, scores["z_tilde"], scores["entropy"], k, cfg.ks or 0
            )
            return Outcome(p, len(t_used), n)
        order = ranked(scores[get_method(cfg.method).ranking])[:k]
        probs = self._teacher_probs(x[torch.from_numpy(order)])
        return Outcome(prefix_means(probs, np.arange(k))[-1], k, n)


def batch_label(teacher: BatchProfile, students: Sequence[BatchProfile] = ()) -> str:
    """The ``batch_size`` column: ``64`` (fixed) or ``auto (teacher 1, student 2)`` (each
    model's fastest size per clip; the plan per video may mix sizes, condi.batching)."""
    if teacher.fixed is not None:
        return str(teacher.fixed)
    parts = [f"teacher {teacher.best()}"]
    bests = sorted({p.best() for p in students})
    if bests:
        parts.append("student " + "/".join(str(b) for b in bests))
    return f"auto ({', '.join(parts)})"


def clip_macs(
    teacher: nn.Module, student: nn.Module | None, clip_len: int, crop: int
) -> tuple[int, int]:
    """Multiply-adds of one clip (1 x 3 x L x crop x crop) for the teacher and the student."""
    shape = (1, 3, int(clip_len), int(crop), int(crop))
    t = multiply_adds(teacher, shape)
    s = multiply_adds(student, shape) if student is not None else 0
    return int(t), int(s)


def time_videos(
    runner: VideoRunner,
    videos: Videos,
    configs: Sequence[Config],
    warmup: int = 2,
    repeats: int = 1,
    seed: int = 0,
) -> pd.DataFrame:
    """Per (video, configuration): seconds (median over ``repeats``), prediction, clips used.

    ``warmup`` videos (the first ones, cycled) run every configuration untimed first.
    """
    n_videos = len(videos.slices)
    for i in range(min(warmup, n_videos) if n_videos else 0):
        for cfg in configs:
            runner.run(cfg, videos.slices[i])
    rng = np.random.default_rng(seed)
    records = []
    for v, sl in enumerate(videos.slices):
        runner.touch(sl)
        for j in rng.permutation(len(configs)):
            cfg = configs[j]
            times = []
            for _ in range(max(1, repeats)):
                sync(runner.device)
                t0 = time.perf_counter()
                out = runner.run(cfg, sl)
                sync(runner.device)
                times.append(time.perf_counter() - t0)
            records.append(
                {
                    "video": v,
                    "method": cfg.method,
                    "K": cfg.k_label,
                    "Ks": cfg.ks,
                    "n_clips": sl.stop - sl.start,
                    "seconds": float(np.median(times)),
                    "pred": int(out.probs.argmax()),
                    "label": int(videos.labels[v]),
                    "teacher_clips": out.teacher_clips,
                    "student_clips": out.student_clips,
                }
            )
    df = pd.DataFrame(records)
    df["Ks"] = df["Ks"].astype("Int64")
    return df


def summarise(
    per_video: pd.DataFrame, teacher_macs: int, student_macs: int, configs: Sequence[Config]
) -> pd.DataFrame:
    """One row per configuration: mean time per video, accuracy, multiply-adds, speed-ups."""
    df = per_video.copy()
    df["correct"] = df["pred"] == df["label"]
    df["gmacs"] = (df["teacher_clips"] * teacher_macs + df["student_clips"] * student_macs) / 1e9
    rows = []
    for cfg in configs:
        sel = df[(df["method"] == cfg.method) & (df["K"] == cfg.k_label)]
        if cfg.ks is not None:
            sel = sel[sel["Ks"] == cfg.ks]
        rows.append(
            {
                "method": cfg.method,
                "K": cfg.k_label,
                "Ks": cfg.ks,
                "n_videos": len(sel),
                "time_s": sel["seconds"].mean(),
                "time_s_std": sel["seconds"].std(ddof=1) if len(sel) > 1 else np.nan,
                "time_s_median": sel["seconds"].median(),
                "top1": sel["correct"].mean() * 100.0,
                "gmacs_per_video": sel["gmacs"].mean(),
                "teacher_clips_per_video": sel["teacher_clips"].mean(),
                "student_clips_per_video": sel["student_clips"].mean(),
                "clips_per_video": sel["n_clips"].mean(),
            }
        )
    out = pd.DataFrame(rows)
    out["Ks"] = out["Ks"].astype("Int64")
    dense = out[out["method"] == "dense"].iloc[0]
    out["speedup_time"] = dense["time_s"] / out["time_s"]
    out["speedup_gmacs"] = dense["gmacs_per_video"] / out["gmacs_per_video"]
    out["teacher_gmacs_per_clip"] = teacher_macs / 1e9
    out["student_gmacs_per_clip"] = student_macs / 1e9
    return out


def sample_videos(videos: Videos, max_videos: int | None, seed: int) -> np.ndarray:
    """Positions of the videos to time: all, or a seeded sample of ``max_videos`` (sorted)."""
    n = len(videos.slices)
    if max_videos is None or max_videos >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_videos, replace=False))


def subset(videos: Videos, picks: np.ndarray) -> tuple[Videos, np.ndarray]:
    """The picked videos as a :class:`Videos` over their own clips, and the positions of
    those clips in the original per-clip arrays."""
    positions = np.concatenate(
        [np.arange(videos.slices[i].start, videos.slices[i].stop) for i in picks]
    )
    lengths = [videos.slices[i].stop - videos.slices[i].start for i in picks]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int)
    slices = [slice(int(s), int(s + n)) for s, n in zip(starts, lengths, strict=True)]
    unamb = videos.unambiguous[positions] if videos.unambiguous is not None else None
    return Videos(videos.labels[picks], slices, unamb), positions


def grid_top1(
    params: dict[str, Any],
    test_index: pd.DataFrame,
    teacher_scores: dict[str, np.ndarray],
    student_scores: dict[str, dict[str, np.ndarray]],
    ks: Sequence[int],
) -> dict[tuple[str, str, int | None], float]:
    """Table III's accuracy (``condi.evaluation.run.evaluate`` on the stored scores) for the
    clips of ``test_index``: ``{(method, K label, Ks): top1}`` with dense as K ``"All"``."""
    from condi.evaluation.run import evaluate

    index = test_index.reset_index(drop=True)
    where = pd.Series(np.arange(len(teacher_scores["rows"])), index=teacher_scores["rows"])
    pos = where.loc[index["_row"].to_numpy()].to_numpy()

    def restrict(s: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {k: v[pos] for k, v in s.items() if k != "rows" and np.ndim(v) > 0}
        out["rows"] = np.arange(len(index))
        return out

    p = {**params, "evaluation": {**params["evaluation"], "K": list(ks)}}
    frames = [evaluate(p, index, restrict(teacher_scores))]
    if student_scores:
        frames.append(
            evaluate(
                p,
                index,
                restrict(teacher_scores),
                {m: restrict(s) for m, s in student_scores.items()},
            )
        )
    df = pd.concat(frames, ignore_index=True)
    out = {}
    for _, r in df.iterrows():
        ks_ = None if pd.isna(r.get("Ks", np.nan)) else int(r["Ks"])
        k = ALL_K if r["K"] == "dense" else str(r["K"])
        out[(r["method"], k, ks_)] = float(r["top1"])
    return out


def run_timing(
    params: dict[str, Any],
    data: Any,
    teacher: nn.Module,
    students: dict[str, nn.Module],
    device: torch.device,
    *,
    max_videos: int | None = None,
    ks: Sequence[int] | None = None,
    warmup: int = 2,
    repeats: int = 1,
    amp: bool = False,
    channels_last: bool = False,
    fuse: bool = False,
    teacher_scores: dict[str, np.ndarray] | None = None,
    student_scores: dict[str, dict[str, np.ndarray]] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Time every configuration on the test videos of ``data``
    (:class:`condi.data.indexed.IndexedData`). Returns ``(summary, per_video)``.

    ``students`` maps method -> student model (Table IV's: :data:`condi.methods.TIMED_METHODS`;
    any registered method works; a
    ``condi_sr`` student adds the Ks split at ``evaluation.Ks_K``). With stored scores, the
    grid's accuracy on the same videos is added as ``top1_grid``.
    """
    ev = params["evaluation"]
    ks = sorted(int(k) for k in (ks if ks is not None else ev["K"]))
    dcfg = params["data"]
    rows = data.rows("test")
    test = data.index.iloc[rows].reset_index(drop=True)
    test["_row"] = rows
    videos = Videos.from_index(test)
    picks = sample_videos(videos, max_videos, params.get("seed", 0))
    sub_videos, positions = subset(videos, picks)
    dataset = clip_dataset(
        data, rows[positions], test["label"].to_numpy()[positions], dcfg, train=False
    )
    configs = configurations(list(students), ks, ev.get("Ks_K"), ev.get("Ks", []))
    teacher.to(device)
    for s in students.values():
        s.to(device)
    runner = VideoRunner(
        dataset,
        teacher,
        students,
        device,
        ev.get("batch_size", "auto"),
        amp,
        channels_last,
        fuse,
    )
    student_model = students.get("condi_sr") or next(iter(students.values()), None)
    t_macs, s_macs = clip_macs(teacher, student_model, dataset.clip_len, dataset.crop_size)
    log.info(
        "timing %d of %d test videos, %d configurations on %s (%d threads): teacher %.4f, "
        "student %.4f GMACs per clip",
        len(picks),
        len(videos.slices),
        len(configs),
        device,
        torch.get_num_threads(),
        t_macs / 1e9,
        s_macs / 1e9,
    )
    per_video = time_videos(runner, sub_videos, configs, warmup, repeats, params.get("seed", 0))
    summary = summarise(per_video, t_macs, s_macs, configs)
    summary["top1_grid"] = np.nan
    if teacher_scores is not None:
        grid = grid_top1(params, test.iloc[positions], teacher_scores, student_scores or {}, ks)
        summary["top1_grid"] = [
            grid.get((r.method, r.K, None if pd.isna(r.Ks) else int(r.Ks)), np.nan)
            for r in summary.itertuples()
        ]
        diff = (summary["top1"] - summary["top1_grid"]).abs()
        if (diff > 1e-9).any():
            log.warning(
                "timing accuracy differs from the grid's on the stored scores:\n%s",
                summary.loc[diff > 1e-9, ["method", "K", "Ks", "top1", "top1_grid"]],
            )
    summary["device"] = device.type
    summary["device_name"] = device_name(device)
    summary["threads"] = torch.get_num_threads()
    summary["amp"] = bool(amp)
    summary["channels_last"] = bool(channels_last)
    summary["fuse"] = bool(fuse)
    summary["batch_size"] = runner.batch_size
    summary["decoding"] = "excluded"
    summary["clip_shape"] = f"3x{dataset.clip_len}x{dataset.crop_size}x{dataset.crop_size}"
    summary["repeats"] = repeats
    summary["warmup"] = warmup
    summary["torch"] = torch.__version__
    return summary, per_video
