"""The in-memory clients a :class:`~rater.stream.testing.cluster.FakeCluster` hands out:
a consumer-group member (or manually assigned reader), a transactional producer and an
admin client, with the methods of confluent-kafka's that the job uses."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from rater.stream.partitioner import partition_for

if TYPE_CHECKING:
    from rater.stream.testing.cluster import FakeCluster

__all__ = [
    "FakeAdmin",
    "FakeConsumer",
    "FakeMessage",
    "FakeProducer",
    "GroupMetadata",
    "Metadata",
    "PartitionMetadata",
    "TopicMetadata",
    "kafka_error",
    "locked",
]


def locked(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run a client method under its cluster's lock (jobs may run in threads)."""

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self._cluster.lock:
            return method(self, *args, **kwargs)

    return call


@dataclass
class FakeMessage:
    """A consumed message, with the accessors of confluent_kafka.Message."""

    _topic: str
    _partition: int
    _offset: int
    _key: bytes | None
    _value: bytes | None
    _headers: list[tuple[str, bytes]] | None = None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers

    def error(self) -> None:
        return None


@dataclass(frozen=True)
class GroupMetadata:
    group: str
    generation: int
    member: int


@dataclass
class PartitionMetadata:
    id: int
    leader: int = 0
    error: None = None


@dataclass
class TopicMetadata:
    partitions: dict[int, PartitionMetadata]
    error: None = None


@dataclass
class Metadata:
    topics: dict[str, TopicMetadata]


def kafka_error(kind: str, reason: str) -> KafkaError:
    return KafkaError(
        KafkaError._STATE if kind != "retriable" else KafkaError._TIMED_OUT,
        reason,
        fatal=kind == "fatal",
        retriable=kind == "retriable",
        txn_requires_abort=kind == "abortable",
    )


class FakeConsumer:
    """A read_committed consumer-group member (or a manually assigned reader)."""

    def __init__(self, cluster: FakeCluster, conf: dict[str, Any], member: int) -> None:
        self._cluster = cluster
        self._group = str(conf.get("group.id", ""))
        self._member = member
        self._topics: list[str] = []
        self._assigned: list[tuple[str, int]] = []
        self._next: list[tuple[str, int]] = []
        self._rebalance_due = False
        self._positions: dict[tuple[str, int], int] = {}
        self._on_assign: Callable[..., Any] | None = None
        self._on_revoke: Callable[..., Any] | None = None
        self._closed = False

    @locked
    def subscribe(
        self,
        topics: Sequence[str],
        on_assign: Callable[..., Any] | None = None,
        on_revoke: Callable[..., Any] | None = None,
    ) -> None:
        self._topics = list(topics)
        self._on_assign, self._on_revoke = on_assign, on_revoke
        self._cluster._join(self._group, self)

    @locked
    def assign(self, partitions: Sequence[TopicPartition]) -> None:
        self._assigned = [(tp.topic, tp.partition) for tp in partitions]
        for tp in partitions:
            self._positions[(tp.topic, tp.partition)] = max(tp.offset, 0)

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[FakeMessage]:
        out: list[FakeMessage] = self._consume(num_messages)
        if not out and timeout:  # waits outside the lock, so other members can go on
            time.sleep(min(max(timeout, 0), 0.002))
        return out

    @locked
    def _consume(self, num_messages: int) -> list[FakeMessage]:
        self._cluster._check("consume")
        if self._rebalance_due:
            self._deliver_rebalance()
        out: list[FakeMessage] = []
        for tp in self._assigned:
            log = self._cluster.logs[tp[0]][tp[1]]
            at = self._positions.get(tp, 0)
            take = log[at : at + num_messages - len(out)]
            out += take
            self._positions[tp] = at + len(take)
            if len(out) >= num_messages:
                break
        return out

    def _deliver_rebalance(self) -> None:
        self._rebalance_due = False
        old = self._assigned
        if old and self._on_revoke is not None:
            self._on_revoke(self, [TopicPartition(t, p) for t, p in old])
        self._assigned = list(self._next)
        for t, p in self._assigned:
            self._positions[(t, p)] = self._cluster.committed(self._group, t, p)
        if self._on_assign is not None:
            self._on_assign(self, [TopicPartition(t, p) for t, p in self._assigned])

    @locked
    def seek(self, tp: TopicPartition) -> None:
        self._positions[(tp.topic, tp.partition)] = tp.offset

    @locked
    def position(self, partitions: Sequence[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(tp.topic, tp.partition, self._positions.get((tp.topic, tp.partition), 0))
            for tp in partitions
        ]

    @locked
    def get_watermark_offsets(self, tp: TopicPartition, timeout: float = -1) -> tuple[int, int]:
        return 0, len(self._cluster.logs[tp.topic][tp.partition])

    @locked
    def consumer_group_metadata(self) -> GroupMetadata:
        group = self._cluster.groups.get(self._group)
        return GroupMetadata(self._group, group.generation if group else 0, self._member)

    @locked
    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Metadata:
        return self._cluster._metadata(topic)

    @locked
    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._topics:
                self._cluster._leave(self._group, self)


class FakeProducer:
    """A transactional producer (also usable without transactions)."""

    def __init__(self, cluster: FakeCluster, conf: dict[str, Any]) -> None:
        self._cluster = cluster
        self._tid = conf.get("transactional.id")
        self._epoch = -1
        self._txn: list[tuple[str, int, bytes | None, bytes | None, Any]] | None = None
        self._offsets: list[tuple[str, str, int, int]] = []

    @locked
    def init_transactions(self, timeout: float = -1) -> None:
        self._cluster._check("init")
        assert self._tid is not None, "a transactional.id is needed"
        previous = self._cluster.open.pop(self._tid, None)
        if previous is not None:
            previous._txn = None  # the coordinator aborts what the fenced producer left
        self._epoch = self._cluster.epochs.get(self._tid, -1) + 1
        self._cluster.epochs[self._tid] = self._epoch
        self._cluster._check("init", "after")

    def _fenced(self) -> None:
        if self._tid is not None and self._cluster.epochs.get(self._tid) != self._epoch:
            raise KafkaException(kafka_error("fatal", "producer fenced by a newer instance"))

    @locked
    def begin_transaction(self) -> None:
        self._fenced()
        self._cluster._check("begin")
        self._txn, self._offsets = [], []
        self._cluster.open[str(self._tid)] = self
        self._cluster._check("begin", "after")

    @locked
    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int = -1,
        headers: Any = None,
        **_: Any,
    ) -> None:
        self._fenced()
        self._cluster._check("produce")
        if partition is None or partition < 0:
            count = len(self._cluster.logs[topic])
            partition = 0 if key is None else partition_for(key, count, self._cluster.partitioner)
        if self._txn is None:
            self._cluster._append(topic, partition, key, value, headers)
        else:
            self._txn.append((topic, partition, key, value, headers))
        self._cluster._check("produce", "after")

    @locked
    def poll(self, timeout: float = 0) -> int:
        return 0

    @locked
    def flush(self, timeout: float = -1) -> int:
        return 0

    @locked
    def send_offsets_to_transaction(
        self, offsets: Sequence[TopicPartition], metadata: GroupMetadata, timeout: float = -1
    ) -> None:
        self._fenced()
        self._cluster._check("send_offsets")
        group = self._cluster.groups.get(metadata.group)
        if group is None or group.generation != metadata.generation:
            raise KafkaException(
                kafka_error("abortable", "ILLEGAL_GENERATION: the group rebalanced")
            )
        self._offsets += [(metadata.group, tp.topic, tp.partition, tp.offset) for tp in offsets]
        self._cluster._check("send_offsets", "after")

    @locked
    def commit_transaction(self, timeout: float = -1) -> None:
        self._fenced()
        self._cluster._check("commit")
        if self._txn is None:
            raise KafkaException(kafka_error("fatal", "no open transaction"))
        for topic, partition, key, value, headers in self._txn:
            self._cluster._append(topic, partition, key, value, headers)
        for group, topic, partition, offset in self._offsets:
            self._cluster.offsets[(group, topic, partition)] = offset
        self._txn, self._offsets = None, []
        self._cluster.open.pop(str(self._tid), None)
        self._cluster._check("commit", "after")

    @locked
    def abort_transaction(self, timeout: float = -1) -> None:
        self._fenced()
        self._cluster._check("abort")
        self._txn, self._offsets = None, []
        self._cluster.open.pop(str(self._tid), None)


class FakeAdmin:
    def __init__(self, cluster: FakeCluster) -> None:
        self._cluster = cluster

    @locked
    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Metadata:
        return self._cluster._metadata(topic)

    @locked
    def create_topics(self, new_topics: Sequence[Any], **_: Any) -> dict[str, Any]:
        from concurrent.futures import Future

        out: dict[str, Any] = {}
        for t in new_topics:
            self._cluster.create_topic(t.topic, t.num_partitions, dict(t.config or {}))
            self._cluster.replication[t.topic] = t.replication_factor
            fut: Future[None] = Future()
            fut.set_result(None)
            out[t.topic] = fut
        return out
