"""Small vectorized building blocks the rating stages share.

Each is a Polars expression or a one-pass operation over a whole batch; none knows
anything of the rules.
"""

from __future__ import annotations

import polars as pl

from rater.core.tariff import KIND_CODE, KINDS

__all__ = [
    "CALL",
    "POW10",
    "RING",
    "SMS",
    "US_PER_DAY",
    "US_PER_MINUTE",
    "gather",
    "group_cum_sum",
    "null_series",
    "period_int",
    "period_text",
    "scatter",
    "sorted_by",
]

CALL, SMS, RING = (KIND_CODE[k] for k in KINDS)
POW10 = [10**i for i in range(19)]
US_PER_MINUTE = 60_000_000
US_PER_DAY = 86_400_000_000


def gather(values: list[int], index: pl.Expr, dtype: pl.DataType | type[pl.DataType]) -> pl.Expr:
    """values[index] as an expression (small lookup tables indexed per row)."""
    return pl.lit(pl.Series(values, dtype=dtype)).gather(index)


def null_series(name: str, n: int, dtype: pl.DataType) -> pl.Series:
    return (
        pl.Series(name, [None], dtype=dtype).extend_constant(None, n - 1)
        if n
        else (pl.Series(name, [], dtype=dtype))
    )


def scatter(n: int, index: pl.Series, values: pl.Series, dtype: pl.DataType) -> pl.Series:
    """A length-n null Series with ``values`` placed at ``index``."""
    out = null_series(values.name, n, dtype)
    if index.len():
        out.scatter(index, values.cast(dtype))
    return out


def sorted_by(frame: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """``frame`` (non-negative integer columns) sorted by all its ``columns`` in order.

    When they fit, the columns are packed into one Int64 whose sorted values carry
    every column in their bits: sorting one integer column is much cheaper than
    sorting a frame by several and gathering the others after it.
    """
    if frame.height == 0:
        return frame.select(columns)
    highs = frame.select(pl.col(c).max() for c in columns).row(0)
    bits = [max(1, int(h or 0).bit_length()) for h in highs]
    # Size-dependent: columns too wide to pack into one Int64 get an ordinary sort.
    if sum(bits) > 62:
        return frame.select(columns).sort(columns)
    packed: pl.Expr = pl.lit(0, dtype=pl.Int64)
    for column, width in zip(columns, bits, strict=True):
        packed = packed * (1 << width) + pl.col(column).cast(pl.Int64)
    order = frame.select(packed.sort().alias("_packed")).lazy()
    unpacked: list[pl.Expr] = []
    shift = 0
    for column, width in reversed(list(zip(columns, bits, strict=True))):
        unpacked.append(((pl.col("_packed") // (1 << shift)) % (1 << width)).alias(column))
        shift += width
    return order.select(reversed(unpacked)).collect()


def group_cum_sum(value: pl.Expr, start: pl.Expr) -> pl.Expr:
    """Running sum of ``value`` restarting where ``start`` is true (rows sorted by group)."""
    total = value.cum_sum()
    return total - pl.when(start).then(total - value).otherwise(None).forward_fill()


def period_text(period: pl.Expr) -> pl.Expr:
    return pl.format(
        "{}-{}",
        (period // 100).cast(pl.String),
        (period % 100 + 100).cast(pl.String).str.slice(1),
    )


def period_int(text: pl.Expr) -> pl.Expr:
    return text.str.slice(0, 4).cast(pl.Int32) * 100 + text.str.slice(5, 2).cast(pl.Int32)
