"""``condi report``: timing (Tables IV and V), ambiguity detection and figures (SPEC 5-6)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from condi.cli.common import add_dataset, add_params, params_of
from condi.cli.evaluate import _method_path

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
        "student (condi.evaluation.timing).",
    )
    add_params(t)
    add_dataset(t)
    t.add_argument("--teacher-ckpt", required=True, type=Path, help="teacher checkpoint")
    t.add_argument(
        "--student-ckpt",
        nargs="*",
        type=_method_path,
        default=[],
        metavar="METHOD=PATH",
        help="student checkpoints by method (Table IV: condi_sr bce_conf st_ent)",
    )
    t.add_argument("--teacher", default=None, help="teacher name (default: the one in params)")
    t.add_argument("--student", default=None, help="student name (default: the one in params)")
    t.add_argument("--out", required=True, type=Path, help="output CSV, one row per method/K/Ks")
    t.add_argument("--per-video-out", type=Path, default=None, help="optional per-video CSV")
    t.add_argument(
        "--max-videos", type=int, default=None, help="time a seeded sample of at most this many"
    )
    t.add_argument(
        "--K", type=int, nargs="+", default=None, help="K values (default: evaluation.K)"
    )
    t.add_argument("--warmup", type=int, default=2, help="untimed warm-up videos (default 2)")
    t.add_argument(
        "--repeats", type=int, default=1, help="runs per video and config; median (default 1)"
    )
    t.add_argument("--device", default=None, help="auto | cpu | cuda (default: params device)")
    t.add_argument("--threads", type=int, default=None, help="torch threads (default: params)")
    t.add_argument("--amp", action="store_true", help="bf16 autocast (accuracy may then differ)")
    t.add_argument(
        "--channels-last",
        action="store_true",
        help="channels_last_3d models and inputs (faster on CPU; rounding may differ)",
    )
    t.add_argument(
        "--teacher-scores", type=Path, default=None, help="stored scores: cross-check top1_grid"
    )
    t.add_argument(
        "--student-scores", nargs="*", type=_method_path, default=[], metavar="METHOD=PATH"
    )
    t.set_defaults(func=cmd_timing)

    for name, helptext in [
        ("table4", "Table IV: time per video and accuracy per method and K"),
        ("table5", "Table V: the Ks split: accuracy and time per video"),
    ]:
        tb = s.add_parser(name, help=helptext)
        tb.add_argument("--timing", nargs="+", required=True, type=Path, help="timing CSVs")
        tb.add_argument("--out-csv", required=True, type=Path)
        tb.add_argument("--out-md", required=True, type=Path)
        tb.set_defaults(func=cmd_table4 if name == "table4" else cmd_table5)

    a = s.add_parser(
        "ambiguity",
        help="AUROC of every clip-ranking score for 'teacher correct' (and the manifest's kinds)",
    )
    add_params(a)
    add_dataset(a, cache=False)
    a.add_argument("--teacher", required=True)
    a.add_argument("--student", required=True)
    a.add_argument("--teacher-scores", required=True, type=Path)
    a.add_argument(
        "--student-scores", nargs="+", required=True, type=_method_path, metavar="METHOD=PATH"
    )
    a.add_argument("--root", type=Path, default=None, help="dataset root (synthetic manifest)")
    a.add_argument("--out", required=True, type=Path, help="output long CSV of this job")
    a.add_argument("--out-md", type=Path, default=None, help="optional Markdown of this job")
    a.set_defaults(func=cmd_ambiguity)

    at = s.add_parser("ambiguity-table", help="assemble ambiguity CSVs: long CSV + Markdown")
    at.add_argument("--inputs", nargs="+", required=True, type=Path)
    at.add_argument("--out-csv", required=True, type=Path)
    at.add_argument("--out-md", required=True, type=Path)
    at.set_defaults(func=cmd_ambiguity_table)

    f = s.add_parser(
        "figures",
        help="accuracy vs K, accuracy vs cost, and a per-clip z~ timeline (PNG + SVG)",
    )
    add_params(f)
    f.add_argument("--out-dir", required=True, type=Path, help="e.g. results/figures")
    f.add_argument("--table3", type=Path, default=None, help="long Table III CSV: accuracy vs K")
    f.add_argument("--timing", nargs="*", type=Path, default=[], help="timing CSVs: vs cost")
    f.add_argument("--dataset", default=None, help="for the timeline")
    f.add_argument("--index", type=Path, default=None, help="for the timeline")
    f.add_argument("--root", type=Path, default=None, help="dataset root (synthetic manifest)")
    f.add_argument("--teacher-scores", type=Path, default=None, help="for the timeline")
    f.add_argument(
        "--student-scores", type=Path, default=None, help="condi_sr student scores: timeline"
    )
    f.add_argument("--video", default=None, help="timeline video (default: the longest)")
    f.add_argument(
        "--timeline-stem",
        default=None,
        help="timeline file name without suffix (default: ztilde_timeline_<video stem>)",
    )
    f.set_defaults(func=cmd_figures)


def _name(value: str | None, params: dict, key: str) -> str:
    if value:
        return value
    names = list(params[key])
    if len(names) != 1:
        raise ValueError(f"params {key} has {len(names)} entries; name one with --{key[:-1]}")
    return names[0]


def cmd_timing(args: argparse.Namespace) -> int:
    import pandas as pd

    from condi.evaluation.run import load_scores
    from condi.evaluation.timing import TIMING_COLUMNS, run_timing
    from condi.io import write_csv
    from condi.tracking import Run
    from condi.training.common import load_data, load_model
    from condi.training.runtime import setup

    params = params_of(args)
    teacher_name = _name(args.teacher, params, "teachers")
    student_name = _name(args.student, params, "students")
    device = setup(
        params["seed"],
        args.threads or params["threads"],
        args.device or params["device"],
    )
    data = load_data(args.index, args.cache)
    teacher, tck = load_model(args.teacher_ckpt, role="teacher")
    students = {}
    for method, path in args.student_ckpt:
        students[method], sck = load_model(path, role="student")
        if sck["num_classes"] != tck["num_classes"]:
            raise ValueError(f"{path}: {sck['num_classes']} classes, teacher {tck['num_classes']}")
    if tck["num_classes"] != data.num_classes:
        raise ValueError(
            f"{args.teacher_ckpt}: {tck['num_classes']} classes, index {data.num_classes}"
        )
    t_scores = load_scores(args.teacher_scores) if args.teacher_scores else None
    s_scores = {m: load_scores(p) for m, p in args.student_scores}
    with Run(
        "report_timing",
        args.dataset,
        {"evaluation": params["evaluation"]},
        {"fold": args.fold, "teacher": teacher_name, "student": student_name, "run_name": "timing"},
    ) as run:
        summary, per_video = run_timing(
            params,
            data,
            teacher,
            students,
            device,
            max_videos=args.max_videos,
            ks=args.K,
            warmup=args.warmup,
            repeats=args.repeats,
            amp=args.amp,
            channels_last=args.channels_last,
            teacher_scores=t_scores,
            student_scores=s_scores,
        )
        summary.insert(0, "student", student_name)
        summary.insert(0, "teacher", teacher_name)
        summary.insert(0, "fold", args.fold)
        summary.insert(0, "dataset", args.dataset)
        summary = summary.reindex(columns=TIMING_COLUMNS)
        write_csv(summary, args.out)
        if args.per_video_out:
            write_csv(per_video, args.per_video_out)
        for r in summary.itertuples():
            tag = f"{r.method}_K{r.K}" + ("" if pd.isna(r.Ks) else f"_Ks{int(r.Ks)}")
            run.log_metrics({f"time_s_{tag}": r.time_s, f"top1_{tag}": r.top1})
        run.log_artifact(args.out)
    cols = ["method", "K", "Ks", "time_s", "top1", "top1_grid", "gmacs_per_video", "speedup_time"]
    print(summary[cols].to_string(index=False))
    log.info("%d rows -> %s", len(summary), args.out)
    return 0


def cmd_table4(args: argparse.Namespace) -> int:
    from condi.tables import table4

    long = table4.assemble(args.timing)
    table4.write(long, args.out_csv, args.out_md)
    print(Path(args.out_md).read_text())
    return 0


def cmd_table5(args: argparse.Namespace) -> int:
    from condi.tables import table4, table5

    long = table4.assemble(args.timing)
    table5.write(long, args.out_csv, args.out_md)
    print(Path(args.out_md).read_text())
    return 0


def cmd_ambiguity(args: argparse.Namespace) -> int:
    from condi.data.index import read_index
    from condi.evaluation.run import load_manifest, load_scores
    from condi.io import write_csv
    from condi.tables import ambiguity

    params = params_of(args)
    index, _ = read_index(args.index)
    teacher_scores = load_scores(args.teacher_scores)
    student_scores = {m: load_scores(p) for m, p in args.student_scores}
    root = args.root or Path(params["datasets"][args.dataset]["root"])
    manifest = load_manifest(root)
    df = ambiguity.compute(params, index, teacher_scores, student_scores, manifest)
    df.insert(0, "student", args.student)
    df.insert(0, "teacher", args.teacher)
    df.insert(0, "fold", args.fold)
    df.insert(0, "dataset", args.dataset)
    df = df.reindex(columns=ambiguity.COLUMNS)
    write_csv(df, args.out)
    if args.out_md:
        ambiguity.write(ambiguity.assemble([args.out]), args.out, args.out_md)
        print(Path(args.out_md).read_text())
    log.info("%d rows -> %s", len(df), args.out)
    return 0


def cmd_ambiguity_table(args: argparse.Namespace) -> int:
    from condi.tables import ambiguity

    long = ambiguity.assemble(args.inputs)
    ambiguity.write(long, args.out_csv, args.out_md)
    print(Path(args.out_md).read_text())
    return 0


def cmd_figures(args: argparse.Namespace) -> int:
    import pandas as pd

    from condi.evaluation import figures

    written = []
    if args.table3:
        written += figures.accuracy_vs_k(pd.read_csv(args.table3, dtype={"K": str}), args.out_dir)
    if args.timing:
        from condi.tables.table4 import assemble

        written += figures.accuracy_vs_cost(assemble(args.timing), args.out_dir)
    if args.student_scores:
        from condi.data.index import read_index
        from condi.evaluation.run import load_manifest, load_scores

        if not (args.index and args.teacher_scores):
            raise ValueError("the z~ timeline needs --index and --teacher-scores too")
        index, _ = read_index(args.index)
        root = args.root
        if root is None and args.dataset:
            root = Path(params_of(args)["datasets"][args.dataset]["root"])
        manifest = load_manifest(root) if root else None
        written += figures.ztilde_timeline(
            index,
            load_scores(args.teacher_scores),
            load_scores(args.student_scores),
            args.out_dir,
            manifest=manifest,
            video=args.video,
            stem=args.timeline_stem,
        )
    if not written:
        raise ValueError("nothing to draw: give --table3, --timing or --student-scores")
    for p in written:
        print(p)
    return 0
