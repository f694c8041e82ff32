"""Streaming throughput: `rater run` (exactly-once) draining a topic, against a bare consumer
and an exactly-once copier.

    .venv/bin/python bench/bench_stream.py --records 1000000

Publishes simulated CDRs once, then, on the same topic and in the same run, alternately
measures (a) a bare librdkafka consumer that only reads the bytes, (b) an exactly-once
copier (bench/copier.py, its own process: consume, produce the same bytes to another topic
in a transaction, send offsets, commit, batches of --batch) and (c) `rater run` (a
separate process, exactly-once on) draining the topic from the start under a new
consumer group, and prints the medians and the ratios rater/copier and rater/bare. The rater's time is its own
"busy" figure: from its first message to its last commit (process start-up, group join
and the idle wait before it exits are not counted). Uses KAFKA_BOOTSTRAP_SERVERS, or
starts a local broker.
"""

from __future__ import annotations

import argparse
import pstats
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import polars as pl
from confluent_kafka import Consumer

sys.path.insert(0, str(Path(__file__).resolve().parent))

from streamkit import REPO, broker, busy_rate, publish_frame, rater_env, run_rater

from rater.simulate import generate_cdrs
from rater.stream.topics import TopicSpec, ensure_topics


def publish(bootstrap: str, topic: str, count: int, seed: int) -> None:
    chunk = 200_000
    for start in range(0, count, chunk):
        frame = generate_cdrs(REPO / "config", count=min(chunk, count - start), seed=seed + start)
        # Distinct ids across chunks, so that no record is a duplicate of another chunk's.
        frame = frame.with_columns(pl.col("cdr_id") + f"-{start}")
        publish_frame(bootstrap, topic, frame)


def bare_consumer(bootstrap: str, topic: str, count: int) -> float:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bare-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.max.bytes": 64 * 1024 * 1024,
            "max.partition.fetch.bytes": 16 * 1024 * 1024,
        }
    )
    consumer.subscribe([topic])
    got = 0
    started = None
    while got < count:
        msgs = consumer.consume(20_000, timeout=1.0)
        if msgs and started is None:
            started = time.monotonic()
        got += sum(1 for m in msgs if m.error() is None and m.value() is not None)
    elapsed = time.monotonic() - (started or time.monotonic())
    consumer.close()
    return got / elapsed


def copier(bootstrap: str, topic: str, count: int, batch: int) -> float:
    script = Path(__file__).resolve().parent / "copier.py"
    argv = [sys.executable, str(script), bootstrap, topic, str(count), "--batch", str(batch)]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=1800)
    m = re.search(r"copied (\d+) in [\d.]+ s: (\d+) msg/s", done.stdout)
    assert m and int(m.group(1)) >= count, done.stdout + done.stderr
    return float(m.group(2))


def rater_run(
    bootstrap: str, topic: str, workdir: Path, batch: int, profile: Path | None = None
) -> tuple[float, int]:
    env = rater_env(
        bootstrap, topic, REPO / "config", workdir, RATER_STREAM__BATCH_MAX_RECORDS=str(batch)
    )
    stdout, rss_mb = run_rater(env, profile)
    steps = next((line for line in stdout.splitlines() if line.startswith("seconds per step")), "")
    print(f"  rater {steps}; peak RSS {rss_mb:,} MB")
    rate, consumed = busy_rate(stdout)
    if profile:
        print_rate_step(profile, consumed)
    return rate, consumed


# The parts of the rate step, by the function that does each (module path, name).
RATE_PARTS = {
    "rate step": ("rater/stream/rate_messages.py", "rate_messages"),
    "decoding": ("rater/stream/messages.py", "decode_cdrs"),
    "core": ("rater/core/rating/pipeline.py", "rate_batch"),
    "rated encoding": ("rater/stream/messages.py", "encode_rated"),
    "changelog entry": ("rater/stream/changelog.py", "changelog_write"),
}


def print_rate_step(profile: Path, records: int) -> None:
    """Microseconds per record of each part of the rate step (cumulative, with the
    profiler's own overhead)."""
    stats = pstats.Stats(str(profile)).stats  # type: ignore[attr-defined]
    parts = []
    for label, (path, name) in RATE_PARTS.items():
        total = sum(
            cumulative
            for (file, _, function), (_, _, _, cumulative, _) in stats.items()
            if function == name and file.endswith(path)
        )
        parts.append(f"{label} {total / records * 1e6:.2f}")
    print(f"  rater profile, us per record: {', '.join(parts)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=50_000)
    parser.add_argument(
        "--rater-only",
        action="store_true",
        help="measure `rater run` alone (before/after a change)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="run `rater run` under cProfile into this file and print its rate step's parts",
    )
    args = parser.parse_args()

    with broker() as bootstrap:
        topic = f"bench-cdrs-{uuid.uuid4().hex[:6]}"
        ensure_topics({"bootstrap.servers": bootstrap}, [TopicSpec(topic, args.partitions)])
        t0 = time.monotonic()
        publish(bootstrap, topic, args.records, seed=1)
        print(f"published {args.records:,} CDRs in {time.monotonic() - t0:.1f}s")
        bare, copied, rated = [], [], []
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(args.runs):
                if not args.rater_only:
                    bare.append(bare_consumer(bootstrap, topic, args.records))
                    copied.append(copier(bootstrap, topic, args.records, args.batch))
                rate, consumed = rater_run(bootstrap, topic, Path(tmp), args.batch, args.profile)
                assert consumed == args.records, f"rater consumed {consumed}"
                rated.append(rate)
                if args.rater_only:
                    print(f"run {i + 1}: rater run {rate:,.0f} CDRs/s")
                    continue
                print(
                    f"run {i + 1}: bare consumer {bare[-1]:,.0f} msg/s, exactly-once copier "
                    f"{copied[-1]:,.0f} msg/s, rater run {rate:,.0f} CDRs/s"
                )
        if args.rater_only:
            print(f"median rater run (exactly-once): {statistics.median(rated):,.0f} CDRs/s")
            return
        mb, mc, mr = (statistics.median(v) for v in (bare, copied, rated))
        print(f"median bare consumer: {mb:,.0f} msg/s")
        print(f"median exactly-once copier: {mc:,.0f} msg/s")
        print(f"median rater run (exactly-once): {mr:,.0f} CDRs/s")
        print(f"ratio rater/copier: {mr / mc:.2f} (target >= 0.7)")
        print(f"ratio rater/bare: {mr / mb:.2f}")


if __name__ == "__main__":
    main()
