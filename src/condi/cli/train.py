"""``condi train``: teacher training, Eq. 1 pseudo-labels and student distillation."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from condi.cli.common import add_clip_data, add_stage, stage_context

log = logging.getLogger(__name__)

PRETRAINED_HELP = (
    "protocol transfer: the pre-trained checkpoint to fine-tune (condi train pretrain's output; "
    "classifier re-initialised)"
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train the teacher, compute Eq. 1 pseudo-labels, distil students"
    )
    s = p.add_subparsers(dest="train_command", required=True, metavar="STAGE")

    t = s.add_parser(
        "teacher", help="train a teacher (best-on-val video accuracy) or adopt its checkpoint"
    )
    add_stage(t, "train teacher")
    add_clip_data(t)
    t.add_argument("--out", required=True, type=Path, help="output checkpoint")
    t.add_argument("--pretrained", type=Path, help=PRETRAINED_HELP)
    t.set_defaults(func=cmd_teacher)

    pre = s.add_parser(
        "pretrain",
        help="protocol transfer: pre-train a teacher (--stage pretrain_teacher) or a student "
        "(--stage pretrain_student) from scratch on the source dataset (docs/method.md, 2.5)",
    )
    add_stage(pre, "train pretrain")
    add_clip_data(pre)
    pre.add_argument("--out", required=True, type=Path, help="output checkpoint")
    pre.set_defaults(func=cmd_pretrain)

    pl = s.add_parser(
        "pseudo-labels", help="Eq. 1 labels z and teacher logits for every train/val clip"
    )
    add_stage(pl, "train pseudo-labels")
    add_clip_data(pl)
    pl.add_argument("--checkpoint", required=True, type=Path, help="the teacher checkpoint")
    pl.add_argument("--out", required=True, type=Path, help="output .npz")
    pl.add_argument(
        "--pretrained",
        type=Path,
        help=PRETRAINED_HELP + " (crossfit's fold teachers start from it)",
    )
    pl.set_defaults(func=cmd_pseudo_labels)

    st = s.add_parser("student", help="distil a student with one objective (docs/method.md, 3)")
    add_stage(st, "train student")
    add_clip_data(st)
    st.add_argument(
        "--pseudo-labels", required=True, type=Path, help="condi train pseudo-labels output"
    )
    st.add_argument("--out", required=True, type=Path, help="output checkpoint")
    st.add_argument("--pretrained", type=Path, help=PRETRAINED_HELP)
    st.set_defaults(func=cmd_student)


def cmd_teacher(args: argparse.Namespace) -> int:
    ctx = stage_context(args)  # the params are checked before torch is imported
    from condi.data.indexed import load_data
    from condi.training.teacher import train_teacher

    data = load_data(args.index, args.cache)
    with ctx.run() as run:
        summary = train_teacher(
            ctx.params, args.teacher, data, args.out, tracker=run, pretrained=args.pretrained
        )
        run.log_metrics({k: v for k, v in summary.items() if isinstance(v, int | float)})
    log.info("teacher %s: %s", args.teacher, summary)
    return 0


def cmd_pseudo_labels(args: argparse.Namespace) -> int:
    ctx = stage_context(args)  # the params are checked before torch is imported
    from condi.data.indexed import load_data
    from condi.models.checkpoint import load_model
    from condi.training.pseudo_labels import compute_pseudo_labels, save_pseudo_labels, summary

    data = load_data(args.index, args.cache)
    model, _ = load_model(args.checkpoint, role="teacher")
    with ctx.run() as run:
        work_dir = args.out.with_name(args.out.stem + "_crossfit")
        pl = compute_pseudo_labels(
            ctx.params,
            model,
            data,
            teacher=args.teacher,
            work_dir=work_dir,
            pretrained=args.pretrained,
        )
        save_pseudo_labels(args.out, pl)
        stats = summary(pl)
        run.log_metrics(stats)
    log.info("pseudo-labels %s: %s", args.out, stats)
    return 0


def cmd_student(args: argparse.Namespace) -> int:
    ctx = stage_context(args)  # the params are checked before torch is imported
    from condi.data.indexed import load_data
    from condi.training.pseudo_labels import load_pseudo_labels
    from condi.training.student import train_student

    data = load_data(args.index, args.cache)
    pl = load_pseudo_labels(args.pseudo_labels)
    name = f"{args.method} {args.teacher}->{args.student}"
    if args.stage.startswith("ablation"):
        name += (
            f" [{args.protocol}, {args.source}, detach {args.detach}, {args.kd}, seed {args.seed}]"
        )
    with ctx.run() as run:
        summary = train_student(
            ctx.params,
            args.student,
            args.method,
            data,
            pl,
            args.out,
            tracker=run,
            pretrained=args.pretrained,
        )
        run.log_metrics({k: v for k, v in summary.items() if isinstance(v, int | float)})
    log.info("student %s: %s", name, summary)
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    ctx = stage_context(args)  # the params are checked before torch is imported
    from condi.data.indexed import load_data
    from condi.training.protocol import pretrain

    role = "teacher" if args.stage == "pretrain_teacher" else "student"
    name = args.teacher if role == "teacher" else args.student
    data = load_data(args.index, args.cache)
    with ctx.run() as run:
        summary = pretrain(ctx.params, role, name, data, args.out, tracker=run)
        run.log_metrics({k: v for k, v in summary.items() if isinstance(v, int | float)})
    log.info("pretrain %s %s: %s", role, name, summary)
    return 0
