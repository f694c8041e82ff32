"""The least any exactly-once job must do: consume, produce the same bytes to another topic
in a transaction, send the offsets, commit; in batches, as `rater run` does.

    .venv/bin/python bench/copier.py BOOTSTRAP TOPIC COUNT [--batch 50000]

Runs in its own process, like `rater run` (so both pay for one interpreter and one
librdkafka each), and prints ``copied N in S s: R msg/s``, timed like the rater's "busy"
figure: from the first message received to the last commit.
"""

from __future__ import annotations

import argparse
import time
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic


def _output_topic(bootstrap: str, partitions: int) -> str:
    name = f"copier-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result(30)
    return name


def copy(bootstrap: str, topic: str, count: int, batch: int) -> tuple[int, float]:
    """Copy ``count`` messages of ``topic`` exactly once; (copied, seconds)."""
    group = f"copier-{uuid.uuid4().hex[:8]}"
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "fetch.max.bytes": 64 * 1024 * 1024,
            "max.partition.fetch.bytes": 16 * 1024 * 1024,
        }
    )
    meta = consumer.list_topics(topic, timeout=30).topics[topic]
    out = _output_topic(bootstrap, len(meta.partitions))
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": group,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "batch.size": 1024 * 1024,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 2_000_000,
            "queue.buffering.max.kbytes": 1024 * 1024,
        }
    )
    producer.init_transactions(60)
    consumer.subscribe([topic])
    copied, started = 0, None
    while copied < count:
        msgs = [m for m in consumer.consume(batch, timeout=1.0) if m.error() is None]
        if not msgs:
            continue
        started = started or time.monotonic()
        producer.begin_transaction()
        produce = producer.produce
        for m in msgs:
            try:
                produce(out, m.value(), m.key(), m.partition())
            except BufferError:
                producer.poll(0.1)
                produce(out, m.value(), m.key(), m.partition())
        producer.poll(0)
        producer.send_offsets_to_transaction(
            consumer.position(consumer.assignment()), consumer.consumer_group_metadata(), 30
        )
        producer.commit_transaction(60)
        copied += len(msgs)
    elapsed = time.monotonic() - (started or time.monotonic())
    consumer.close()
    return copied, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("bootstrap")
    parser.add_argument("topic")
    parser.add_argument("count", type=int)
    parser.add_argument("--batch", type=int, default=50_000)
    args = parser.parse_args()
    copied, seconds = copy(args.bootstrap, args.topic, args.count, args.batch)
    print(f"copied {copied} in {seconds:.3f} s: {copied / seconds:.0f} msg/s")


if __name__ == "__main__":
    main()
