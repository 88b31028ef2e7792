"""``condi report``: timing (Tables IV and V), ambiguity detection and figures (docs/method.md, sections 5-6)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from condi.cli.common import (
    add_clip_data,
    add_stage,
    add_table_outputs,
    stage_context,
    table_metrics,
    table_runs,
    with_job_columns,
)
from condi.methods import TIMED_METHODS
from condi.pipeline import BENCHMARKS

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="timing (Tables IV, V), ambiguity detection and figures")
    s = p.add_subparsers(dest="report_command", required=True, metavar="REPORT")

    t = s.add_parser(
        "timing",
        help="time per video, accuracy and multiply-adds of every sampler on decoded clips",
        description="End to end on the decoded clips of the clip cache (decoding excluded): "
        "the student over all N clips + the teacher over the chosen K, batched, for dense, "
        "equidistant and every student given, at every K, and the Ks split of a condi_sr "
        "student (condi.evaluation.timing). K, warm-up, repeats, sample size, channels-last, "
        "AMP, device and threads come from the params file (evaluation, timing).",
    )
    add_stage(t, "report timing")
    add_clip_data(t)
    t.add_argument("--teacher-ckpt", required=True, type=Path, help="teacher checkpoint")
    t.add_argument(
        "--student-ckpt",
        nargs="*",
        type=Path,
        default=[],
        help=f"student checkpoints (Table IV: {' '.join(TIMED_METHODS)}); each names its method",
    )
    t.add_argument("--teacher-scores", type=Path, default=None, help="cross-check top1_grid")
    t.add_argument(
        "--student-scores",
        nargs="*",
        type=Path,
        default=[],
        help="student per-clip scores: cross-check top1_grid",
    )
    t.add_argument("--out", required=True, type=Path, help="output CSV, one row per method/K/Ks")
    t.add_argument("--per-video-out", type=Path, default=None, help="optional per-video CSV")
    t.set_defaults(func=cmd_timing)

    for name, helptext in [
        ("table4", "Table IV: time per video and accuracy per method and K"),
        ("table5", "Table V: the Ks split: accuracy and time per video"),
    ]:
        tb = s.add_parser(name, help=helptext)
        add_stage(tb, f"report {name}")
        tb.add_argument("--timing", nargs="+", required=True, type=Path, help="timing CSVs")
        add_table_outputs(tb)
        tb.set_defaults(func=cmd_table4)

    a = s.add_parser(
        "ambiguity",
        help="AUROC of every clip-ranking score for 'teacher correct' (and the manifest's kinds)",
    )
    add_stage(a, "report ambiguity")
    add_clip_data(a, cache=False)
    a.add_argument(
        "--teacher-scores", required=True, type=Path, help="teacher per-clip scores (.npz)"
    )
    a.add_argument(
        "--student-scores",
        nargs="+",
        required=True,
        type=Path,
        help="per-clip scores of the students (.npz), each naming its method",
    )
    a.add_argument("--out", required=True, type=Path, help="output long CSV of this job")
    a.add_argument("--out-md", type=Path, default=None, help="optional Markdown of this job")
    a.set_defaults(func=cmd_ambiguity)

    at = s.add_parser("ambiguity-table", help="assemble ambiguity CSVs: long CSV + Markdown")
    add_stage(at, "report ambiguity-table")
    at.add_argument("--inputs", nargs="+", required=True, type=Path, help="ambiguity CSVs")
    add_table_outputs(at)
    at.set_defaults(func=cmd_ambiguity_table)

    f = s.add_parser(
        "figures", help="accuracy vs K (from Table III) and vs cost (from timing), PNG + SVG"
    )
    add_stage(f, "report figures")
    f.add_argument("--out-dir", required=True, type=Path, help="e.g. results/figures")
    f.add_argument("--table3", type=Path, default=None, help="long Table III CSV: accuracy vs K")
    f.add_argument("--timing", nargs="*", type=Path, default=[], help="timing CSVs: vs cost")
    f.set_defaults(func=cmd_figures)

    st = s.add_parser(
        "stage-times",
        help="the time each pipeline stage took in the last Snakemake run",
        description="One row per job of Snakemake's benchmark: files (logs/benchmark/) in the "
        "CSV, one per stage (jobs, total and longest time, peak memory) in the Markdown, "
        "which the Snakemake report shows. Without such files (a dvc repro run) the Markdown "
        "says so.",
    )
    add_stage(st, "report stage-times")
    st.add_argument(
        "--after",
        nargs="*",
        type=Path,
        default=[],
        help="the pipeline's final outputs: the table is made once they exist (not read)",
    )
    st.add_argument(
        "--benchmarks",
        type=Path,
        default=Path(BENCHMARKS),
        help=f"Snakemake's benchmark folder (default {BENCHMARKS})",
    )
    add_table_outputs(st)
    st.set_defaults(func=cmd_stage_times)

    sp = s.add_parser(
        "speed",
        help="ConDi's time per video at paper scale against dense, models alone and end to end",
        description="For every teacher/student pair of params `speed` (random weights, "
        "16x112x112 clips): the time per video of dense, ConDi-SR at every K and the Ks split, "
        "with N from UCF-101's and Kinetics' video lengths, the models alone and end to end "
        "with decoding of H.264 files the command writes; each against its multiply-add ratio, "
        "on the CPU and on CUDA where available (condi.evaluation.speed). Heavy: minutes per "
        "pair on a CPU.",
    )
    add_stage(sp, "report speed")
    add_table_outputs(sp)
    sp.set_defaults(func=cmd_speed)

    tl = s.add_parser(
        "timeline",
        help="a video's per-clip z~ with the clips each sampler picks (PNG + SVG beside it)",
    )
    add_stage(tl, "report timeline")
    add_clip_data(tl, cache=False)
    tl.add_argument(
        "--teacher-scores", required=True, type=Path, help="teacher per-clip scores (.npz)"
    )
    tl.add_argument("--student-scores", required=True, type=Path, help="condi_sr student scores")
    tl.add_argument("--video", default=None, help="the video (default: the longest)")
    tl.add_argument("--out", required=True, type=Path, help="the PNG (the SVG is written beside)")
    tl.set_defaults(func=cmd_timeline)


def cmd_timing(args: argparse.Namespace) -> int:
    ctx = stage_context(args)  # the params are checked before torch is imported
    from condi.data.indexed import load_data
    from condi.evaluation.run import load_scores, scores_by_method
    from condi.evaluation.timing import run_timing
    from condi.evaluation.timing_columns import TIMING_COLUMNS
    from condi.io import write_csv
    from condi.models.checkpoint import load_model
    from condi.runtime import setup

    params, tcfg = ctx.params, ctx.params["timing"]
    # exactly params threads (a result here), whatever the job's CPUs (locally: every core)
    device = setup(params["seed"], params["threads"], params["device"], follow_scheduler=False)
    data = load_data(args.index, args.cache)
    teacher, tck = load_model(args.teacher_ckpt, role="teacher")
    students = {}
    for path in args.student_ckpt:
        model, sck = load_model(path, role="student")
        if sck["num_classes"] != tck["num_classes"]:
            raise ValueError(f"{path}: {sck['num_classes']} classes, teacher {tck['num_classes']}")
        if not sck.get("method"):
            raise ValueError(f"{path}: not a trained student (its checkpoint names no method)")
        students[sck["method"]] = model
    if tck["num_classes"] != data.num_classes:
        raise ValueError(
            f"{args.teacher_ckpt}: {tck['num_classes']} classes, index {data.num_classes}"
        )
    t_scores = load_scores(args.teacher_scores) if args.teacher_scores else None
    s_scores = scores_by_method(args.student_scores)
    with ctx.run() as run:
        summary, per_video = run_timing(
            params,
            data,
            teacher,
            students,
            device,
            max_videos=tcfg["max_videos"],
            ks=None,
            warmup=tcfg["warmup"],
            repeats=tcfg["repeats"],
            amp=tcfg["amp"],
            channels_last=tcfg["channels_last"],
            fuse=tcfg["fuse"],
            teacher_scores=t_scores,
            student_scores=s_scores,
        )
        summary = with_job_columns(summary, args)
        summary = summary.reindex(columns=TIMING_COLUMNS)
        write_csv(summary, args.out)
        if args.per_video_out:
            write_csv(per_video, args.per_video_out)
        run.log_metrics(table_metrics(summary, ["method", "K", "Ks"], ["time_s", "top1"]))
        run.log_artifact(args.out)
    cols = ["method", "K", "Ks", "time_s", "top1", "top1_grid", "gmacs_per_video", "speedup_time"]
    print(summary[cols].to_string(index=False))
    log.info("%d rows -> %s", len(summary), args.out)
    return 0


def cmd_table4(args: argparse.Namespace) -> int:
    """Table IV (``report table4``) or V (``report table5``) from the timing CSVs."""
    from condi.tables import table4, table5

    ctx = stage_context(args)
    writer = table4 if args.report_command == "table4" else table5
    long = table4.assemble(args.timing)
    writer.write(long, args.out_csv, args.out_md)
    keys = ["method", "K", "Ks"]
    table_runs(ctx, long, keys, ["time_s", "top1"], (args.out_csv, args.out_md))
    print(Path(args.out_md).read_text())
    return 0


AMBIGUITY_KEYS = ["method", "score", "metric", "target", "K"]


def cmd_ambiguity(args: argparse.Namespace) -> int:
    from condi.data.index import read_index
    from condi.evaluation.run import load_manifest, load_scores, scores_by_method
    from condi.io import write_csv
    from condi.tables import ambiguity

    ctx = stage_context(args)
    params = ctx.params
    index, _ = read_index(args.index)
    teacher_scores = load_scores(args.teacher_scores)
    student_scores = scores_by_method(args.student_scores)
    manifest = load_manifest(Path(params["datasets"][args.dataset]["root"]))
    with ctx.run() as run:
        df = ambiguity.compute(params, index, teacher_scores, student_scores, manifest)
        df = with_job_columns(df, args)
        df = df.reindex(columns=ambiguity.COLUMNS)
        write_csv(df, args.out)
        if args.out_md:
            ambiguity.write(ambiguity.assemble([args.out]), args.out, args.out_md)
            print(Path(args.out_md).read_text())
        run.log_metrics(table_metrics(df, AMBIGUITY_KEYS, ["value"]))
        run.log_artifact(args.out)
    log.info("%d rows -> %s", len(df), args.out)
    return 0


def cmd_ambiguity_table(args: argparse.Namespace) -> int:
    from condi.tables import ambiguity

    ctx = stage_context(args)
    long = ambiguity.assemble(args.inputs)
    ambiguity.write(long, args.out_csv, args.out_md)
    table_runs(ctx, long, AMBIGUITY_KEYS, ["value"], (args.out_csv, args.out_md))
    print(Path(args.out_md).read_text())
    return 0


def cmd_figures(args: argparse.Namespace) -> int:
    import pandas as pd

    from condi.evaluation import figures

    ctx = stage_context(args)
    written, datasets = [], set()
    if args.table3:
        long = pd.read_csv(args.table3, dtype={"K": str})
        written += figures.accuracy_vs_k(long, args.out_dir)
        datasets |= set(long["dataset"])
    if args.timing:
        from condi.tables.table4 import assemble

        timing = assemble(args.timing)
        written += figures.accuracy_vs_cost(timing, args.out_dir)
        datasets |= set(timing["dataset"])
    if not written:
        raise ValueError("nothing to draw: give --table3 or --timing")
    for p in written:
        print(p)
    # one run per dataset drawn, with its figures (their names carry the dataset)
    for dataset in sorted(datasets):
        with ctx.run(dataset=dataset) as run:
            for p in written:
                if f"_{dataset}_" in Path(p).name:
                    run.log_artifact(p)
    return 0


def cmd_speed(args: argparse.Namespace) -> int:
    ctx = stage_context(args)  # the params are checked before torch is imported
    from condi.evaluation import speed
    from condi.runtime import setup

    params = ctx.params
    setup(params["seed"], params["threads"], "cpu")
    cfg = params["speed"]
    with ctx.run() as run:
        result = speed.run_speed(cfg, params["seed"])
        speed.write(result, cfg, args.out_csv, args.out_md)
        for r in speed.target_rows(result.summary, cfg["students"]).itertuples():
            tag = f"{r.dataset}_{r.pair.replace(' + ', '+')}_K{speed.TARGET_K}"
            run.log_metrics(
                {f"time_ratio_{tag}": r.time_ratio, f"time_over_mac_{tag}": r.time_over_mac}
            )
        run.log_artifact(args.out_csv)
        run.log_artifact(args.out_md)
    print(Path(args.out_md).read_text())
    return 0


def cmd_timeline(args: argparse.Namespace) -> int:
    from condi.data.index import read_index
    from condi.evaluation import figures
    from condi.evaluation.run import load_manifest, load_scores

    ctx = stage_context(args)
    if args.out.suffix != ".png":
        raise ValueError(f"{args.out}: the timeline is written as PNG (and SVG beside it)")
    index, _ = read_index(args.index)
    root = ctx.params["datasets"][args.dataset]["root"] if args.dataset else None
    with ctx.run() as run:
        written = figures.ztilde_timeline(
            index,
            load_scores(args.teacher_scores),
            load_scores(args.student_scores),
            args.out.parent,
            manifest=load_manifest(Path(root)) if root else None,
            video=args.video,
            stem=args.out.stem,
        )
        for p in written:
            run.log_artifact(p)
    for p in written:
        print(p)
    return 0


def cmd_stage_times(args: argparse.Namespace) -> int:
    from condi.config import load_params
    from condi.pipeline import STAGES
    from condi.tables import stage_times

    ctx = stage_context(args)
    # the pipeline's jobs (its shape, as dvc.yaml has it), so that a benchmark file of a job
    # it no longer has is not counted
    jobs = stage_times.job_files(load_params(args.params))
    with ctx.run() as run:
        md = stage_times.write(args.benchmarks, args.out_csv, args.out_md, list(STAGES), jobs)
        for path in (args.out_csv, args.out_md):
            run.log_artifact(path)
    print(md)
    return 0
