"""Band slots and months of a batch's rating times, worked out once per minute.

Rules 3, 6 and 8 read the rating time in each plan's zone: its band (rule 6) and its
calendar month (the allowance period, rule 8). A batch spans few minutes compared with
its rows, so both are computed per minute of its range and looked up per row.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from rater.core.calendar import MINUTES_PER_WEEK, local_naive_us, period_of, week_minute
from rater.core.rating.kernels import US_PER_DAY, US_PER_MINUTE
from rater.core.tariff import Tariff

__all__ = ["BatchClock", "batch_clock", "month_number"]


@dataclass(frozen=True)
class BatchClock:
    """Band slots and months of a batch's rating times, from tables per minute.

    A batch spans few minutes compared with its rows, so the local time, band and
    month are worked out once per minute of its range, per plan, and looked up per
    row (column ``_minute``: the row's minute in ``minutes``). Zone offsets change only
    on whole UTC minutes, and since 1972 every offset is a whole number of minutes:
    rating times are within 2000..2100 (rule 1), so a whole minute shares its band
    and month.
    """

    minutes: pl.Series
    slots: pl.Series  # plan * len(minutes) + position -> band slot (0 none, b + 1 band b)
    months: pl.Series  # plan * len(minutes) + position -> year * 12 + month - 1

    def _at(self, table: pl.Series, row: pl.Expr) -> pl.Expr:
        return pl.lit(table).gather(row * self.minutes.len() + pl.col("_minute"))

    def slot(self, tariff: Tariff, plan: pl.Expr) -> pl.Expr:
        """Band slot of the rating time (column ``_minute``) in ``plan``."""
        return self._at(self.slots, plan)

    def month(self, tariff: Tariff, plan: pl.Expr) -> pl.Expr:
        """Month number (year * 12 + month - 1) of the rating time in ``plan``'s zone."""
        return self._at(self.months, plan)


def month_number(period: pl.Expr) -> pl.Expr:
    return (period // 100 * 12 + period % 100 - 1).cast(pl.Int64)


def batch_clock(tariff: Tariff, frame: pl.DataFrame) -> tuple[BatchClock, pl.Expr]:
    """The batch's :class:`BatchClock` and the expression of ``_minute`` (from
    ``_rating_us``)."""
    minute = pl.col("_rating_us") // US_PER_MINUTE
    low, high = frame.select(minute.min().alias("lo"), minute.max().alias("hi")).row(0)
    if low is None:
        minutes = pl.Series("m", [], dtype=pl.Int64)
        position: pl.Expr = pl.lit(None, dtype=pl.Int64)
    # Size-dependent: every minute of the range when there are few (one subtraction per row),
    # else only the minutes that occur (one search per row): a batch spanning years of
    # rating times must not build a table of every minute of them.
    elif high - low + 1 <= max(frame.height, 1 << 16):
        minutes = pl.int_range(low, high + 1, dtype=pl.Int64, eager=True).alias("m")
        position = minute - low
    else:
        minutes = frame.select(minute.unique().sort().alias("m"))["m"].drop_nulls()
        position = pl.lit(minutes).search_sorted(minute).cast(pl.Int64)
    start = pl.col("m") * US_PER_MINUTE
    table = pl.DataFrame({"m": minutes}).select(
        (local_naive_us(start.cast(pl.Datetime("us", "UTC")), zone) - start).alias(str(i))
        for i, zone in enumerate(tariff.timezones)
    )
    slots: list[pl.Series] = []
    months: list[pl.Series] = []
    if minutes.len():
        weeks: list[pl.Series] = []
        zone_months: list[pl.Series] = []
        for i in range(len(tariff.timezones)):
            local = (minutes * US_PER_MINUTE + table[str(i)]).alias("l")
            # Months change at local midnight: worked out per day, not per minute.
            day = local // US_PER_DAY
            first, last = day.min(), day.max()
            assert isinstance(first, int) and isinstance(last, int)
            per_day = pl.select(
                month_number(
                    period_of(pl.int_range(first, last + 1, dtype=pl.Int64) * US_PER_DAY)
                ).alias("mo")
            )["mo"]
            weeks.append(pl.select(week_minute(pl.lit(local))).to_series())
            zone_months.append(per_day.gather(day - first))
        for plan_index, zone_index in enumerate(tariff.plan_timezone_index):
            band = tariff.band_table.gather(plan_index * MINUTES_PER_WEEK + weeks[zone_index])
            slots.append((band.cast(pl.Int64) + 1).clip(lower_bound=0))
            months.append(zone_months[zone_index])
    empty = pl.Series([], dtype=pl.Int64)
    clock = BatchClock(
        minutes=minutes,
        slots=pl.concat(slots) if slots else empty,
        months=pl.concat(months) if months else empty,
    )
    return clock, position
