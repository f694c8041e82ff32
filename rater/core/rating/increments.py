"""Rules 4 and 5: billable time and billed seconds, and the quantity a record is charged for.

Billable time (``_billable_ms``, computed by validation) is end - answer - hold in whole
milliseconds; rule 5 rounds it up to the rate's first increment, then to whole
increments.
"""

from __future__ import annotations

import polars as pl

from rater.core.rating.kernels import CALL, SMS

__all__ = ["billed_seconds", "quantity"]


def billed_seconds(rates: pl.DataFrame) -> pl.Expr:
    """Rule 5 for the row's rate (``_rate_row``): 0 for a call with billable time 0;
    F when b <= F * 1000; else F + ceil((b - F * 1000) / (I * 1000)) * I."""
    r = pl.col("_rate_row")
    first = pl.lit(rates["first_increment"]).gather(r)
    inc = pl.lit(rates["increment"]).gather(r)
    b = pl.col("_billable_ms")
    return (
        pl.when(pl.col("_zero_call"))
        .then(0)
        .when(b <= first * 1000)
        .then(first)
        .otherwise(first + (b - first * 1000 + inc * 1000 - 1) // (inc * 1000) * inc)
    )


def quantity() -> pl.Expr:
    """What a rated record may draw from allowances and be charged for: billed seconds
    of a call, segments of an sms; 0 for a ring-through (never drawn) or an unrated row."""
    rated = pl.col("_rated")
    return (
        pl.when(rated & (pl.col("_kind") == CALL))
        .then(pl.col("billed_seconds"))
        .when(rated & (pl.col("_kind") == SMS))
        .then(pl.col("_segments"))
        .otherwise(0)
    )
