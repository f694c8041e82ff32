"""Usage and included lines from rated records (billing rule 6), for every account at once.

Records with status ``rated`` whose rating time falls in the account's period form one
``usage`` line per (kind, direction, plan_id, rate_prefix, band): quantity = charged
units (calls: charged minutes = (billed_seconds - covered) / 60 rounded half_up to 6
decimals; sms: charged segments; ring_through: attempts), amount = the sum of their
charge_micros rounded once to invoice_decimals. What allowances covered makes one
``included`` line per (kind, direction), amount 0. Groups whose quantity and amount are
both 0 give no line.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from rater.core.billing.lines import DRAFT_SCHEMA, decimal_text_expr
from rater.core.billing.rounding import INT64_MAX, round_amount_expr
from rater.core.columns import TIME

__all__ = ["USAGE_COLUMNS", "period_records", "usage_lines"]

# The rated record columns billing reads.
USAGE_COLUMNS: dict[str, pl.DataType] = {
    "tenant_id": pl.String(),
    "status": pl.String(),
    "kind": pl.String(),
    "direction": pl.String(),
    "plan_id": pl.String(),
    "rate_prefix": pl.String(),
    "band": pl.String(),
    "billed_seconds": pl.Int64(),
    "covered": pl.Int64(),
    "segments": pl.Int32(),
    "charge_micros": pl.Int64(),
    "start_time": TIME,
    "answer_time": TIME,
}
_KINDS = {"call": 0, "sms": 1, "ring_through": 2}
_DIRECTIONS = {"inbound": 0, "outbound": 1}
_UNITS = {"call": "minute", "sms": "segment", "ring_through": "attempt"}
_GROUP = ["tenant_id", "kind", "direction", "plan_id", "rate_prefix", "band"]


def period_records(
    records: pl.DataFrame, terms: pl.DataFrame, extra: Sequence[str] = ()
) -> pl.LazyFrame:
    """The rated records of each account's period (``terms``: see accounts.terms_frame),
    in input order, with ``_charged`` and ``_covered`` units (seconds for calls) and the
    ``extra`` columns asked for."""
    rating_us = pl.coalesce("answer_time", "start_time").dt.epoch("us")
    kind = pl.col("kind")
    billed = pl.col("billed_seconds").fill_null(0)
    covered = pl.col("covered").fill_null(0)
    segments = pl.col("segments").cast(pl.Int64).fill_null(1)
    charged = (
        pl.when(kind == "call")
        .then(billed - covered)
        .when(kind == "sms")
        .then(segments - covered)
        .otherwise(1)
    )
    start = _per_tenant(terms, "_start_us")
    end = _per_tenant(terms, "_end_us")
    return (
        records.lazy()
        .select(*USAGE_COLUMNS, *extra)
        .filter(pl.col("status") == "rated")
        .filter((rating_us >= start) & (rating_us < end))  # null for a tenant not billed
        .select(
            # Categorical keys: the group-by hashes integers, not millions of strings.
            *(pl.col(c).cast(pl.Categorical) for c in _GROUP),
            "charge_micros",
            *extra,
            charged.alias("_charged"),
            pl.when(kind.is_in(["call", "sms"])).then(covered).otherwise(0).alias("_covered"),
        )
    )


def _per_tenant(terms: pl.DataFrame, column: str) -> pl.Expr:
    """The tenant's value of a terms column, null for a tenant outside ``terms``."""
    mapping = dict(zip(terms.get_column("tenant_id"), terms.get_column(column), strict=True))
    return pl.col("tenant_id").replace_strict(mapping, default=None, return_dtype=pl.Int64)


def usage_lines(records: pl.DataFrame, terms: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(usage and included draft lines, per tenant the sum of its period's charges
    ``_charges``: what a prepaid balance paid)."""
    # Each total in the streaming engine, straight from the records: no frame of the
    # period's records is ever materialized (the peak memory of a month's invoicing).
    rows = period_records(records, terms)
    usage = (
        rows.group_by(_GROUP)
        .agg(
            pl.col("_charged").sum().alias("_units"),
            pl.col("charge_micros").cast(pl.Int128).sum().alias("_raw"),
        )
        .collect(engine="streaming")
        .with_columns(pl.col(c).cast(pl.String) for c in _GROUP)
        .join(terms.select("tenant_id", "_step", "_method", "_tenant_plan"), on="tenant_id")
    )
    included = (
        rows.filter(pl.col("_covered") > 0)
        .group_by("tenant_id", "kind", "direction")
        .agg(pl.col("_covered").sum().alias("_units"))
        .collect(engine="streaming")
        .with_columns(pl.col("tenant_id", "kind", "direction").cast(pl.String))
    )
    charges = (
        rows.group_by("tenant_id")
        .agg(pl.col("charge_micros").cast(pl.Int128).sum().alias("_charges"))
        .collect(engine="streaming")
        .with_columns(pl.col("tenant_id").cast(pl.String))
    )
    _check_fits(usage.get_column("_raw"), charges.get_column("_charges"))
    return pl.concat([_usage(usage), _included(included)]), charges.with_columns(
        pl.col("_charges").cast(pl.Int64)
    )


def _quantity(units: pl.Expr) -> pl.Expr:
    """Micro-units of a quantity: seconds -> micro-minutes (half_up), else whole units."""
    minutes = (units.cast(pl.Int128) * 2_000_000 + 60) // 120  # (s x 10^6 / 60), half_up
    return pl.when(pl.col("kind") == "call").then(minutes).otherwise(units * 1_000_000)


def _usage(groups: pl.DataFrame) -> pl.DataFrame:
    amount = round_amount_expr(pl.col("_raw"), pl.col("_step"), pl.col("_method"))
    lines = groups.with_columns(
        _quantity(pl.col("_units")).alias("_q"), amount.cast(pl.Int64).alias("amount_micros")
    ).filter((pl.col("_q") != 0) | (pl.col("amount_micros") != 0))
    return lines.select(
        "tenant_id",
        pl.lit("usage").alias("type"),
        pl.lit(None, pl.String).alias("product_id"),
        "kind",
        "direction",
        "plan_id",
        "rate_prefix",
        "band",
        _usage_description().alias("description"),
        decimal_text_expr(pl.col("_q")).alias("quantity"),
        pl.col("kind").replace_strict(_UNITS, return_dtype=pl.String).alias("unit"),
        pl.lit(None, pl.Int64).alias("unit_price_micros"),
        pl.lit(None, pl.Int32).alias("days"),
        "amount_micros",
        pl.lit(None, pl.Int64).alias("time_us"),
        pl.lit(None, pl.String).alias("change_id"),
        *_order_keys(),
        pl.col("plan_id").alias("_s1"),
        pl.col("rate_prefix").alias("_s2"),
        pl.col("band").alias("_s3"),
    ).cast(_without("_type"))  # type: ignore[arg-type]


def _included(groups: pl.DataFrame) -> pl.DataFrame:
    return groups.select(
        "tenant_id",
        pl.lit("included").alias("type"),
        pl.lit(None, pl.String).alias("product_id"),
        "kind",
        "direction",
        pl.lit(None, pl.String).alias("plan_id"),
        pl.lit(None, pl.String).alias("rate_prefix"),
        pl.lit(None, pl.String).alias("band"),
        pl.concat_str(_what(), pl.lit(" included in the plan")).alias("description"),
        decimal_text_expr(_quantity(pl.col("_units"))).alias("quantity"),
        pl.col("kind").replace_strict(_UNITS, return_dtype=pl.String).alias("unit"),
        pl.lit(None, pl.Int64).alias("unit_price_micros"),
        pl.lit(None, pl.Int32).alias("days"),
        pl.lit(0, pl.Int64).alias("amount_micros"),
        pl.lit(None, pl.Int64).alias("time_us"),
        pl.lit(None, pl.String).alias("change_id"),
        *_order_keys(),
        pl.lit(None, pl.String).alias("_s1"),
        pl.lit(None, pl.String).alias("_s2"),
        pl.lit(None, pl.String).alias("_s3"),
    ).cast(_without("_type"))  # type: ignore[arg-type]


def _order_keys() -> list[pl.Expr]:
    return [
        pl.col("kind").replace_strict(_KINDS, return_dtype=pl.Int64).alias("_k1"),
        pl.col("direction").replace_strict(_DIRECTIONS, return_dtype=pl.Int64).alias("_k2"),
        pl.lit(0, pl.Int64).alias("_k3"),
    ]


def _what() -> pl.Expr:
    """ "Outbound calls", "Inbound SMS", "Inbound ring-through attempts"."""
    direction = pl.col("direction").str.to_titlecase()
    noun = pl.col("kind").replace_strict(
        {"call": "calls", "sms": "SMS", "ring_through": "ring-through attempts"},
        return_dtype=pl.String,
    )
    return pl.concat_str(direction, pl.lit(" "), noun)


def _usage_description() -> pl.Expr:
    """ "Outbound calls, prefix 33, peak" (plan named when it is a fallback plan)."""
    prefix = (
        pl.when(pl.col("rate_prefix").is_null() | (pl.col("rate_prefix") == ""))
        .then(pl.lit(""))
        .otherwise(pl.concat_str(pl.lit(", prefix "), pl.col("rate_prefix")))
    )
    band = (
        pl.when(pl.col("band").is_null() | (pl.col("band") == "any"))
        .then(pl.lit(""))
        .otherwise(pl.concat_str(pl.lit(", "), pl.col("band")))
    )
    plan = (
        pl.when(pl.col("plan_id").is_null() | (pl.col("plan_id") == pl.col("_tenant_plan")))
        .then(pl.lit(""))
        .otherwise(pl.concat_str(pl.lit(" (plan "), pl.col("plan_id"), pl.lit(")")))
    )
    return pl.concat_str(_what(), prefix, band, plan)


def _without(*names: str) -> dict[str, pl.DataType]:
    return {k: v for k, v in DRAFT_SCHEMA.items() if k not in names}


def _check_fits(*sums: pl.Series) -> None:
    for values in sums:
        if values.len() and (values.max() > INT64_MAX or values.min() < -INT64_MAX):  # type: ignore[operator]
            raise ValueError("a usage total exceeds the largest amount an invoice can hold")
