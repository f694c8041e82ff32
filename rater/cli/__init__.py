"""The ``rater`` command line: one module per command (``rate-file``, ``invoice``,
``run``, ``simulate``, ``broker``, ``demo``), each turning its flags into the one settings root.

The only package that configures logging (via rater.logs) and handles signals from the
start (rater.signals). It may import every other package of the rater; none imports it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from rater import __version__, signals

__all__ = ["main"]

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    from rater.cli import broker, demo, invoice, rate_file, report, run, simulate

    parser = argparse.ArgumentParser(
        prog="rater",
        description="Rate telephony usage records (CDRs) against tenant tariffs, "
        "in batch from files or continuously from Kafka.",
    )
    parser.add_argument("--version", action="version", version=f"rater {__version__}")
    parser.add_argument(
        "--log-level",
        default=None,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging level (env RATER_LOG_LEVEL, default INFO)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in (rate_file, invoice, report, simulate, broker, demo, run):
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # A poison message makes Polars' Avro reader panic (caught, then decoded one by one);
    # a Rust backtrace on stderr would only alarm the operator.
    os.environ["RUST_BACKTRACE"] = "0"
    words = list(sys.argv[1:] if argv is None else argv)
    signals.install(graceful=_command(words) == "run")  # before the heavy imports
    _own_stderr()
    from rater.errors import RaterError, TerminalError

    args = _parser().parse_args(words)
    try:
        _configure_logging(args.log_level)
        rc: int = args.func(args)
    except TerminalError as exc:
        print(f"rater: error: {exc}", file=sys.stderr)
        return 2
    except RaterError as exc:
        print(f"rater: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return rc


def _command(words: list[str]) -> str | None:
    """The subcommand named in ``words`` (the first word not an option or its value)."""
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word == "--log-level":
            skip = True
        elif not word.startswith("-"):
            return word
    return None


def _own_stderr() -> None:
    """Write Python's stderr to a duplicate of file descriptor 2.

    The bulk Avro decoder silences fd 2 while Polars may panic on a poison message (see
    rater.wire.native_stderr_silenced); with its own descriptor, nothing Python writes
    meanwhile (log lines of other threads) is lost.
    """
    if sys.stderr is not sys.__stderr__:  # already redirected (a test's capture, an embedder)
        return
    try:
        fd = os.dup(2)
    except OSError:
        return
    sys.stderr = os.fdopen(fd, "w", buffering=1, encoding="utf-8", errors="backslashreplace")


def _configure_logging(flag_level: str | None) -> None:
    """Level from --log-level, else RATER_LOG_LEVEL; format from RATER_LOG_FORMAT.

    A bad value in the environment raises ConfigError (one line, exit status 2).
    """
    from rater import logs
    from rater.settings import load_settings

    settings = load_settings(log_level=flag_level)
    logs.configure(settings.log_level, settings.log_format)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
