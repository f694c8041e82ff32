"""Rule 10: prepaid balances debited in input order, low-balance and exhausted events,
and top-ups credited.

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

__all__ = ["apply_topups", "balances_frame", "debit_prepaid", "tenant_columns"]

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
    tariff: Tariff, tenants: dict[str, pl.Series], cdrs: pl.DataFrame, w: pl.DataFrame
) -> tuple[pl.Series, pl.DataFrame, pl.DataFrame]:
    """Prepaid balances -> (balance_after per row, events, balances delta).

    Running debits per tenant in input order, seeded from the batch's start balance;
    alarms compare the balance before and after each debit.
    """
    n = w.height
    prepaid = (
        w.lazy()
        .select(
            pl.col("_tenant").cast(pl.Int64),
            "_row",
            "charge_micros",
            pl.lit(tenants["_prepaid"])
            .gather(pl.col("_tenant"))
            .fill_null(False)
            .alias("_is_prepaid"),
        )
        .filter("_is_prepaid")
        .collect()
    )
    first = (pl.col("_tenant") != pl.col("_tenant").shift(1)).fill_null(True)
    t = pl.col("_tenant")
    rows = (
        sorted_by(prepaid, ["_tenant", "_row", "charge_micros"])
        .rename({"charge_micros": "_debit"})
        .with_columns(
            group_cum_sum(pl.col("_debit"), first).alias("_spent"),
            (t != t.shift(-1)).fill_null(True).alias("_last"),
        )
    )
    after = pl.lit(tenants["_start"]).gather(t) - pl.col("_spent")
    before = after + pl.col("_debit")
    threshold = pl.lit(tenants["_threshold"]).gather(t)
    rows = rows.with_columns(
        after.alias("balance_micros"),
        ((before >= threshold) & (after < threshold)).alias("_lowers"),
        ((before > 0) & (after <= 0)).alias("_exhausts"),
    )
    balance_after = scatter(n, rows["_row"], rows["balance_micros"], pl.Int64())
    # Debits are never negative, so a tenant's balance moved iff it spent something.
    balances_delta = (
        rows.filter(pl.col("_last") & (pl.col("_spent") != 0))
        .select(pl.lit(tenants["tenant_id"]).gather(t).alias("tenant_id"), "balance_micros")
        .sort("tenant_id")
    )
    return balance_after, _events(rows, tenants, cdrs), balances_delta


def _events(rows: pl.DataFrame, tenants: dict[str, pl.Series], cdrs: pl.DataFrame) -> pl.DataFrame:
    """EVENT_SCHEMA rows of the debits that crossed an alarm, in emission order
    (input order; ``low_balance`` before ``exhausted`` for the same record)."""
    t = pl.col("_tenant")
    hits = rows.filter(pl.col("_lowers") | pl.col("_exhausts")).sort("_row")
    columns = [
        pl.lit(tenants["tenant_id"]).gather(t).alias("tenant_id"),
        pl.lit(cdrs["cdr_id"]).gather(pl.col("_row")).alias("cdr_id"),
        "balance_micros",
        pl.lit(tenants["_threshold"]).gather(t).alias("threshold_micros"),
        pl.lit(tenants["_recharge"]).gather(t).alias("recharge_amount_micros"),
        pl.lit(tenants["_auto"]).gather(t).alias("auto_recharge"),
    ]
    low = hits.filter("_lowers").select(
        "_row", pl.lit(0).alias("_order"), pl.lit("low_balance").alias("event"), *columns
    )
    exh = hits.filter("_exhausts").select(
        "_row", pl.lit(1).alias("_order"), pl.lit("exhausted").alias("event"), *columns
    )
    events = pl.concat([low, exh]).sort(["_row", "_order"]).select(list(EVENT_SCHEMA))
    return events.cast(EVENT_SCHEMA)  # type: ignore[arg-type]


def apply_topups(
    tariff: Tariff, topups: pl.DataFrame, state: RatingState
) -> tuple[RatingState, RatingState]:
    """Credit top-ups (TOPUP_SCHEMA, amounts in micros) -> (new state, delta).

    Idempotent by (tenant_id, topup_id): a top-up already in ``state.adjustments``, or
    earlier in ``topups``, is not credited again (``delta.adjustments`` holds those that
    were). Top-ups of unknown or postpaid tenants are ignored (logged). A top-up re-arms
    the alarms by raising the balance.
    """
    fresh = topups.join(
        state.adjustments.rename({"adjustment_id": "topup_id"}),
        on=["tenant_id", "topup_id"],
        how="anti",
    ).unique(["tenant_id", "topup_id"], keep="first", maintain_order=True)
    prepaid = tariff.tenant_frame.filter("_prepaid").select("tenant_id", "_opening")
    credits = fresh.join(prepaid, on="tenant_id", how="inner")
    ignored = fresh.height - credits.height
    if ignored:
        log.warning("ignored %d top-up(s) of unknown or postpaid tenants", ignored)
    if credits.height == 0:
        return state, RatingState.empty()
    sums = credits.group_by("tenant_id").agg(
        pl.col("amount_micros").sum().alias("_credit"), pl.col("_opening").first()
    )
    delta_balances = sums.join(state.balances, on="tenant_id", how="left").select(
        "tenant_id",
        (pl.coalesce("balance_micros", "_opening") + pl.col("_credit")).alias("balance_micros"),
    )
    applied = credits.select("tenant_id", pl.col("topup_id").alias("adjustment_id"))
    delta = RatingState.of(balances=delta_balances, adjustments=applied)
    return state.merge(delta), delta


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
