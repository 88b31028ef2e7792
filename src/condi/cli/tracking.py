"""``condi tracking``: create the MLflow store before parallel jobs (and open a pipeline
invocation's parent runs), end them, import kept records."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tracking", help="MLflow store utilities")
    s = p.add_subparsers(dest="tracking_command", required=True, metavar="ACTION")
    i = s.add_parser(
        "init",
        help="create the store (run once before parallel jobs); with --params, open this "
        "pipeline invocation's parent run in every dataset's experiment",
        description="Create the MLflow store (MLFLOW_TRACKING_URI, else mlflow.db here). Within "
        "a pipeline invocation (CONDI_INVOCATION, which the Snakefile exports) and with "
        "--params, also open the invocation's parent run (`pipeline <invocation>`) in the "
        "experiment of every dataset of the params file: the jobs nest under it. With "
        "CONDI_TRACKING=0 it does nothing.",
    )
    i.add_argument("--params", default=None, help="the params file (its datasets)")
    i.set_defaults(func=cmd_init)
    e = s.add_parser(
        "end",
        help="end this pipeline invocation's parent runs (the Snakefile's onsuccess/onerror)",
    )
    e.add_argument(
        "--status",
        choices=("FINISHED", "FAILED"),
        default="FINISHED",
        help="the status the parent runs end with (default FINISHED)",
    )
    e.set_defaults(func=cmd_end)
    s.add_parser("import", help="send records kept while the store was unreachable").set_defaults(
        func=cmd_import
    )


TRACKING_OFF = "tracking off (CONDI_TRACKING=0): no MLflow store touched"


def cmd_init(args: argparse.Namespace) -> int:
    import sys

    from condi.tracking import display_uri, init_store, redact, tracking_enabled

    if not tracking_enabled():
        print(TRACKING_OFF)
        return 0

    params = None
    if args.params is not None:
        from condi.config import load_params

        params = load_params(args.params)
    try:
        print(init_store(params))
    except Exception as exc:
        print(f"condi: MLflow store {display_uri()} unreachable: {redact(exc)}", file=sys.stderr)
        return 1
    return 0


def cmd_end(args: argparse.Namespace) -> int:
    import sys

    from condi.tracking import (
        display_uri,
        end_invocation,
        invocation,
        redact,
        tracking_enabled,
    )

    if not tracking_enabled():
        print(TRACKING_OFF)
        return 0

    try:
        n = end_invocation(args.status)
    except Exception as exc:
        print(f"condi: MLflow store {display_uri()} unreachable: {redact(exc)}", file=sys.stderr)
        return 1
    print(f"ended {n} pipeline run(s) of invocation {invocation() or '-'} as {args.status}")
    return 0


def cmd_import(_args: argparse.Namespace) -> int:
    """Exit 0 when every kept record was imported; 1 when a record is not valid (each is
    named on stderr and left in place; the others are imported) or some are left because
    the store failed."""
    import sys

    from condi.tracking import display_uri, import_pending

    result = import_pending()
    print(f"imported {result.imported} run(s)")
    for path, reason in result.bad:
        print(
            f"condi: error: {path}: not a valid record ({reason}); left in place", file=sys.stderr
        )
    if result.left:
        print(
            f"condi: error: MLflow store {display_uri()} failed; {result.left} record(s) left "
            "for a later `condi tracking import`",
            file=sys.stderr,
        )
    return 1 if result.bad or result.left else 0
