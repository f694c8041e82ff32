"""Latency at a steady offered load: produce -> committed rated record.

    .venv/bin/python bench/bench_latency.py --rate 20000 --seconds 30

A producer offers CDRs at a steady rate to a topic that `rater run` (exactly-once) is
consuming; a read_committed consumer of the rated topic notes when each rated record
becomes visible, and matches it to the send time of its source record (by the source
partition and offset carried at the end of every rated record). Prints p50/p99/max.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer

sys.path.insert(0, str(Path(__file__).resolve().parent))

from streamkit import REPO, broker, rater_env

from rater import wire
from rater.simulate import generate_cdrs
from rater.stream.topics import TopicSpec, ensure_topics


def _tail_varints(body: bytes, n: int) -> list[int]:
    """The last ``n`` zig-zag varints of an Avro body (a varint's last byte is < 0x80)."""
    out: list[int] = []
    end = len(body)
    for _ in range(n):
        start = end - 1
        while start > 0 and body[start - 1] & 0x80:
            start -= 1
        value, shift = 0, 0
        for b in body[start:end]:
            value |= (b & 0x7F) << shift
            shift += 7
        out.append((value >> 1) ^ -(value & 1))
        end = start
    return out  # [source_offset, source_partition]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=int, default=20_000, help="offered CDRs per second")
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=5, help="seconds not counted")
    args = parser.parse_args()
    total = args.rate * args.seconds
    frame = generate_cdrs(REPO / "config", count=total, seed=3)
    values = wire.encode_cdrs(frame)
    keys = [t.encode() for t in frame.get_column("tenant_id").to_list()]

    with broker() as bootstrap, tempfile.TemporaryDirectory() as tmp:
        topic = f"lat-cdrs-{uuid.uuid4().hex[:6]}"
        ensure_topics({"bootstrap.servers": bootstrap}, [TopicSpec(topic, args.partitions)])
        env = rater_env(bootstrap, topic, REPO / "config", Path(tmp), RATER_STREAM__IDLE_EXIT_S="0")
        rater = subprocess.Popen([sys.executable, "-m", "rater", "run"], env=env)
        sent: dict[tuple[int, int], float] = {}
        seen: dict[tuple[int, int], float] = {}
        stop = threading.Event()

        def read() -> None:
            consumer = Consumer(
                {
                    "bootstrap.servers": bootstrap,
                    "group.id": f"lat-{uuid.uuid4()}",
                    "auto.offset.reset": "earliest",
                    "isolation.level": "read_committed",
                    "fetch.wait.max.ms": 10,
                }
            )
            consumer.subscribe([env["RATER_TOPICS__RATED"]])
            while not stop.is_set():
                for m in consumer.consume(10_000, timeout=0.2):
                    value = m.value()
                    if m.error() is None and value:
                        off, part = _tail_varints(value, 2)
                        seen[(part, off)] = time.monotonic()
            consumer.close()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        time.sleep(8)  # the rater joins its group and restores state
        producer = Producer(
            {"bootstrap.servers": bootstrap, "linger.ms": 5, "partitioner": "murmur2_random"}
        )

        def delivered(err: object, msg: object) -> None:
            if err is None:
                sent[(msg.partition(), msg.offset())] = pending.pop(id_of(msg))  # type: ignore[attr-defined]

        pending: dict[bytes, float] = {}

        def id_of(msg: object) -> bytes:
            return msg.value()  # type: ignore[attr-defined, no-any-return]

        started = time.monotonic()
        for i, (key, value) in enumerate(zip(keys, values, strict=True)):
            ahead = started + i / args.rate - time.monotonic()
            if ahead > 0:
                producer.poll(ahead)
            pending[value] = time.monotonic()
            producer.produce(topic, value=value, key=key, on_delivery=delivered)
            if i % 1000 == 0:
                producer.poll(0)
        producer.flush()
        offered = total / (time.monotonic() - started)
        deadline = time.monotonic() + 60
        while len(seen) < total and time.monotonic() < deadline:
            time.sleep(0.5)
        stop.set()
        reader.join(10)
        rater.terminate()
        rater.wait(60)

    cutoff = started + args.warmup
    lat = sorted(seen[k] - t for k, t in sent.items() if k in seen and t >= cutoff)
    missing = sum(1 for k in sent if k not in seen)
    if not lat:
        raise SystemExit("no rated record was seen")
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]  # noqa: E731
    print(
        f"offered {offered:,.0f} CDRs/s for {args.seconds}s; {len(lat):,} measured, {missing} not seen"
    )
    print(
        f"latency produce -> committed rated record: p50 {p(0.50):.3f}s  p99 {p(0.99):.3f}s  max {lat[-1]:.3f}s (target p99 < 1s at 50,000 CDRs/s)"
    )


if __name__ == "__main__":
    main()
