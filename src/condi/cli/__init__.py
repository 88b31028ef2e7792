"""The ``condi`` command line: one subcommand per pipeline stage, thin wrappers over library calls.

Each module in this package adds its subcommands with ``register(subparsers)``; every handler
takes the parsed ``argparse.Namespace`` and returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from condi.config import ConfigError
from condi.tracking import redact

# Modules contributing subcommands, in the order they appear in ``condi --help``.
COMMAND_MODULES = [
    "data",
    "models",
    "train",
    "evaluate",
    "tables",
    "report",
    "predict",
    "pipeline",
    "tracking",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="condi",
        description="Confidence Distillation for efficient action recognition (docs/method.md).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"condi.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"condi.cli.{name}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_redact_credentials)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("condi: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if not isinstance(exc, _user_errors()):
            raise  # a bug: keep the traceback
        if args.verbose:
            logging.getLogger("condi").exception("failed")
        print(f"condi: error: {redact(exc)}", file=sys.stderr)
        return 2


def _redact_credentials(record: logging.LogRecord) -> bool:
    """A logging filter: the credentials of any URI in a message become ``***`` (a tracking
    URI or a download mirror with ``user:password@``, a ``?token=``); the record is kept."""
    message = record.getMessage()
    cleaned = redact(message)
    if cleaned != message:
        record.msg, record.args = cleaned, None
    return True


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors about the user's inputs (config, files, videos): a one-line message and exit 2,
    no traceback. ``OSError`` covers missing, unreadable and full-disk files; ``ValueError``
    bad values and unreadable files (pyarrow's ``ArrowInvalid`` is one); a ``VideoError`` names
    the video and why it cannot be used."""
    errors: tuple[type[BaseException], ...] = (ConfigError, OSError, ValueError)
    video = sys.modules.get("condi.data.video")  # loaded if a VideoError can have been raised
    if video is not None:
        errors += (video.VideoError,)
    return errors


if __name__ == "__main__":
    sys.exit(main())
