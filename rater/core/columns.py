"""Column names and Polars dtypes of the frames that cross the core's boundary."""

from __future__ import annotations

import polars as pl

__all__ = [
    "ADJUSTMENT_EXTRA_SCHEMA",
    "ADJUSTMENT_SCHEMA",
    "BALANCE_SCHEMA",
    "CDR_SCHEMA",
    "EVENT_SCHEMA",
    "RATED_EXTRA_SCHEMA",
    "TIME",
    "TOPUP_SCHEMA",
]

TIME = pl.Datetime("us", "UTC")

# A CDR as the contract defines it (rating-rules.md, "Usage records").
# kind is call|sms|ring_through, direction inbound|outbound, both lower-case strings.
CDR_SCHEMA: dict[str, pl.DataType] = {
    "cdr_id": pl.String(),
    "tenant_id": pl.String(),
    "user_id": pl.String(),
    "team_id": pl.String(),
    "kind": pl.String(),
    "direction": pl.String(),
    "caller": pl.String(),
    "callee": pl.String(),
    "start_time": TIME,
    "answer_time": TIME,
    "end_time": TIME,
    "hold_ms": pl.Int64(),
    "segments": pl.Int32(),
}

# Columns the core appends to every CDR, in this order (rated.parquet).
RATED_EXTRA_SCHEMA: dict[str, pl.DataType] = {
    "status": pl.String(),  # rated | unrated | invalid | duplicate
    "reason": pl.String(),  # null when rated
    "plan_id": pl.String(),
    "rate_prefix": pl.String(),
    "band": pl.String(),
    "billed_seconds": pl.Int64(),
    "covered": pl.Int64(),
    "charge_micros": pl.Int64(),
    "charge": pl.String(),
    "currency": pl.String(),
    "balance_after_micros": pl.Int64(),
}

EVENT_SCHEMA: dict[str, pl.DataType] = {
    "tenant_id": pl.String(),
    "event": pl.String(),  # low_balance | exhausted
    "cdr_id": pl.String(),
    "balance_micros": pl.Int64(),
    "threshold_micros": pl.Int64(),
    "recharge_amount_micros": pl.Int64(),
    "auto_recharge": pl.Boolean(),
}

BALANCE_SCHEMA: dict[str, pl.DataType] = {
    "tenant_id": pl.String(),
    "balance_micros": pl.Int64(),
}

# A balance adjustment (billing rules, "Balance adjustments"): amount positive, the kind
# gives the direction. A top-up is an adjustment of kind topup (adjustment_id = topup_id).
ADJUSTMENT_SCHEMA: dict[str, pl.DataType] = {
    "tenant_id": pl.String(),
    "adjustment_id": pl.String(),
    "kind": pl.String(),  # topup | refund | charge
    "amount_micros": pl.Int64(),
    "time": TIME,
    "source": pl.String(),  # topup: manual | auto_recharge
    "reason": pl.String(),  # refund: why
    "product_id": pl.String(),  # charge: the product billed
    "line_type": pl.String(),  # charge: fee | recurring | prorated | one_time
}

# Columns the core appends to every adjustment it was given.
ADJUSTMENT_EXTRA_SCHEMA: dict[str, pl.DataType] = {
    "status": pl.String(),  # applied | pending | duplicate | ignored
    "balance_after_micros": pl.Int64(),  # prepaid: the balance after it; else null
}

TOPUP_SCHEMA: dict[str, pl.DataType] = {
    "tenant_id": pl.String(),
    "topup_id": pl.String(),
    "amount_micros": pl.Int64(),
    "source": pl.String(),  # manual | auto_recharge
    "time": TIME,
}
