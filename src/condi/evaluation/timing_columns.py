"""The columns of the timing CSV (``condi report timing``, :mod:`condi.evaluation.timing`),
read by Tables IV and V and the figures: here, apart from the timing code, so that the
readers start without torch."""

from __future__ import annotations

__all__ = ["ALL_K", "TIMING_COLUMNS"]

ALL_K = "All"

TIMING_COLUMNS = [
    "dataset",
    "fold",
    "teacher",
    "student",
    "method",
    "K",
    "Ks",
    "n_videos",
    "time_s",
    "time_s_std",
    "time_s_median",
    "top1",
    "top1_grid",
    "gmacs_per_video",
    "speedup_time",
    "speedup_gmacs",
    "teacher_clips_per_video",
    "student_clips_per_video",
    "clips_per_video",
    "teacher_gmacs_per_clip",
    "student_gmacs_per_clip",
    "device",
    "device_name",
    "threads",
    "amp",
    "channels_last",
    "fuse",
    "batch_size",
    "decoding",
    "clip_shape",
    "repeats",
    "warmup",
    "torch",
]
