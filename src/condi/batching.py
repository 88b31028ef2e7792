"""Each model's fastest batch size on this device (docs/method.md, section 6, "Batching").

A fixed batch size handicaps some models: on CPU, batching 3D CNNs is often *slower* per clip
than one clip at a time (3D-MobileNetV2 1.0x at 16x112x112, one thread: 45 ms per clip alone,
100 ms per clip in a batch of 2), while another model is fastest at 2 and a GPU wants 32 or
more. ``evaluation.batch_size: auto`` therefore measures, once per

    (model: architecture, keyword arguments and parameter shapes; device and its name;
     torch threads; clip shape; memory layout; precision; torch version)

the seconds of one forward pass at batch sizes 1-8, 12, 16, 24, 32, 48 and 64
(:func:`measure`), stopping early once larger batches stop paying off or the measurement
would take too long, and keeps the figures in a small JSON cache (:func:`cache_file`:
``$CONDI_CACHE_DIR``, else ``$XDG_CACHE_HOME/condi``, else ``~/.cache/condi``), so every
later run on the same machine reuses them.

From the measured seconds :class:`BatchProfile` gives

* :meth:`BatchProfile.plan`: how to cut the N clips of one video into batches so that the
  summed measured time is smallest (dynamic programming over the measured sizes; e.g.
  ``[2, 2, 2, 2, 2, 1]`` for 11 clips when 2 is fastest per clip and 1 beats 3), used where one
  video's clips go through a model at once (Tables IV/V timing, ``condi predict``, the speed
  report);
* :meth:`BatchProfile.best`: the fastest size per clip, for long streams of clips (per-clip
  scores, pseudo-labels, validation).

Dense and ConDi both get their best: the teacher and each student are profiled on their own.
Outputs depend on the batch composition only through floating-point rounding.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

AUTO = "auto"
# batch sizes tried, in order (capped by ``max_batch``)
CANDIDATES = (1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 24, 32, 48, 64)
CACHE_NAME = "batch_sizes.json"
CACHE_VERSION = 1
WORSE = 1.10  # a size is "worse" when its time per clip exceeds the best so far by this factor
PATIENCE = 2  # stop after this many worse sizes in a row
BUDGET_S = 15.0  # stop before a size whose expected measurement cost exceeds what is left
MIN_TIMED_S = 0.2  # repeat a timed pass until this much time (at most MAX_REPS passes)
MAX_REPS = 3

_MEMORY: dict[str, BatchProfile] = {}
_now = time.perf_counter  # wall clock (tests replace both clocks)
_cpu_now = time.thread_time  # this thread's CPU time


@dataclass(frozen=True)
class BatchProfile:
    """Measured seconds of one forward pass per batch size (at least batch size 1)."""

    seconds: dict[int, float]
    fixed: int | None = None  # a fixed batch size from params: no measurement

    @classmethod
    def fixed_size(cls, batch_size: int) -> BatchProfile:
        """A profile that always batches ``batch_size`` clips (the last batch may be short)."""
        if int(batch_size) < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        return cls({}, int(batch_size))

    def per_clip(self) -> dict[int, float]:
        return {b: s / b for b, s in sorted(self.seconds.items())}

    def best(self) -> int:
        """The batch size with the smallest measured time per clip (ties: the smaller)."""
        if self.fixed is not None:
            return self.fixed
        per = self.per_clip()
        return min(per, key=lambda b: (per[b], b))

    def plan(self, n: int) -> list[int]:
        """Batch sizes (summing to ``n``, largest first) whose summed measured time is least.

        Only measured sizes are used; with a fixed size, ``n`` is cut into batches of it.
        """
        n = int(n)
        if n <= 0:
            return []
        if self.fixed is not None:
            full, rest = divmod(n, self.fixed)
            return [self.fixed] * full + ([rest] if rest else [])
        sizes = sorted(self.seconds)
        if 1 not in self.seconds:
            raise ValueError("a measured batch profile must include batch size 1")
        # a stream much longer than the largest measured size: whole batches of the best size
        # per clip, then plan the remainder (keeps the dynamic programme small)
        best = self.best()
        head: list[int] = []
        limit = 4 * max(sizes)
        if n > limit:
            k = (n - limit) // best + 1
            head, n = [best] * k, n - k * best
        cost = [0.0] + [math.inf] * n
        pick = [0] * (n + 1)
        for m in range(1, n + 1):
            for b in sizes:
                if b > m:
                    break
                c = cost[m - b] + self.seconds[b]
                if c < cost[m] - 1e-15:
                    cost[m], pick[m] = c, b
        out = []
        m = n
        while m > 0:
            out.append(pick[m])
            m -= pick[m]
        return head + sorted(out, reverse=True)

    def slices(self, n: int) -> list[slice]:
        """:meth:`plan` as consecutive slices of ``range(n)``."""
        out, start = [], 0
        for b in self.plan(n):
            out.append(slice(start, start + b))
            start += b
        return out

    def label(self) -> str:
        """``64`` (fixed) or ``auto:2`` (measured; the best size per clip)."""
        return str(self.fixed) if self.fixed is not None else f"{AUTO}:{self.best()}"

    def as_dict(self) -> dict[str, Any]:
        return {"seconds": {str(b): s for b, s in sorted(self.seconds.items())}}


def parse_setting(value: int | str) -> int | str:
    """``evaluation.batch_size``: ``"auto"`` or a positive integer."""
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"batch size must be 'auto' or a positive integer, got {value!r}")
    try:
        size = int(value)
    except ValueError as exc:
        raise ValueError(f"batch size must be 'auto' or a positive integer, got {value!r}") from exc
    if size < 1:
        raise ValueError(f"batch size must be 'auto' or a positive integer, got {value!r}")
    return size


# -- the cache key -----------------------------------------------------------------------------


def model_fingerprint(model: nn.Module) -> dict[str, str]:
    """What determines a model's cost: its class, ``arch``/``arch_kwargs`` when it has them,
    and a hash of every parameter's and buffer's name, shape and dtype."""
    shapes = [(n, tuple(p.shape), str(p.dtype)) for n, p in model.named_parameters()]
    shapes += [(n, tuple(b.shape), str(b.dtype)) for n, b in model.named_buffers()]
    digest = hashlib.sha256(repr(shapes).encode()).hexdigest()[:16]
    arch = getattr(model, "arch", None)
    kwargs = getattr(model, "arch_kwargs", None)
    name = type(model).__name__ + (f"({arch}" if arch else "")
    if arch:
        name += f", {json.dumps(kwargs or {}, sort_keys=True)})"
    return {"model": name, "shapes": digest}


def device_label(device: torch.device) -> str:
    from condi.runtime import device_name

    index = f":{device.index}" if device.index is not None else ""
    return f"{device.type}{index} {device_name(device)}"


def profile_key(
    model: nn.Module,
    device: torch.device,
    clip_shape: Sequence[int],
    channels_last: bool = False,
    amp: bool = False,
) -> str:
    """The cache key (a JSON string) of a model's batch profile on ``device``."""
    key = {
        **model_fingerprint(model),
        "device": device_label(torch.device(device)),
        "threads": torch.get_num_threads() if torch.device(device).type == "cpu" else 0,
        "input": "x".join(str(int(s)) for s in clip_shape),
        "channels_last": bool(channels_last),
        "amp": bool(amp),
        "torch": torch.__version__,
    }
    return json.dumps(key, sort_keys=True)


def cache_file() -> Path:
    """``$CONDI_CACHE_DIR/batch_sizes.json`` (else ``$XDG_CACHE_HOME/condi``, else
    ``~/.cache/condi``)."""
    base = os.environ.get("CONDI_CACHE_DIR")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        base = str(Path(xdg) / "condi")
    return Path(base) / CACHE_NAME


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable batch-size cache (%s); measuring again", path, exc)
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
        return {}
    entries = data.get("profiles")
    return entries if isinstance(entries, dict) else {}


def _profile_from(entry: Any) -> BatchProfile | None:
    try:
        seconds = {int(b): float(s) for b, s in entry["seconds"].items()}
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    if 1 not in seconds or any(not (s > 0 and math.isfinite(s)) for s in seconds.values()):
        return None
    return BatchProfile(seconds)


def _write_cache(path: Path, key: str, profile: BatchProfile) -> None:
    """Merge one profile into the cache file (atomic replace; a failure only warns)."""
    from condi.io import write_text

    entries = _read_cache(path)
    entries[key] = {**profile.as_dict(), "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
    try:
        write_text(path, json.dumps({"version": CACHE_VERSION, "profiles": entries}, indent=1))
    except OSError as exc:
        log.warning("%s: cannot write the batch-size cache (%s)", path, exc)


# -- measuring ---------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    model: nn.Module,
    device: torch.device,
    clip_shape: Sequence[int],
    channels_last: bool = False,
    amp: bool = False,
    max_batch: int = 64,
    budget_s: float = BUDGET_S,
    candidates: Sequence[int] = CANDIDATES,
) -> BatchProfile:
    """Seconds of one forward pass (eval mode, inference mode) per batch size.

    Sizes are tried in ``candidates`` order up to ``max_batch``; each gets one untimed pass
    (oneDNN and cuDNN set up per shape) and timed passes until :data:`MIN_TIMED_S` (at most
    :data:`MAX_REPS`; the minimum counts). With one torch thread on the CPU a pass is timed by
    the thread's CPU time, which on a busy machine (other processes taking turns on the cores)
    stays what an idle machine's wall clock would show; otherwise (several threads, a GPU) by
    the wall clock. It stops after :data:`PATIENCE` sizes in a row
    whose time per clip is :data:`WORSE` than the best so far, or before a size whose
    expected cost (two passes at the best time per clip) exceeds what is left of
    ``budget_s``. The input is seeded noise from a private generator: the global RNG is not
    touched. The model's training flag is restored.
    """
    from condi.models.switches import autocast_context, to_channels_last_3d

    device = torch.device(device)
    clock = _cpu_now if device.type == "cpu" and torch.get_num_threads() == 1 else _now
    gen = torch.Generator().manual_seed(0)
    seconds: dict[int, float] = {}
    best_per_clip, worse, spent = math.inf, 0, 0.0
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), autocast_context(device, enabled=amp):
            for b in candidates:
                if b > max_batch:
                    break
                if seconds and spent + 2 * b * best_per_clip > budget_s:
                    break
                x = torch.randn((b, *clip_shape), generator=gen).to(device)
                if channels_last:
                    x = to_channels_last_3d(x)
                t_start = _now()
                model(x)
                _sync(device)
                runs = []
                while len(runs) < MAX_REPS and sum(runs) < MIN_TIMED_S:
                    t0 = clock()
                    model(x)
                    _sync(device)
                    runs.append(clock() - t0)
                spent += _now() - t_start
                seconds[b] = min(runs)
                per = seconds[b] / b
                if per < best_per_clip:
                    best_per_clip, worse = per, 0
                elif per > WORSE * best_per_clip:
                    worse += 1
                    if worse >= PATIENCE:
                        break
    finally:
        model.train(was_training)
    return BatchProfile(seconds)


def batch_profile(
    model: nn.Module,
    device: torch.device,
    clip_shape: Sequence[int],
    setting: int | str = AUTO,
    channels_last: bool = False,
    amp: bool = False,
    cache: Path | None = None,
) -> BatchProfile:
    """The batch profile of ``model`` for ``setting`` (``evaluation.batch_size``): a fixed
    size, or (``auto``) the measured one, from this process's memory, the cache file, or a
    new measurement that is then cached."""
    setting = parse_setting(setting)
    if setting != AUTO:
        return BatchProfile.fixed_size(int(setting))
    key = profile_key(model, device, clip_shape, channels_last, amp)
    path = cache or cache_file()
    memo = f"{path}\n{key}"
    if memo in _MEMORY:
        return _MEMORY[memo]
    profile = _profile_from(_read_cache(path).get(key))
    if profile is None:
        t0 = time.perf_counter()
        profile = measure(model, device, clip_shape, channels_last, amp)
        log.info(
            "batch sizes of %s on %s: fastest per clip %d (%s; measured in %.1f s, cached in %s)",
            json.loads(key)["model"],
            device,
            profile.best(),
            ", ".join(f"{b}: {s * 1e3:.1f} ms/clip" for b, s in profile.per_clip().items()),
            time.perf_counter() - t0,
            path,
        )
        _write_cache(path, key, profile)
    _MEMORY[memo] = profile
    return profile


def run_batched(
    model: nn.Module,
    x: torch.Tensor,
    profile: BatchProfile,
    device: torch.device,
    channels_last: bool = False,
) -> list[Any]:
    """``model`` on the clips ``x`` cut by ``profile.plan(len(x))``; the outputs in order.
    Call it under ``torch.inference_mode()`` (and autocast, if wanted)."""
    from condi.models.switches import to_channels_last_3d

    outs = []
    for sl in profile.slices(len(x)):
        xb = x[sl].to(device, non_blocking=True)
        if channels_last:
            xb = to_channels_last_3d(xb)
        outs.append(model(xb))
    return outs
