"""The ``condi`` command line: one subcommand per pipeline stage, thin wrappers over library calls.

Each module in this package adds its subcommands with ``register(subparsers)``; every handler
takes the parsed ``argparse.Namespace`` and returns an exit code. Every command and option has
a help text (a command's one-line ``help`` is its description when it has no longer one), and
an option has one spelling and one meaning across commands (tests/pipeline/test_cli.py).

``--`` ends the options: what follows are file names even when they start with ``-``, for the
commands that take files (``trailing_files``: the name of their file list, e.g. ``condi
predict ... -- -abc.mp4``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

from condi import __version__
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


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors about an unknown ``-name`` point at ``--`` (a file name
    that starts with ``-``)."""

    def error(self, message: str):
        if "unrecognized arguments: -" in message or "expected one argument" in message:
            message += " (a file name that starts with '-' goes after '--')"
        super().error(message)


def _describe(parser: argparse.ArgumentParser) -> None:
    """A command without a description gets its one-line help as one (``condi X --help``
    then says what it does)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                if not sub.description and helps.get(name):
                    sub.description = helps[name][0].upper() + helps[name][1:] + "."
                _describe(sub)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of ``command`` alone (a pipeline job then imports only
    its own command's module: no pandas or torch for ``condi tracking``, say)."""
    parser = Parser(
        prog="condi",
        description="Confidence Distillation for efficient action recognition (docs/method.md).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--version", action="version", version=f"condi {__version__}", help="print the version"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in [command] if command in COMMAND_MODULES else COMMAND_MODULES:
        try:
            module = importlib.import_module(f"condi.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"condi.cli.{name}":
                continue
            raise
        module.register(sub)
    _describe(parser)
    return parser


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse ``argv``; after a ``--``, file names for a command that takes files (module
    docstring), whatever they look like."""
    if "--" not in argv:
        return parser.parse_args(argv)
    cut = argv.index("--")
    args = parser.parse_args(argv[:cut])
    files = argv[cut + 1 :]
    dest = getattr(args, "trailing_files", None)
    if dest is None:
        parser.error(f"condi {args.command}: takes no file names after '--'")
    getattr(args, dest).extend(Path(f) for f in files)
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # the command is the first word that is not an option (the top-level options take no value)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command)
    args = parse(parser, argv)
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
