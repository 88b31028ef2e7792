"""``condi predict``: classify videos with a trained student + teacher (docs/method.md, section 4)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="classify videos: the student skims every clip, the teacher sees the K best",
        description="The student scores every 16-frame clip; the K clips with the highest z~ go "
        "to the teacher, or Ks of them are classified by the student itself (docs/method.md, section 4).",
    )
    p.add_argument("videos", nargs="+", type=Path, metavar="VIDEO")
    p.add_argument(
        "--teacher", required=True, type=Path, help="teacher checkpoint (condi train teacher)"
    )
    p.add_argument("--student", required=True, type=Path, help="condi_sr student checkpoint")
    p.add_argument("--k", type=int, default=5, help="clips to classify (default 5)")
    p.add_argument(
        "--ks", type=int, default=0, help="of them, classified by the student (default 0)"
    )
    p.add_argument(
        "--params", default="params.yaml", help="params file for clip length, sizes, device"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object per video")
    # Text output escapes control characters in file and class names (a name holding a newline
    # cannot fake a line); every per-file failure is one "condi: error: FILE: reason" line on
    # stderr and the other files are still classified.
    p.set_defaults(func=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    from condi.config import load_params
    from condi.evaluation.predict import predict_videos, printable
    from condi.models.checkpoint import load_model
    from condi.runtime import setup

    if args.k < 1 or args.ks < 0 or args.ks > args.k:
        raise ValueError(f"--k must be >= 1 and 0 <= --ks <= --k, got k={args.k}, ks={args.ks}")
    params = load_params(args.params)
    device = setup(params["seed"], params["threads"], params["device"])
    teacher, tck = load_model(args.teacher, role="teacher")
    student, sck = load_model(args.student, role="student")
    if tck["num_classes"] != sck["num_classes"]:
        raise ValueError(
            f"{args.student}: {sck['num_classes']} classes, teacher {args.teacher} has {tck['num_classes']}"
        )
    names = tck.get("class_names") or [str(i) for i in range(tck["num_classes"])]
    if not isinstance(names, list) or len(names) != tck["num_classes"]:
        raise ValueError(f"{args.teacher}: class_names does not list {tck['num_classes']} classes")
    names = [str(n) for n in names]
    teacher.to(device).eval()
    student.to(device).eval()
    failed = 0
    # decoding runs a video ahead of the models (a worker thread); each model at its fastest
    # batch size on this device (evaluation.batch_size: auto)
    predictions = predict_videos(
        args.videos,
        teacher,
        student,
        names,
        params["data"],
        args.k,
        args.ks,
        device,
        params["evaluation"]["batch_size"],
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
