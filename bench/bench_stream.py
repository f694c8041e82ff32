"""Streaming throughput: `rater run` (exactly-once) draining a topic, against a bare consumer.

    .venv/bin/python bench/bench_stream.py --records 1000000

Publishes simulated CDRs once, then, on the same topic and in the same run, alternately
measures (a) a bare librdkafka consumer that only reads the bytes and (b) `rater run`
(a separate process, exactly-once on) draining the topic from the start under a new
consumer group, and prints the medians and their ratio. The rater's time is its own
"busy" figure: from its first message to its last commit (process start-up, group join
and the idle wait before it exits are not counted). Uses KAFKA_BOOTSTRAP_SERVERS, or
starts a local broker.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rater import wire  # noqa: E402
from rater.broker import LocalBroker  # noqa: E402
from rater.simulate import generate_cdrs  # noqa: E402
from rater.topics import TopicSpec, ensure_topics  # noqa: E402


def publish(bootstrap: str, topic: str, count: int, seed: int) -> None:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 50,
            "batch.size": 1_000_000,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 2_000_000,
        }
    )
    chunk = 200_000
    for start in range(0, count, chunk):
        frame = generate_cdrs(REPO / "config", count=min(chunk, count - start), seed=seed + start)
        frame = frame.with_columns((frame.get_column("cdr_id") + f"-{start}").alias("cdr_id"))
        values = wire.encode_cdrs(frame)
        keys = frame.get_column("tenant_id").to_list()
        for key, value in zip(keys, values, strict=True):
            while True:
                try:
                    producer.produce(topic, value=value, key=key.encode())
                    break
                except BufferError:
                    producer.poll(0.1)
        producer.flush()


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


def rater_run(bootstrap: str, topic: str, workdir: Path, batch: int) -> tuple[float, int]:
    name = f"b{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "RATER_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "RATER_TARIFF_DIR": str(REPO / "config"),
        "RATER_TOPICS__CDRS": topic,
        "RATER_TOPICS__TOPUPS": f"{topic}-topups",
        "RATER_TOPICS__RATED": f"{name}-rated",
        "RATER_TOPICS__EVENTS": f"{name}-events",
        "RATER_TOPICS__DEAD_LETTER": f"{name}-dlq",
        "RATER_TOPICS__CHANGELOG": f"{name}-changelog",
        "RATER_STREAM__GROUP_ID": name,
        "RATER_STREAM__INSTANCE_ID": name,
        "RATER_STREAM__BATCH_MAX_RECORDS": str(batch),
        "RATER_STREAM__IDLE_EXIT_S": "3",
        "RATER_OUTPUT__DATASET_DIR": str(workdir / name),
        "RATER_OUTPUT__DUCKDB_PATH": str(workdir / name / "rater.duckdb"),
        "RATER_METRICS_PORT": "0",
        "RATER_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "rater", "run"], env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"rater run failed:\n{proc.stdout}\n{proc.stderr}")
    m = re.search(r"busy ([\d.]+)s .*?: ([\d,]+) CDRs/s", proc.stdout)
    consumed = re.search(r"consumed (\d+)", proc.stdout)
    assert m and consumed, proc.stdout
    return float(m.group(2).replace(",", "")), int(consumed.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=50_000)
    args = parser.parse_args()

    broker = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        broker = LocalBroker(heap="1g").start()
        bootstrap = broker.bootstrap
    try:
        topic = f"bench-cdrs-{uuid.uuid4().hex[:6]}"
        ensure_topics({"bootstrap.servers": bootstrap}, [TopicSpec(topic, args.partitions)])
        t0 = time.monotonic()
        publish(bootstrap, topic, args.records, seed=1)
        print(f"published {args.records:,} CDRs in {time.monotonic() - t0:.1f}s")
        bare, rated = [], []
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(args.runs):
                bare.append(bare_consumer(bootstrap, topic, args.records))
                rate, consumed = rater_run(bootstrap, topic, Path(tmp), args.batch)
                assert consumed == args.records, f"rater consumed {consumed}"
                rated.append(rate)
                print(
                    f"run {i + 1}: bare consumer {bare[-1]:,.0f} msg/s, rater run {rate:,.0f} CDRs/s"
                )
        mb, mr = statistics.median(bare), statistics.median(rated)
        print(f"median bare consumer: {mb:,.0f} msg/s")
        print(f"median rater run (exactly-once): {mr:,.0f} CDRs/s (target >= 150,000)")
        print(f"ratio rater/bare: {mr / mb:.2f} (target >= 0.6)")
    finally:
        if broker is not None:
            broker.stop()


if __name__ == "__main__":
    main()
