"""In-memory Kafka for testing the streaming job without a broker.

:class:`FakeCluster` stands in for :class:`rater.stream.clients.ConfluentClients`: it
hands out consumers, transactional producers and admin clients over in-memory topics.
It models what the job's exactly-once argument relies on, and nothing more:

- transactions: produced messages and sent offsets become visible together at commit,
  never after an abort; ``init_transactions`` with a transactional.id fences earlier
  producers of that id and aborts their open transaction;
- a consumer group with the range assignor, rebalance callbacks on the next
  ``consume``, and group generations: offsets sent with stale group metadata abort the
  transaction (as KIP-447 has brokers do);
- ``read_committed`` reads only (aborted data never appears).

Failures are injected with :meth:`FakeCluster.fail`: an abortable, retriable or fatal
Kafka error, or :class:`Crash`, which stands for the process dying at that point (it is
a BaseException, so the job cannot catch it, like a kill -9).

Like bytewax's testing source and sink, this keeps the streaming tests fast: a commit
path, a rebalance or a restore runs in milliseconds.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from rater.stream.partitioner import PartitionerName, partition_for

__all__ = ["Crash", "FakeClock", "FakeCluster", "FakeMessage"]


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run a client method under its cluster's lock (jobs may run in threads)."""

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self._cluster.lock:
            return method(self, *args, **kwargs)

    return call


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
class _GroupMetadata:
    group: str
    generation: int
    member: int


@dataclass
class _Group:
    generation: int = 0
    members: list[FakeConsumer] = field(default_factory=list)


@dataclass
class _Failure:
    operation: str
    kind: str  # abortable | retriable | fatal | crash | crash_after
    times: int
    skip: int = 0  # calls to let through first


@dataclass
class _Partition:
    id: int
    leader: int = 0
    error: None = None


@dataclass
class _Topic:
    partitions: dict[int, _Partition]
    error: None = None


@dataclass
class _Metadata:
    topics: dict[str, _Topic]


class FakeCluster:
    """In-memory topics, consumer groups and transactions (see the module docstring)."""

    def __init__(self, partitioner: PartitionerName = "murmur2_random") -> None:
        self.logs: dict[str, list[list[FakeMessage]]] = {}
        self.configs: dict[str, dict[str, str]] = {}
        self.replication: dict[str, int] = {}  # topic -> replication factor it was created with
        self.offsets: dict[tuple[str, str, int], int] = {}  # (group, topic, partition)
        self.groups: dict[str, _Group] = {}
        self.epochs: dict[str, int] = {}  # transactional.id -> current producer epoch
        self.open: dict[str, FakeProducer] = {}  # transactional.id -> producer with a txn
        self.partitioner: PartitionerName = partitioner
        self._failures: list[_Failure] = []
        self._members = 0
        self.lock = threading.RLock()
        self._cluster = self  # so that _locked also serves the cluster's own methods

    # -- set-up and inspection, for tests -------------------------------------------------

    @_locked
    def create_topic(
        self, name: str, partitions: int, config: dict[str, str] | None = None
    ) -> None:
        self.logs.setdefault(name, [[] for _ in range(partitions)])
        self.configs.setdefault(name, dict(config or {}))

    @_locked
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

    @_locked
    def messages(self, topic: str) -> list[FakeMessage]:
        """Every committed message of ``topic``, in partition then offset order."""
        return [m for log in self.logs.get(topic, []) for m in log]

    @_locked
    def committed(self, group: str, topic: str, partition: int) -> int:
        return self.offsets.get((group, topic, partition), 0)

    @_locked
    def fail(self, operation: str, kind: str = "abortable", times: int = 1, skip: int = 0) -> None:
        """Make ``times`` calls of ``operation`` fail, after letting ``skip`` through.

        Operations: ``begin``, ``produce``, ``send_offsets``, ``commit``, ``abort``,
        ``init``, ``consume``. Kinds: ``abortable``, ``retriable``, ``fatal`` (a
        KafkaException), ``crash`` (:class:`Crash` before the call takes effect) and
        ``crash_after`` (after it took effect).
        """
        self._failures.append(_Failure(operation, kind, times, skip))

    @_locked
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
            raise KafkaException(_error(failure.kind, f"injected {failure.kind} at {operation}"))

    def _metadata(self, topic: str | None = None) -> _Metadata:
        names = [topic] if topic is not None else list(self.logs)
        return _Metadata(
            {
                n: _Topic({p: _Partition(p) for p in range(len(self.logs[n]))})
                for n in names
                if n in self.logs
            }
        )

    def _join(self, group: str, member: FakeConsumer) -> None:
        g = self.groups.setdefault(group, _Group())
        g.members.append(member)
        self._rebalance(g)

    def _leave(self, group: str, member: FakeConsumer) -> None:
        g = self.groups.get(group)
        if g is not None and member in g.members:
            g.members.remove(member)
            self._rebalance(g)

    def _rebalance(self, g: _Group) -> None:
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


def _error(kind: str, reason: str) -> KafkaError:
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

    @_locked
    def subscribe(
        self,
        topics: Sequence[str],
        on_assign: Callable[..., Any] | None = None,
        on_revoke: Callable[..., Any] | None = None,
    ) -> None:
        self._topics = list(topics)
        self._on_assign, self._on_revoke = on_assign, on_revoke
        self._cluster._join(self._group, self)

    @_locked
    def assign(self, partitions: Sequence[TopicPartition]) -> None:
        self._assigned = [(tp.topic, tp.partition) for tp in partitions]
        for tp in partitions:
            self._positions[(tp.topic, tp.partition)] = max(tp.offset, 0)

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[FakeMessage]:
        out: list[FakeMessage] = self._consume(num_messages)
        if not out and timeout:  # waits outside the lock, so other members can go on
            time.sleep(min(max(timeout, 0), 0.002))
        return out

    @_locked
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

    @_locked
    def seek(self, tp: TopicPartition) -> None:
        self._positions[(tp.topic, tp.partition)] = tp.offset

    @_locked
    def position(self, partitions: Sequence[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(tp.topic, tp.partition, self._positions.get((tp.topic, tp.partition), 0))
            for tp in partitions
        ]

    @_locked
    def get_watermark_offsets(self, tp: TopicPartition, timeout: float = -1) -> tuple[int, int]:
        return 0, len(self._cluster.logs[tp.topic][tp.partition])

    @_locked
    def consumer_group_metadata(self) -> _GroupMetadata:
        g = self._cluster.groups.get(self._group, _Group())
        return _GroupMetadata(self._group, g.generation, self._member)

    @_locked
    def list_topics(self, topic: str | None = None, timeout: float = -1) -> _Metadata:
        return self._cluster._metadata(topic)

    @_locked
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

    @_locked
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
            raise KafkaException(_error("fatal", "producer fenced by a newer instance"))

    @_locked
    def begin_transaction(self) -> None:
        self._fenced()
        self._cluster._check("begin")
        self._txn, self._offsets = [], []
        self._cluster.open[str(self._tid)] = self
        self._cluster._check("begin", "after")

    @_locked
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

    @_locked
    def poll(self, timeout: float = 0) -> int:
        return 0

    @_locked
    def flush(self, timeout: float = -1) -> int:
        return 0

    @_locked
    def send_offsets_to_transaction(
        self, offsets: Sequence[TopicPartition], metadata: _GroupMetadata, timeout: float = -1
    ) -> None:
        self._fenced()
        self._cluster._check("send_offsets")
        group = self._cluster.groups.get(metadata.group)
        if group is None or group.generation != metadata.generation:
            raise KafkaException(_error("abortable", "ILLEGAL_GENERATION: the group rebalanced"))
        self._offsets += [(metadata.group, tp.topic, tp.partition, tp.offset) for tp in offsets]
        self._cluster._check("send_offsets", "after")

    @_locked
    def commit_transaction(self, timeout: float = -1) -> None:
        self._fenced()
        self._cluster._check("commit")
        if self._txn is None:
            raise KafkaException(_error("fatal", "no open transaction"))
        for topic, partition, key, value, headers in self._txn:
            self._cluster._append(topic, partition, key, value, headers)
        for group, topic, partition, offset in self._offsets:
            self._cluster.offsets[(group, topic, partition)] = offset
        self._txn, self._offsets = None, []
        self._cluster.open.pop(str(self._tid), None)
        self._cluster._check("commit", "after")

    @_locked
    def abort_transaction(self, timeout: float = -1) -> None:
        self._fenced()
        self._cluster._check("abort")
        self._txn, self._offsets = None, []
        self._cluster.open.pop(str(self._tid), None)


class FakeAdmin:
    def __init__(self, cluster: FakeCluster) -> None:
        self._cluster = cluster

    @_locked
    def list_topics(self, topic: str | None = None, timeout: float = -1) -> _Metadata:
        return self._cluster._metadata(topic)

    @_locked
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
