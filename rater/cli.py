"""The ``rater`` command line. The only module that configures logging."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from rater import __version__
from rater.errors import RaterError, TerminalError

__all__ = ["main"]

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    from rater import batch, demo, simulate
    from rater.broker import command as broker_command
    from rater.stream import command as stream_command

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
    batch.register(sub)
    simulate.register(sub)
    broker_command.register(sub)
    demo.register(sub)
    stream_command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # A poison message makes Polars' Avro reader panic (caught, then decoded one by one);
    # a Rust backtrace on stderr would only alarm the operator.
    os.environ["RUST_BACKTRACE"] = "0"
    parser = _parser()
    args = parser.parse_args(argv)
    level = args.log_level or _env_log_level()
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
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


def _env_log_level() -> str:
    value = os.environ.get("RATER_LOG_LEVEL", "INFO").upper()
    return value if value in {"DEBUG", "INFO", "WARNING", "ERROR"} else "INFO"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
