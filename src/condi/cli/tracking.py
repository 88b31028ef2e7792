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

    from condi.tracking import display_uri, init_store, redact

    try:
        print(init_store())
    except Exception as exc:
        print(f"condi: MLflow store {display_uri()} unreachable: {redact(exc)}", file=sys.stderr)
        return 1
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
