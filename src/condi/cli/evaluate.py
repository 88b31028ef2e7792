"""``condi evaluate``: per-clip test scores, then the sampler grid (SPEC 3-6)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from condi.cli.common import add_dataset, add_params, params_of, tags
from condi.tracking import Run

log = logging.getLogger(__name__)


def _method_path(text: str) -> tuple[str, Path]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected METHOD=PATH, got {text!r}")
    method, path = text.split("=", 1)
    return method, Path(path)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="per-clip test scores and the K / Ks evaluation grid")
    s = p.add_subparsers(dest="evaluate_command", required=True, metavar="STAGE")

    sc = s.add_parser("scores", help="a model's outputs on every test clip, stored once")
    add_params(sc)
    add_dataset(sc)
    sc.add_argument("--checkpoint", required=True, type=Path, help="teacher or student checkpoint")
    sc.add_argument("--out", required=True, type=Path, help="output .npz")
    sc.set_defaults(func=cmd_scores)

    g = s.add_parser("grid", help="every sampler at every K (and Ks) from stored scores")
    add_params(g)
    add_dataset(g, cache=False)
    g.add_argument("--teacher", required=True)
    g.add_argument(
        "--student", default=None, help="student name; omit for the teacher-only baselines"
    )
    g.add_argument("--teacher-scores", required=True, type=Path)
    g.add_argument(
        "--student-scores", nargs="*", type=_method_path, default=[], metavar="METHOD=PATH"
    )
    g.add_argument(
        "--root", type=Path, default=None, help="dataset root (for the synthetic manifest)"
    )
    g.add_argument("--out", required=True, type=Path, help="output long CSV")
    g.set_defaults(func=cmd_grid)


def cmd_scores(args: argparse.Namespace) -> int:
    from condi.evaluation.run import clip_scores, save_scores
    from condi.training.common import load_data

    params = params_of(args)
    data = load_data(args.index, args.cache)
    name = f"scores {args.checkpoint.stem}"
    with Run("scores", args.dataset, {"data": params["data"]}, tags(args, run_name=name)) as run:
        scores = clip_scores(params, args.checkpoint, data)
        save_scores(args.out, scores)
        run.log_metrics({"test_clips": len(scores["rows"])})
    log.info("scores for %d test clips -> %s", len(scores["rows"]), args.out)
    return 0


def cmd_grid(args: argparse.Namespace) -> int:
    from condi.data.index import read_index
    from condi.evaluation.run import evaluate, load_manifest, load_scores

    params = params_of(args)
    index, _ = read_index(args.index)
    teacher_scores = load_scores(args.teacher_scores)
    student_scores = {m: load_scores(p) for m, p in args.student_scores}
    root = args.root or Path(params["datasets"][args.dataset]["root"])
    manifest = load_manifest(root)
    name = f"evaluate {args.teacher}" + (f"->{args.student}" if args.student else " baselines")
    with Run(
        "evaluate", args.dataset, {"evaluation": params["evaluation"]}, tags(args, run_name=name)
    ) as run:
        df = evaluate(params, index, teacher_scores, student_scores, manifest)
        df.insert(0, "student", args.student or "-")
        df.insert(0, "teacher", args.teacher)
        df.insert(0, "fold", args.fold)
        df.insert(0, "dataset", args.dataset)
        df["pseudo_labels"] = params["pseudo_labels"]["source"]
        df["detach_confidence"] = params["condi"]["detach_confidence_in_target"]
        df["seed"] = params["seed"]
        from condi.io import write_csv

        write_csv(df, args.out)
        for _, r in df.iterrows():
            ks = "" if r.get("Ks") != r.get("Ks") or r.get("Ks") is None else f"_Ks{int(r['Ks'])}"
            run.log_metrics({f"top1_{r['method']}_K{r['K']}{ks}": r["top1"]})
        run.log_artifact(args.out)
    log.info("%d rows -> %s", len(df), args.out)
    return 0
