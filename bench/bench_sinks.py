"""The Parquet sink: codecs on one batch of rated records, and the sink's whole stage step.

    .venv/bin/python bench/bench_sinks.py --records 50000 --runs 7

Rates simulated CDRs of the example config (one batch, as `rater run` does by default),
then prints the median time and size of `write_parquet` to memory with zstd level 3,
zstd level 1 (the sink's) and lz4, and the median time of the sink's `stage` of the batch
(month split, sort, write and fsync of each file) into a temporary directory.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rater.core.rating import rate_batch, rating_time
from rater.core.state import RatingState
from rater.simulate import generate_cdrs
from rater.tariff_files import load_tariff
from sinks.base import SinkBatch
from sinks.parquet_dataset import MonthPartitionedDataset
from sinks.storage import LocalDirectory

REPO = Path(__file__).resolve().parents[1]


def median_ms(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def rated_batch(records: int) -> pl.DataFrame:
    tariff = load_tariff(REPO / "config")
    cdrs = generate_cdrs(REPO / "config", count=records, seed=1)
    rated = rate_batch(tariff, cdrs, RatingState.empty()).rated
    return rated.with_columns(
        pl.lit("cdrs").alias("source_topic"),
        pl.lit(0, pl.Int32).alias("source_partition"),
        pl.int_range(pl.len(), dtype=pl.Int64).alias("source_offset"),
        rating_time(),  # as the job's sink batches carry it
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    frame = rated_batch(args.records)
    print(f"{frame.height:,} rated records, {len(frame.columns)} columns")
    for codec, level in (("zstd", 3), ("zstd", 1), ("lz4", None)):
        options = {"compression": codec, "statistics": True, "row_group_size": 16_384}
        if level is not None:
            options["compression_level"] = level

        def write(out: io.BytesIO | None = None, options: dict = options) -> int:
            buf = out or io.BytesIO()
            frame.write_parquet(buf, **options)
            return len(buf.getvalue())

        ms = median_ms(write, args.runs)
        name = f"{codec} {level}" if level is not None else codec
        print(f"write_parquet {name}: median {ms:.1f} ms, {write():,} bytes")
    with tempfile.TemporaryDirectory() as tmp:
        sink = MonthPartitionedDataset(LocalDirectory(Path(tmp)), time_column="rating_time")
        batch = SinkBatch("cdrs", 0, 0, frame.height - 1, 0, frame)
        tokens = iter(range(args.runs))
        ms = median_ms(lambda: sink.stage(batch, f"t{next(tokens)}"), args.runs)
        print(f"sink stage (month split, sort, write, fsync): median {ms:.1f} ms")


if __name__ == "__main__":
    main()
