"""Kafka clients of the streaming job: their configuration, where they come from, and the
changelog restore reader.

The job never constructs a client itself: it asks a :class:`KafkaClients` factory, so the
unit tests can hand it in-memory fakes (:mod:`rater.stream.testing`) and run the commit
path, rebalances and restores in milliseconds, with failures injected anywhere.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from rater.errors import TransientError
from rater.logs import kafka_logger
from rater.settings import Settings
from rater.stream.changelog import Replayer

__all__ = [
    "ConfluentClients",
    "KafkaClients",
    "bounded",
    "client_config",
    "close_clients",
    "consumer_config",
    "producer_config",
    "restore_partition",
    "restore_partitions",
]

log = logging.getLogger(__name__)


class KafkaClients(Protocol):
    """Where the job's Kafka clients come from."""

    def consumer(self, conf: dict[str, Any]) -> Any: ...

    def producer(self, conf: dict[str, Any]) -> Any: ...

    def admin(self, conf: dict[str, Any]) -> Any: ...


class ConfluentClients:
    """Real clients (confluent-kafka, i.e. librdkafka)."""

    def consumer(self, conf: dict[str, Any]) -> Any:
        return Consumer(conf)

    def producer(self, conf: dict[str, Any]) -> Any:
        return Producer(conf)

    def admin(self, conf: dict[str, Any]) -> Any:
        return AdminClient(conf)


def client_config(settings: Settings) -> dict[str, Any]:
    """Common properties, with librdkafka's log routed through Python logging."""
    conf = settings.kafka.client_config()
    conf["logger"] = kafka_logger()
    return conf


def consumer_config(settings: Settings, instance_id: str) -> dict[str, Any]:
    conf = client_config(settings)
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
    conf = client_config(settings)
    conf.update(
        {
            # A stable id per instance: a restarted instance fences its previous self and
            # aborts whatever transaction that one left open.
            "transactional.id": f"{settings.stream.transactional_id_prefix}-{instance_id}",
            # Outputs go to explicit partitions; this only matters for a message without one.
            "partitioner": settings.kafka.partitioner,
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


def restore_partitions(
    settings: Settings,
    topic: str,
    partitions: list[int],
    timeout_s: float = 120.0,
    clients: KafkaClients | None = None,
) -> dict[int, Replayer]:
    """Read changelog partitions from their start to their end (committed data only).

    Each replayer's ``end_offset`` is where its partition's log ended when read.
    """
    conf = client_config(settings)
    conf.update(
        {
            "group.id": f"{settings.stream.group_id}-restore",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    replayers = {p: Replayer() for p in partitions}
    consumer = (clients or ConfluentClients()).consumer(conf)
    try:
        ends: dict[int, int] = {}
        starts: list[TopicPartition] = []
        for p in partitions:
            marks = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            if marks is None:
                raise TransientError(f"no watermarks for {topic}[{p}]")
            low, high = marks
            replayers[p].end_offset = high
            if high > low:
                ends[p] = high
                starts.append(TopicPartition(topic, p, low))
        if not starts:
            return replayers
        consumer.assign(starts)
        deadline = time.monotonic() + timeout_s
        while ends:
            if time.monotonic() > deadline:
                raise TransientError(
                    f"restoring {topic} partitions {sorted(ends)} did not finish in {timeout_s}s"
                )
            for m in consumer.consume(10_000, timeout=0.5):
                err = m.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        raise KafkaException(err)
                    continue
                key = m.key()
                if key is not None:
                    replayers[m.partition() or 0].feed(key, m.value())
            # The end may be a transaction marker that no message reports: ask where we are.
            positions = consumer.position([TopicPartition(topic, p) for p in ends])
            for tp in positions:
                if tp.offset >= ends[tp.partition]:
                    del ends[tp.partition]
        return replayers
    finally:
        consumer.close()


def restore_partition(
    settings: Settings,
    topic: str,
    partition: int,
    timeout_s: float = 120.0,
    clients: KafkaClients | None = None,
) -> Replayer:
    """Read one changelog partition from its start to its end."""
    return restore_partitions(settings, topic, [partition], timeout_s, clients)[partition]


def bounded(call: Callable[[], object], timeout_s: float, what: str) -> None:
    """Run a client call that should time out by itself, but may not.

    librdkafka's send_offsets_to_transaction can ignore its timeout when the group
    coordinator went away (librdkafka issue 5456); the job then treats the call as a
    transient failure and starts over with new clients instead of hanging for ever.
    """
    done = threading.Event()
    error: list[BaseException] = []

    def target() -> None:
        try:
            call()
        except BaseException as exc:
            error.append(exc)
        finally:
            done.set()

    threading.Thread(target=target, name=what, daemon=True).start()
    if not done.wait(timeout_s):
        raise TransientError(f"{what} did not return within {timeout_s:.0f}s")
    if error:
        raise error[0]


def close_clients(consumer: Any, producer: Any) -> None:
    """Close a consumer and flush a producer, each bounded in time and never raising: a
    client stuck on a lost coordinator must not keep the job from going on (an abandoned
    transactional producer is fenced by the next one's init_transactions), and closing
    must never hide the error that made the job close them."""
    if consumer is not None:
        try:
            bounded(consumer.close, 30, "consumer.close")
        except Exception as exc:
            log.warning("closing consumer: %s", exc)
    if producer is not None:
        try:
            bounded(lambda: producer.flush(10), 30, "producer.flush")
        except Exception as exc:
            log.warning("closing producer: %s", exc)
