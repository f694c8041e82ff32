"""Balance adjustments: which apply, and where each falls among the CDR debits.

A prepaid balance moves by rated charges and by adjustments (``topup`` and ``refund``
credit it, ``charge`` debits it), each applied once per (tenant_id, adjustment_id). An
adjustment at time t is placed just before the first CDR of its tenant, in input order,
whose rating time is >= t, among the CDRs not yet rated when it is consumed;
adjustments at the same place apply by time, then adjustment_id.

When a batch holds no such CDR, the adjustment's place is after all the CDRs still to
come: with ``settle`` (the input has been read to its end: a whole file, or a streaming
batch that drained its partitions) it applies after the batch's CDRs; otherwise it waits
in the state (``pending``) and is placed in a later batch, so a backlog read in several
batches gives the same sequence as one batch. A postpaid tenant has no balance: its
refunds are recorded at once (they become invoice credits), its top-ups and charges are
ignored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import polars as pl

from rater.core.state import ADJUSTMENT_STATE_SCHEMA, RatingState
from rater.core.tariff import Tariff

__all__ = [
    "KINDS",
    "Placement",
    "adjustments_delta",
    "first_row_at_or_after",
    "place_adjustments",
]

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


@dataclass(frozen=True)
class Placement:
    """``candidates``: the adjustments pending in the state (``_held``), then those given,
    each with its ``status`` (applied | pending | duplicate | ignored). ``placed``: those
    that move a balance in this batch, with ``_adj`` (their row in ``candidates``),
    ``_tenant``, ``_delta`` (signed micros), ``_debit`` (a charge), ``_position`` (the
    input row they go before; the batch's height = after all) and ``_rank`` (their order
    among those at the same position)."""

    candidates: pl.DataFrame
    placed: pl.DataFrame


def place_adjustments(
    tariff: Tariff, given: pl.DataFrame, state: RatingState, w: pl.DataFrame, *, settle: bool
) -> Placement:
    """The status and place of every adjustment pending in ``state`` or ``given``."""
    tenants = tariff.tenant_frame.select(
        "tenant_id", pl.int_range(pl.len(), dtype=pl.Int64).alias("_tenant"), "_prepaid"
    )
    known = state.adjustments.select("tenant_id", "adjustment_id", pl.lit(True).alias("_seen"))
    held = state.pending_adjustments().drop("pending").with_columns(pl.lit(True).alias("_held"))
    fresh = given.join(
        known, on=["tenant_id", "adjustment_id"], how="left", maintain_order="left"
    ).with_columns(
        pl.lit(False).alias("_held"),
        pl.struct("tenant_id", "adjustment_id").is_first_distinct().alias("_first"),
    )
    order = fresh.columns + [c for c in held.columns if c not in fresh.columns]
    frame = (
        pl.concat([held, fresh], how="diagonal_relaxed")
        .select(order)
        .join(tenants, on="tenant_id", how="left", maintain_order="left")
        .with_row_index("_adj")
    )
    prepaid, kind = pl.col("_prepaid").fill_null(False), pl.col("kind")
    fits = (prepaid & kind.is_in(KINDS)) | (pl.col("_tenant").is_not_null() & (kind == "refund"))
    status = (
        pl.when(pl.col("_held"))
        .then(pl.lit("applied"))
        .when(~fits.fill_null(False))
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
    placed = _placed(moving, w)
    if not settle:  # no CDR of the batch at or after its time: it waits for one
        waiting = placed.filter(pl.col("_position") == w.height).get_column("_adj")
        placed = placed.filter(pl.col("_position") < w.height)
        frame = frame.with_columns(
            pl.when(pl.col("_adj").is_in(waiting.implode()))
            .then(pl.lit("pending"))
            .otherwise(pl.col("status"))
            .alias("status")
        )
    columns = [c for c in frame.columns if c not in ("_seen", "_first", "_tenant", "_prepaid")]
    return Placement(frame.select(columns), placed)


def adjustments_delta(candidates: pl.DataFrame) -> pl.DataFrame:
    """The state rows of this batch's adjustments: applied ones by key only (pending
    false), newly pending ones whole."""
    applied = candidates.filter(pl.col("status") == "applied").select(
        "tenant_id", "adjustment_id", pl.lit(False).alias("pending")
    )
    pending = candidates.filter((pl.col("status") == "pending") & ~pl.col("_held")).with_columns(
        pl.lit(True).alias("pending")
    )
    columns = [c for c in ADJUSTMENT_STATE_SCHEMA if c in pending.columns]
    return pl.concat([applied, pending.select(columns)], how="diagonal_relaxed")


def _placed(moving: pl.DataFrame, w: pl.DataFrame) -> pl.DataFrame:
    """``moving`` with each adjustment's position among the batch's valid CDR rows."""
    if moving.height == 0:
        return pl.DataFrame(schema=_PLACED)
    moving = moving.select(
        "_adj",
        "_tenant",
        "adjustment_id",
        pl.col("time").dt.epoch("us").alias("_time_us"),
        pl.when(pl.col("kind") == "charge")
        .then(-pl.col("amount_micros"))
        .otherwise(pl.col("amount_micros"))
        .alias("_delta"),
        (pl.col("kind") == "charge").alias("_debit"),
    )
    return (
        moving.with_columns(first_row_at_or_after(moving, w).alias("_position"))
        .sort("_position", "_time_us", "adjustment_id")
        .with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("_rank"))
        .select("_adj", "_tenant", "_delta", "_debit", "_position", "_rank", "adjustment_id")
    )


def first_row_at_or_after(moments: pl.DataFrame, w: pl.DataFrame) -> pl.Series:
    """Per row of ``moments`` (``_tenant`` Int64, ``_time_us``), in its order: the first
    row of ``w`` (input order) of that tenant whose rating time is >= ``_time_us``;
    ``w.height`` when there is none. ``w`` is the validated frame (``_row``, ``_tenant``,
    ``_rating_us``: null for the rows rule 1 refused, which take no place)."""
    rows = (
        w.filter(pl.col("_rating_us").is_not_null())
        .select(pl.col("_tenant").cast(pl.Int64), "_rating_us", "_row")
        .sort("_tenant", "_rating_us")
        .with_columns(pl.col("_row").cum_min(reverse=True).over("_tenant").alias("_first_row"))
        .sort("_rating_us")
    )
    asked = moments.select(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("_asked"),
        pl.col("_tenant").cast(pl.Int64),
        pl.col("_time_us").cast(pl.Int64),
    ).sort("_time_us")
    found = asked.join_asof(
        rows.select("_tenant", "_rating_us", "_first_row"),
        left_on="_time_us",
        right_on="_rating_us",
        by="_tenant",
        strategy="forward",
        check_sortedness=False,  # both sorted by time above
    ).sort("_asked")
    return found.get_column("_first_row").cast(pl.Int64).fill_null(w.height).alias("_position")
