"""The embedded default dataset: synthetic motion classes with visibly ambiguous clips.

docs/method.md, section 7 and 9. Every video shows one bright blob (the *actor*) moving with its class's
motion over a per-video background texture. The video is cut, exactly like the index does,
into N = ceil(T / L) clips of L frames; every clip redraws the actor's start position (a
visible cut at clip boundaries), and a per-video share of the clips is *ambiguous*, of one of
four kinds, each visible in the clip itself:

* ``distractor``: a second, full-contrast actor (as large as the true one or larger)
  performs the video's *distractor class* (one other class, fixed per video) over a faint
  true actor. A teacher tends to be wrong on these in a consistent direction, so averaging
  all clips is pulled towards the distractor class: the regime in which clip selection can
  beat dense averaging (docs/method.md, section 9).
* ``occlusion``: an opaque rectangle covers most of the actor's path in the clip.
* ``blur``: heavy Gaussian blur and noise over a lower-contrast actor.
* ``static``: no motion: the clip's first frame, frozen.

Groups, as UCF-101 has them: UCF-101 cuts each class's long source videos into 4-7 clips
``v_<Class>_gGG_cCC`` that share actor, background and camera, and its official splits keep a
group on one side. Here the videos of one group (``group_size`` of them) share the whole
per-video appearance (background texture, actor colour, size and speed, distractor class) up
to a small jitter (``video_jitter`` grey levels of background, +-5% speed), and differ in
length, clip kinds and the actor's paths: near-duplicates, so that a validation split or a
cross-fitting fold that cuts through a group would be measurably optimistic. Train groups come
first (g01, g02, ...), then test groups.

The files are real encoded videos (MPEG-4 part 2 in AVI, as UCF-101) in the UCF-101 layout
with a single fold 1, so they go through the same reader, index and decoder as UCF-101.
``manifest.parquet`` holds the ground truth per clip and ``synth_config.json`` the resolved
parameters. Output is byte-identical for the same seed, preset and overrides (single-threaded,
bit-exact encoding; every video has its own random stream derived from ``(seed, video
number)``). Clip boundaries in the manifest follow ``clip_len``: index the dataset with the same
clip length for the manifest rows to align with the index rows.

Two design choices, both measured with the pipeline's teacher (``benchmarks/data_regime.py``):

* Direction classes: ``MoveLeft`` and ``MoveRight`` are each other's mirror image, as SSv2's
  "... from left to right" / "... from right to left"; a horizontal flip turns one into the
  other. The training transform must swap their labels when it flips a clip (``data.flip:
  swap``, the default for datasets whose class names form left/right pairs,
  :mod:`condi.data.flips`), or not flip. Every other motion is mirror-symmetric (it faces left
  or right at random), so a flip keeps its class.
* Appearance varies per video only mildly (grey-ish backgrounds, near-white actors). With
  strongly coloured, distinctive backgrounds the teacher memorised the training videos (68%
  training clip accuracy, 40% on clean test clips); with the mild ones it learned the motions
  (88% on clean test clips; same 10 epochs and ambiguity settings, one run each).
* The ambiguity defaults (10-90% of a video's clips, 70% of them distractors) were chosen
  because milder ones (25-75%, 55%) left dense averaging unhurt (95.8% = clean-only); with
  these, one run gave dense 59% against 79% for averaging only the clean clips.

What this benchmark can show: whether a student learns to spot visibly ambiguous clips and
whether selecting clips beats averaging all of them. It says nothing about real-world accuracy.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from condi.io import atomic_path, write_text

log = logging.getLogger(__name__)

GENERATOR_VERSION = 3

# Motion classes (see _trajectory); the first num_classes are used. MoveLeft and MoveRight are
# a mirror pair; the others are mirror-symmetric.
MOTIONS = (
    "MoveLeft",
    "MoveRight",
    "MoveUp",
    "MoveDown",
    "Circle",
    "ZigZag",
    "Pulse",
    "Shake",
    "Bob",
    "DiagonalDown",
    "DiagonalUp",
)
AMBIGUOUS_KINDS = ("distractor", "occlusion", "blur", "static")
PALETTES = ("grey", "colour")
KINDS = ("clean", *AMBIGUOUS_KINDS)

MANIFEST_COLUMNS = (
    "video",
    "label",
    "split",
    "group",
    "clip_index",
    "num_clips",
    "ambiguous",
    "kind",
    "distractor_class",
)


@dataclass
class SynthConfig:
    """Generator parameters. Pairs are ``(low, high)`` ranges drawn uniformly per video.

    Lengths are in units of the frame's short side (so presets of different frame sizes look
    alike); times are in frames.
    """

    num_classes: int = 8
    train_per_class: int = 25  # videos
    test_per_class: int = 15
    # Videos per group (UCF-101: 4-7 per group of 25 per class). Smaller here because a class
    # has 25 training videos, not ~100: one group held out for validation is then ~12% of them.
    group_size: tuple[float, float] = (2.0, 4.0)
    video_jitter: float = 6.0  # background grey-level offset between videos of one group, +-
    min_clips: int = 3  # N per video, log-uniform between min_clips and max_clips
    max_clips: int = 30
    # training videos only: a lower max_clips (None: max_clips). More, shorter training videos
    # cost the same clips per epoch and generalise better; the test videos keep max_clips.
    train_max_clips: int | None = None
    clip_len: int = 16
    height: int = 48
    width: int = 64
    fps: int = 25
    ambiguous_share: tuple[float, float] = (0.1, 0.9)  # share of a video's clips
    kind_probs: dict[str, float] = field(
        default_factory=lambda: {
            "distractor": 0.7,
            "occlusion": 0.1,
            "blur": 0.1,
            "static": 0.1,
        }
    )
    background_level: tuple[float, float] = (30.0, 80.0)  # grey level of the background
    background_tint: float = 10.0  # per-channel colour offset, uniform in +-tint
    texture_contrast: tuple[float, float] = (5.0, 15.0)  # amplitude of the smooth texture
    actor_tint: float = 30.0  # actor colour: 255 minus up to this, per channel
    actor_sigma: tuple[float, float] = (0.07, 0.1)  # Gaussian blob sigma
    speed: tuple[float, float] = (0.02, 0.035)  # per frame
    faint_alpha: tuple[float, float] = (0.12, 0.25)  # true actor's opacity under a distractor
    blur_alpha: tuple[float, float] = (0.2, 0.4)  # true actor's opacity in blur clips
    distractor_scale: tuple[float, float] = (1.0, 1.3)  # distractor sigma / actor sigma
    occluder_cover: tuple[float, float] = (0.8, 1.0)  # share of the path's long side covered
    blur_sigma: tuple[float, float] = (0.08, 0.12)
    noise_std: tuple[float, float] = (35.0, 55.0)  # grey levels
    qscale: int = 4  # MPEG-4 quantiser (2 = best, 31 = worst)
    # Appearance family: ``grey`` (near-grey backgrounds, near-white actors: the target) or
    # ``colour`` (strongly tinted backgrounds, saturated mid-tone actors: the source dataset of
    # the transfer protocol, docs/method.md section 2.5). The two families do not overlap:
    # a grey actor's channels are all >= 255 - actor_tint, a colour actor's are all below
    # 255 - colour_actor_dim[0]; a grey background's channels differ by at most
    # 2 * background_tint, a colour background's (one channel raised, one lowered by
    # colour_tint each) by at least 2 * colour_tint[0] before clipping to [0, 255].
    palette: str = "grey"
    colour_tint: tuple[float, float] = (25.0, 45.0)  # colour: |channel offset| of the background
    colour_actor_dim: tuple[float, float] = (60.0, 150.0)  # colour: 255 minus this, per channel

    def validate(self) -> SynthConfig:
        if not 2 <= self.num_classes <= len(MOTIONS):
            raise ValueError(
                f"synth: num_classes must be in 2..{len(MOTIONS)}, got {self.num_classes}"
            )
        if self.train_per_class < 1 or self.test_per_class < 1:
            raise ValueError("synth: train_per_class and test_per_class must be >= 1")
        if not 1 <= self.min_clips <= self.max_clips:
            raise ValueError(
                f"synth: need 1 <= min_clips <= max_clips, got {self.min_clips}, {self.max_clips}"
            )
        if self.train_max_clips is not None and self.train_max_clips < self.min_clips:
            raise ValueError(
                f"synth: need train_max_clips >= min_clips, got {self.train_max_clips}"
            )
        if self.clip_len < 2:
            raise ValueError("synth: clip_len must be >= 2")
        if self.height % 2 or self.width % 2 or min(self.height, self.width) < 16:
            raise ValueError(
                f"synth: height and width must be even and >= 16, got {self.height}x{self.width}"
            )
        unknown = set(self.kind_probs) - set(AMBIGUOUS_KINDS)
        if unknown:
            raise ValueError(
                f"synth: kind_probs: unknown kinds {sorted(unknown)}; use {AMBIGUOUS_KINDS}"
            )
        if any(p < 0 for p in self.kind_probs.values()) or sum(self.kind_probs.values()) <= 0:
            raise ValueError(
                f"synth: kind_probs must be >= 0 with a positive sum, got {self.kind_probs}"
            )
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple) and not (len(value) == 2 and 0 <= value[0] <= value[1]):
                raise ValueError(
                    f"synth: {f.name} must be a range (low, high), 0 <= low <= high, got {value}"
                )
        if self.group_size[0] < 1 or int(self.group_size[1]) < int(self.group_size[0]):
            raise ValueError(
                f"synth: group_size must be (low, high) videos with 1 <= low <= high, got {self.group_size}"
            )
        if self.ambiguous_share[1] > 1:
            raise ValueError("synth: ambiguous_share must lie in [0, 1]")
        if not 1 <= self.qscale <= 31:
            raise ValueError("synth: qscale must be in 1..31")
        if self.palette not in PALETTES:
            raise ValueError(f"synth: palette must be one of {PALETTES}, got {self.palette!r}")
        if self.palette == "colour" and self.colour_actor_dim[0] <= self.actor_tint:
            raise ValueError(
                "synth: colour_actor_dim must start above actor_tint (disjoint actor colours)"
            )
        return self


PRESETS: dict[str, dict[str, Any]] = {
    # Sized for the whole pipeline (teacher + 5 students, tiny 3D CNNs, 10 epochs) on 2 cores.
    # The target of the default run. 125 test videos per class (1000): paired bootstrap
    # intervals of about +-4 points at K = 1 (docs/method.md, section 5); test videos cost only
    # scoring, never training. 50 training videos per class of at most 12 clips: the same
    # clips per epoch as 25 of up to 30, twice the groups; the fine-tuned teacher reached 65%
    # dense test accuracy with them against 49% (README.md, Results).
    "default": {"test_per_class": 125, "train_per_class": 50, "train_max_clips": 12},
    # The source dataset of the transfer protocol (docs/method.md, section 2.5), in Kinetics'
    # role: every motion (11 classes against the target's 8), more and shorter videos, each its
    # own group (Kinetics: one clip per YouTube video), milder ambiguity, and the disjoint
    # ``colour`` appearance family. Its test split is unused (a few videos: the layout needs it).
    "source": {
        "num_classes": 11,
        "train_per_class": 50,
        "test_per_class": 2,
        "group_size": (1, 1),
        "min_clips": 2,
        "max_clips": 8,
        "ambiguous_share": (0.0, 0.5),
        "palette": "colour",
    },
    # For end-to-end tests.
    "tiny": {
        "num_classes": 4,
        "train_per_class": 4,
        "test_per_class": 3,
        "min_clips": 2,
        "max_clips": 6,
        "group_size": (1, 2),
        "height": 32,
        "width": 40,
    },
}


def make_config(preset: str = "default", **overrides: Any) -> SynthConfig:
    """The preset's :class:`SynthConfig` with ``overrides`` applied and checked."""
    if preset not in PRESETS:
        raise ValueError(f"synth: unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    names = {f.name for f in dataclasses.fields(SynthConfig)}
    values = {**PRESETS[preset], **overrides}
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"synth: unknown parameters {sorted(unknown)}; valid: {sorted(names)}")
    defaults = SynthConfig()
    for key, value in values.items():
        if isinstance(getattr(defaults, key), tuple):
            values[key] = tuple(float(v) for v in value)
    return SynthConfig(**values).validate()


# ---------------------------------------------------------------------------------------------
# Rendering. Coordinates are pixels, x to the right, y down; arrays are (frames, H, W, 3) float.


@dataclass(frozen=True)
class _Video:
    """Per-video appearance, drawn once."""

    label: int
    distractor: int
    background: np.ndarray  # (H, W, 3)
    colour: np.ndarray  # (3,)
    sigma: float  # px
    speed: float  # px per frame


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: tuple[int, int]) -> np.ndarray:
    """Bilinearly upsampled random grid, (h, w, 3) in [-1, 1]."""
    gh, gw = cells
    grid = rng.uniform(-1, 1, (gh, gw, 3))
    ry = _interp_matrix(h, gh)
    rx = _interp_matrix(w, gw)
    return np.einsum("yi,ijc,xj->yxc", ry, grid, rx, optimize=True)


def _interp_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Linear interpolation weights (n_out, n_in) mapping a coarse axis onto a fine one."""
    pos = np.linspace(0, n_in - 1, n_out)
    return np.maximum(0.0, 1.0 - np.abs(pos[:, None] - np.arange(n_in)[None, :]))


def _trajectory(
    motion: str, n: int, rng: np.random.Generator, speed: float, side: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Offsets (dx, dy) from the start and a size factor, each (n,), for one clip of ``motion``.

    ``MoveLeft`` and ``MoveRight`` have a direction (a horizontal flip turns one into the
    other); every other motion is drawn facing left or right at random, so that a flip keeps
    its class.
    """
    t = np.arange(n, dtype=np.float64)
    zero, one = np.zeros(n), np.ones(n)
    mirror = rng.choice([-1.0, 1.0])
    phase = rng.uniform(0, 2 * math.pi)
    if motion == "MoveLeft":
        return -speed * t, zero, one
    if motion == "MoveRight":
        return speed * t, zero, one
    if motion == "MoveUp":
        return zero, -speed * t, one
    if motion == "MoveDown":
        return zero, speed * t, one
    if motion == "DiagonalDown":
        return mirror * speed * t / math.sqrt(2), speed * t / math.sqrt(2), one
    if motion == "DiagonalUp":
        return mirror * speed * t / math.sqrt(2), -speed * t / math.sqrt(2), one
    if motion == "Circle":
        radius = rng.uniform(0.15, 0.25) * side
        angle = phase + mirror * 2 * math.pi * t / rng.uniform(12, 18)
        return radius * np.cos(angle), radius * np.sin(angle), one
    if motion == "ZigZag":
        period, amp = rng.uniform(6, 10), 0.12 * side
        tri = 2 * np.abs(2 * ((t / period + phase) % 1) - 1) - 1
        return mirror * speed * t, amp * tri, one
    if motion == "Pulse":
        return zero, zero, 1 + 0.5 * np.sin(2 * math.pi * t / rng.uniform(8, 12) + phase)
    if motion == "Shake":
        amp = 0.1 * side
        return amp * np.sin(2 * math.pi * t / rng.uniform(4, 6) + phase), zero, one
    if motion == "Bob":
        amp = 0.1 * side
        return zero, amp * np.sin(2 * math.pi * t / rng.uniform(4, 6) + phase), one
    raise ValueError(f"unknown motion {motion!r}")


def _place(
    dx: np.ndarray,
    dy: np.ndarray,
    margin: float,
    box: tuple[float, float, float, float],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Absolute positions: the path shifted to a random place where it stays inside ``box``
    (x0, y0, x1, y1) with ``margin`` (at most half the box); a path too long for the box is shrunk to fit."""
    out = []
    for d, lo, hi in ((dx, box[0], box[2]), (dy, box[1], box[3])):
        m = min(margin, (hi - lo) / 2)
        lo, hi = lo + m, hi - m
        extent, room = d.max() - d.min(), hi - lo
        if extent > room:
            d, extent = d * (room / extent), room
        start = lo + rng.uniform(0, max(room - extent, 0.0)) - d.min()
        out.append(start + d)
    return out[0], out[1]


def _blob(xs: np.ndarray, ys: np.ndarray, sigmas: np.ndarray, h: int, w: int) -> np.ndarray:
    """(n, H, W) opacity of a Gaussian blob with a saturated core, separable in x and y."""
    gx = np.exp(-((np.arange(w)[None, :] - xs[:, None]) ** 2) / (2 * sigmas[:, None] ** 2))
    gy = np.exp(-((np.arange(h)[None, :] - ys[:, None]) ** 2) / (2 * sigmas[:, None] ** 2))
    gx, gy = gx.astype(np.float32), gy.astype(np.float32)
    return np.minimum(np.float32(1), np.float32(1.5) * gy[:, :, None] * gx[:, None, :])


def _composite(frames: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> np.ndarray:
    a = alpha[..., None]
    return frames + a * (colour.astype(np.float32) - frames)


def _gaussian_matrix(n: int, sigma: float) -> np.ndarray:
    """(n, n) row-normalised Gaussian smoothing matrix (edges renormalised)."""
    k = np.exp(-((np.arange(n)[:, None] - np.arange(n)[None, :]) ** 2) / (2 * sigma**2))
    return (k / k.sum(axis=1, keepdims=True)).astype(np.float32)


def _render_clip(
    video: _Video, kind: str, n: int, cfg: SynthConfig, rng: np.random.Generator
) -> np.ndarray:
    """(n, H, W, 3) float frames of one clip of ``kind``."""
    h, w = cfg.height, cfg.width
    side = float(min(h, w))
    box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)  # survives center crops
    frames = np.broadcast_to(video.background, (n, h, w, 3)).astype(np.float32)

    def actor(motion: int, sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        dx, dy, scale = _trajectory(MOTIONS[motion], n, rng, video.speed, side)
        xs, ys = _place(dx, dy, 1.5 * sigma * scale.max(), box, rng)
        return xs, ys, sigma * scale

    xs, ys, sig = actor(video.label, video.sigma)
    if kind == "static":
        xs, ys, sig = np.full(n, xs[0]), np.full(n, ys[0]), np.full(n, sig[0])
    opacity = rng.uniform(
        *{"distractor": cfg.faint_alpha, "blur": cfg.blur_alpha}.get(kind, (1, 1))
    )
    frames = _composite(frames, opacity * _blob(xs, ys, sig, h, w), video.colour)

    if kind == "distractor":
        dsig = video.sigma * rng.uniform(*cfg.distractor_scale)
        frames = _composite(frames, _blob(*actor(video.distractor, dsig), h, w), video.colour)
    elif kind == "occlusion":
        r = 2 * sig.max()
        lo = np.array([xs.min() - r, ys.min() - r])
        hi = np.array([xs.max() + r, ys.max() + r])
        major = int(np.argmax(hi - lo))
        cover = rng.uniform(*cfg.occluder_cover)
        length = (hi - lo)[major] * cover
        lo[major] += rng.uniform(0, (hi - lo)[major] - length)
        hi[major] = lo[major] + length
        (ox0, oy0), (ox1, oy1) = np.floor(lo).astype(int).clip(0), np.ceil(hi).astype(int)
        grey = rng.uniform(60, 200)
        patch = grey + 25 * _smooth_noise(rng, h, w, (3, 3))[..., :1]
        frames[:, oy0:oy1, ox0:ox1] = patch[oy0:oy1, ox0:ox1]
    elif kind == "blur":
        s = rng.uniform(*cfg.blur_sigma) * side
        frames = np.einsum("yi,nijc->nyjc", _gaussian_matrix(h, s), frames)
        frames = np.einsum("xj,nyjc->nyxc", _gaussian_matrix(w, s), frames)
        frames += rng.normal(0, rng.uniform(*cfg.noise_std), frames.shape).astype(np.float32)
    return frames


def _draw_video(label: int, cfg: SynthConfig, rng: np.random.Generator) -> _Video:
    h, w = cfg.height, cfg.width
    side = min(h, w)
    others = [c for c in range(cfg.num_classes) if c != label]
    if cfg.palette == "colour":
        # a hue, never a grey: one channel up, one down, the third either way
        signs = rng.permutation([1.0, -1.0, float(rng.choice([-1.0, 1.0]))])
        offset = rng.uniform(*cfg.colour_tint, 3) * signs
        base = rng.uniform(*cfg.background_level) + offset
    else:
        base = rng.uniform(*cfg.background_level) + rng.uniform(-1, 1, 3) * cfg.background_tint
    texture = rng.uniform(*cfg.texture_contrast) * _smooth_noise(
        rng, h, w, tuple(rng.integers(3, 7, 2))
    )
    gradient = rng.uniform(-20, 20) * np.linspace(-1, 1, w)[None, :, None]
    return _Video(
        label=label,
        distractor=int(rng.choice(others)),
        background=np.clip(base + texture + gradient, 0, 255).astype(np.float32),
        colour=255
        - (
            rng.uniform(*cfg.colour_actor_dim, 3)
            if cfg.palette == "colour"
            else rng.uniform(0, cfg.actor_tint, 3)
        ),
        sigma=rng.uniform(*cfg.actor_sigma) * side,
        speed=rng.uniform(*cfg.speed) * side,
    )


def _num_clips(cfg: SynthConfig, rng: np.random.Generator, max_clips: int | None = None) -> int:
    """N, log-uniform between ``min_clips`` and ``max_clips`` (default ``cfg.max_clips``)."""
    top = cfg.max_clips if max_clips is None else max_clips
    lo, hi = (
        math.log(cfg.min_clips - 0.5 if cfg.min_clips > 1 else 0.5),
        math.log(top + 0.5),
    )
    return int(np.clip(round(math.exp(rng.uniform(lo, hi))), cfg.min_clips, top))


def _clip_kinds(n: int, cfg: SynthConfig, rng: np.random.Generator) -> list[str]:
    """Kinds of a video's n clips; at least one clip stays clean."""
    share = rng.uniform(*cfg.ambiguous_share)
    n_amb = min(round(share * n), n - 1)
    kinds = ["clean"] * n
    names = list(cfg.kind_probs)
    p = np.array([cfg.kind_probs[k] for k in names], dtype=np.float64)
    for i in rng.choice(n, size=n_amb, replace=False):
        kinds[int(i)] = names[int(rng.choice(len(names), p=p / p.sum()))]
    return kinds


def _group_member(video: _Video, cfg: SynthConfig, rng: np.random.Generator) -> _Video:
    """One video of a group: the group's appearance with a small jitter (module docstring)."""
    offset = rng.uniform(-cfg.video_jitter, cfg.video_jitter)
    return dataclasses.replace(
        video,
        background=np.clip(video.background + offset, 0, 255).astype(np.float32),
        speed=video.speed * rng.uniform(0.95, 1.05),
    )


def group_sizes(n: int, cfg: SynthConfig, rng: np.random.Generator) -> list[int]:
    """Sizes of the groups that hold ``n`` videos: uniform in ``group_size``, the last one cut
    to fit."""
    lo, hi = int(cfg.group_size[0]), int(cfg.group_size[1])
    sizes: list[int] = []
    while sum(sizes) < n:
        sizes.append(int(rng.integers(lo, hi + 1)))
    sizes[-1] -= sum(sizes) - n
    return sizes


def render_video(
    label: int,
    cfg: SynthConfig,
    rng: np.random.Generator,
    video: _Video | None = None,
    max_clips: int | None = None,
) -> tuple[np.ndarray, list[str], int]:
    """(T, H, W, 3) uint8 frames, the kind of each clip, and the video's distractor class.

    ``video``: the group's appearance (:func:`_draw_video`), jittered for this video; without
    it the video draws its own. ``max_clips``: its N's upper bound (default ``cfg.max_clips``)."""
    video = _group_member(video, cfg, rng) if video is not None else _draw_video(label, cfg, rng)
    n = _num_clips(cfg, rng, max_clips)
    t = n * cfg.clip_len - int(rng.integers(0, cfg.clip_len))  # the last clip is partial
    kinds = _clip_kinds(n, cfg, rng)
    clips = [
        _render_clip(video, kind, min(cfg.clip_len, t - i * cfg.clip_len), cfg, rng)
        for i, kind in enumerate(kinds)
    ]
    frames = np.clip(np.rint(np.concatenate(clips)), 0, 255).astype(np.uint8)
    return frames, kinds, video.distractor


def encode_avi(path: Path, frames: np.ndarray, fps: int, qscale: int = 4) -> None:
    """Write (T, H, W, 3) uint8 RGB frames as MPEG-4 part 2 in AVI, bit-exact and atomically."""
    h, w = frames.shape[1:3]
    with (
        atomic_path(path) as tmp,
        av.open(str(tmp), "w", format="avi", options={"fflags": "+bitexact"}) as out,
    ):
        stream = out.add_stream("mpeg4", rate=fps, options={"flags": "+bitexact"})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        cc = stream.codec_context
        cc.thread_count = 1
        cc.qscale = True
        cc.global_quality = qscale * 118  # FF_QP2LAMBDA
        for frame in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())


# ---------------------------------------------------------------------------------------------


def generate(
    out_dir: str | os.PathLike, preset: str = "default", seed: int = 0, **overrides: Any
) -> Path:
    """Generate the synthetic benchmark into ``out_dir``; returns the manifest's path.

    Layout (UCF-101, fold 1): ``UCF-101/<Class>/v_<Class>_gGG_cCC.avi``,
    ``ucfTrainTestlist/{classInd,trainlist01,testlist01}.txt``, plus ``manifest.parquet`` (one
    row per clip: ``video, label, split, group, clip_index, num_clips, ambiguous, kind,
    distractor_class``; ``group`` is ``<Class>/gGG`` as the UCF-101 reader names it;
    ``distractor_class`` is -1 except on distractor clips) and ``synth_config.json``. Per class,
    ``train_per_class`` training videos in groups g01, g02, ... of ``group_size`` videos, then
    ``test_per_class`` test videos in the following groups: a group is never split.

    Random streams: the group sizes of a class from ``(seed, label)``, a group's appearance from
    ``(seed, label, g)``, a video's content from ``(seed, label, g, c)``.
    """
    cfg = make_config(preset, **overrides)
    out = Path(out_dir)
    lists = out / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    names = list(MOTIONS[: cfg.num_classes])
    rows, train_lines, test_lines = [], [], []
    for label, name in enumerate(names):
        (out / "UCF-101" / name).mkdir(parents=True, exist_ok=True)
        sizes_rng = np.random.default_rng([seed, label])
        groups = [("train", n) for n in group_sizes(cfg.train_per_class, cfg, sizes_rng)]
        groups += [("test", n) for n in group_sizes(cfg.test_per_class, cfg, sizes_rng)]
        for g, (split, size) in enumerate(groups, start=1):
            look = _draw_video(label, cfg, np.random.default_rng([seed, label, g]))
            for c in range(1, size + 1):
                rel = f"{name}/v_{name}_g{g:02d}_c{c:02d}.avi"
                rng = np.random.default_rng([seed, label, g, c])
                top = cfg.train_max_clips if split == "train" else None
                frames, kinds, distractor = render_video(label, cfg, rng, look, top)
                encode_avi(out / "UCF-101" / rel, frames, cfg.fps, cfg.qscale)
                if split == "train":
                    train_lines.append(f"{rel} {label + 1}")
                else:
                    test_lines.append(rel)
                for i, kind in enumerate(kinds):
                    rows.append(
                        {
                            "video": f"UCF-101/{rel}",
                            "label": label,
                            "split": split,
                            "group": f"{name}/g{g:02d}",
                            "clip_index": i,
                            "num_clips": len(kinds),
                            "ambiguous": kind != "clean",
                            "kind": kind,
                            "distractor_class": distractor if kind == "distractor" else -1,
                        }
                    )
    write_text(lists / "classInd.txt", "".join(f"{i + 1} {n}\n" for i, n in enumerate(names)))
    write_text(lists / "trainlist01.txt", "".join(f"{line}\n" for line in train_lines))
    write_text(lists / "testlist01.txt", "".join(f"{line}\n" for line in test_lines))

    manifest = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    manifest = manifest.sort_values(["video", "clip_index"], kind="stable").reset_index(drop=True)
    manifest = manifest.astype(
        {"label": "int64", "clip_index": "int64", "num_clips": "int64", "distractor_class": "int64"}
    )
    manifest_path = out / "manifest.parquet"
    with atomic_path(manifest_path) as tmp:
        pq.write_table(pa.Table.from_pandas(manifest, preserve_index=False), tmp)

    summary = {
        "generator_version": GENERATOR_VERSION,
        "preset": preset,
        "seed": seed,
        "overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()},
        "config": dataclasses.asdict(cfg),
        "class_names": names,
        "num_videos": len(train_lines) + len(test_lines),
        "num_groups": int(manifest["group"].nunique()),
        "num_clips": len(manifest),
        "ambiguous_share": float(manifest["ambiguous"].mean()),
        "kind_counts": {k: int((manifest["kind"] == k).sum()) for k in KINDS},
    }
    write_text(out / "synth_config.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
    log.info(
        "synth: %d videos, %d clips (%.0f%% ambiguous) in %s",
        summary["num_videos"],
        summary["num_clips"],
        100 * summary["ambiguous_share"],
        out,
    )
    return manifest_path
