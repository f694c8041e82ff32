"""Time bands and local time: which band a rating time falls in, in a plan's zone.

A plan's bands are flattened into a table with one entry per minute of the local
week (Monday 00:00 = 0), so finding the band of a million records is one gather
instead of a chain of conditions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from rater.core.tariff import Band

__all__ = [
    "DAYS",
    "MINUTES_PER_DAY",
    "MINUTES_PER_WEEK",
    "NO_BAND",
    "band_week_table",
    "local_naive_us",
    "parse_hhmm",
    "period_of",
    "week_minute",
]

DAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 1440
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY
NO_BAND = -2  # a time no band contains; never equal to a rate's band code (-1 = any)

_US_PER_MINUTE = 60_000_000
_US_PER_DAY = 86_400_000_000
_HHMM = re.compile(r"([0-9]{2}):([0-9]{2})")


def parse_hhmm(text: str, *, allow_end_of_day: bool) -> int | None:
    """Minutes since midnight of "HH:MM"; "24:00" only when ``allow_end_of_day``; else None."""
    match = _HHMM.fullmatch(text.strip())
    if match is None:
        return None
    hours, minutes = int(match[1]), int(match[2])
    if hours == 24 and minutes == 0 and allow_end_of_day:
        return MINUTES_PER_DAY
    if hours > 23 or minutes > 59:
        return None
    return hours * 60 + minutes


def band_week_table(bands: Sequence[Band]) -> pl.Series:
    """Band index (in listed order) for each minute of the week; NO_BAND where none applies.

    The first listed band that contains a minute wins, so bands are painted in
    reverse order.
    """
    table = [NO_BAND] * MINUTES_PER_WEEK
    for index in range(len(bands) - 1, -1, -1):
        band = bands[index]
        if band.from_minute < band.to_minute:
            spans = [(band.from_minute, band.to_minute)]
        else:  # wraps past midnight on the same listed day
            spans = [(band.from_minute, MINUTES_PER_DAY), (0, band.to_minute)]
        for day in band.days:
            base = DAYS.index(day) * MINUTES_PER_DAY
            for start, end in spans:
                table[base + start : base + end] = [index] * (end - start)
    return pl.Series("band", table, dtype=pl.Int16)


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
