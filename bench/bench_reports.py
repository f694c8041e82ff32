"""Reports at scale: one large tenant's month, with two filters, out of 10M rated records
over 10k tenants, as HTML and as CSV.

    .venv/bin/python bench/bench_reports.py --records 10000000 --tenants 10000 --runs 5

The data is written once under ``--data`` (default a directory in /tmp, reused by later
runs): the tariff of ``bench_invoice.py`` (3 plans in 3 time zones, 10k tenants) and a
streaming job's dataset as ``rater run`` lays it out: ``rated/month=YYYY-MM/`` (UTC month
of the rating time), one file per batch of 50,000 records and input partition (6, keyed
by tenant), rows sorted by tenant_id in row groups of 16,384, the source columns,
``rating_time`` and ``writer_generation``. Three months of traffic (September to November
2026) in time order; tenant ``t00000`` (a flat-rate plan, Europe/Paris) has
``--large-share`` of the records (30 %: about 1M in its month), the others share the
rest; 4 teams, 400 users per tenant, destinations skewed as in ``bench_invoice.py``.

Each run is a fresh process writing ``rater report consumption --tenant t00000 --from
2026-10-01 --to 2026-10-31 --team sales --kind call`` in one format, through what the
command runs (the tariff loaded, ``build_request``, ``write_report``). It reports the
query time (the tenant's records selected, filtered and totalled every way: from
"reading records" to the next stage), the tariff's load time, the total time and its
peak RSS. Medians over ``--runs`` runs per format are printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_invoice import write_tariff  # noqa: E402

TENANT = "t00000"
MONTHS = ("2026-09", "2026-10", "2026-11")
RANGE = ("2026-10-01", "2026-10-31")
FILTERS = ("--team", "sales", "--kind", "call")
PARTITIONS = 6
BATCH = 50_000  # records per batch (``rater run``'s default batch_max_records)
ROW_GROUP = 16_384  # the dataset's row groups (sinks.formats.ParquetFormat)
TEAMS = ("sales", "support", "ops", "eng")
USERS = 400
TARGET_S = 3.0


def _month_start_us(month: str) -> int:
    year, number = (int(x) for x in month.split("-"))
    return int(datetime(year, number, 1, tzinfo=UTC).timestamp()) * 1_000_000


def _draws(
    first: int, count: int, span_us: int, start_us: int, args: argparse.Namespace
) -> pl.DataFrame:
    """``count`` records' random draws (hashes of their number, as bench_invoice.py draws
    them), numbered from ``first`` and in time order over the span."""

    def u(k: int) -> pl.Expr:
        return (pl.col("i").hash(11 * 31 + k) % 1_000_000).cast(pl.Int64)

    others = pl.format("t{}", (u(1) % (args.tenants - 1) + 1).cast(pl.String).str.zfill(5))
    large = u(12) < int(args.large_share * 1_000_000)
    kinds = pl.Series(["call", "call", "call", "sms", "ring_through"])
    offset = (pl.col("i") - first) * span_us // count
    # Destinations as telephony traffic has them: most to a few, a long tail of 60.
    prefix = (u(4).cast(pl.Float64) / 1e6).pow(4).mul(60).floor().cast(pl.Int64) + 1
    return (
        pl.int_range(first, first + count, eager=True, dtype=pl.Int64)
        .alias("i")
        .to_frame()
        .with_columns(
            pl.when(large).then(pl.lit(TENANT)).otherwise(others).alias("tenant_id"),
            pl.lit(kinds).gather(u(2) % 5).alias("kind"),
            pl.when(u(3) % 3 == 0)
            .then(pl.lit("inbound"))
            .otherwise(pl.lit("outbound"))
            .alias("direction"),
            prefix.cast(pl.String).alias("prefix"),
            pl.when(u(5) % 2 == 0).then(pl.lit("peak")).otherwise(pl.lit("offpeak")).alias("peak"),
            (pl.lit(start_us) + offset).cast(pl.Datetime("us", "UTC")).alias("start_time"),
            (u(7) % 3600).alias("talk"),
            (u(8) % 3 + 1).cast(pl.Int32).alias("parts"),
            (u(9) % 2_000_000).alias("charge_micros"),
            (u(10) % USERS).alias("user"),
        )
    )


def _records(draws: pl.DataFrame) -> pl.DataFrame:
    """Rated records (every column of the contract) and their source columns."""
    call = pl.col("kind") == "call"
    flat = (pl.col("direction") == "inbound") | ~call  # one rate row: no prefix, no band
    plan_index = pl.col("tenant_id").str.slice(1).cast(pl.Int64) % 3
    answer = pl.when(call).then(pl.col("start_time") + pl.duration(seconds=5))
    billed = pl.when(call).then((pl.col("talk") + 59) // 60 * 60).otherwise(0)
    number = (pl.col("i") % 1000).cast(pl.String).str.zfill(3)
    micros = pl.col("charge_micros")
    return draws.select(
        pl.format("cdr-{}", pl.col("i")).alias("cdr_id"),
        "tenant_id",
        pl.format("u{}.{}", pl.col("user"), pl.col("tenant_id")).alias("user_id"),
        pl.lit(pl.Series(TEAMS)).gather(pl.col("user") % len(TEAMS)).alias("team_id"),
        "kind",
        "direction",
        pl.lit("+33170000000").alias("caller"),
        pl.format("+{}5550{}", pl.col("prefix"), number).alias("callee"),
        "start_time",
        answer.alias("answer_time"),
        (pl.coalesce(answer, "start_time") + pl.duration(seconds=pl.col("talk"))).alias("end_time"),
        pl.lit(0, pl.Int64).alias("hold_ms"),
        pl.when(pl.col("kind") == "sms").then(pl.col("parts")).alias("segments"),
        pl.lit("rated").alias("status"),
        pl.lit(None, pl.String).alias("reason"),
        pl.lit(pl.Series(["flat-eu", "payg-us", "intl"])).gather(plan_index).alias("plan_id"),
        pl.when(flat).then(pl.lit("")).otherwise(pl.col("prefix")).alias("rate_prefix"),
        pl.when(flat).then(pl.lit("any")).otherwise(pl.col("peak")).alias("band"),
        billed.alias("billed_seconds"),
        pl.when(call).then(billed // 4).otherwise(0).alias("covered"),
        micros,
        pl.format(
            "{}.{}", micros // 1_000_000, (micros % 1_000_000).cast(pl.String).str.zfill(6)
        ).alias("charge"),
        pl.lit(pl.Series(["EUR", "USD", "EUR"])).gather(plan_index).alias("currency"),
        pl.lit(None, pl.Int64).alias("balance_after_micros"),
        pl.lit("cdrs").alias("source_topic"),
        (pl.col("tenant_id").str.slice(1).cast(pl.Int64) % PARTITIONS)
        .cast(pl.Int32)
        .alias("source_partition"),
    )


def write_dataset(root: Path, records: int, args: argparse.Namespace) -> None:
    """``root/rated/month=*/cdrs-<p>-<first>-<last>.parquet``, as ``rater run`` writes."""
    bounds = [_month_start_us(m) for m in (*MONTHS, "2026-12")]
    offsets = [0] * PARTITIONS
    first = 0
    for n, month in enumerate(MONTHS):
        count = records // len(MONTHS) if n < len(MONTHS) - 1 else records - first
        # Calls are answered 5 s after they start: the last start leaves them in the month.
        span = bounds[n + 1] - bounds[n] - 10_000_000
        frame = _records(_draws(first, count, span, bounds[n], args))
        out = root / "rated" / f"month={month}"
        out.mkdir(parents=True, exist_ok=True)
        for b in range(0, count, BATCH):
            parts = frame.slice(b, BATCH).partition_by("source_partition", as_dict=True)
            for key, rows in sorted(parts.items()):
                p = int(str(key[0]))
                offsets[p] = _write_file(out, p, offsets[p], rows)
        first += count
        print(f"  wrote {month}: {count:,} records", flush=True)


def _write_file(out: Path, partition: int, offset: int, rows: pl.DataFrame) -> int:
    """One batch's file of one partition (its source offsets from ``offset``); the next
    offset of the partition."""
    last = offset + rows.height - 1
    rows = rows.with_columns(
        pl.int_range(offset, last + 1, dtype=pl.Int64).alias("source_offset"),
        pl.coalesce("answer_time", "start_time").alias("rating_time"),
        pl.lit(0, pl.Int64).alias("writer_generation"),
    )
    rows.sort("tenant_id", maintain_order=True).write_parquet(
        out / f"cdrs-{partition}-{offset:020d}-{last:020d}.parquet",
        compression="zstd",
        compression_level=3,
        statistics=True,
        row_group_size=ROW_GROUP,
    )
    return last + 1


def one_run(data: Path, fmt: str) -> None:
    """In a fresh process: one report; its query time, total time and peak RSS as JSON."""
    from rater.reports.request import build_request
    from rater.reports.run import write_report
    from rater.reports.store import open_dataset
    from rater.tariff_files import load_tariff

    stages: list[tuple[str, float]] = []
    started = time.perf_counter()
    tariff = load_tariff(data / "tariff")
    request = build_request(
        tariff,
        "consumption",
        tenant_id=TENANT,
        output=data / f"report.{fmt}",
        format=fmt,
        start=RANGE[0],
        end=RANGE[1],
        teams=[FILTERS[1]],
        kinds=[FILTERS[3]],
    )
    result = write_report(
        tariff,
        open_dataset(data),
        request,
        lambda stage: stages.append((stage, time.perf_counter())),
    )
    total = time.perf_counter() - started
    marks = dict(stages)
    after = "drawing the charts" if fmt == "html" else "exporting the records"
    print(
        json.dumps(
            {
                "load_s": marks["reading records"] - started,  # the tariff and the request
                "query_s": marks[after] - marks["reading records"],
                "total_s": total,
                "rss_mb": _peak_rss_mb(),
                "records": result.items,
                "bytes": result.path.stat().st_size,
            }
        )
    )


def _peak_rss_mb() -> float:
    """This process's peak RSS: VmHWM, which starts afresh at exec (``ru_maxrss`` would
    carry the high-water mark of the parent it was forked from, e.g. the one that wrote
    the data)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--large-share", type=float, default=0.3)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--formats", default="html,csv")
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--one-run", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--format", default="html", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_run is not None:
        one_run(args.one_run, args.format)
        return
    data = args.data or Path(
        f"/tmp/rater-bench-reports-{args.records}-{args.tenants}-{args.large_share}"
    )
    if not (data / "rated" / f"month={MONTHS[-1]}").is_dir():
        print(f"writing the data under {data} (once) ...", flush=True)
        write_tariff(data / "tariff", args.tenants)
        write_dataset(data, args.records, args)
    print(
        f"{args.records:,} rated records, {args.tenants:,} tenants, 3 months; tenant {TENANT} "
        f"({args.large_share:.0%} of the records), {RANGE[0]}..{RANGE[1]} {' '.join(FILTERS)}"
    )
    for fmt in args.formats.split(","):
        results = []
        for _ in range(args.runs):
            done = subprocess.run(
                [sys.executable, __file__, "--one-run", str(data), "--format", fmt],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            )
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        query = [r["query_s"] for r in results]
        total = [r["total_s"] for r in results]
        load = statistics.median(r["load_s"] for r in results)
        print(
            f"{fmt}: {results[0]['records']:,} records, {results[0]['bytes']:,} bytes; "
            f"query median {statistics.median(query):.2f} s (min {min(query):.2f}, "
            f"max {max(query):.2f}; target < {TARGET_S:.0f} s); total median "
            f"{statistics.median(total):.2f} s (min {min(total):.2f}, max {max(total):.2f}; "
            f"tariff load {load:.2f} s); peak RSS {max(r['rss_mb'] for r in results):,.0f} MB; "
            f"{len(results)} runs",
            flush=True,
        )


if __name__ == "__main__":
    main()
