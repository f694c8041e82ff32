"""The streaming job's topics: idempotent creation with the admin client, and the checks
that keep a tenant's CDRs, top-ups and state on one partition number."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rater.errors import ConfigError, TerminalError, TransientError
from rater.logs import kafka_logger
from rater.settings import TopicSettings

__all__ = [
    "TopicSpec",
    "check_partition_count",
    "ensure_job_topics",
    "ensure_topic",
    "ensure_topics",
    "partition_count",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = 1
    config: Mapping[str, str] = field(default_factory=dict)
    replication_factor: int = 1


def ensure_topics(
    admin: Mapping[str, Any] | Any, specs: Sequence[TopicSpec], timeout_s: float = 30.0
) -> None:
    """Create the topics that do not exist yet and wait until metadata shows every partition
    of every topic with a leader. Existing topics are left as they are (a partition count
    that differs from the spec is logged, not changed).

    ``admin``: an admin client, or the configuration to make one with.
    """
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    if not specs:
        return
    if isinstance(admin, Mapping):
        conf: dict[str, Any] = {"logger": kafka_logger(), **admin}
        admin = AdminClient(conf)
    try:
        existing = admin.list_topics(timeout=timeout_s).topics
    except KafkaException as exc:
        raise TransientError(f"cannot reach Kafka to list topics: {exc}") from exc
    new = [
        NewTopic(
            s.name,
            num_partitions=s.partitions,
            replication_factor=s.replication_factor,
            config=dict(s.config),
        )
        for s in specs
        if s.name not in existing
    ]
    for s in specs:
        if s.name in existing and len(existing[s.name].partitions) != s.partitions:
            log.warning(
                "topic %s exists with %d partitions (spec: %d); left unchanged",
                s.name,
                len(existing[s.name].partitions),
                s.partitions,
            )
    if new:
        futures = admin.create_topics(new, operation_timeout=timeout_s, request_timeout=timeout_s)
        for name, fut in futures.items():
            try:
                fut.result()
                log.info("created topic %s", name)
            except KafkaException as exc:
                err = exc.args[0]
                if err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    continue
                if err.retriable():
                    raise TransientError(f"creating topic {name}: {err.str()}") from exc
                raise TerminalError(f"creating topic {name}: {err.str()}") from exc
    _await_topics(admin, specs, timeout_s)


def _await_topics(admin: Any, specs: Sequence[TopicSpec], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    pending = [s.name for s in specs]
    while True:
        md = admin.list_topics(timeout=max(1.0, min(5.0, deadline - time.monotonic())))
        pending = [name for name in pending if not _ready(md.topics.get(name))]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise TransientError(f"topics {pending} not ready after {timeout_s:.0f}s")
        time.sleep(0.1)


def _ready(topic: Any) -> bool:
    if topic is None or topic.error is not None or not topic.partitions:
        return False
    return all(p.leader >= 0 and p.error is None for p in topic.partitions.values())


def partition_count(client: Any, topic: str) -> int:
    """Partitions of ``topic`` (an admin client or a consumer: both list topics)."""
    md = client.list_topics(topic, timeout=30)
    return len(md.topics[topic].partitions)


def ensure_topic(admin: Mapping[str, Any] | Any, topics: TopicSettings, name: str) -> None:
    """Create topic ``name`` when missing, with the configured partition count and
    replication factor."""
    spec = TopicSpec(name, topics.partitions, replication_factor=topics.replication_factor)
    ensure_topics(admin, [spec])


def ensure_job_topics(admin: Any, topics: TopicSettings) -> int:
    """Create the job's missing topics; the partition count of the CDR topic.

    The output topics and the changelog get as many partitions as the CDR topic. Top-ups,
    adjustments and the changelog must have as many (a tenant's CDRs, top-ups and state share a
    partition number): otherwise a ConfigError, one line and exit status 2.
    """
    rf = topics.replication_factor
    ensure_topic(admin, topics, topics.cdrs)
    n = partition_count(admin, topics.cdrs)
    compact = {"cleanup.policy": "compact"}
    ensure_topics(
        admin,
        [
            TopicSpec(topics.topups, n, replication_factor=rf),
            TopicSpec(topics.adjustments, n, replication_factor=rf),
            TopicSpec(topics.rated, n, replication_factor=rf),
            TopicSpec(topics.events, n, replication_factor=rf),
            TopicSpec(topics.dead_letter, n, replication_factor=rf),
            TopicSpec(topics.changelog, n, compact, replication_factor=rf),
        ],
    )
    for topic in (topics.topups, topics.adjustments, topics.changelog):
        count = partition_count(admin, topic)
        if count != n:
            raise ConfigError(
                f"topic {topic}",
                None,
                f"has {count} partitions but {topics.cdrs} has {n}",
                "a tenant's CDRs, top-ups and state must share a partition number: "
                "give these topics the same partition count",
            )
    return n


def check_partition_count(client: Any, topic: str, expected: int) -> None:
    """Partitions added to the input topic would move tenants to other partitions than
    their state's: refuse to go on rather than rate against the wrong state."""
    now = partition_count(client, topic)
    if now != expected:
        raise ConfigError(
            f"topic {topic}",
            None,
            f"now has {now} partitions, not {expected}",
            "a tenant's partition depends on the partition count: restore the count, "
            "or migrate the state before adding partitions",
        )
