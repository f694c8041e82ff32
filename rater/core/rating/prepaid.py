"""Rule 10: prepaid balances debited in input order, with the balance adjustments placed
among the debits, and the low-balance and exhausted events.

A balance only falls between top-ups, so an alarm is armed exactly when the balance is
still >= the threshold (low_balance) or > 0 (exhausted): no flag is kept in the state.
"""

from __future__ import annotations

import logging

import polars as pl

from rater.core.columns import BALANCE_SCHEMA, EVENT_SCHEMA
from rater.core.rating.kernels import group_cum_sum, scatter, sorted_by
from rater.core.state import RatingState
from rater.core.tariff import Tariff

__all__ = ["balances_frame", "debit_prepaid", "tenant_columns"]

log = logging.getLogger(__name__)


def tenant_columns(tariff: Tariff, state: RatingState) -> dict[str, pl.Series]:
    """Per known tenant (by its index in ``tariff.tenant_frame``): attributes and start balance."""
    frame = tariff.tenant_frame
    start = frame["_opening"]
    if state.balances.height:
        start = (
            frame.select("tenant_id", "_opening")
            .join(state.balances, on="tenant_id", how="left", maintain_order="left")
            .select(pl.coalesce("balance_micros", "_opening"))
            .to_series()
        )
    columns = {name: frame[name] for name in frame.columns}
    columns["_start"] = start.alias("_start")
    return columns


def debit_prepaid(
    tariff: Tariff,
    tenants: dict[str, pl.Series],
    cdrs: pl.DataFrame,
    w: pl.DataFrame,
    placed: pl.DataFrame,
) -> tuple[pl.Series, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(balance_after per row, events, balances delta, balance after each adjustment).

    Every move of a prepaid balance in one sequence per tenant, seeded from the batch's
    start balance: the CDR of input row i at (2i + 1) * M, an adjustment placed before
    row p (see :mod:`rater.core.rating.adjustments`) at 2p * M + its rank (M = one more
    than the number of adjustments). Alarms compare the balance before and after each
    debit (a CDR's charge or a ``charge`` adjustment); credits re-arm them.
    """
    moves = _moves(tenants, w, placed)
    t, m = pl.col("_tenant"), pl.col("_move")
    first = (t != t.shift(1)).fill_null(True)
    rows = sorted_by(moves.select("_tenant", "_seq", "_move"), ["_tenant", "_seq", "_move"])
    rows = rows.with_columns(
        pl.lit(moves["_delta"]).gather(m).alias("_delta"),
        pl.lit(moves["_debit"]).gather(m).alias("_debit"),
        pl.lit(moves["_row"]).gather(m).alias("_row"),
        pl.lit(moves["_adj"]).gather(m).alias("_adj"),
    ).with_columns(
        group_cum_sum(pl.col("_delta"), first).alias("_moved"),
        (t != t.shift(-1)).fill_null(True).alias("_last"),
    )
    after = pl.lit(tenants["_start"]).gather(t) + pl.col("_moved")
    before = after - pl.col("_delta")
    threshold = pl.lit(tenants["_threshold"]).gather(t)
    debit = pl.col("_debit")
    rows = rows.with_columns(
        after.alias("balance_micros"),
        (debit & (before >= threshold) & (after < threshold)).alias("_lowers"),
        (debit & (before > 0) & (after <= 0)).alias("_exhausts"),
    )
    cdr_rows = rows.filter(pl.col("_row").is_not_null())
    balance_after = scatter(w.height, cdr_rows["_row"], cdr_rows["balance_micros"], pl.Int64())
    moved = rows.group_by("_tenant").agg((pl.col("_delta") != 0).any().alias("_any"))
    balances_delta = (
        rows.filter("_last")
        .join(moved.filter("_any"), on="_tenant", how="semi")
        .select(pl.lit(tenants["tenant_id"]).gather(t).alias("tenant_id"), "balance_micros")
        .sort("tenant_id")
    )
    adjusted = rows.filter(pl.col("_adj").is_not_null()).select("_adj", "balance_micros")
    return balance_after, _events(rows, tenants, cdrs, placed), balances_delta, adjusted


def _moves(tenants: dict[str, pl.Series], w: pl.DataFrame, placed: pl.DataFrame) -> pl.DataFrame:
    """One row per move of a prepaid balance: _tenant, _seq, _delta, _debit, _row or _adj,
    and _move (its own index)."""
    spread = placed.height + 1
    cdr_moves = (
        w.lazy()
        .select(
            pl.col("_tenant").cast(pl.Int64),
            ((pl.col("_row") * 2 + 1) * spread).alias("_seq"),
            (-pl.col("charge_micros")).alias("_delta"),
            pl.lit(True).alias("_debit"),
            pl.col("_row").cast(pl.Int64),
            pl.lit(None, dtype=pl.Int64).alias("_adj"),
        )
        .filter(pl.lit(tenants["_prepaid"]).gather(pl.col("_tenant")).fill_null(False))
        .collect()
    )
    adjustment_moves = placed.select(
        "_tenant",
        (pl.col("_position") * 2 * spread + pl.col("_rank")).alias("_seq"),
        "_delta",
        "_debit",
        pl.lit(None, dtype=pl.Int64).alias("_row"),
        pl.col("_adj").cast(pl.Int64),
    )
    moves = pl.concat([cdr_moves, adjustment_moves])
    return moves.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("_move"))


def _events(
    rows: pl.DataFrame, tenants: dict[str, pl.Series], cdrs: pl.DataFrame, placed: pl.DataFrame
) -> pl.DataFrame:
    """EVENT_SCHEMA rows of the debits that crossed an alarm, in emission order
    (``low_balance`` before ``exhausted`` for the same debit). A debit by an adjustment
    names the adjustment_id in ``cdr_id``."""
    t = pl.col("_tenant")
    hits = rows.filter(pl.col("_lowers") | pl.col("_exhausts")).sort("_seq")
    hits = hits.join(
        placed.select(pl.col("_adj").cast(pl.Int64), "adjustment_id"),
        on="_adj",
        how="left",
        maintain_order="left",
    )
    cdr_id = (  # gather cannot index an empty series, even where the row is null
        pl.lit(cdrs["cdr_id"]).gather(pl.col("_row").fill_null(0))
        if cdrs.height
        else pl.lit(None, dtype=pl.String)
    )
    columns = [
        pl.lit(tenants["tenant_id"]).gather(t).alias("tenant_id"),
        pl.when(pl.col("_row").is_not_null())
        .then(cdr_id)
        .otherwise(pl.col("adjustment_id"))
        .alias("cdr_id"),
        "balance_micros",
        pl.lit(tenants["_threshold"]).gather(t).alias("threshold_micros"),
        pl.lit(tenants["_recharge"]).gather(t).alias("recharge_amount_micros"),
        pl.lit(tenants["_auto"]).gather(t).alias("auto_recharge"),
    ]
    low = hits.filter("_lowers").select(
        "_seq", pl.lit(0).alias("_order"), pl.lit("low_balance").alias("event"), *columns
    )
    exh = hits.filter("_exhausts").select(
        "_seq", pl.lit(1).alias("_order"), pl.lit("exhausted").alias("event"), *columns
    )
    events = pl.concat([low, exh]).sort(["_seq", "_order"]).select(list(EVENT_SCHEMA))
    return events.cast(EVENT_SCHEMA)  # type: ignore[arg-type]


def balances_frame(tariff: Tariff, state: RatingState) -> pl.DataFrame:
    """BALANCE_SCHEMA for every prepaid tenant (opening balance when untouched), by tenant_id."""
    return (
        tariff.tenant_frame.filter("_prepaid")
        .select("tenant_id", "_opening")
        .join(state.balances, on="tenant_id", how="left")
        .select("tenant_id", pl.coalesce("balance_micros", "_opening").alias("balance_micros"))
        .sort("tenant_id")
        .cast(BALANCE_SCHEMA)  # type: ignore[arg-type]
    )
