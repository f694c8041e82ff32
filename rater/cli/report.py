"""``rater report``: a tenant's detailed consumption, account activity or usage this
period, as an HTML page, a PDF, CSV or Parquet."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from rater.cli.flags import settings_from

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``report`` subcommand."""
    p = sub.add_parser(
        "report",
        help="a tenant's consumption, account activity or usage this period (HTML, PDF, CSV, Parquet)",
        description="Write one tenant's report from the rated records: `consumption` (totals "
        "and the detailed records), `activity` (a prepaid balance's debits and credits) or "
        "`usage` (the open period so far). Dates are read in the tenant plan's time zone; "
        "without them, the current month.",
    )
    p.add_argument("report", metavar="REPORT", help="consumption, activity or usage")
    p.add_argument("--config", type=Path, metavar="DIR", help="tariff directory (RATER_TARIFF_DIR)")
    p.add_argument(
        "--dataset",
        type=Path,
        metavar="PATH",
        help="the streaming job's dataset directory or a rate-file output directory "
        "(default RATER_OUTPUT__DATASET_DIR)",
    )
    p.add_argument("--tenant", metavar="ID", help="the tenant (a tenant_id of tenants.csv)")
    p.add_argument("--from", dest="start", metavar="DATE", help="first day (YYYY-MM-DD) or instant")
    p.add_argument("--to", dest="end", metavar="DATE", help="last day, inclusive, or instant")
    p.add_argument(
        "--team", action="append", default=[], metavar="T", help="only this team (repeatable)"
    )
    p.add_argument(
        "--user", action="append", default=[], metavar="U", help="only this user (repeatable)"
    )
    p.add_argument(
        "--kind",
        action="append",
        default=[],
        metavar="K",
        help="call, sms or ring_through (repeatable)",
    )
    p.add_argument("--direction", metavar="D", help="inbound or outbound")
    p.add_argument("--show", metavar="WHAT", help="activity: all (default), debits or credits")
    p.add_argument(
        "--mask-callee", action="store_true", default=None, help="mask the numbers called"
    )
    p.add_argument("--format", metavar="FORMAT", help="html, pdf, csv or parquet")
    p.add_argument("--output", type=Path, metavar="FILE", help="the file written (atomically)")
    p.error = _one_line_error  # type: ignore[method-assign]
    p.parse_known_args = _strict(p.parse_known_args)  # type: ignore[method-assign,assignment]
    p.set_defaults(func=_handle)


def _strict(parse: Callable[..., tuple[argparse.Namespace, list[str]]]) -> Callable[..., Any]:
    """The subcommand's parsing, refusing unknown arguments itself (one line) rather than
    leaving them to the top-level parser's usage message."""

    def parse_known_args(*args: Any, **kwargs: Any) -> tuple[argparse.Namespace, list[str]]:
        namespace, extras = parse(*args, **kwargs)
        if extras:
            _one_line_error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras

    return parse_known_args


def _one_line_error(message: str) -> NoReturn:
    """argparse's errors for this command as one line with the fix, exit status 2."""
    text = message.encode("utf-8", "backslashreplace").decode("utf-8")
    print(f"rater: error: report: {text}. Fix: see `rater report --help`", file=sys.stderr)
    sys.exit(2)


def _handle(args: argparse.Namespace) -> int:
    from rater.reports import make_report

    settings = settings_from(tariff_dir=args.config, report={"mask_callee": args.mask_callee})
    result = make_report(
        settings.tariff_dir,
        args.dataset if args.dataset is not None else settings.output.dataset_dir,
        args.report,
        tenant_id=args.tenant,
        output=args.output,
        format=args.format,
        start=args.start,
        end=args.end,
        teams=args.team,
        users=args.user,
        kinds=args.kind,
        direction=args.direction,
        show=args.show,
        mask_callee=settings.report.mask_callee,
        detail_rows=settings.report.detail_rows,
        issuer_name=settings.report.issuer_name,
        progress=sys.stderr.isatty(),
    )
    print(result.line())
    return 0
