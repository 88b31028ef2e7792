"""``condi train``: teacher training, Eq. 1 pseudo-labels and student distillation."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from condi.cli.common import add_dataset, add_params, params_of, tags
from condi.tracking import Run

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train the teacher, compute Eq. 1 pseudo-labels, distil students"
    )
    s = p.add_subparsers(dest="train_command", required=True, metavar="STAGE")

    t = s.add_parser(
        "teacher", help="train a teacher (best-on-val video accuracy) or adopt its checkpoint"
    )
    add_params(t)
    add_dataset(t)
    t.add_argument("--teacher", required=True, help="teacher name (params.yaml teachers)")
    t.add_argument("--out", required=True, type=Path, help="output checkpoint")
    t.set_defaults(func=cmd_teacher)

    pl = s.add_parser(
        "pseudo-labels", help="Eq. 1 labels z and teacher logits for every train/val clip"
    )
    add_params(pl)
    add_dataset(pl)
    pl.add_argument("--teacher", required=True)
    pl.add_argument("--checkpoint", required=True, type=Path, help="the teacher checkpoint")
    pl.add_argument("--out", required=True, type=Path, help="output .npz")
    pl.set_defaults(func=cmd_pseudo_labels)

    st = s.add_parser("student", help="distil a student with one objective (SPEC section 3)")
    add_params(st)
    add_dataset(st)
    st.add_argument("--teacher", required=True)
    st.add_argument("--student", required=True, help="student name (params.yaml students)")
    st.add_argument(
        "--method", required=True, choices=["condi_sr", "bce_conf", "st_ent", "st_conf", "maxprob"]
    )
    st.add_argument(
        "--pseudo-labels", required=True, type=Path, help="condi train pseudo-labels output"
    )
    st.add_argument("--out", required=True, type=Path, help="output checkpoint")
    st.set_defaults(func=cmd_student)


def _check_model(params: dict, role: str, name: str, source: str) -> None:
    if name not in params[role]:
        raise SystemExit(f"condi: error: {source}: {role}.{name}: no such model")


def cmd_teacher(args: argparse.Namespace) -> int:
    from condi.training.common import load_data
    from condi.training.teacher import train_teacher

    params = params_of(args)
    _check_model(params, "teachers", args.teacher, args.params)
    data = load_data(args.index, args.cache)
    run_params = {
        "teacher": params["teachers"][args.teacher],
        "training": params["training"]["teacher"],
        "data": params["data"],
        "seed": params["seed"],
    }
    with Run(
        "train_teacher", args.dataset, run_params, tags(args, run_name=f"teacher {args.teacher}")
    ) as run:
        summary = train_teacher(params, args.teacher, data, args.out, tracker=run)
        run.log_metrics({k: v for k, v in summary.items() if isinstance(v, int | float)})
    log.info("teacher %s: %s", args.teacher, summary)
    return 0


def cmd_pseudo_labels(args: argparse.Namespace) -> int:
    from condi.training.common import load_data, load_model
    from condi.training.pseudo_labels import compute_pseudo_labels, save_pseudo_labels, summary

    params = params_of(args)
    data = load_data(args.index, args.cache)
    model, _ = load_model(args.checkpoint, role="teacher")
    with Run(
        "pseudo_labels",
        args.dataset,
        {"data": params["data"], "pseudo_labels": params["pseudo_labels"]},
        tags(args, run_name=f"pseudo-labels {args.teacher}"),
    ) as run:
        work_dir = args.out.with_name(args.out.stem + "_crossfit")
        pl = compute_pseudo_labels(params, model, data, teacher=args.teacher, work_dir=work_dir)
        save_pseudo_labels(args.out, pl)
        stats = summary(pl)
        run.log_metrics(stats)
    log.info("pseudo-labels %s: %s", args.out, stats)
    return 0


def cmd_student(args: argparse.Namespace) -> int:
    from condi.training.common import load_data
    from condi.training.pseudo_labels import load_pseudo_labels
    from condi.training.student import train_student

    params = params_of(args)
    _check_model(params, "students", args.student, args.params)
    data = load_data(args.index, args.cache)
    pl = load_pseudo_labels(args.pseudo_labels)
    run_params = {
        "student": params["students"][args.student],
        "training": params["training"]["student"],
        "condi": params["condi"],
        "st_conf": params["st_conf"],
        "data": params["data"],
        "pseudo_labels": params["pseudo_labels"],
        "seed": params["seed"],
    }
    name = f"{args.method} {args.teacher}->{args.student}"
    with Run("train_student", args.dataset, run_params, tags(args, run_name=name)) as run:
        summary = train_student(params, args.student, args.method, data, pl, args.out, tracker=run)
        run.log_metrics({k: v for k, v in summary.items() if isinstance(v, int | float)})
    log.info("student %s: %s", name, summary)
    return 0
