"""Throughput of the rating core: rate_batch over synthetic CDRs and a 50k-row deck.

    .venv/bin/python bench/bench_core.py --records 1000000
    .venv/bin/python bench/bench_core.py --records 50000 --held 5000000

``--held N``: the state already holds N dedupe keys (other CDRs'), as a streaming job
does after N records within its dedupe horizon.

Prints the median wall time over several runs, records per second, the ratio to
the 2,000,000 records/s target, the peak RSS of the process, and the median time of
each stage of the rating pipeline (rater.core.rating.pipeline.STAGES).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import polars as pl
from make_deck import make_cdrs, write_deck

from rater.core.rating import STAGES, rate_batch
from rater.core.state import RatingState
from rater.tariff_files import load_tariff

TARGET = 2_000_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rates", type=int, default=50_000)
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--held", type=int, default=0, help="dedupe keys held in the state")
    parser.add_argument(
        "--profile", action="store_true", help="print per-phase cProfile top entries"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        deck = write_deck(Path(tmp) / "deck", rates=args.rates, tenants=args.tenants)
        tariff = load_tariff(deck)
        print(
            f"deck: {tariff.rates.height} rates, {len(tariff.tenants)} tenants, "
            f"{len(tariff.plans)} plans, loaded in {time.perf_counter() - started:.2f}s"
        )
    cdrs = make_cdrs(args.records, tenants=args.tenants)
    state = held_state(args.held)
    result = rate_batch(tariff, cdrs, state)  # warm-up
    counts = dict(result.rated.group_by("status").len().iter_rows())
    print(f"statuses: {counts}; events: {result.events.height}")
    if args.profile:
        import cProfile
        import pstats

        cProfile.runctx("rate_batch(tariff, cdrs, state)", globals(), locals(), "/tmp/rate.prof")
        pstats.Stats("/tmp/rate.prof").sort_stats("cumulative").print_stats(25)
    times = []
    stages: list[dict[str, float]] = []
    for _ in range(args.runs):
        spent: dict[str, float] = {}
        t0 = time.perf_counter()
        rate_batch(tariff, cdrs, state, timings=spent)
        times.append(time.perf_counter() - t0)
        stages.append(spent)
    median = statistics.median(times)
    rate = args.records / median
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"records={args.records} runs={args.runs} median={median:.3f}s "
        f"min={min(times):.3f}s rate={rate:,.0f} rec/s ratio_to_target={rate / TARGET:.2f} "
        f"peak_rss={rss_mb:.0f} MB"
    )
    medians = {name: statistics.median(run.get(name, 0.0) for run in stages) for name in STAGES}
    print("stages (median s): " + ", ".join(f"{n} {t:.3f}" for n, t in medians.items()))


def held_state(keys: int) -> RatingState:
    """A state holding the dedupe keys of ``keys`` other CDRs (and, as a running job's
    state does, their index)."""
    if keys == 0:
        return RatingState.empty()
    seen = make_cdrs(keys, seed=2).select(
        "tenant_id",
        pl.concat_str(pl.lit("held-"), "cdr_id").alias("cdr_id"),
        pl.col("start_time").alias("seen_time"),
    )
    state = RatingState.of(seen=seen)
    started = time.perf_counter()
    index = state.seen_lookup()
    print(f"index of {keys:,} held keys built in {time.perf_counter() - started:.3f}s")
    return state.with_seen_index(index)


if __name__ == "__main__":
    main()
