"""Classify whole videos with a trained student + teacher (paper Fig. 1, docs/method.md, sections 3-4).

The student skims every clip of the video and ranks them by its method's own score (the
registry's ``ranking``, :mod:`condi.methods`): a ``condi_sr`` student sends the K clips with the
highest z~ to the teacher (``ks = 0``, inference (b)), or classifies the Ks lowest-entropy clips
itself and sends K - Ks to the teacher (inference (c)); any other student sends its top K
clips (``bce_conf``: z~, ``st_ent``: lowest entropy, ``st_conf``: its confidence c,
``maxprob``: max-softmax), whose teacher probabilities are averaged, as in the evaluation grid.
:func:`student_method` refuses a student whose checkpoint names no method it can rank with.
Timing covers the forward passes on decoded clips (decoding is reported separately).

:func:`predict_videos` decodes ahead: a worker thread decodes (and normalises) the next video
while the models classify the current one (PyAV and torch release the GIL in their heavy
loops), so a run over many videos costs about the larger of the decoding and the model time
instead of their sum (``benchmarks/predict_overlap.py``). Each model runs at its fastest batch
size on this device (``batch_size: auto``, :mod:`condi.batching`).
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from condi.batching import AUTO, BatchProfile, batch_profile, run_batched
from condi.evaluation.samplers import ranked, split_choice, split_prediction
from condi.methods import METHODS, Method, get_method
from condi.metrics import softmax_np
from condi.scores import student_clip_scores

log = logging.getLogger(__name__)
AHEAD_THREADING = "NONE"  # the decode-ahead worker's decoder threading (predict_videos)

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


def _batched(model: nn.Module, x: torch.Tensor, profile: BatchProfile, device: torch.device):
    with torch.inference_mode():
        outs = run_batched(model, x, profile, device)
    if isinstance(outs[0], tuple):
        return torch.cat([o[0] for o in outs]).float().cpu().numpy(), torch.cat(
            [o[1] for o in outs]
        ).float().cpu().numpy()
    return torch.cat(outs).float().cpu().numpy(), None


def model_batches(
    teacher: nn.Module,
    student: nn.Module,
    clip_shape: tuple[int, ...],
    batch_size: int | str = AUTO,
    device: torch.device | None = None,
) -> tuple[BatchProfile, BatchProfile]:
    """``(teacher's, student's)`` batch profiles for clips of ``clip_shape`` (3, L, crop, crop):
    a fixed size, or each model's measured fastest (``auto``, :mod:`condi.batching`)."""
    device = device or torch.device("cpu")
    return (
        batch_profile(teacher, device, clip_shape, batch_size),
        batch_profile(student, device, clip_shape, batch_size),
    )


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
    batch_size: int | str = 64,
    device: torch.device | None = None,
    batches: tuple[BatchProfile, BatchProfile] | None = None,
    method: str = SPLIT_METHOD,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Run the inference of a ``method`` student on one video's normalised clips (module
    docstring); ``ks > 0`` only for ``condi_sr`` (inference (c)).

    ``batch_size``: clips per forward pass, or ``"auto"`` (each model's fastest, measured);
    ``batches`` (teacher's, student's profile, :func:`model_batches`) overrides it.
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
    if batches is None:
        batches = model_batches(teacher, student, tuple(clips.shape[1:]), batch_size, device)
    t_batches, s_batches = batches
    s_logits, conf = _batched(student, clips, s_batches, device)
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
    t_probs = np.zeros((n, s_logits.shape[1]))
    if len(chosen_t):
        t_logits, _ = _batched(teacher, clips[torch.from_numpy(chosen_t)], t_batches, device)
        t_probs[chosen_t] = softmax_np(t_logits.astype(np.float64))
    if method == SPLIT_METHOD:
        probs, s_used, t_used = split_prediction(t_probs, s_probs, z_tilde, h, k, ks)
        return probs, s_used, t_used, score
    return t_probs[order].mean(axis=0), np.zeros(0, np.int64), order, score


@dataclass
class Decoded:
    """One video decoded for prediction: its normalised clips, or why it cannot be used."""

    path: Path
    clips: torch.Tensor | None
    decode_s: float
    error: str | None = None


def failed_prediction(path: str | Path, reason: str) -> Prediction:
    return Prediction(str(path), -1, "", [], [], [], 0, 0.0, 0.0, error=reason)


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def decode_for_prediction(
    path: str | Path, data_cfg: dict[str, Any], thread_type: str = "AUTO"
) -> Decoded:
    """Decode ``path`` (PyAV; ``thread_type``: the decoder's threading), cut it into clips and
    normalise them; a bad file (missing, a directory, empty, not a video, undecodable, too big
    for memory) gives a :class:`Decoded` with ``error`` instead of raising."""
    import av

    from condi.data.video import VideoError, read_video_clips

    path = Path(path)
    if not path.exists():
        return Decoded(path, None, 0.0, "no such file")
    if path.is_dir():
        return Decoded(path, None, 0.0, "is a directory, not a video file")
    t0 = time.perf_counter()
    try:
        clips = read_video_clips(
            path, data_cfg["clip_len"], data_cfg["short_side"], thread_type=thread_type
        )
    except VideoError as exc:
        return Decoded(path, None, 0.0, exc.reason)
    except (OSError, av.error.FFmpegError) as exc:  # unreadable file, a decoder error outside
        return Decoded(path, None, 0.0, f"cannot read: {exc}")  # the packet loop
    except MemoryError:
        return Decoded(
            path, None, 0.0, "out of memory while decoding (too many or too large frames)"
        )
    if len(clips) == 0:
        return Decoded(path, None, 0.0, "no frames decoded")
    try:
        x = normalise_clips(clips, data_cfg["crop_size"], data_cfg["mean"], data_cfg["std"])
    except MemoryError:
        return Decoded(path, None, 0.0, "out of memory while classifying (too many clips)")
    return Decoded(path, x, time.perf_counter() - t0)


def classify_decoded(
    decoded: Decoded,
    teacher: nn.Module,
    student: nn.Module,
    class_names: list[str],
    k: int,
    ks: int = 0,
    device: torch.device | None = None,
    batch_size: int | str = AUTO,
    batches: tuple[BatchProfile, BatchProfile] | None = None,
    method: str = SPLIT_METHOD,
) -> Prediction:
    """Classify a decoded video (:func:`predict_clips`); ``model_s`` times the models only."""
    if decoded.error is not None or decoded.clips is None:
        return failed_prediction(decoded.path, decoded.error or "not decoded")
    x = decoded.clips
    t1 = time.perf_counter()
    try:
        probs, s_used, t_used, score = predict_clips(
            x, teacher, student, k, ks, batch_size, device, batches, method=method
        )
    except MemoryError:
        return failed_prediction(decoded.path, "out of memory while classifying (too many clips)")
    model_s = time.perf_counter() - t1
    order = np.argsort(-probs)[:5]
    return Prediction(
        video=str(decoded.path),
        label=int(order[0]),
        label_name=class_names[int(order[0])],
        top5=[(class_names[int(i)], float(probs[i])) for i in order],
        student_clips=sorted(int(i) for i in s_used),
        teacher_clips=sorted(int(i) for i in t_used),
        num_clips=len(x),
        decode_s=decoded.decode_s,
        model_s=model_s,
        method=method,
        ranking=get_method(method).ranking,
        clip_scores=[round(float(z), 4) for z in score],
    )


def predict_video(
    path: str | Path,
    teacher: nn.Module,
    student: nn.Module,
    class_names: list[str],
    data_cfg: dict[str, Any],
    k: int,
    ks: int = 0,
    device: torch.device | None = None,
    batch_size: int | str = AUTO,
    method: str = SPLIT_METHOD,
) -> Prediction:
    """Decode ``path`` (PyAV) and classify it; a bad file (missing, a directory, empty, not a
    video, undecodable, too big for memory) gives a Prediction with ``error`` instead of
    raising, so that the other videos of the same call are still classified."""
    decoded = decode_for_prediction(path, data_cfg)
    return classify_decoded(
        decoded, teacher, student, class_names, k, ks, device, batch_size, method=method
    )


def _decode_safely(
    path: str | Path, data_cfg: dict[str, Any], thread_type: str = "AUTO"
) -> Decoded:
    try:
        return decode_for_prediction(path, data_cfg, thread_type)
    except Exception as exc:  # noqa: BLE001 - one file's failure must not stop the others
        log.debug("%s: decoding failed", path, exc_info=True)
        return Decoded(Path(path), None, 0.0, _reason(exc))


def predict_videos(
    paths: Iterable[str | Path],
    teacher: nn.Module,
    student: nn.Module,
    class_names: list[str],
    data_cfg: dict[str, Any],
    k: int,
    ks: int = 0,
    device: torch.device | None = None,
    batch_size: int | str = AUTO,
    prefetch: int = 1,
    method: str = SPLIT_METHOD,
) -> Iterator[Prediction]:
    """:func:`predict_video` for every path, in order, with decoding ``prefetch`` videos ahead
    of the models in a worker thread (``prefetch=0``: decode, then classify, one video after
    another). The worker decodes with one thread (FFmpeg's own frame threads would compete
    with the models for the cores: 10 UCF-101-sized videos on 2 cores took 1.04 s overlapped
    with them against 0.64 s without, and 1.09 s in sequence). Every failure (a bad file, an error while classifying) is a Prediction with
    ``error``; the other videos are still classified."""
    device = device or torch.device("cpu")
    paths = list(paths)
    crop = data_cfg["crop_size"]
    shape = (3, data_cfg["clip_len"], crop, crop)
    batches: tuple[BatchProfile, BatchProfile] | None = None

    def classify(decoded: Decoded) -> Prediction:
        nonlocal batches
        try:
            if batches is None and decoded.error is None:
                batches = model_batches(teacher, student, shape, batch_size, device)
            return classify_decoded(
                decoded, teacher, student, class_names, k, ks, device, batch_size, batches, method
            )
        except Exception as exc:  # noqa: BLE001 - one file's failure must not stop the others
            log.debug("%s: failed", decoded.path, exc_info=True)
            return failed_prediction(decoded.path, _reason(exc))

    if prefetch <= 0:
        for path in paths:
            yield classify(_decode_safely(path, data_cfg))
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="condi-decode") as pool:
        pending: deque[Future[Decoded]] = deque()
        ahead = iter(paths)
        for path in ahead:
            pending.append(pool.submit(_decode_safely, path, data_cfg, AHEAD_THREADING))
            if len(pending) > prefetch:
                break
        while pending:
            decoded = pending.popleft().result()
            nxt = next(ahead, None)
            if nxt is not None:
                pending.append(pool.submit(_decode_safely, nxt, data_cfg, AHEAD_THREADING))
            yield classify(decoded)
