"""What a report is asked for: the flags checked, dates read in the tenant plan's zone.

Every value may be careless or hostile. Each is checked here once, and a bad one is one
line naming the flag, the problem and the fix (:class:`UsageError`, exit status 2); a
value that passes is only ever handed to queries as a parameter or to templates that
escape it.

Dates: ``--from`` and ``--to`` are ``YYYY-MM-DD`` (``--to`` inclusive: the whole day) or
a local date and time ``YYYY-MM-DDTHH:MM[:SS]`` (an instant; ``--to`` then ends the range
there), read in the time zone of the tenant's plan; an explicit offset (``+01:00``,
``Z``) is honoured. Without them: the current month of that zone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from rater.core.tariff import DIRECTIONS, KINDS, Plan, Tariff, Tenant
from rater.errors import UsageError
from rater.tariff_files.text import shown

__all__ = [
    "FORMATS",
    "REPORTS",
    "SHOW",
    "ReportRequest",
    "build_request",
    "epoch_us",
]

REPORTS = ("consumption", "activity", "usage")
FORMATS = ("html", "pdf", "csv", "parquet")
SHOW = ("all", "debits", "credits")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_FIRST_YEAR, _LAST_YEAR = 2000, 2099
# Bounds on what a filter may hold: enough for any real selection, small enough that no
# flag can make a query or a page unreasonably large.
MAX_FILTER_VALUES = 1000
MAX_VALUE_CHARS = 256


@dataclass(frozen=True)
class ReportRequest:
    """One report, checked. ``start_us``/``end_us``: the range [start, end) in UTC micros;
    ``first_day``/``last_day``: its local dates as shown (``last_day`` inclusive)."""

    report: Literal["consumption", "activity", "usage"]
    tenant: Tenant
    plan: Plan
    start_us: int
    end_us: int
    first_day: dt.date
    last_day: dt.date
    output: Path
    format: Literal["html", "pdf", "csv", "parquet"]
    as_of_us: int  # usage: the instant the period is seen at (end of --to, else now)
    teams: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    direction: str | None = None
    show: Literal["all", "debits", "credits"] = "all"
    mask_callee: bool = False
    detail_rows: int = 1000
    issuer_name: str = ""
    range_text: str = field(default="")

    @property
    def tenant_id(self) -> str:
        return self.tenant.tenant_id

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.plan.timezone)

    @property
    def filters(self) -> tuple[tuple[str, str], ...]:
        """(label, value) of each filter given, for the page's header."""
        out = []
        for label, values in (("Teams", self.teams), ("Users", self.users)):
            if values:
                out.append((label, ", ".join(values)))
        if self.kinds:
            out.append(("Kinds", ", ".join(self.kinds)))
        if self.direction:
            out.append(("Direction", self.direction))
        return tuple(out)


def epoch_us(moment: dt.datetime) -> int:
    """An aware datetime as micros since the epoch (exact)."""
    return (moment - _EPOCH) // dt.timedelta(microseconds=1)


def build_request(
    tariff: Tariff,
    report: str,
    *,
    tenant_id: str,
    output: Path,
    format: str | None,
    start: str | None = None,
    end: str | None = None,
    teams: Sequence[str] = (),
    users: Sequence[str] = (),
    kinds: Sequence[str] = (),
    direction: str | None = None,
    show: str | None = None,
    mask_callee: bool = False,
    detail_rows: int = 1000,
    issuer_name: str = "",
    now_us: int | None = None,
) -> ReportRequest:
    """The checked request; UsageError (one line, with the fix) for any bad value."""
    if report not in REPORTS:
        raise UsageError(f"report {shown(report)}: unknown. Fix: use one of {', '.join(REPORTS)}")
    _check_flags_apply(report, teams, users, kinds, direction, show)
    tenant = _tenant(tariff, tenant_id)
    plan = tariff.plans[tenant.plan_id]
    zone = ZoneInfo(plan.timezone)
    now = dt.datetime.now(dt.UTC) if now_us is None else _EPOCH + dt.timedelta(microseconds=now_us)
    start_us, end_us, first_day, last_day = _range(start, end, zone, now)
    as_of_us = end_us - 1 if end is not None else min(epoch_us(now), end_us - 1)
    if report == "activity" and tenant.billing != "prepaid":
        raise UsageError(
            f"--tenant {shown(tenant_id)}: is postpaid; account activity is a prepaid "
            "balance's statement. Fix: use `rater report consumption` or `usage` for it"
        )
    return ReportRequest(
        report=report,  # type: ignore[arg-type]
        tenant=tenant,
        plan=plan,
        start_us=start_us,
        end_us=end_us,
        first_day=first_day,
        last_day=last_day,
        output=_output(output),
        format=_format(format, output),
        as_of_us=as_of_us,
        teams=_values("--team", teams),
        users=_values("--user", users),
        kinds=_choices("--kind", kinds, KINDS),
        direction=None
        if direction is None
        else _choices("--direction", [direction], DIRECTIONS)[0],
        show=_choices("--show", [show or "all"], SHOW)[0],  # type: ignore[arg-type]
        mask_callee=bool(mask_callee),
        detail_rows=detail_rows,
        issuer_name=issuer_name,
        range_text=f"{first_day.isoformat()} to {last_day.isoformat()} ({plan.timezone})",
    )


def _check_flags_apply(
    report: str,
    teams: Sequence[str],
    users: Sequence[str],
    kinds: Sequence[str],
    direction: str | None,
    show: str | None,
) -> None:
    """A flag the report has no use for is refused rather than ignored: the filters are
    the consumption report's, ``--show`` the account activity's."""
    if report != "consumption":
        given = (("--team", teams), ("--user", users), ("--kind", kinds))
        for flag, values in (*given, ("--direction", direction)):
            if values:
                raise UsageError(
                    f"{flag}: filters the consumption report only; the {report} report "
                    f"covers every record. Fix: leave {flag} out, or run `rater report "
                    "consumption`"
                )
    if report != "activity" and show in SHOW:  # an unknown value: that error first
        raise UsageError(
            f"--show: chooses the lines of the account activity only. Fix: leave --show "
            f"out of `rater report {report}`"
        )


def _tenant(tariff: Tariff, tenant_id: str) -> Tenant:
    if not isinstance(tenant_id, str) or not tenant_id:
        raise UsageError("--tenant is required. Fix: pass --tenant ID (a tenant_id of tenants.csv)")
    tenant = tariff.tenants.get(tenant_id)
    if tenant is None:
        raise UsageError(
            f"--tenant {shown(tenant_id)}: unknown tenant. "
            "Fix: use a tenant_id listed in the tariff's tenants.csv"
        )
    return tenant


def _range(
    start: str | None, end: str | None, zone: ZoneInfo, now: dt.datetime
) -> tuple[int, int, dt.date, dt.date]:
    """(start_us, end_us, first local day, last local day) of the flags. A bound left
    out is the start (or end) of the month of the other one, both: the current month."""
    begin = None if start is None else _instant("--from", start, zone, end_of_day=False)
    finish = None if end is None else _instant("--to", end, zone, end_of_day=True)
    if begin is None:
        anchor = now if finish is None else finish - dt.timedelta(microseconds=1)
        begin = _midnight(anchor.astimezone(zone).date().replace(day=1), zone)
    if finish is None:
        month_start = begin.astimezone(zone).date().replace(day=1)
        finish = _midnight((month_start + dt.timedelta(days=32)).replace(day=1), zone)
    if finish <= begin:
        raise UsageError(
            f"--from {begin.astimezone(zone).isoformat()} is not before --to "
            f"{finish.astimezone(zone).isoformat()}. Fix: give a --to on or after --from"
        )
    last = (finish - dt.timedelta(microseconds=1)).astimezone(zone).date()
    return epoch_us(begin), epoch_us(finish), begin.astimezone(zone).date(), last


def _instant(flag: str, text: str, zone: ZoneInfo, *, end_of_day: bool) -> dt.datetime:
    fix = (
        f"Fix: write YYYY-MM-DD or YYYY-MM-DDTHH:MM, read in the plan's time zone {zone.key}, "
        f"in years {_FIRST_YEAR}..{_LAST_YEAR}"
    )
    value = text.strip() if isinstance(text, str) else ""
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value)
            _check_year(day.year)
            return _midnight(day + dt.timedelta(days=1) if end_of_day else day, zone)
        moment = dt.datetime.fromisoformat(value)
        _check_year(moment.year)
    except (ValueError, OverflowError):
        raise UsageError(f"{flag} {shown(text)}: not a date. {fix}") from None
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment


def _check_year(year: int) -> None:
    if not _FIRST_YEAR <= year <= _LAST_YEAR:
        raise ValueError("year out of range")


def _midnight(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    """The first instant of a local day (a skipped midnight: the first that exists)."""
    # fold=0 reads a skipped midnight with the offset before the gap, which lands on the
    # first instant that exists that day (as billing periods do).
    return dt.datetime.combine(day, dt.time(0), tzinfo=zone)


def _output(output: Path | None) -> Path:
    if output is None or str(output) in ("", "."):
        raise UsageError("--output is required. Fix: pass --output FILE (e.g. report.html)")
    return Path(output)


def _format(format: str | None, output: Path | None) -> Literal["html", "pdf", "csv", "parquet"]:
    chosen = format
    if chosen is None and output is not None:
        chosen = Path(output).suffix.lower().lstrip(".")
        if chosen == "htm":
            chosen = "html"
    if chosen not in FORMATS:
        given = "missing" if format is None else f"{shown(format)} unknown"
        if format is None and output is not None:
            given += f" (and --output {shown(Path(output).name)} does not end in one)"
        raise UsageError(f"--format: {given}. Fix: use --format {'|'.join(FORMATS)}")
    return chosen  # type: ignore[return-value]


def _values(flag: str, values: Sequence[str]) -> tuple[str, ...]:
    """Free-text filter values (team or user ids): any characters, bounded in size."""
    if len(values) > MAX_FILTER_VALUES:
        raise UsageError(
            f"{flag}: {len(values)} values given. Fix: give at most {MAX_FILTER_VALUES}"
        )
    out: list[str] = []
    for value in values:
        if not isinstance(value, str) or not value or len(value) > MAX_VALUE_CHARS:
            raise UsageError(
                f"{flag} {shown(value)}: empty or too long. "
                f"Fix: give an id of 1 to {MAX_VALUE_CHARS} characters"
            )
        if not _is_text(value):
            raise UsageError(
                f"{flag} {shown(value)}: not text (bytes that are not UTF-8, or NUL). "
                "Fix: give the id as it appears in the records"
            )
        if value not in out:
            out.append(value)
    return tuple(out)


def _is_text(value: str) -> bool:
    """Encodable as UTF-8 (no lone surrogate from undecodable bytes) and without NUL."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in value


def _choices(flag: str, values: Sequence[str], allowed: Sequence[str]) -> tuple[str, ...]:
    out: list[str] = []
    for value in values:
        if value not in allowed:
            raise UsageError(
                f"{flag} {shown(value)}: unknown. Fix: use one of {', '.join(allowed)}"
            )
        if value not in out:
            out.append(value)
    return tuple(out)
