"""``condi data ssv2 | download | table1``: getting real datasets in place, and Table I.

:func:`register_data_commands` is called by :mod:`condi.cli.data` with the ``condi data``
sub-parsers; every handler takes the parsed namespace and returns an exit code.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from condi.cli.common import add_stage, add_table_outputs, stage_context, table_runs

DOWNLOADABLE = ("ucf101", "kinetics400", "kinetics600", "kinetics700")


def register_data_commands(data_subparsers) -> None:
    """Add ``ssv2``, ``download`` and ``table1`` to the ``condi data`` group."""
    p = data_subparsers.add_parser(
        "download",
        help="download and extract UCF-101 or Kinetics (resumable; run again after a kill)",
        description=(
            "Download and extract a dataset into --root, resuming partial files and skipping "
            "finished ones. UCF-101 needs `unar` or `7z` (Debian packages unar / 7zip) for its "
            ".rar. Kinetics (CVDF tarballs) gets the split folders and annotations/*.csv. "
            "Something-Something V2 needs a login: see `condi data ssv2`."
        ),
    )
    p.add_argument(
        "--dataset", required=True, choices=DOWNLOADABLE, help="which public dataset to fetch"
    )
    p.add_argument("--root", required=True, type=Path, help="dataset folder to fill")
    p.add_argument(
        "--splits",
        nargs="+",
        default=["train", "val"],
        choices=["train", "val", "test"],
        help="Kinetics splits to fetch (default: train val; docs/method.md, section 7: the official val is the test set)",
    )
    p.add_argument("--workers", type=int, default=4, help="parallel downloads (default 4)")
    p.add_argument("--retries", type=int, default=5, help="tries per file after the first")
    p.add_argument(
        "--keep-archives", action="store_true", help="keep Kinetics tarballs after extraction"
    )
    p.add_argument(
        "--insecure", action="store_true", help="don't verify TLS certificates (UCF's site)"
    )
    p.set_defaults(func=cmd_download)

    p = data_subparsers.add_parser(
        "ssv2",
        help="prepare Something-Something V2 from the files you downloaded (says which)",
        description=(
            "Something-Something V2 needs a login. Without its files this prints exactly which "
            "files to place where; with them it joins the 20bn-something-something-v2-NN chunks "
            "and extracts them into ROOT/20bn-something-something-v2/<id>.webm."
        ),
    )
    p.add_argument("--root", required=True, type=Path, help="SSv2 dataset folder")
    p.add_argument(
        "--delete-chunks", action="store_true", help="delete the chunks after extraction"
    )
    p.set_defaults(func=cmd_ssv2)

    p = data_subparsers.add_parser(
        "table1",
        help="Table I (dataset overview) from clip indexes",
        description="Table I: videos per split, mean length, classes and clips per video.",
    )
    add_stage(p, "data table1")
    p.add_argument(
        "--index",
        nargs="+",
        required=True,
        type=Path,
        help="clip indexes (condi data index), named by the dataset each records",
    )
    add_table_outputs(p)
    p.set_defaults(func=cmd_table1)


def cmd_download(args: argparse.Namespace) -> int:
    from condi.data import download
    from condi.tracking import redact

    options = {"retries": args.retries, "insecure": args.insecure}
    try:
        if args.dataset == "ucf101":
            download.download_ucf101(args.root, workers=args.workers, **options)
        else:
            download.download_kinetics(
                args.root,
                int(args.dataset.removeprefix("kinetics")),
                args.splits,
                workers=args.workers,
                keep_archives=args.keep_archives,
                **options,
            )
    except (download.DownloadError, download.ExtractionError) as exc:
        print(f"condi: error: {redact(exc)}", file=sys.stderr)  # a mirror's user:password
        return 1
    print(f"{args.dataset} ready in {args.root}")
    return 0


def cmd_ssv2(args: argparse.Namespace) -> int:
    from condi.data import ssv2

    report = ssv2.prepare(args.root, delete_chunks=args.delete_chunks)
    if report.ready:
        print(f"SSv2 ready in {args.root}: videos in {args.root / ssv2.VIDEO_DIR}")
        return 0
    print(ssv2.instructions(args.root))
    print("\nStill missing:\n  " + "\n  ".join(report.missing))
    return 1


def cmd_table1(args: argparse.Namespace) -> int:
    from condi.data.index import named_indexes
    from condi.data.table1 import table1_rows, write_table

    ctx = stage_context(args)
    for path in args.index:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: index not found")
    df = table1_rows(named_indexes(args.index))
    write_table(df, args.out_csv, args.out_md)
    table_runs(ctx, df, [], artifacts=(args.out_csv, args.out_md))
    print(f"wrote {args.out_csv} and {args.out_md} ({len(df)} datasets)")
    return 0
