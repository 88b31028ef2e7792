"""``condi tables``: the paper's tables from the long evaluation CSVs."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from condi.cli.common import add_stage, add_table_outputs, stage_context, table_runs

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tables", help="assemble results tables")
    s = p.add_subparsers(dest="tables_command", required=True, metavar="TABLE")
    t3 = s.add_parser(
        "table3", help="Table III: accuracy per method and K (long CSV + paper-shaped MD)"
    )
    add_stage(t3, "tables table3")
    t3.add_argument(
        "--eval", nargs="+", required=True, type=Path, help="evaluation CSVs (condi evaluate grid)"
    )
    t3.add_argument(
        "--videos",
        nargs="*",
        type=Path,
        default=[],
        metavar="PATH",
        help="their per-video files (condi evaluate grid --videos): paired bootstrap intervals "
        "of each row's difference to condi_sr and dense (params tables.bootstrap, seed)",
    )
    add_table_outputs(t3)
    t3.set_defaults(func=cmd_table3)

    ab = s.add_parser(
        "ablation",
        help="condi_sr under each switch vs baselines, mean/std over seeds",
        description="The K columns come from params ablation.K.",
    )
    add_stage(ab, "tables ablation")
    ab.add_argument(
        "--students",
        nargs="+",
        required=True,
        type=Path,
        help="evaluation CSVs of the student variants",
    )
    ab.add_argument(
        "--baselines", nargs="+", required=True, type=Path, help="teacher-only evaluation CSVs"
    )
    ab.add_argument(
        "--videos",
        nargs="*",
        default=[],
        type=Path,
        metavar="PATH",
        help="their per-video files: each variant minus st_ent, equidistant and dense with "
        "paired bootstrap intervals (seeds averaged per video; params tables.bootstrap, seed)",
    )
    add_table_outputs(ab)
    ab.set_defaults(func=cmd_ablation)


def cmd_table3(args: argparse.Namespace) -> int:
    from condi.tables import table3

    ctx = stage_context(args)
    params = ctx.params
    long = table3.assemble(args.eval)
    columns = params["tables"].get("table3_columns") or None
    if columns:
        columns = {d: ks for d, ks in columns.items() if d in set(long["dataset"])}
    boot, rivals = table3.Bootstrap.from_params(params), None
    if args.videos:
        started = time.perf_counter()
        long, rivals = table3.add_differences(long, table3.load_videos(args.videos), boot)
        log.info(
            "paired bootstrap (%d resamples): %.2f s", boot.resamples, time.perf_counter() - started
        )
    table3.write(long, args.out_csv, args.out_md, columns, rivals, boot)
    paper = Path(args.out_csv).with_name(Path(args.out_csv).stem + "_paper.csv")
    keys = ["method", "K", "Ks"]
    table_runs(ctx, long, keys, ["top1", "top1_std"], (args.out_csv, args.out_md, paper))
    print(Path(args.out_md).read_text())
    return 0


def cmd_ablation(args: argparse.Namespace) -> int:
    from condi.cli.evaluate import SWITCH_COLUMNS as RECORDED
    from condi.pipeline import _get, ablation_params
    from condi.tables import ablation
    from condi.tables.table3 import Bootstrap

    ctx = stage_context(args)
    ks = ablation_params(ctx.params)["K"]
    long = ablation.assemble(args.students, args.baselines, ks)
    boot = Bootstrap.from_params(ctx.params)
    # the base: the params' own switches, read as the evaluation jobs record them
    base = {
        col: _get(ctx.params, key)[1] for col, key in RECORDED if col in ablation.SWITCH_COLUMNS
    }
    diffs = (
        ablation.differences(ablation.load_videos(args.videos), ks, boot, base)
        if args.videos
        else None
    )
    ablation.write(long, args.out_csv, args.out_md, diffs, boot)
    keys = [c for c in ("method", *ablation.SWITCH_COLUMNS, "K") if c in long]
    table_runs(ctx, long, keys, ["top1", "top1_std"], (args.out_csv, args.out_md))
    print(Path(args.out_md).read_text())
    return 0
