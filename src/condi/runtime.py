"""Device, threads, seeding and RNG-state capture for reproducible, resumable runs."""

from __future__ import annotations

import os
import platform
import random
from typing import Any

import numpy as np
import torch


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else the CPU; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("params: device: 'cuda' requested but no CUDA device is available")
    return torch.device(device)


def setup(
    seed: int, threads: int, device: str = "auto", follow_scheduler: bool = True
) -> torch.device:
    """Seed every RNG, fix the CPU thread count and return the device.

    On CPU the run is bit-reproducible for a fixed seed and thread count; on CUDA cuDNN's
    autotuner is off and deterministic kernels are preferred. ``follow_scheduler``: see
    :func:`job_threads` (timing measures with exactly params ``threads``).
    """
    torch.set_num_threads(job_threads(threads) if follow_scheduler else threads)
    seed_everything(seed)
    dev = resolve_device(device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    return dev


def device_name(device: torch.device) -> str:
    """The GPU's name, else the CPU's model name (``/proc/cpuinfo``), else the platform's."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def job_threads(threads: int) -> int:
    """Torch CPU threads for this job: the threads its scheduler gave it, ``OMP_NUM_THREADS``
    (Snakemake sets it to the rule's ``threads``: params ``threads`` unless a profile's
    ``set-threads`` says otherwise; on SLURM also the job's ``--cpus-per-task``), else
    ``threads`` from params. Never more than that: oversubscribing the cores is ruinous for
    small 3D CNNs (a step that takes 0.08 s alone took 4-7 s with two 2-thread jobs on two
    cores)."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else threads


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Every RNG's state as tensors and plain types (a training state file holds nothing
    else, so that it loads with ``weights_only``): NumPy's MT19937 keys as a list of ints."""
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (
            str(name),
            [int(k) for k in keys],
            int(pos),
            int(has_gauss),
            float(cached_gaussian),
        ),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state` (also the older form whose NumPy keys are an array)."""
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached_gaussian))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
