"""``rater rate-file``: rate one CDR file with the same core as the streaming job.

The file is rated in slices of ``batch_size`` records, threading the rating state
(seen ids, allowance usage, balances) from one slice to the next, so the output is
the same whatever the slice size. The three output files are written under
temporary names (``.<name>.<pid>.tmp``) in the output directory and renamed into
place only once all of them are complete, so a reader never sees a half-written
file; the temporary files a killed run left behind are removed by the next run.

The output directory is checked (created if missing, proven writable) before the
input is read, so a bad ``--output`` fails fast with one line.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import polars as pl

from rater.batch.adjustment_files import read_adjustments
from rater.batch.cdr_files import check_input_file, iter_cdr_batches, read_cdrs
from rater.batch.output_dir import path_exists, prepare_output_dir, write_atomically
from rater.core.columns import (
    ADJUSTMENT_EXTRA_SCHEMA,
    ADJUSTMENT_SCHEMA,
    BALANCE_SCHEMA,
    EVENT_SCHEMA,
    RATED_EXTRA_SCHEMA,
)
from rater.core.money import format_micros
from rater.core.rating import adjustment_positions, balances_frame, rate_batch
from rater.core.state import RatingState
from rater.core.tariff import Tariff
from rater.errors import UsageError

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "OUTPUT_FILES",
    "BatchSummary",
    "rate_file",
]

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 100_000
OUTPUT_FILES = ("rated.parquet", "events.parquet", "balances.parquet", "adjustments.parquet")
STATUSES = ("rated", "unrated", "invalid", "duplicate")
ADJUSTMENTS_OUT = {**ADJUSTMENT_SCHEMA, **ADJUSTMENT_EXTRA_SCHEMA, "_file_row": pl.UInt32()}
# Below this many records the run is over before a bar would be worth drawing.
PROGRESS_MIN_RECORDS = 200_000


@dataclass(frozen=True)
class BatchSummary:
    """What one ``rate_file`` run produced."""

    input_path: Path
    output_dir: Path
    records: int
    by_status: dict[str, int] = field(default_factory=dict)
    charges_by_currency: dict[str, int] = field(default_factory=dict)  # micros
    events: int = 0
    prepaid_tenants: int = 0
    adjustments: dict[str, int] = field(default_factory=dict)  # by status

    def lines(self) -> list[str]:
        """The human summary printed by ``rater rate-file``."""
        statuses = ", ".join(f"{s} {self.by_status.get(s, 0)}" for s in STATUSES)
        charges = ", ".join(
            f"{cur} {format_micros(m)}" for cur, m in sorted(self.charges_by_currency.items())
        )
        return [
            f"{self.records} records from {self.input_path} -> {self.output_dir}",
            f"  status:  {statuses}",
            f"  charged: {charges or 'nothing'}",
            f"  events:  {self.events}; balances: {self.prepaid_tenants} prepaid tenants",
            *(
                [f"  adjustments: {adjusted}"]
                if (adjusted := ", ".join(f"{s} {n}" for s, n in sorted(self.adjustments.items())))
                else []
            ),
        ]


def rate_file(
    config_dir: Path,
    input_path: Path,
    output_dir: Path,
    *,
    batch_size: int | None = None,
    progress: bool = False,
    adjustments_path: Path | None = None,
) -> BatchSummary:
    """Rate ``input_path`` against the tariff in ``config_dir`` into ``output_dir``,
    applying the balance adjustments of ``adjustments_path`` (when given) among the
    CDR charges as the billing contract places them.

    Writes ``rated.parquet``, ``events.parquet``, ``balances.parquet`` and
    ``adjustments.parquet`` (each adjustment with its status and balance after). Raises
    ConfigError for a bad tariff, InputError for an unreadable input file and
    UsageError for a bad argument. ``progress`` draws a bar on stderr for large files.
    """
    from rater.tariff_files import load_tariff

    size = DEFAULT_BATCH_SIZE if batch_size is None else batch_size
    if size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {size}")
    config_dir, input_path, output_dir = Path(config_dir), Path(input_path), Path(output_dir)
    if not path_exists(config_dir):
        raise UsageError(
            f"tariff directory {config_dir} does not exist: pass --config DIR "
            "(or set RATER_TARIFF_DIR) to a directory holding plans.yaml, rates.csv, tenants.csv"
        )
    tariff = load_tariff(config_dir)  # a file, not a directory: ConfigError from here
    check_input_file(input_path)
    adjustments = (
        pl.DataFrame(schema=ADJUSTMENT_SCHEMA)
        if adjustments_path is None
        else read_adjustments(Path(adjustments_path))
    )
    prepare_output_dir(output_dir, OUTPUT_FILES)
    cdrs = read_cdrs(input_path)

    bar = (
        _ProgressBar(cdrs.height, sys.stderr)
        if progress and cdrs.height >= PROGRESS_MIN_RECORDS
        else None
    )
    outputs = _rate_slices(tariff, cdrs, adjustments, size, bar)
    write_atomically(
        output_dir, {n: _parquet(f) for n, f in zip(OUTPUT_FILES, outputs, strict=True)}
    )
    return _summarize(input_path, output_dir, *outputs)


def _rate_slices(
    tariff: Tariff,
    cdrs: pl.DataFrame,
    adjustments: pl.DataFrame,
    size: int,
    bar: _ProgressBar | None,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(rated, events, balances, adjustments) of ``cdrs`` rated in slices of ``size``,
    the state threaded from one slice to the next, each adjustment given to the slice
    that holds its place (so the result does not depend on ``size``)."""
    state = RatingState.empty()
    adjustments = adjustments.with_row_index("_file_row")
    parts: dict[str, list[pl.DataFrame]] = {"rated": [], "events": [], "adjustments": []}
    slices = list(iter_cdr_batches(cdrs, size))
    slice_of = _slice_of_adjustments(tariff, cdrs, adjustments, size, len(slices))
    done = 0
    for index, chunk in enumerate(slices):
        mine = adjustments.filter(slice_of == index)
        result = rate_batch(tariff, chunk, state, adjustments=mine)
        state = result.state
        # Per-slice dtypes can differ (an all-null column); pin them so slices concatenate.
        parts["rated"].append(
            result.rated.with_columns(pl.col(c).cast(t) for c, t in RATED_EXTRA_SCHEMA.items())
        )
        parts["events"].append(_pinned(result.events, EVENT_SCHEMA))
        parts["adjustments"].append(_pinned(result.adjustments, ADJUSTMENTS_OUT))
        done += chunk.height
        if bar is not None:
            bar.update(done)
    if bar is not None:
        bar.finish()
    rated = pl.concat(parts["rated"], how="vertical") if cdrs.height else _empty_rated(cdrs)
    events = pl.concat(parts["events"], how="vertical")
    applied = pl.concat(parts["adjustments"], how="vertical").sort("_file_row")
    balances = _pinned(balances_frame(tariff, state), BALANCE_SCHEMA)
    return rated, events, balances, applied.drop("_file_row")


def _slice_of_adjustments(
    tariff: Tariff, cdrs: pl.DataFrame, adjustments: pl.DataFrame, size: int, slices: int
) -> pl.Series:
    """The slice each adjustment is rated with: the one holding the first CDR of its
    tenant at or after its time, or the last. A repeated (tenant_id, adjustment_id) goes
    with its first occurrence, so the first in the file is the one applied."""
    position = adjustment_positions(tariff, cdrs, adjustments)
    index = (position // size).clip(upper_bound=slices - 1)
    return (
        adjustments.select("tenant_id", "adjustment_id")
        .with_columns(index.alias("_slice"))
        .select(pl.col("_slice").first().over("tenant_id", "adjustment_id"))
        .to_series()
    )


def _pinned(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return frame.select(pl.col(c).cast(t) for c, t in schema.items())


def _empty_rated(cdrs: pl.DataFrame) -> pl.DataFrame:
    return pl.concat([cdrs, pl.DataFrame(schema=RATED_EXTRA_SCHEMA)], how="horizontal")


def _parquet(frame: pl.DataFrame) -> Callable[[Path], None]:
    return lambda path: frame.write_parquet(path, compression="zstd", statistics=True)


def _summarize(
    input_path: Path,
    output_dir: Path,
    rated: pl.DataFrame,
    events: pl.DataFrame,
    balances: pl.DataFrame,
    adjustments: pl.DataFrame,
) -> BatchSummary:
    counts = rated.group_by("status").len()
    by_status = {str(s): int(n) for s, n in counts.iter_rows()}
    charges = (
        rated.filter(pl.col("currency").is_not_null())
        .group_by("currency")
        .agg(pl.col("charge_micros").sum())
    )
    by_currency = {str(c): int(m) for c, m in charges.iter_rows()}
    return BatchSummary(
        input_path=input_path,
        output_dir=output_dir,
        records=rated.height,
        by_status=by_status,
        charges_by_currency=by_currency,
        events=events.height,
        prepaid_tenants=balances.height,
        adjustments={str(s): int(n) for s, n in adjustments.group_by("status").len().iter_rows()},
    )


class _ProgressBar:
    """A one-line text bar redrawn in place with carriage returns."""

    WIDTH = 30

    def __init__(self, total: int, stream: TextIO, clock: Callable[[], float] = time.monotonic):
        self.total = max(total, 1)
        self.stream = stream
        self.clock = clock
        self.started = clock()

    def update(self, done: int) -> None:
        filled = self.WIDTH * done // self.total
        elapsed = max(self.clock() - self.started, 1e-9)
        rate = done / elapsed
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (self.WIDTH - filled)}] "
            f"{done}/{self.total} records {100 * done // self.total}% {rate:,.0f}/s"
        )
        self.stream.flush()

    def finish(self) -> None:
        self.stream.write("\n")
        self.stream.flush()
