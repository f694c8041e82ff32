"""Detailed consumption: one tenant's rated records of a range, totalled and listed.

Totals by kind and direction, by team, by user, by destination (rate prefix and its
country) and by local day, then the records themselves, each from the same temporary
table (:class:`~rater.reports.store.RecordStore`), so every total is the sum of the
records listed: the charges are integer micros summed by DuckDB into exact integers.

Only records with status ``rated`` are consumption (``unrated``, ``invalid`` and
``duplicate`` records charge nothing and are the operator's concern), the same records
an invoice's usage lines sum before rounding each line.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import polars as pl

from rater.reports.countries import country_of
from rater.reports.naming import mask_number_expr
from rater.reports.request import ReportRequest
from rater.reports.store import RATED_COLUMNS, Filters, RecordStore

__all__ = ["Consumption", "Total", "build_consumption", "export_frame"]

_KIND_LABELS = {"call": "Calls", "sms": "Text messages", "ring_through": "Ring-through attempts"}
_NONE = "(none)"
# Each query reads the temporary table of the request's records; all are constants.
_TOTAL = """
    SELECT count(*), coalesce(sum(charge_micros), 0),
           coalesce(sum(CASE WHEN kind = 'call' THEN billed_seconds END), 0)
    FROM report_records
"""
_BY_KIND = """
    SELECT kind, direction, count(*),
           coalesce(sum(CASE WHEN kind = 'call' THEN billed_seconds
                             WHEN kind = 'sms' THEN coalesce(segments, 1) ELSE 1 END), 0),
           coalesce(sum(CASE WHEN kind IN ('call', 'sms') THEN covered END), 0),
           coalesce(sum(charge_micros), 0) AS charge
    FROM report_records GROUP BY kind, direction ORDER BY kind, direction
"""
_BY_TEAM = """
    SELECT team_id, count(*),
           coalesce(sum(CASE WHEN kind = 'call' THEN billed_seconds END), 0),
           coalesce(sum(charge_micros), 0) AS charge
    FROM report_records GROUP BY team_id ORDER BY charge DESC, team_id NULLS LAST
"""
_BY_USER = """
    SELECT user_id, min(team_id), count(*),
           coalesce(sum(CASE WHEN kind = 'call' THEN billed_seconds END), 0),
           coalesce(sum(charge_micros), 0) AS charge
    FROM report_records GROUP BY user_id ORDER BY charge DESC, user_id NULLS LAST
"""
_BY_DESTINATION = """
    SELECT rate_prefix, count(*),
           coalesce(sum(CASE WHEN kind = 'call' THEN billed_seconds END), 0),
           coalesce(sum(charge_micros), 0) AS charge
    FROM report_records GROUP BY rate_prefix ORDER BY charge DESC, rate_prefix NULLS LAST
"""
_BY_DAY = """
    SELECT _local_day, count(*), coalesce(sum(charge_micros), 0)
    FROM report_records GROUP BY _local_day ORDER BY _local_day
"""
_RECORDS = """
    SELECT * EXCLUDE (_local_day, _seq) FROM report_records
    ORDER BY _rating_us, _seq LIMIT $limit
"""
# A daily chart shows every day of a range up to this long, days without usage as 0.
_FILL_DAYS = 93


@dataclass(frozen=True)
class Total:
    """One row of a totals table: its labels, then exact integers."""

    labels: tuple[str, ...]
    records: int
    seconds: int  # billed call seconds (or, by kind, the kind's quantity)
    charge_micros: int
    covered: int = 0


@dataclass(frozen=True)
class Consumption:
    request: ReportRequest
    records: int
    charge_micros: int
    call_seconds: int
    by_kind: list[Total]
    by_team: list[Total]
    by_user: list[Total]
    by_destination: list[Total]
    by_day: list[Total]
    detail: list[dict[str, Any]]  # the first request.detail_rows records, ready to print

    @property
    def truncated(self) -> bool:
        return len(self.detail) < self.records


def build_consumption(store: RecordStore, request: ReportRequest) -> Consumption:
    """Select the request's records, total them every way, list the first ones."""
    filters = Filters(request.teams, request.users, request.kinds, request.direction)
    store.select_records(
        request.tenant_id, request.start_us, request.end_us, request.plan.timezone, filters
    )
    count, charge, seconds = store.rows(_TOTAL)[0]
    shown = store.frame(_RECORDS, {"limit": max(request.detail_rows, 0)})
    return Consumption(
        request=request,
        records=int(count),
        charge_micros=int(charge),
        call_seconds=int(seconds),
        by_kind=[
            Total((_KIND_LABELS.get(k, k), d.capitalize()), n, q, c, cov)
            for k, d, n, q, cov, c in store.rows(_BY_KIND)
        ],
        by_team=[Total((t or _NONE,), n, s, c) for t, n, s, c in store.rows(_BY_TEAM)],
        by_user=[
            Total((u or _NONE, t or _NONE), n, s, c) for u, t, n, s, c in store.rows(_BY_USER)
        ],
        by_destination=[
            Total((_prefix_label(p), country_of(p)), n, s, c)
            for p, n, s, c in store.rows(_BY_DESTINATION)
        ],
        by_day=_days(store.rows(_BY_DAY), request),
        detail=_detail_rows(shown, request),
    )


def _prefix_label(prefix: str | None) -> str:
    """A rate prefix as shown: an empty one is a rate for every number."""
    if prefix is None:
        return _NONE
    return prefix or "(any number)"


def _days(rows: list[tuple[Any, ...]], request: ReportRequest) -> list[Total]:
    found = {day: Total((day.isoformat(),), n, 0, c) for day, n, c in rows}
    span = (request.last_day - request.first_day).days + 1
    if not 0 < span <= _FILL_DAYS:
        return list(found.values())
    days = [request.first_day + dt.timedelta(days=i) for i in range(span)]
    return [found.get(day, Total((day.isoformat(),), 0, 0, 0)) for day in days]


def _local_time(zone: str) -> pl.Expr:
    return (
        pl.from_epoch(pl.col("_rating_us"), "us")
        .dt.replace_time_zone("UTC")
        .dt.convert_time_zone(zone)
        .dt.strftime("%Y-%m-%d %H:%M:%S")
        .alias("local_time")
    )


def _duration() -> pl.Expr:
    """What a record's duration column says: talk time, segments or an attempt."""
    talk = (pl.col("end_time") - pl.col("answer_time")).dt.total_seconds().clip(lower_bound=0)
    clock = pl.format(
        "{}:{}:{}",
        talk // 3600,
        (talk // 60 % 60).cast(pl.String).str.zfill(2),
        (talk % 60).cast(pl.String).str.zfill(2),
    )
    segments = pl.col("segments").fill_null(1)
    return (
        pl.when(pl.col("kind") == "call")
        .then(
            pl.when(pl.col("answer_time").is_null()).then(pl.lit("not answered")).otherwise(clock)
        )
        .when(pl.col("kind") == "sms")
        .then(
            pl.format(
                "{} segment{}",
                segments,
                pl.when(segments == 1).then(pl.lit("")).otherwise(pl.lit("s")),
            )
        )
        .otherwise(pl.lit("attempt"))
        .alias("duration")
    )


def _detail_rows(frame: pl.DataFrame, request: ReportRequest) -> list[dict[str, Any]]:
    callee = (mask_number_expr("callee") if request.mask_callee else pl.col("callee")).fill_null("")
    kinds = pl.col("kind").replace_strict(
        _KIND_LABELS, default=pl.col("kind"), return_dtype=pl.String
    )
    shown = frame.select(
        _local_time(request.plan.timezone),
        pl.col("user_id").fill_null(""),
        pl.col("team_id").fill_null(""),
        pl.concat_str(kinds, pl.lit(", "), pl.col("direction")).alias("what"),
        callee,
        _duration(),
        pl.col("billed_seconds").fill_null(0),
        pl.col("covered").fill_null(0),
        pl.col("charge_micros").fill_null(0),
    )
    return shown.to_dicts()


def export_frame(store: RecordStore, request: ReportRequest) -> pl.DataFrame:
    """Every selected record (call after :func:`build_consumption`), every rated-record
    column in the contract's order, plus ``local_time``; the callee masked on request."""
    frame = store.frame(
        "SELECT * EXCLUDE (_local_day, _seq) FROM report_records ORDER BY _rating_us, _seq"
    )
    if request.mask_callee:
        frame = frame.with_columns(mask_number_expr("callee"))
    columns = [pl.col(c).cast(t) for c, t in RATED_COLUMNS.items()]
    return frame.select(*columns, _local_time(request.plan.timezone))
