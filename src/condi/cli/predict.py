"""``condi predict``: classify videos with a trained student + teacher (docs/method.md, sections 3-4).

Works from any folder with no params file: the checkpoints carry the clip settings they were
trained with (``config``, :func:`condi.models.checkpoint.data_config`) and the student its
method, whose own per-clip score ranks the clips (:func:`condi.evaluation.predict.student_method`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DESCRIPTION = """\
The student scores every 16-frame clip of each video and ranks the clips by its method's own
score: z~ (condi_sr, bce_conf), the lowest entropy (st_ent), its confidence c (st_conf) or the
max-softmax (maxprob). The K best go to the teacher; a condi_sr student can also classify Ks of
them itself (--ks, docs/method.md, section 4). Prints the class, the top 5, the clips each
model classified and the time per video (or one JSON object per video with --json).

No params file is needed: the checkpoints of `condi train` carry the clip length, sizes and
normalisation they were trained with (a checkpoint written before they did: give --params).
"""

EPILOG = """\
file names that start with '-': put them after '--', which ends the options:
  condi predict --teacher-ckpt T.pt --student-ckpt S.pt --k 5 -- -abc.mp4 clip.mp4

Every file that cannot be classified is one "condi: error: FILE: reason" line on stderr and the
others are still classified (exit 1). Names are printed with control characters escaped.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="classify videos: the student ranks every clip, the teacher sees the K best",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "videos",
        nargs="*",
        type=Path,
        metavar="VIDEO",
        help="video files (any format PyAV decodes); names starting with '-' after '--'",
    )
    p.add_argument(
        "--teacher-ckpt",
        type=Path,
        help="teacher checkpoint (condi train teacher), as in `condi report timing`",
    )
    p.add_argument(
        "--student-ckpt",
        type=Path,
        help="student checkpoint (condi train student): its method decides the ranking",
    )
    p.add_argument("--k", type=int, default=5, help="clips to classify per video (default 5)")
    p.add_argument(
        "--ks",
        type=int,
        default=0,
        help="of them, classified by a condi_sr student itself (default 0)",
    )
    # the params file's spelling of K and Ks, and the old names of the checkpoint options
    p.add_argument("--K", dest="k", type=int, help=argparse.SUPPRESS)
    p.add_argument("--Ks", dest="ks", type=int, help=argparse.SUPPRESS)
    p.add_argument("--teacher", dest="old_teacher", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--student", dest="old_student", type=Path, help=argparse.SUPPRESS)
    p.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default=None,
        help="where the models run (default: the params file's, else auto: CUDA when present)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: the params file's, else torch's own choice)",
    )
    p.add_argument(
        "--params",
        default=None,
        help="params file: clip settings for checkpoints that carry none, device and threads",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object per video")
    p.set_defaults(func=cmd_predict, trailing_files="videos")


def _checkpoint_options(args: argparse.Namespace) -> tuple[Path, Path]:
    """``--teacher-ckpt`` and ``--student-ckpt`` (their old names ``--teacher`` and
    ``--student`` still work, with a warning: elsewhere those name a params entry)."""
    out = []
    for role in ("teacher", "student"):
        new, old = getattr(args, f"{role}_ckpt"), getattr(args, f"old_{role}")
        if old is not None:
            if new is not None:
                raise ValueError(f"give --{role}-ckpt once (--{role} is its old name)")
            print(
                f"condi: warning: --{role} is deprecated here, use --{role}-ckpt",
                file=sys.stderr,
            )
            new = old
        if new is None:
            raise ValueError(f"predict: give --{role}-ckpt (the {role} checkpoint)")
        out.append(new)
    return out[0], out[1]


def clip_settings(
    teacher: tuple[Path, dict[str, Any]],
    student: tuple[Path, dict[str, Any]],
    params: dict[str, Any] | None,
) -> dict[str, Any]:
    """The clip settings both models get (:data:`condi.models.checkpoint.DATA_KEYS`): those
    the checkpoints were trained with, which must agree; the params file's for checkpoints
    that carry none."""
    from condi.models.checkpoint import DATA_KEYS, data_config

    found = {str(path): data_config(ckpt) for path, ckpt in (teacher, student)}
    known = {p: d for p, d in found.items() if d is not None}
    if len(known) == 2:
        (tp, td), (sp, sd) = known.items()
        differ = [k for k in DATA_KEYS if td[k] != sd[k]]
        if differ:
            shown = ", ".join(f"{k} {td[k]} vs {sd[k]}" for k in differ)
            raise ValueError(f"{sp}: trained on other clips than teacher {tp} ({shown})")
    if known and (params is None or len(known) == 2):
        return next(iter(known.values()))
    if params is None:
        missing = " and ".join(p for p, d in found.items() if d is None)
        raise ValueError(
            f"{missing}: the checkpoint carries no clip settings (written before condi stored "
            "them): give --params with the params.yaml it was trained with"
        )
    return {k: params["data"][k] for k in DATA_KEYS}


def cmd_predict(args: argparse.Namespace) -> int:
    from condi.evaluation.predict import predict_videos, printable, student_method
    from condi.models.checkpoint import load_model
    from condi.runtime import resolve_device

    teacher_path, student_path = _checkpoint_options(args)
    if not args.videos:
        raise ValueError("predict: give at least one VIDEO (names starting with '-' after '--')")
    if args.k < 1 or args.ks < 0 or args.ks > args.k:
        raise ValueError(f"--k must be >= 1 and 0 <= --ks <= --k, got k={args.k}, ks={args.ks}")
    params = None
    if args.params is not None:
        from condi.config import load_params

        params = load_params(args.params)
    teacher, tck = load_model(teacher_path, role="teacher")
    student, sck = load_model(student_path, role="student")
    method = student_method(sck, str(student_path)).name
    if args.ks and method != "condi_sr":
        raise ValueError(
            f"--ks {args.ks}: {student_path} is a {method} student; the student share Ks is "
            "ConDi-SR's inference (c) (docs/method.md, section 4): use --ks 0"
        )
    if tck["num_classes"] != sck["num_classes"]:
        raise ValueError(
            f"{student_path}: {sck['num_classes']} classes, teacher {teacher_path} has "
            f"{tck['num_classes']}"
        )
    data_cfg = clip_settings((teacher_path, tck), (student_path, sck), params)
    names = tck.get("class_names") or [str(i) for i in range(tck["num_classes"])]
    if not isinstance(names, list) or len(names) != tck["num_classes"]:
        raise ValueError(f"{teacher_path}: class_names does not list {tck['num_classes']} classes")
    names = [str(n) for n in names]
    threads = args.threads if args.threads is not None else (params or {}).get("threads")
    if threads:
        import torch

        torch.set_num_threads(threads)
    device = resolve_device(args.device or (params or {}).get("device") or "auto")
    teacher.to(device).eval()
    student.to(device).eval()
    failed = 0
    # decoding runs a video ahead of the models (a worker thread); each model at its fastest
    # batch size on this device (evaluation.batch_size of --params, else auto)
    batch_size = ((params or {}).get("evaluation") or {}).get("batch_size", "auto")
    predictions = predict_videos(
        args.videos,
        teacher,
        student,
        names,
        data_cfg,
        args.k,
        args.ks,
        device,
        batch_size,
        method=method,
    )
    for video, pred in zip(args.videos, predictions, strict=True):
        failed += pred.error is not None
        if args.json:
            print(json.dumps(pred.as_dict()), flush=True)
        elif pred.error:
            print(
                f"condi: error: {printable(video)}: {printable(pred.error)}",
                file=sys.stderr,
                flush=True,
            )
        else:
            top5 = ", ".join(f"{printable(n)} {p:.3f}" for n, p in pred.top5)
            print(
                f"{printable(video)}: {printable(pred.label_name)}  [top-5: {top5}]  "
                f"teacher clips {pred.teacher_clips} "
                f"student clips {pred.student_clips} of {pred.num_clips}  "
                f"{pred.decode_s + pred.model_s:.3f} s ({pred.model_s:.3f} s models)",
                flush=True,
            )
    if failed:
        print(
            f"condi: error: {failed} of {len(args.videos)} video(s) could not be classified",
            file=sys.stderr,
        )
    return 1 if failed else 0
