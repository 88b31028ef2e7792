"""``condi evaluate``: per-clip test scores, then the sampler grid (docs/method.md, 3-6)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from condi.cli.common import add_clip_data, add_stage, stage_context, table_metrics

log = logging.getLogger(__name__)

# long-table column -> the params key it records
SWITCH_COLUMNS = (
    ("protocol", "protocol"),
    ("pseudo_labels", "pseudo_labels.source"),
    ("detach_confidence", "condi.detach_confidence_in_target"),
    ("kd_reduction", "condi.kd_reduction"),
    ("seed", "seed"),
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="per-clip test scores and the K / Ks evaluation grid")
    s = p.add_subparsers(dest="evaluate_command", required=True, metavar="STAGE")

    sc = s.add_parser("scores", help="a model's outputs on every test clip, stored once")
    add_stage(sc, "evaluate scores")
    add_clip_data(sc)
    sc.add_argument("--checkpoint", required=True, type=Path, help="teacher or student checkpoint")
    sc.add_argument("--out", required=True, type=Path, help="output .npz")
    sc.set_defaults(func=cmd_scores)

    g = s.add_parser(
        "grid",
        help="every sampler at every K (and Ks) from stored scores",
        description="Without student scores: the teacher-only baselines. The dataset root "
        "(for the synthetic manifest) comes from the params file.",
    )
    add_stage(g, "evaluate grid")
    add_clip_data(g, cache=False)
    g.add_argument(
        "--teacher-scores", required=True, type=Path, help="teacher per-clip scores (.npz)"
    )
    g.add_argument(
        "--student-scores",
        nargs="*",
        type=Path,
        default=[],
        metavar="PATH",
        help="student scores (condi evaluate scores); each file names its method",
    )
    g.add_argument("--out", required=True, type=Path, help="output long CSV")
    g.add_argument(
        "--videos",
        type=Path,
        default=None,
        help="output parquet: each test video's correctness (0/1) for every row of the CSV "
        "(random: per seed); docs/method.md, section 5",
    )
    g.set_defaults(func=cmd_grid)


def cmd_scores(args: argparse.Namespace) -> int:
    ctx = stage_context(args)  # the params are checked before torch is imported
    from condi.data.indexed import load_data
    from condi.evaluation.run import model_clip_scores, save_scores, scoring_model

    data = load_data(args.index, args.cache)
    model, ckpt = scoring_model(args.checkpoint, data)  # a bad checkpoint opens no run
    with ctx.run() as run:
        scores = model_clip_scores(ctx.params, model, ckpt, data)
        save_scores(args.out, scores)
        run.log_metrics({"test_clips": len(scores["rows"])})
    log.info("scores for %d test clips -> %s", len(scores["rows"]), args.out)
    return 0


def cmd_grid(args: argparse.Namespace) -> int:
    from condi.data.index import read_index
    from condi.evaluation.run import evaluate_grid, load_manifest, load_scores, scores_by_method
    from condi.io import write_csv, write_parquet
    from condi.pipeline import _get

    ctx = stage_context(args)
    params = ctx.params
    index, _ = read_index(args.index)
    teacher_scores = load_scores(args.teacher_scores)
    student_scores = scores_by_method(args.student_scores)
    manifest = load_manifest(Path(params["datasets"][args.dataset]["root"]))
    with ctx.run() as run:
        df, per_video = evaluate_grid(params, index, teacher_scores, student_scores, manifest)
        for frame in (df, per_video):  # the same keys in both: a CSV row is its videos' rows
            frame.insert(0, "student", args.student or "-")
            frame.insert(0, "teacher", args.teacher)
            frame.insert(0, "fold", args.fold)
            frame.insert(0, "dataset", args.dataset)
            # the switches this job's params set (a teacher-only job of the ablation has its
            # protocol only); docs/method.md, sections 2.5 and 9.2
            for column, key in SWITCH_COLUMNS:
                frame[column] = _get(params, key)[1]
        write_csv(df, args.out)
        if args.videos is not None:
            write_parquet(per_video, args.videos)
        run.log_metrics(table_metrics(df, ["method", "K", "Ks"], ["top1"]))
        run.log_artifact(args.out)
    log.info("%d rows -> %s", len(df), args.out)
    if args.videos is not None:
        log.info("%d per-video rows -> %s", len(per_video), args.videos)
    return 0
