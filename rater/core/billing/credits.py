"""Credit lines (billing rule 7): a postpaid tenant's refunds of the period.

A ``refund`` balance adjustment of a postpaid tenant whose time falls in the period is a
``credit`` line: quantity 1, amount = minus the refund rounded to invoice_decimals
(rounding applies to the magnitude), description = its reason ("Refund" without one).
Each (tenant_id, adjustment_id) counts once: the first one given, and only those
``applied`` when the adjustments carry a status (a rate-file or dataset output). A
prepaid tenant's refunds credit its balance instead and make no line.
"""

from __future__ import annotations

import polars as pl

from rater.core.billing.lines import DRAFT_SCHEMA
from rater.core.billing.rounding import round_amount_expr
from rater.core.tariff import Tariff

__all__ = ["credit_lines"]


def credit_lines(tariff: Tariff, adjustments: pl.DataFrame, terms: pl.DataFrame) -> pl.DataFrame:
    """Draft credit lines of the accounts of ``terms``."""
    postpaid = [t.tenant_id for t in tariff.tenants.values() if t.billing == "postpaid"]
    frame = adjustments
    if "status" in frame.columns:
        frame = frame.filter(pl.col("status") == "applied")
    time_us = pl.col("time").dt.epoch("us")
    refunds = (
        frame.filter((pl.col("kind") == "refund") & pl.col("tenant_id").is_in(postpaid))
        .unique(["tenant_id", "adjustment_id"], keep="first", maintain_order=True)
        .join(terms, on="tenant_id", how="inner")
        .filter((time_us >= pl.col("_start_us")) & (time_us < pl.col("_end_us")))
    )
    rounded = round_amount_expr(pl.col("amount_micros"), pl.col("_step"), pl.col("_method"))
    amount = -rounded.cast(pl.Int64)
    reason = pl.col("reason") if "reason" in refunds.columns else pl.lit(None, pl.String)
    return refunds.select(
        "tenant_id",
        pl.lit("credit").alias("type"),
        *(pl.lit(None, DRAFT_SCHEMA[c]).alias(c) for c in _NULL_FIELDS),
        pl.coalesce(reason, pl.lit("Refund")).alias("description"),
        pl.lit("1").alias("quantity"),
        pl.lit(None, pl.String).alias("unit"),
        pl.lit(None, pl.Int64).alias("unit_price_micros"),
        pl.lit(None, pl.Int32).alias("days"),
        amount.alias("amount_micros"),
        time_us.alias("time_us"),
        pl.col("adjustment_id").alias("change_id"),
        pl.lit(0, pl.Int64).alias("_k1"),
        time_us.alias("_k2"),
        pl.lit(0, pl.Int64).alias("_k3"),
        pl.col("adjustment_id").alias("_s1"),
        pl.lit(None, pl.String).alias("_s2"),
        pl.lit(None, pl.String).alias("_s3"),
    )


_NULL_FIELDS = ("product_id", "kind", "direction", "plan_id", "rate_prefix", "band")
