"""``rater rate-file``: rate one CDR file with the same core as the streaming job."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rater.batch import rate_file
from rater.cli.flags import settings_from
from rater.errors import UsageError

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``rate-file`` subcommand."""
    parser = sub.add_parser(
        "rate-file",
        help="rate a CDR file (.csv, .parquet, .avro) into Parquet outputs",
        description="Rate one CDR file and write rated.parquet, events.parquet, "
        "balances.parquet and adjustments.parquet into the output directory.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="DIR",
        help="tariff directory with plans.yaml, rates.csv, tenants.csv "
        "(env RATER_TARIFF_DIR, default ./config)",
    )
    parser.add_argument(
        "--input",
        type=Path,
        metavar="FILE",
        help="CDR file: .csv, .parquet or .avro (env RATER_RATE_FILE__INPUT)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        metavar="DIR",
        help="output directory, created if missing (env RATER_RATE_FILE__OUTPUT)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help="records rated per slice; the output does not depend on it "
        "(env RATER_RATE_FILE__BATCH_SIZE, default 100000)",
    )
    parser.add_argument(
        "--adjustments",
        type=Path,
        metavar="FILE",
        help="balance adjustments (top-ups, refunds, charges; .csv or .parquet) applied "
        "among the CDR charges, as the streaming job applies them",
    )
    parser.set_defaults(func=_handle)


def _handle(args: argparse.Namespace) -> int:
    settings = settings_from(
        tariff_dir=args.config,
        rate_file={"input": args.input, "output": args.output, "batch_size": args.batch_size},
    )
    given = settings.rate_file
    if given.input is None:
        raise UsageError("rate-file needs --input FILE (or RATER_RATE_FILE__INPUT)")
    if given.output is None:
        raise UsageError("rate-file needs --output DIR (or RATER_RATE_FILE__OUTPUT)")
    summary = rate_file(
        settings.tariff_dir,
        given.input,
        given.output,
        batch_size=given.batch_size,
        progress=sys.stderr.isatty(),
        adjustments_path=args.adjustments,
    )
    for line in summary.lines():
        print(line)
    return 0
