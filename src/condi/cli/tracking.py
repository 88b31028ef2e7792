"""``condi tracking``: create the MLflow store before parallel jobs; import kept records."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tracking", help="MLflow store utilities")
    s = p.add_subparsers(dest="tracking_command", required=True, metavar="ACTION")
    s.add_parser(
        "init", help="create the SQLite store (run once before parallel jobs)"
    ).set_defaults(func=cmd_init)
    s.add_parser("import", help="send records kept while the store was unreachable").set_defaults(
        func=cmd_import
    )


def cmd_init(_args: argparse.Namespace) -> int:
    import sys

    from condi.tracking import init_store, tracking_uri

    try:
        print(init_store())
    except Exception as exc:
        print(f"condi: MLflow store {tracking_uri()} unreachable: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_import(_args: argparse.Namespace) -> int:
    from condi.tracking import import_pending

    print(f"imported {import_pending()} run(s)")
    return 0
