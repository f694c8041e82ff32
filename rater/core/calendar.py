"""Local time in a plan's zone: minutes of the week (for bands) and calendar months.

Pure functions over Polars expressions of microseconds since the epoch.
"""

from __future__ import annotations

import polars as pl

__all__ = [
    "DAYS",
    "MINUTES_PER_DAY",
    "MINUTES_PER_WEEK",
    "local_naive_us",
    "period_of",
    "week_minute",
]

DAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 1440
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY

_US_PER_MINUTE = 60_000_000


def local_naive_us(utc: pl.Expr, timezone: str) -> pl.Expr:
    """Wall-clock time in ``timezone`` as microseconds since 1970-01-01T00:00 local (Int64)."""
    return utc.dt.convert_time_zone(timezone).dt.replace_time_zone(None).dt.epoch("us")


def week_minute(local_us: pl.Expr) -> pl.Expr:
    """Minute of the local week, Monday 00:00 = 0 (1970-01-01 was a Thursday)."""
    minutes = local_us // _US_PER_MINUTE
    day = minutes // MINUTES_PER_DAY
    return ((day + 3) % 7) * MINUTES_PER_DAY + minutes % MINUTES_PER_DAY


def period_of(local_us: pl.Expr) -> pl.Expr:
    """Calendar month of a local time as the integer YYYYMM."""
    naive = local_us.cast(pl.Datetime("us"))
    return naive.dt.year().cast(pl.Int32) * 100 + naive.dt.month().cast(pl.Int32)
