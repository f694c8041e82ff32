"""Account activity: a prepaid tenant's statement, every debit and credit of a range.

The moves of a prepaid balance are its rated records with a charge (debits) and its
applied adjustments: ``topup`` and ``refund`` (credits), ``charge`` (debits). They are
listed by effective time (a record's rating time, an adjustment's ``time``); at the same
instant adjustments come first (the rater applies an adjustment just before the first
record at or after its time), then by id.

The balance column is the running balance in that order, exact:

- opening balance = the tenant's opening balance (tenants.csv) plus every move before
  the range;
- each line's balance = the previous one plus the line's amount;
- closing balance = opening + credits - debits.

When the rater applied the moves in that same order (it debits records in the order it
reads them, which for a long call can come after a later message), each line's balance
is the ``balance_after_micros`` the rater recorded with it; the exports carry the
recorded value too (``recorded_balance_after_micros``), so a reader can see both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from rater.reports.naming import adjustment_name, mask_number_expr, record_name
from rater.reports.request import ReportRequest
from rater.reports.store import Filters, RecordStore

__all__ = ["ACTIVITY_SCHEMA", "Activity", "build_activity"]

ACTIVITY_SCHEMA: dict[str, pl.DataType] = {
    "tenant_id": pl.String(),
    "time": pl.Datetime("us", "UTC"),
    "local_time": pl.String(),
    "type": pl.String(),  # debit | credit
    "description": pl.String(),
    "detail": pl.String(),
    "reference": pl.String(),  # cdr_id or adjustment_id
    "amount_micros": pl.Int64(),  # negative for debits
    "balance_after_micros": pl.Int64(),  # the running balance of the statement
    "recorded_balance_after_micros": pl.Int64(),  # what the rater recorded
    "currency": pl.String(),
}
_RECORD_MOVES = """
    SELECT _rating_us, 1 AS _order, cdr_id, kind, direction, callee, user_id,
           -charge_micros AS amount, balance_after_micros
    FROM report_records WHERE charge_micros <> 0
"""


@dataclass(frozen=True)
class Activity:
    request: ReportRequest
    opening_micros: int
    credits_micros: int
    debits_micros: int  # positive: what the debits took
    lines: pl.DataFrame  # ACTIVITY_SCHEMA, the lines shown (per --show), by time
    moves: int  # every move of the range, shown or not

    @property
    def closing_micros(self) -> int:
        return self.opening_micros + self.credits_micros - self.debits_micros

    def page_lines(self) -> list[dict[str, Any]]:
        """The first request.detail_rows lines, for the page."""
        return self.lines.head(max(self.request.detail_rows, 0)).to_dicts()


def build_activity(store: RecordStore, request: ReportRequest) -> Activity:
    """The statement of ``request`` (a prepaid tenant; checked by build_request)."""
    tenant = request.tenant_id
    store.select_records(tenant, request.start_us, request.end_us, request.plan.timezone, Filters())
    adjustments = store.adjustments(tenant).with_columns(
        pl.col("time").dt.epoch("us").alias("_time_us")
    )
    before = adjustments.filter(pl.col("_time_us") < request.start_us)
    opening = (
        request.tenant.opening_balance_micros
        - store.charges_before(tenant, request.start_us)
        + _signed(before)
    )
    inside = adjustments.filter(
        (pl.col("_time_us") >= request.start_us) & (pl.col("_time_us") < request.end_us)
    )
    moves = _ordered(_record_moves(store, request), _adjustment_moves(inside, request))
    amounts = moves.get_column("amount_micros")
    lines = moves.with_columns(
        (pl.lit(opening, pl.Int64) + amounts.cum_sum()).alias("balance_after_micros")
    )
    return Activity(
        request=request,
        opening_micros=opening,
        credits_micros=int(amounts.filter(amounts > 0).sum()),
        debits_micros=-int(amounts.filter(amounts < 0).sum()),
        lines=_shown(lines, request),
        moves=lines.height,
    )


def _signed(adjustments: pl.DataFrame) -> int:
    """The net effect of applied adjustments on the balance: credits - charges."""
    sign = pl.when(pl.col("kind") == "charge").then(-1).otherwise(1)
    return int(adjustments.select((pl.col("amount_micros") * sign).sum()).item() or 0)


def _record_moves(store: RecordStore, request: ReportRequest) -> pl.DataFrame:
    frame = store.frame(_RECORD_MOVES)
    callee = mask_number_expr("callee") if request.mask_callee else pl.col("callee")
    names = [
        pl.when((pl.col("kind") == k) & (pl.col("direction") == d)).then(pl.lit(record_name(k, d)))
        for k, d in (
            ("call", "inbound"),
            ("call", "outbound"),
            ("sms", "inbound"),
            ("sms", "outbound"),
            ("ring_through", "inbound"),
            ("ring_through", "outbound"),
        )
    ]
    return frame.select(
        pl.col("_rating_us").alias("_time_us"),
        pl.col("_order").cast(pl.Int32),
        pl.col("cdr_id").alias("reference"),
        pl.coalesce(*names, pl.lit(record_name("", ""))).alias("description"),
        pl.concat_str(callee.fill_null(""), pl.col("user_id").fill_null(""), separator=" \u00b7 ")
        .str.strip_chars(" \u00b7")
        .alias("detail"),
        pl.col("amount").cast(pl.Int64).alias("amount_micros"),
        pl.col("balance_after_micros").cast(pl.Int64).alias("recorded_balance_after_micros"),
    )


def _adjustment_moves(adjustments: pl.DataFrame, request: ReportRequest) -> pl.DataFrame:
    rows = []
    for row in adjustments.iter_rows(named=True):
        debit = row["kind"] == "charge"
        name = adjustment_name(
            row["kind"], row["source"], row["product_id"], row["line_type"], request.plan
        )
        detail = row["reason"] if row["kind"] == "refund" else ""
        rows.append(
            {
                "_time_us": row["_time_us"],
                "_order": 0,
                "reference": row["adjustment_id"],
                "description": name,
                "detail": detail or "",
                "amount_micros": -row["amount_micros"] if debit else row["amount_micros"],
                "recorded_balance_after_micros": row["balance_after_micros"],
            }
        )
    return pl.DataFrame(rows, schema=_MOVE_SCHEMA)


_MOVE_SCHEMA: dict[str, pl.DataType] = {
    "_time_us": pl.Int64(),
    "_order": pl.Int32(),
    "reference": pl.String(),
    "description": pl.String(),
    "detail": pl.String(),
    "amount_micros": pl.Int64(),
    "recorded_balance_after_micros": pl.Int64(),
}


def _ordered(records: pl.DataFrame, adjustments: pl.DataFrame) -> pl.DataFrame:
    """Moves by effective time; at one instant adjustments first, then by id."""
    return pl.concat([adjustments, records.cast(_MOVE_SCHEMA)]).sort(  # type: ignore[arg-type]
        "_time_us", "_order", "reference", maintain_order=True
    )


def _shown(lines: pl.DataFrame, request: ReportRequest) -> pl.DataFrame:
    if request.show == "debits":
        lines = lines.filter(pl.col("amount_micros") < 0)
    elif request.show == "credits":
        lines = lines.filter(pl.col("amount_micros") > 0)
    time = pl.from_epoch(pl.col("_time_us"), "us").dt.replace_time_zone("UTC")
    return lines.select(
        pl.lit(request.tenant_id).alias("tenant_id"),
        time.alias("time"),
        time.dt.convert_time_zone(request.plan.timezone)
        .dt.strftime("%Y-%m-%d %H:%M:%S")
        .alias("local_time"),
        pl.when(pl.col("amount_micros") < 0)
        .then(pl.lit("debit"))
        .otherwise(pl.lit("credit"))
        .alias("type"),
        "description",
        "detail",
        "reference",
        "amount_micros",
        "balance_after_micros",
        "recorded_balance_after_micros",
        pl.lit(request.plan.currency).alias("currency"),
    ).cast(ACTIVITY_SCHEMA)  # type: ignore[arg-type]
