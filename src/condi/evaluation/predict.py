"""Classify whole videos with a trained student + teacher (paper Fig. 1, docs/method.md, section 4).

The student skims every clip of the video; the K clips with the highest z~ go to the teacher
(``ks = 0``, inference (b)), or the Ks lowest-entropy clips are classified by the student itself
and K - Ks go to the teacher (inference (c)). Timing covers the forward passes on decoded clips
(decoding is reported separately).
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from condi.evaluation.samplers import split_choice, split_prediction
from condi.metrics import softmax_np
from condi.scores import entropy_np, sigmoid


@dataclass
class Prediction:
    video: str
    label: int
    label_name: str
    top5: list[tuple[str, float]]
    student_clips: list[int]
    teacher_clips: list[int]
    num_clips: int
    decode_s: float
    model_s: float
    error: str | None = None
    z_tilde: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# C0/C1 controls, DEL, line/paragraph separators and the bidirectional overrides/isolates: a
# class name or file name holding one could fake or hide lines of the text output.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: object) -> str:
    """``text`` for one line of terminal output: control characters escaped (``\\n``,
    ``\\x1b``, ``\\u202e``), everything else as is."""

    def escape(m: re.Match) -> str:
        c = m.group()
        return _ESCAPES.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")

    return _UNPRINTABLE.sub(escape, str(text))


def normalise_clips(clips: np.ndarray, crop_size: int, mean, std) -> torch.Tensor:
    """uint8 (N, L, S, S, 3) -> float (N, 3, L, crop, crop): center crop, then (x/255 - mean)/std."""
    n, length, h, w, _ = clips.shape
    top, left = (h - crop_size) // 2, (w - crop_size) // 2
    x = torch.from_numpy(
        np.ascontiguousarray(clips[:, :, top : top + crop_size, left : left + crop_size])
    )
    x = x.permute(0, 4, 1, 2, 3).float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1, 1)
    return (x - m) / s


@torch.no_grad()
def _batched(model: nn.Module, x: torch.Tensor, batch_size: int, device: torch.device):
    outs = [model(x[i : i + batch_size].to(device)) for i in range(0, len(x), batch_size)]
    if isinstance(outs[0], tuple):
        return torch.cat([o[0] for o in outs]).float().cpu().numpy(), torch.cat(
            [o[1] for o in outs]
        ).float().cpu().numpy()
    return torch.cat(outs).float().cpu().numpy(), None


def predict_clips(
    clips: torch.Tensor,
    teacher: nn.Module,
    student: nn.Module,
    k: int,
    ks: int = 0,
    batch_size: int = 64,
    device: torch.device | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Run the ConDi inference on one video's normalised clips.

    Returns ``(probabilities (C,), student clips, teacher clips, z~ per clip)``.
    """
    device = device or torch.device("cpu")
    s_logits, conf = _batched(student, clips, batch_size, device)
    z_tilde = sigmoid(conf)
    s_probs = softmax_np(s_logits.astype(np.float64))
    h = entropy_np(s_probs)
    # the teacher runs only on the clips it will classify; the others' rows stay unused zeros
    chosen_t = np.sort(split_choice(z_tilde, h, k, ks)[1])
    t_logits, _ = _batched(teacher, clips[torch.from_numpy(chosen_t)], batch_size, device)
    t_probs = np.zeros((len(clips), s_probs.shape[1]))
    t_probs[chosen_t] = softmax_np(t_logits.astype(np.float64))
    probs, s_used, t_used = split_prediction(t_probs, s_probs, z_tilde, h, k, ks)
    return probs, s_used, t_used, z_tilde


def predict_video(
    path: str | Path,
    teacher: nn.Module,
    student: nn.Module,
    class_names: list[str],
    data_cfg: dict[str, Any],
    k: int,
    ks: int = 0,
    device: torch.device | None = None,
) -> Prediction:
    """Decode ``path`` (PyAV) and classify it; a bad file (missing, a directory, empty, not a
    video, undecodable, too big for memory) gives a Prediction with ``error`` instead of
    raising, so that the other videos of the same call are still classified."""
    import av

    from condi.data.video import VideoError, read_video_clips

    def failed(reason: str) -> Prediction:
        return Prediction(str(path), -1, "", [], [], [], 0, 0.0, 0.0, error=reason)

    path = Path(path)
    if not path.exists():
        return failed("no such file")
    if path.is_dir():
        return failed("is a directory, not a video file")
    t0 = time.perf_counter()
    try:
        clips = read_video_clips(path, data_cfg["clip_len"], data_cfg["short_side"])
    except VideoError as exc:
        return failed(exc.reason)
    except (OSError, av.error.FFmpegError) as exc:  # unreadable file, a decoder error outside
        return failed(f"cannot read: {exc}")  # the packet loop
    except MemoryError:
        return failed("out of memory while decoding (too many or too large frames)")
    if len(clips) == 0:
        return failed("no frames decoded")
    decode_s = time.perf_counter() - t0
    try:
        x = normalise_clips(clips, data_cfg["crop_size"], data_cfg["mean"], data_cfg["std"])
        t1 = time.perf_counter()
        probs, s_used, t_used, z_tilde = predict_clips(x, teacher, student, k, ks, device=device)
    except MemoryError:
        return failed("out of memory while classifying (too many clips)")
    model_s = time.perf_counter() - t1
    order = np.argsort(-probs)[:5]
    return Prediction(
        video=str(path),
        label=int(order[0]),
        label_name=class_names[int(order[0])],
        top5=[(class_names[int(i)], float(probs[i])) for i in order],
        student_clips=sorted(int(i) for i in s_used),
        teacher_clips=sorted(int(i) for i in t_used),
        num_clips=len(clips),
        decode_s=decode_s,
        model_s=model_s,
        z_tilde=[round(float(z), 4) for z in z_tilde],
    )
