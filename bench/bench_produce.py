"""The Python cost of handing messages to librdkafka: ``produce`` per message against
``produce_batch`` (with the dicts it needs), enqueueing only.

    .venv/bin/python bench/bench_produce.py --messages 200000 --runs 3

Each run enqueues ``--messages`` values of 200 bytes (keys like a tenant id) on a fresh
producer with the rater's buffering settings; no broker is contacted (the bootstrap
address is never reached while the messages sit in the local queue), so the figure is the
client-side call cost alone. Prints microseconds per message, medians of the runs.
"""

from __future__ import annotations

import argparse
import statistics
import time

from confluent_kafka import Producer

_CONF = {
    "bootstrap.servers": "127.0.0.1:9",
    "log_level": 0,
    "linger.ms": 5,
    "batch.size": 1024 * 1024,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 2_000_000,
    "queue.buffering.max.kbytes": 2 * 1024 * 1024,
}


def per_message(values: list[bytes], keys: list[bytes]) -> float:
    producer = Producer(_CONF)
    produce = producer.produce
    started = time.perf_counter()
    for value, key in zip(values, keys, strict=True):
        produce("t", value, key, 0)
    elapsed = time.perf_counter() - started
    producer.purge()
    return elapsed


def batched(values: list[bytes], keys: list[bytes]) -> float:
    producer = Producer(_CONF)
    started = time.perf_counter()
    messages = [{"value": v, "key": k} for v, k in zip(values, keys, strict=True)]
    producer.produce_batch("t", messages, partition=0)
    elapsed = time.perf_counter() - started
    producer.purge()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    n = args.messages
    values = [bytes(200) for _ in range(n)]
    keys = [b"tenant%d" % (i % 50) for i in range(n)]
    single = [per_message(values, keys) / n * 1e6 for _ in range(args.runs)]
    batch = [batched(values, keys) / n * 1e6 for _ in range(args.runs)]
    print(f"{n:,} messages, {args.runs} runs")
    print(f"produce: median {statistics.median(single):.2f} us/message (min {min(single):.2f})")
    print(
        f"produce_batch (dicts included): median {statistics.median(batch):.2f} us/message "
        f"(min {min(batch):.2f})"
    )


if __name__ == "__main__":
    main()
