"""Publishing simulated CDRs to Kafka, keyed by tenant, and registering their Avro schema."""

from __future__ import annotations

import json
import logging
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from rater.errors import TransientError, UsageError
from rater.logs import kafka_logger
from rater.simulate.corrupt import corrupt_messages
from rater.simulate.generate import encode_cdrs_json
from rater.wire import encode_cdrs

__all__ = ["PublishStats", "publish", "publish_values", "register_schema"]

# The simulator's records keep the logger name they had when it was a single module.
log = logging.getLogger("rater.simulate")


@dataclass
class PublishStats:
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    seconds: float = 0.0


def register_schema(registry_url: str, subject: str, schema: Mapping[str, Any]) -> int:
    """Register ``schema`` under ``subject`` in a Confluent-compatible registry; its id."""
    body = json.dumps({"schema": json.dumps(schema)}).encode()
    req = urllib.request.Request(
        f"{registry_url.rstrip('/')}/subjects/{subject}/versions",
        data=body,
        headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            schema_id: int = json.loads(resp.read())["id"]
            return schema_id
    except OSError as exc:
        raise TransientError(f"schema registry {registry_url}: {exc}") from exc


def _encode(frame: pl.DataFrame, fmt: str, schema_id: int | None) -> list[bytes]:
    if fmt == "avro":
        return encode_cdrs(frame, schema_id)
    if fmt == "json":
        return encode_cdrs_json(frame)
    raise UsageError(f"format must be avro or json, not {fmt!r}")


def _producer_config(producer_conf: Mapping[str, Any], partitioner: str) -> dict[str, Any]:
    return {
        # The rater dead-letters a tenant's message found on another partition than this
        # partitioner's (its setting RATER_KAFKA__PARTITIONER, default murmur2_random).
        "partitioner": partitioner,
        "logger": kafka_logger(),
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "compression.type": "lz4",
        "enable.idempotence": True,
        "queue.buffering.max.messages": 500_000,
        "queue.buffering.max.kbytes": 512 * 1024,
        **producer_conf,
    }


def _delivery_counter(stats: PublishStats) -> Callable[[Any, Any], None]:
    """A delivery callback counting into ``stats`` (and logging the failures)."""

    def delivered(err: Any, _msg: Any) -> None:
        if err is None:
            stats.delivered += 1
        else:
            stats.failed += 1
            log.error("delivery failed: %s", err)

    return delivered


def _produce_all(
    producer: Any,
    topic: str,
    keys: list[bytes],
    values: list[bytes],
    rate: float,
    stats: PublishStats,
    started: float,
) -> None:
    """Produce ``values`` with their ``keys`` in order, at most ``rate`` per second when > 0."""
    from confluent_kafka import KafkaException

    delivered = _delivery_counter(stats)
    for i, (key, value) in enumerate(zip(keys, values, strict=True)):
        if rate > 0:
            ahead = i / rate - (time.monotonic() - started)
            if ahead > 0:
                producer.poll(ahead)
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
            except KafkaException as exc:
                raise TransientError(f"producing to {topic}: {exc}") from exc
        stats.sent += 1
        if i % 10_000 == 0:
            producer.poll(0)


def publish(
    frame: pl.DataFrame,
    producer_conf: Mapping[str, Any],
    topic: str,
    *,
    fmt: str = "avro",
    schema_id: int | None = None,
    rate: float = 0.0,
    garbage_fraction: float = 0.0,
    seed: int = 0,
    flush_timeout_s: float = 120.0,
    partitioner: str = "murmur2_random",
) -> PublishStats:
    """Produce every row of ``frame`` to ``topic`` keyed by tenant_id, in row order.

    ``fmt`` avro (Confluent-framed when ``schema_id`` is given) or json; ``rate`` caps
    records per second (0 = unthrottled); ``garbage_fraction`` of the messages are replaced
    by undecodable bytes (see :func:`corrupt_messages`).
    """

    values = _encode(frame, fmt, schema_id)
    if garbage_fraction > 0:
        corrupt_messages(values, garbage_fraction, seed, framed=schema_id is not None)
    keys = [t.encode() for t in frame.get_column("tenant_id").to_list()]
    return publish_values(
        keys,
        values,
        producer_conf,
        topic,
        rate=rate,
        flush_timeout_s=flush_timeout_s,
        partitioner=partitioner,
    )


def publish_values(
    keys: list[bytes],
    values: list[bytes],
    producer_conf: Mapping[str, Any],
    topic: str,
    *,
    rate: float = 0.0,
    flush_timeout_s: float = 120.0,
    partitioner: str = "murmur2_random",
) -> PublishStats:
    """Produce ``values`` with their ``keys`` (tenant ids) to ``topic`` in order, with an
    idempotent producer partitioning as the rater expects; TransientError unless every
    message was delivered."""
    from confluent_kafka import Producer

    producer = Producer(_producer_config(producer_conf, partitioner))
    stats = PublishStats()
    started = time.monotonic()
    _produce_all(producer, topic, keys, values, rate, stats, started)
    remaining = producer.flush(flush_timeout_s)
    stats.seconds = time.monotonic() - started
    if remaining:
        raise TransientError(f"{remaining} messages not delivered to {topic} in time")
    if stats.failed:
        raise TransientError(f"{stats.failed} messages to {topic} failed delivery")
    return stats
