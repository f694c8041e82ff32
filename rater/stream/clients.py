"""Kafka client configuration for the streaming job, and the changelog restore reader."""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from rater.errors import TransientError
from rater.settings import Settings
from rater.stream.changelog import Replayer

__all__ = ["consumer_config", "producer_config", "restore_partition"]

log = logging.getLogger(__name__)


def consumer_config(settings: Settings, instance_id: str) -> dict[str, Any]:
    conf = settings.kafka.client_config()
    conf.update(
        {
            "group.id": settings.stream.group_id,
            # Static membership: an instance restarted after a crash takes its partitions
            # back at once instead of waiting for a rebalance.
            "group.instance.id": f"{settings.stream.transactional_id_prefix}-{instance_id}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            # Never see output of aborted transactions (our own changelog included).
            "isolation.level": "read_committed",
            # Range assignment gives one member the same partition number of every
            # co-partitioned topic: the CDRs and the top-ups of a tenant stay together.
            "partition.assignment.strategy": "range",
            "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 1_000,
            "max.poll.interval.ms": 300_000,
            "fetch.max.bytes": 64 * 1024 * 1024,
            "max.partition.fetch.bytes": 16 * 1024 * 1024,
            "queued.max.messages.kbytes": 256 * 1024,
        }
    )
    return conf


def producer_config(settings: Settings, instance_id: str) -> dict[str, Any]:
    conf = settings.kafka.client_config()
    conf.update(
        {
            # A stable id per instance: a restarted instance fences its previous self and
            # aborts whatever transaction that one left open.
            "transactional.id": f"{settings.stream.transactional_id_prefix}-{instance_id}",
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "batch.size": 1024 * 1024,
            "compression.type": "lz4",
            "transaction.timeout.ms": 30_000,
            "message.max.bytes": 8 * 1024 * 1024,
            "queue.buffering.max.messages": 2_000_000,
            "queue.buffering.max.kbytes": 1024 * 1024,
        }
    )
    return conf


def restore_partition(
    settings: Settings, topic: str, partition: int, timeout_s: float = 120.0
) -> Replayer:
    """Read changelog partition ``partition`` from the start to its end (committed only)."""
    conf = settings.kafka.client_config()
    conf.update(
        {
            "group.id": f"{settings.stream.group_id}-restore",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    replayer = Replayer()
    consumer = Consumer(conf)
    try:
        marks = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=30, cached=False
        )
        if marks is None:
            raise TransientError(f"no watermarks for {topic}[{partition}]")
        low, high = marks
        if high <= low:
            return replayer
        consumer.assign([TopicPartition(topic, partition, low)])
        deadline = time.monotonic() + timeout_s
        while True:
            if time.monotonic() > deadline:
                raise TransientError(
                    f"restoring {topic}[{partition}] did not reach offset {high} in {timeout_s}s"
                )
            msgs = consumer.consume(10_000, timeout=1.0)
            done = False
            for m in msgs:
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        done = (m.offset() or 0) >= high
                        continue
                    raise KafkaException(err)
                key = m.key()
                if key is not None:
                    replayer.feed(key, m.value())
            if done:
                return replayer
            # The end may be a transaction marker that no message reports: ask where we are.
            pos = consumer.position([TopicPartition(topic, partition)])[0].offset
            if pos >= high:
                return replayer
    finally:
        consumer.close()
