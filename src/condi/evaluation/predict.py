"""Classify whole videos with a trained student + teacher (paper Fig. 1, docs/method.md, sections 3-4).

The student skims every clip of the video and ranks them by its method's own score (the
registry's ``ranking``, :mod:`condi.methods`): a ``condi_sr`` student sends the K clips with the
highest z~ to the teacher (``ks = 0``, inference (b)), or classifies the Ks lowest-entropy clips
itself and sends K - Ks to the teacher (inference (c)); any other student sends its top K
clips (``bce_conf``: z~, ``st_ent``: lowest entropy, ``st_conf``: its confidence c,
``maxprob``: max-softmax), whose teacher probabilities are averaged, as in the evaluation grid.
:func:`student_method` refuses a student whose checkpoint names no method it can rank with.
Timing covers the forward passes on decoded clips (decoding is reported separately).
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

from condi.evaluation.samplers import ranked, split_choice, split_prediction
from condi.methods import METHODS, Method, get_method
from condi.metrics import softmax_np
from condi.scores import student_clip_scores

# the method whose inference (c) splits K between student and teacher (docs/method.md, section 4)
SPLIT_METHOD = "condi_sr"


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
    method: str = ""  # the student's method
    ranking: str = ""  # the per-clip score it ranks clips by (z_tilde, neg_entropy, max_prob)
    clip_scores: list[float] = field(default_factory=list)  # that score, per clip

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


def student_method(ckpt: dict[str, Any], source: str = "student") -> Method:
    """The registered method a student checkpoint was trained with, if condi can rank clips
    with it; ``ValueError`` saying why not otherwise (no method recorded, an unknown one, or
    one that would rank by a confidence head it never trained)."""
    name = ckpt.get("method")
    if not name:
        raise ValueError(
            f"{source}: the student checkpoint names no method, so condi cannot tell which "
            "per-clip score ranks its clips (z~, entropy, confidence or max-prob); use a "
            f"student written by `condi train student` (methods: {', '.join(METHODS)})"
        )
    try:
        method = get_method(str(name))
    except ValueError:
        raise ValueError(
            f"{source}: trained with method {name!r}, which this condi cannot rank clips with "
            f"(known: {', '.join(METHODS)})"
        ) from None
    if method.ranking == "z_tilde" and not method.trains_confidence:
        raise ValueError(
            f"{source}: method {name!r} ranks by z~ but never trains the confidence head"
        )
    return method


def predict_clips(
    clips: torch.Tensor,
    teacher: nn.Module,
    student: nn.Module,
    k: int,
    ks: int = 0,
    batch_size: int = 64,
    device: torch.device | None = None,
    method: str = SPLIT_METHOD,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Run the inference of a ``method`` student on one video's normalised clips (module
    docstring); ``ks > 0`` only for ``condi_sr`` (inference (c)).

    Returns ``(probabilities (C,), student clips, teacher clips, the ranking score per clip)``
    (the score: z~ for condi_sr and bce_conf, -H for st_ent, c for st_conf, max-prob for
    maxprob; higher is sent to the teacher first).
    """
    ranking = get_method(method).ranking
    if ks and method != SPLIT_METHOD:
        raise ValueError(
            f"--ks {ks}: the student share Ks is ConDi-SR's inference (c); a {method} student "
            f"only ranks clips (by {ranking}): use --ks 0"
        )
    device = device or torch.device("cpu")
    s_logits, conf = _batched(student, clips, batch_size, device)
    scores = student_clip_scores(s_logits, conf)
    score = scores[ranking]
    n = len(clips)
    if method == SPLIT_METHOD:
        s_probs = softmax_np(s_logits.astype(np.float64))
        z_tilde, h = scores["z_tilde"], scores["entropy"]
        chosen_t = np.sort(split_choice(z_tilde, h, k, ks)[1])
    else:  # the top K by the method's own score, as the evaluation grid ranks them
        order = ranked(score)[: min(k, n)]
        chosen_t = np.sort(order)
    # the teacher runs only on the clips it will classify; the others' rows stay unused zeros
    t_logits, _ = _batched(teacher, clips[torch.from_numpy(chosen_t)], batch_size, device)
    t_probs = np.zeros((n, s_logits.shape[1]))
    t_probs[chosen_t] = softmax_np(t_logits.astype(np.float64))
    if method == SPLIT_METHOD:
        probs, s_used, t_used = split_prediction(t_probs, s_probs, z_tilde, h, k, ks)
        return probs, s_used, t_used, score
    return t_probs[order].mean(axis=0), np.zeros(0, np.int64), order, score


def predict_video(
    path: str | Path,
    teacher: nn.Module,
    student: nn.Module,
    class_names: list[str],
    data_cfg: dict[str, Any],
    k: int,
    ks: int = 0,
    device: torch.device | None = None,
    method: str = SPLIT_METHOD,
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
        probs, s_used, t_used, score = predict_clips(
            x, teacher, student, k, ks, device=device, method=method
        )
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
        method=method,
        ranking=get_method(method).ranking,
        clip_scores=[round(float(z), 4) for z in score],
    )
