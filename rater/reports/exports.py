"""The reports as data files: CSV and Parquet, money as integer micros and exact decimal
text, written next to the page formats by :mod:`rater.reports.run`.

- consumption: one row per record, every rated-record column in the contract's order
  (``charge_micros`` and its decimal text ``charge`` among them) and ``local_time``;
- activity: one row per debit or credit shown, ``amount_micros`` (negative for debits)
  and ``balance_after_micros`` with their decimal text ``amount`` and ``balance_after``;
- usage: one row per seat, allowance, line and total of the page.

CSV times are ISO 8601 in UTC (``2026-11-02T10:00:00.000000Z``); ``local_time`` is the
same instant in the plan's zone.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from rater.reports.naming import money_text_expr

__all__ = ["CSV_TIME_FORMAT", "activity_export", "usage_export", "write_frame"]

CSV_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%.6fZ"


def activity_export(lines: pl.DataFrame, decimals: int) -> pl.DataFrame:
    """The activity lines with the decimal text of each amount and balance."""
    return lines.with_columns(
        money_text_expr(pl.col("amount_micros"), decimals).alias("amount"),
        money_text_expr(pl.col("balance_after_micros"), decimals).alias("balance_after"),
    )


def usage_export(rows: pl.DataFrame, decimals: int) -> pl.DataFrame:
    """The usage rows with the decimal text of each unit price and amount."""
    return rows.with_columns(
        money_text_expr(pl.col("unit_price_micros"), decimals).alias("unit_price"),
        money_text_expr(pl.col("amount_micros"), decimals).alias("amount"),
    )


def write_frame(frame: pl.DataFrame, path: Path, format: str) -> None:
    """``frame`` as CSV (UTF-8, a header line) or Parquet at ``path``."""
    if format == "csv":
        frame.write_csv(path, datetime_format=CSV_TIME_FORMAT)
    else:
        frame.write_parquet(path)
