"""Rule 7: the rate row of each record, with fallback plans, for a whole batch at once.

Per plan of the fallback chain, one search in the rate index finds the longest prefix of
each callee and one gather the row that applies at its band and time (see
:class:`rater.core.tariff.RateIndex`); records without one go on to their fallback plan.
"""

from __future__ import annotations

import polars as pl

from rater.core.rating.clock import BatchClock
from rater.core.rating.kernels import POW10, gather, null_series
from rater.core.tariff import GROUPS_PER_PLAN, MAX_PREFIX_DIGITS, RateIndex, Tariff

__all__ = ["lookup"]

_PAD = 10**MAX_PREFIX_DIGITS


def lookup(tariff: Tariff, clock: BatchClock, pending: pl.DataFrame, n: int) -> pl.Series:
    """The rate row of each of ``n`` input rows (Int32, null = no rate).

    ``pending`` holds the rows to look up: _row, _plan, _kind_direction, _callee_digits,
    _callee_length, _rating_us and _minute (its minute in ``clock``).
    """
    found = null_series("_rate_row", n, pl.Int32())
    index = tariff.rate_index
    if pending.height == 0 or index.parent.len() == 0:
        return found
    current = _searchable(index, pending)
    fallback = list(tariff.fallback_index)
    while current.height:
        step = _rows_in_plan(tariff, clock, current)
        hits = step.filter(pl.col("_rate_row").is_not_null())
        if hits.height:
            found.scatter(hits["_row"], hits["_rate_row"].cast(pl.Int32))
        if hits.height == step.height:
            break
        current = (
            current.filter(step["_rate_row"].is_null())
            .with_columns(gather(fallback, pl.col("_plan"), pl.Int32()).alias("_plan"))
            .filter(pl.col("_plan") >= 0)
        )
    return found


def _searchable(index: RateIndex, pending: pl.DataFrame) -> pl.DataFrame:
    """The callee padded with zeros to 15 digits, and the epoch of the rating time."""
    padding = gather(POW10, MAX_PREFIX_DIGITS - pl.col("_callee_length"), pl.Int64())
    return pending.select(
        "_row",
        "_plan",
        "_kind_direction",
        (pl.col("_callee_digits") * padding).alias("_padded"),
        "_callee_length",
        "_rating_us",
        "_minute",
        pl.lit(index.boundaries)
        .search_sorted(pl.col("_rating_us"), side="right")
        .cast(pl.Int64)
        .alias("_epoch"),
    )


def _rows_in_plan(tariff: Tariff, clock: BatchClock, current: pl.DataFrame) -> pl.DataFrame:
    """(_row, _rate_row): the row of each record's current plan (null when none)."""
    index = tariff.rate_index
    plan = pl.col("_plan").cast(pl.Int64)
    key = (plan * GROUPS_PER_PLAN + pl.col("_kind_direction")) * _PAD + pl.col("_padded")
    step = current.select(
        "_row",
        pl.lit(index.nodes)
        .gather(pl.lit(index.starts).search_sorted(key, side="right").cast(pl.Int64) - 1)
        .cast(pl.Int64)
        .alias("_node"),
        clock.slot(tariff, plan).alias("_slot"),
        "_epoch",
        "_callee_length",
    )
    node = pl.col("_node")
    # A callee shorter than its prefix met it only through the zero padding.
    too_long = (node >= 0) & (
        pl.lit(index.node_length).gather(node.clip(lower_bound=0)) > pl.col("_callee_length")
    )
    while step.select(too_long.any()).item():
        step = step.with_columns(
            pl.when(too_long)
            .then(pl.lit(index.parent).gather(node.clip(lower_bound=0)).cast(pl.Int64))
            .otherwise(node)
            .alias("_node")
        )
    row = _row_of_cell(index, node * index.slots + pl.col("_slot"))
    return step.select("_row", pl.when((node >= 0) & (row >= 0)).then(row).alias("_rate_row"))


def _row_of_cell(index: RateIndex, cell: pl.Expr) -> pl.Expr:
    """The row rule 7 selects in a (node, band slot) cell at the epoch (-1 for none)."""
    at = cell * index.epochs + pl.col("_epoch")
    if index.dense is not None:  # small decks: one gather
        return pl.lit(index.dense).gather(at.clip(lower_bound=0))
    # Large decks: the segment that starts at or before the epoch, if it is the cell's.
    position = (pl.lit(index.keys).search_sorted(at, side="right").cast(pl.Int64) - 1).clip(
        lower_bound=0
    )
    return (
        pl.when(pl.lit(index.keys).gather(position) // index.epochs == cell)
        .then(pl.lit(index.rows).gather(position))
        .otherwise(-1)
    )
