"""The in-memory Kafka cluster: topics, consumer groups, transactions, injected failures."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaException

from rater.stream.partitioner import PartitionerName, partition_for
from rater.stream.testing.clients import (
    FakeAdmin,
    FakeConsumer,
    FakeMessage,
    FakeProducer,
    Metadata,
    PartitionMetadata,
    TopicMetadata,
    kafka_error,
    locked,
)

__all__ = ["Crash", "FakeClock", "FakeCluster"]


class Crash(BaseException):
    """The process died here (stands for a kill -9 at an injected point)."""


@dataclass
class FakeClock:
    """A wall clock that moves only when told to."""

    now: float = 1_790_000_000.0  # 2026-09-21

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Group:
    generation: int = 0
    members: list[FakeConsumer] = field(default_factory=list)


@dataclass
class _Failure:
    operation: str
    kind: str  # abortable | retriable | fatal | crash | crash_after
    times: int
    skip: int = 0  # calls to let through first


class FakeCluster:
    """In-memory topics, consumer groups and transactions (see the module docstring)."""

    def __init__(self, partitioner: PartitionerName = "murmur2_random") -> None:
        self.logs: dict[str, list[list[FakeMessage]]] = {}
        self.configs: dict[str, dict[str, str]] = {}
        self.replication: dict[str, int] = {}  # topic -> replication factor it was created with
        self.offsets: dict[tuple[str, str, int], int] = {}  # (group, topic, partition)
        self.groups: dict[str, Group] = {}
        self.epochs: dict[str, int] = {}  # transactional.id -> current producer epoch
        self.open: dict[str, FakeProducer] = {}  # transactional.id -> producer with a txn
        self.partitioner: PartitionerName = partitioner
        self._failures: list[_Failure] = []
        self._members = 0
        self.lock = threading.RLock()
        self._cluster = self  # so that locked also serves the cluster's own methods

    # -- set-up and inspection, for tests -------------------------------------------------

    @locked
    def create_topic(
        self, name: str, partitions: int, config: dict[str, str] | None = None
    ) -> None:
        self.logs.setdefault(name, [[] for _ in range(partitions)])
        self.configs.setdefault(name, dict(config or {}))

    @locked
    def publish(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> FakeMessage:
        """Append a message as a non-transactional producer would (keyed messages go to
        the partition of the cluster's partitioner, unkeyed ones to partition 0)."""
        if partition is None:
            count = len(self.logs[topic])
            partition = 0 if key is None else partition_for(key, count, self.partitioner)
        return self._append(topic, partition, key, value, headers)

    @locked
    def messages(self, topic: str) -> list[FakeMessage]:
        """Every committed message of ``topic``, in partition then offset order."""
        return [m for log in self.logs.get(topic, []) for m in log]

    @locked
    def committed(self, group: str, topic: str, partition: int) -> int:
        return self.offsets.get((group, topic, partition), 0)

    @locked
    def fail(self, operation: str, kind: str = "abortable", times: int = 1, skip: int = 0) -> None:
        """Make ``times`` calls of ``operation`` fail, after letting ``skip`` through.

        Operations: ``begin``, ``produce``, ``send_offsets``, ``commit``, ``abort``,
        ``init``, ``consume``. Kinds: ``abortable``, ``retriable``, ``fatal`` (a
        KafkaException), ``crash`` (:class:`Crash` before the call takes effect) and
        ``crash_after`` (after it took effect).
        """
        self._failures.append(_Failure(operation, kind, times, skip))

    @locked
    def heal(self) -> None:
        """Forget the failures still waiting to happen."""
        self._failures.clear()

    # -- the KafkaClients factory ---------------------------------------------------------

    def consumer(self, conf: dict[str, Any]) -> FakeConsumer:
        self._members += 1
        return FakeConsumer(self, conf, self._members)

    def producer(self, conf: dict[str, Any]) -> FakeProducer:
        return FakeProducer(self, conf)

    def admin(self, conf: dict[str, Any]) -> FakeAdmin:
        return FakeAdmin(self)

    # -- internals -------------------------------------------------------------------------

    def _append(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None,
    ) -> FakeMessage:
        log = self.logs[topic][partition]
        msg = FakeMessage(topic, partition, len(log), key, value, headers)
        log.append(msg)
        return msg

    def _check(self, operation: str, phase: str = "before") -> None:
        for failure in self._failures:
            if failure.operation != operation or failure.times <= 0:
                continue
            if (failure.kind == "crash_after") != (phase == "after"):
                continue
            if failure.skip > 0:
                failure.skip -= 1
                continue
            failure.times -= 1
            if failure.kind in ("crash", "crash_after"):
                raise Crash(f"crash at {operation}")
            raise KafkaException(
                kafka_error(failure.kind, f"injected {failure.kind} at {operation}")
            )

    def _metadata(self, topic: str | None = None) -> Metadata:
        names = [topic] if topic is not None else list(self.logs)
        return Metadata(
            {
                n: TopicMetadata({p: PartitionMetadata(p) for p in range(len(self.logs[n]))})
                for n in names
                if n in self.logs
            }
        )

    def _join(self, group: str, member: FakeConsumer) -> None:
        g = self.groups.setdefault(group, Group())
        g.members.append(member)
        self._rebalance(g)

    def _leave(self, group: str, member: FakeConsumer) -> None:
        g = self.groups.get(group)
        if g is not None and member in g.members:
            g.members.remove(member)
            self._rebalance(g)

    def _rebalance(self, g: Group) -> None:
        """The range assignor: each topic's partitions in contiguous runs, by member order."""
        g.generation += 1
        for member in g.members:
            member._next = []
        for topic in sorted({t for m in g.members for t in m._topics}):
            subscribers = [m for m in g.members if topic in m._topics]
            count = len(self.logs.get(topic, []))
            per, extra = divmod(count, len(subscribers))
            start = 0
            for i, member in enumerate(subscribers):
                take = per + (1 if i < extra else 0)
                member._next += [(topic, p) for p in range(start, start + take)]
                start += take
        for member in g.members:
            member._rebalance_due = True
