"""``rater invoice``: invoice a period, send prepaid debits, or preview the open period."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from rater.cli.flags import settings_from
from rater.errors import UsageError

if TYPE_CHECKING:
    from rater.core.tariff import Tariff

__all__ = ["register"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``invoice`` subcommand."""
    p = sub.add_parser(
        "invoice",
        help="invoice a period: invoice lines, invoices, HTML and PDF documents",
        description="Invoice one period (a calendar month in each tenant plan's zone) from "
        "rated records: subscriptions, usage, credits and tax. Writes invoice_lines and "
        "invoices (.parquet and .csv) and one HTML and PDF per invoice.",
    )
    p.add_argument("--config", type=Path, metavar="DIR", help="tariff directory (RATER_TARIFF_DIR)")
    p.add_argument(
        "--rated",
        type=Path,
        metavar="PATH",
        help="a rate-file output directory or the streaming job's dataset directory",
    )
    p.add_argument("--period", metavar="YYYY-MM", help="the month invoiced")
    p.add_argument("--output", type=Path, metavar="DIR", help="output directory")
    p.add_argument(
        "--adjustments",
        type=Path,
        metavar="FILE",
        help="balance adjustments (.csv/.parquet) whose refunds become credits "
        "(default: those recorded with the rated records)",
    )
    p.add_argument("--tenant", action="append", metavar="ID", help="only this tenant (repeatable)")
    p.add_argument(
        "--documents",
        choices=["all", "html", "none"],
        help="HTML and PDF per invoice (all, the default), HTML only, or none",
    )
    p.add_argument(
        "--publish-debits",
        action="store_true",
        help="also send prepaid tenants' fee, recurring, prorated and one-time lines to the "
        "adjustments topic as charges (idempotent)",
    )
    p.add_argument("--bootstrap-servers", help="Kafka for --publish-debits")
    p.add_argument(
        "--preview",
        action="store_true",
        help="usage this period for one --tenant as of --as-of (default now); no files",
    )
    p.add_argument("--as-of", metavar="TIME", help="ISO-8601 instant with an offset (--preview)")
    p.add_argument("--format", choices=["text", "json"], default="text", help="--preview output")
    p.set_defaults(func=_handle)


def _handle(args: argparse.Namespace) -> int:
    from rater.core.billing.period import parse_period
    from rater.tariff_files import load_tariff

    if args.period is not None:
        try:
            parse_period(args.period)
        except ValueError:
            raise UsageError(
                f"--period {args.period!r}: not a month. Fix: write YYYY-MM, from 2000-01 to 2099-12"
            ) from None

    settings = settings_from(
        tariff_dir=args.config,
        kafka={"bootstrap_servers": args.bootstrap_servers},
        invoice={
            "rated": args.rated,
            "output": args.output,
            "period": args.period,
            "adjustments": args.adjustments,
            "documents": args.documents,
        },
    )
    tariff = load_tariff(settings.tariff_dir)
    if args.preview:
        return _preview(args, settings.invoice.rated, settings.invoice.adjustments, tariff)
    from rater.billing.run import invoice_period

    run = invoice_period(tariff, settings.invoice, tenants=args.tenant)
    for line in run.lines():
        print(line)
    if args.publish_debits:
        from rater.billing.debits import publish_debits

        stats = publish_debits(settings, run.bill.debits)
        print(f"  published {stats.delivered} prepaid debits to {settings.topics.adjustments}")
    return 0


def _preview(
    args: argparse.Namespace, rated: Path | None, adjustments: Path | None, tariff: Tariff
) -> int:
    from rater.billing.preview import preview, preview_json, preview_text

    if not args.tenant or len(args.tenant) != 1:
        raise UsageError("--preview needs exactly one --tenant ID")
    if rated is None:
        raise UsageError("--preview needs --rated PATH (or RATER_INVOICE__RATED)")
    so_far = preview(tariff, args.tenant[0], _as_of(args.as_of), rated, adjustments)
    sys.stdout.write(preview_json(so_far) if args.format == "json" else preview_text(so_far))
    return 0


def _as_of(text: str | None) -> int:
    if text is None:
        return (datetime.now(UTC) - _EPOCH) // timedelta(microseconds=1)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        when = None
    if when is None or when.utcoffset() is None or not 2000 <= when.year < 2100:
        raise UsageError(
            f"--as-of {text!r}: not an ISO-8601 instant with an offset. "
            "Fix: e.g. 2026-04-15T12:00:00+02:00"
        )
    return (when - _EPOCH) // timedelta(microseconds=1)
