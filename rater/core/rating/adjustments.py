"""Balance adjustments: which apply, and where each falls among a batch's CDR debits.

A prepaid balance moves by rated charges and by adjustments (``topup`` and ``refund``
credit it, ``charge`` debits it), each applied once per (tenant_id, adjustment_id). An
adjustment at time t is placed just before the first CDR of its tenant, in input order,
whose rating time is >= t (after all of them if there is none); adjustments at the same
place apply by time, then adjustment_id. A postpaid tenant has no balance: its refunds
are recorded (they become invoice credits), its top-ups and charges are ignored.
"""

from __future__ import annotations

import logging

import polars as pl

from rater.core.state import RatingState
from rater.core.tariff import Tariff

__all__ = ["KINDS", "placed_adjustments"]

log = logging.getLogger(__name__)

KINDS = ("topup", "refund", "charge")
_PLACED = {
    "_adj": pl.UInt32(),
    "_tenant": pl.Int64(),
    "_delta": pl.Int64(),
    "_debit": pl.Boolean(),
    "_position": pl.Int64(),
    "_rank": pl.Int64(),
    "adjustment_id": pl.String(),
}


def placed_adjustments(
    tariff: Tariff, adjustments: pl.DataFrame, state: RatingState, w: pl.DataFrame
) -> tuple[pl.DataFrame, pl.Series]:
    """(the adjustments that apply, their statuses).

    The first frame has, per adjustment that moves a prepaid balance: ``_adj`` (its row
    in ``adjustments``), ``_tenant``, ``_delta`` (signed micros), ``_debit`` (a charge),
    ``_position`` (the input row it goes before; ``w.height`` = after all) and ``_rank``
    (its order among those at the same position). Statuses: ``applied`` (including a
    postpaid refund, recorded without a balance), ``duplicate`` or ``ignored``.
    """
    tenants = tariff.tenant_frame.select(
        "tenant_id", pl.int_range(pl.len(), dtype=pl.Int64).alias("_tenant"), "_prepaid"
    )
    known = state.adjustments.select("tenant_id", "adjustment_id", pl.lit(True).alias("_seen"))
    frame = (
        adjustments.with_row_index("_adj")
        .join(tenants, on="tenant_id", how="left", maintain_order="left")
        .join(known, on=["tenant_id", "adjustment_id"], how="left", maintain_order="left")
        .with_columns(
            pl.struct("tenant_id", "adjustment_id").is_first_distinct().alias("_first"),
        )
    )
    prepaid, kind = pl.col("_prepaid").fill_null(False), pl.col("kind")
    fits = (prepaid & kind.is_in(KINDS)) | (pl.col("_tenant").is_not_null() & (kind == "refund"))
    status = (
        pl.when(~fits.fill_null(False))
        .then(pl.lit("ignored"))
        .when(pl.col("_seen").fill_null(False) | ~pl.col("_first"))
        .then(pl.lit("duplicate"))
        .otherwise(pl.lit("applied"))
    )
    frame = frame.with_columns(status.alias("status"))
    ignored = frame.filter(pl.col("status") == "ignored").height
    if ignored:
        log.warning("ignored %d adjustment(s) of unknown tenants or not for their billing", ignored)
    moving = frame.filter((pl.col("status") == "applied") & prepaid)
    return _placed(moving, w), frame.get_column("status")


def _placed(moving: pl.DataFrame, w: pl.DataFrame) -> pl.DataFrame:
    """``moving`` with each adjustment's position among the batch's valid CDR rows."""
    if moving.height == 0:
        return pl.DataFrame(schema=_PLACED)
    time_us = pl.col("time").dt.epoch("us")
    moving = moving.select(
        "_adj",
        "_tenant",
        "adjustment_id",
        time_us.alias("_time_us"),
        pl.when(pl.col("kind") == "charge")
        .then(-pl.col("amount_micros"))
        .otherwise(pl.col("amount_micros"))
        .alias("_delta"),
        (pl.col("kind") == "charge").alias("_debit"),
    ).sort("_time_us")
    # For each tenant's rows by rating time: the first row (input order) at or after it.
    rows = (
        w.filter(pl.col("_rating_us").is_not_null())
        .select(pl.col("_tenant").cast(pl.Int64), "_rating_us", "_row")
        .sort("_tenant", "_rating_us")
        .with_columns(pl.col("_row").cum_min(reverse=True).over("_tenant").alias("_first_row"))
        .sort("_rating_us")
    )
    placed = moving.join_asof(
        rows.select("_tenant", "_rating_us", "_first_row"),
        left_on="_time_us",
        right_on="_rating_us",
        by="_tenant",
        strategy="forward",
        check_sortedness=False,  # both sorted by time above
    )
    return (
        placed.with_columns(pl.col("_first_row").fill_null(w.height).alias("_position"))
        .sort("_position", "_time_us", "adjustment_id")
        .with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("_rank"))
        .select("_adj", "_tenant", "_delta", "_debit", "_position", "_rank", "adjustment_id")
    )
