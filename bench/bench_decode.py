"""Decode/encode throughput of the CDR wire codec.

Compares the bulk decoder (one Avro container block read by Polars, verified) with
per-message fastavro decoding, and measures the encoders and the simulator. Figures are
medians of ``--repeat`` runs.

    .venv/bin/python bench/bench_decode.py [--count 200000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import fastavro
import polars as pl

from rater import wire
from rater.core.columns import CDR_SCHEMA
from rater.simulate import corrupt_messages, generate_cdrs

RATES = """plan_id,kind,direction,prefix,band,effective_from,effective_to,connect_fee,price,first_increment,increment,min_charge
p,call,outbound,33,any,2020-01-01T00:00:00+00:00,,0,0.05,60,60,
p,call,outbound,44,any,2020-01-01T00:00:00+00:00,,0,0.05,60,60,
p,call,outbound,1,any,2020-01-01T00:00:00+00:00,,0,0.05,60,60,
"""
TENANTS = (
    "tenant_id,plan_id,billing,opening_balance,low_balance_threshold,recharge_amount,auto_recharge\n"
    + "".join(f"tenant{i},p,postpaid,,,,false\n" for i in range(50))
)


REPEAT = 5


def timed(label: str, n: int, fn: Callable[[], object]) -> float:
    runs = []
    for _ in range(REPEAT):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    median = statistics.median(runs)
    print(f"{label:<44} {median:8.3f} s  {n / median:>12,.0f} rec/s")
    return median


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    n = args.count
    global REPEAT
    REPEAT = args.repeat
    with tempfile.TemporaryDirectory() as tmp:
        deck = Path(tmp)
        (deck / "rates.csv").write_text(RATES)
        (deck / "tenants.csv").write_text(TENANTS)
        now = datetime(2025, 3, 1, tzinfo=UTC)
        timed("generate_cdrs", n, lambda: generate_cdrs(deck, n, seed=1, now=now))
        frame = generate_cdrs(deck, n, seed=1, now=now)
    framed = wire.encode_cdrs(frame, schema_id=1)
    timed("encode_cdrs (framed)", n, lambda: wire.encode_cdrs(frame, schema_id=1))
    bulk = timed(
        "decode_cdrs bulk (framed)", n, lambda: wire.decode_cdrs(framed, framed=True, schema_id=1)
    )
    schema = fastavro.parse_schema(wire.load_schema("cdr"))

    def per_message() -> pl.DataFrame:
        rows = [fastavro.schemaless_reader(io.BytesIO(v[5:]), schema, None) for v in framed]
        return pl.DataFrame(rows, schema=CDR_SCHEMA)

    slow = timed("fastavro per message -> DataFrame", n, per_message)
    print(f"bulk speed-up over fastavro: {slow / bulk:.1f}x")
    poisoned = list(framed)
    corrupt_messages(poisoned, 0.001, seed=1, framed=True)
    timed(
        "decode_cdrs bulk, 0.1% poison messages",
        n,
        lambda: wire.decode_cdrs(poisoned, framed=True, schema_id=1),
    )
    rated = frame.with_columns(
        status=pl.lit("rated"), reason=pl.lit(None, pl.String), plan_id=pl.lit("p"),
        rate_prefix=pl.lit("33"), band=pl.lit(None, pl.String), billed_seconds=pl.lit(60, pl.Int64),
        covered=pl.lit(0, pl.Int64), charge_micros=pl.lit(50_000, pl.Int64), charge=pl.lit("0.05"),
        currency=pl.lit("EUR"), balance_after_micros=pl.lit(None, pl.Int64),
        source_topic=pl.lit("cdrs"), source_partition=pl.lit(0, pl.Int32),
        source_offset=pl.int_range(pl.len(), dtype=pl.Int64),
    )  # fmt: skip
    timed("encode_rated", n, lambda: wire.encode_rated(rated))
    # Streaming: each rated row reuses the Avro body of the CDR message it was decoded from.
    bodies = wire.unframe_bodies(framed, framed=True)
    timed(
        "encode_rated, cdr_bodies (framed)",
        n,
        lambda: wire.encode_rated(rated, 1, cdr_bodies=bodies),
    )
    rated_schema = fastavro.parse_schema(wire.load_schema("rated"))

    def rated_fastavro() -> list[bytes]:
        out = []
        for row in rated.iter_rows(named=True):
            buf = io.BytesIO()
            fastavro.schemaless_writer(buf, rated_schema, row)
            out.append(buf.getvalue())
        return out

    timed("encode_rated via fastavro iter_rows", n, rated_fastavro)


if __name__ == "__main__":
    main()
