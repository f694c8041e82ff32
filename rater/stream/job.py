"""``rater run``: the consumer-group member that rates CDRs with exactly-once output."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from rater import metrics
from rater.core.tariff import Tariff
from rater.errors import ConfigError, TransientError
from rater.settings import Settings
from rater.stream.clients import consumer_config, producer_config, restore_partitions
from rater.stream.inputs import InputBatch, collect_batch
from rater.stream.step import BatchOutput, HeldState, PartitionMeta, rate_step
from rater.topics import TopicSpec, ensure_topics
from sinks import DuckDBCatalog, LocalDirectory, MonthPartitionedDataset

__all__ = ["RaterJob", "RunSummary"]

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    counts: Counter[str] = field(default_factory=Counter)
    charges: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    aborted: int = 0
    # Monotonic times of the first batch received and the last batch committed.
    busy_from: float | None = None
    busy_until: float | None = None

    @property
    def busy_s(self) -> float:
        if self.busy_from is None or self.busy_until is None:
            return 0.0
        return self.busy_until - self.busy_from


class RaterJob:
    def __init__(self, settings: Settings, tariff: Tariff, instance_id: str) -> None:
        self.settings = settings
        self.tariff = tariff
        self.instance_id = instance_id
        self.summary = RunSummary()
        self.held = HeldState.empty()
        self.meta: dict[int, PartitionMeta] = {}
        self._stopping = False
        # The batch being collected: a rebalance drops the messages of revoked partitions
        # from it at once (the partition may come back in the same rebalance, and its
        # messages are then read again from the committed offset).
        self._pending = InputBatch()
        self._idle_since = time.monotonic()
        out = settings.output
        self.rated_sink = MonthPartitionedDataset(
            LocalDirectory(out.dataset_dir / "rated"), time_column="rating_time"
        )
        self.event_sink = MonthPartitionedDataset(
            LocalDirectory(out.dataset_dir / "events"), time_column="rating_time"
        )
        self.catalog = (
            DuckDBCatalog(out.duckdb_path, out.dataset_dir / "rated", out.dataset_dir / "events")
            if out.duckdb_path
            else None
        )
        # Parquet writing runs outside the GIL: one thread overlaps it with producing.
        self._files = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sinks")
        self.consumer: Any = None
        self.producer: Any = None

    # -- the commit path ----------------------------------------------------------------

    def commit_batch(self, batch: InputBatch) -> BatchOutput:
        """Rate one batch and make its effects visible exactly once.

        1. rate: decode, apply top-ups, rate CDRs against each partition's state.
        2. write sinks: Parquet files named by topic-partition-offset range (a replay of
           the same offsets replaces them, see sinks.dataset). The files are written by a
           background thread while 3 and 4 run, and are complete before 5.
        3. produce: rated records, balance events, dead letters and the state changelog,
           all inside one Kafka transaction.
        4. send offsets: the input offsets after the batch join the same transaction.
        5. commit: outputs, changelog and offsets become visible together, or not at all;
           only then does this process adopt the new state.
        """
        with _stage("rate"):  # 1
            out = rate_step(self.settings, self.tariff, batch, self.held, self.meta)
        sinks_written = self._files.submit(self._write_sinks, out)  # 2
        try:
            with _stage("produce"):  # 3
                self.producer.begin_transaction()
                self._produce(out)
            with _stage("send_offsets"):  # 4
                offsets = [TopicPartition(t, p, last + 1) for (t, p), last in batch.last.items()]
                group = self.consumer.consumer_group_metadata()
                _bounded(
                    lambda: self.producer.send_offsets_to_transaction(offsets, group, 15),
                    20,
                    "send_offsets_to_transaction",
                )
        finally:
            with _stage("sinks"):  # never leave a file being written behind this function
                futures.wait([sinks_written])
        sinks_written.result()  # a sink that failed stops the batch before it commits
        with _stage("commit"):  # 5
            self._commit_transaction()
        self._adopt(out)
        return out

    def _write_sinks(self, out: BatchOutput) -> None:
        for sb in out.rated_sinks:
            self.rated_sink.write(sb)
        for sb in out.event_sinks:
            self.event_sink.write(sb)

    # -- the loop ------------------------------------------------------------------------

    def run(self, *, handle_signals: bool = True) -> RunSummary:
        if handle_signals:
            self._install_signal_handlers()
        self._ensure_topics()
        while not self._stopping:
            try:
                self._session()
            except KafkaException as exc:
                err = exc.args[0]
                if err.fatal() or not err.retriable():
                    log.error("fatal Kafka error, restarting clients: %s", err)
                else:
                    log.warning("Kafka error, restarting clients: %s", err)
                self._close_clients()
                time.sleep(1.0)
            except TransientError as exc:
                log.warning("%s; restarting clients", exc)
                self._close_clients()
                time.sleep(1.0)
        self._close_clients()
        self._files.shutdown(wait=True)
        if self.catalog is not None:
            self.catalog.refresh()
        return self.summary

    def stop(self) -> None:
        self._stopping = True

    def _session(self) -> None:
        s = self.settings
        self.producer = Producer(producer_config(s, self.instance_id))
        self.producer.init_transactions(60)  # fences a previous incarnation of this instance
        self.consumer = Consumer(consumer_config(s, self.instance_id))
        self.consumer.subscribe(
            [s.topics.cdrs, s.topics.topups], on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        self._idle_since = time.monotonic()
        while not self._stopping:
            batch = self._pending = InputBatch()
            collect_batch(
                self.consumer.consume,
                batch,
                cdr_topic=s.topics.cdrs,
                max_records=s.stream.batch_max_records,
                max_wait_s=s.stream.batch_max_wait_ms / 1000,
                should_stop=lambda: self._stopping,
            )
            if not len(batch):
                idle = time.monotonic() - self._idle_since
                if s.stream.idle_exit_s and self.meta and idle > s.stream.idle_exit_s:
                    log.info("input idle for %.1fs: stopping", s.stream.idle_exit_s)
                    self._stopping = True
                continue
            self._idle_since = time.monotonic()
            self._process(batch)

    def _process(self, batch: InputBatch) -> None:
        metrics.BATCH_RECORDS.observe(len(batch))
        if self.summary.busy_from is None:
            self.summary.busy_from = batch.received_at
        try:
            out = self.commit_batch(batch)
        except KafkaException as exc:
            err = exc.args[0]
            if not err.txn_requires_abort():
                raise
            log.warning("transaction aborted (%s); rewinding %d partitions", err, len(batch.first))
            metrics.TRANSACTIONS.labels("aborted").inc()
            metrics.BATCHES.labels("aborted").inc()
            self.summary.aborted += 1
            _bounded(lambda: self.producer.abort_transaction(30), 60, "abort_transaction")
            self._rewind(batch)
            return
        metrics.TRANSACTIONS.labels("committed").inc()
        metrics.BATCHES.labels("committed").inc()
        log.debug("committed a batch of %d messages", len(batch))
        self._record(out)
        self.summary.busy_until = time.monotonic()

    def _produce(self, out: BatchOutput) -> None:
        produce = self.producer.produce
        for block in out.blocks:
            topic = block.topic
            rows = zip(block.partitions, block.keys, block.values, strict=True)
            if block.headers is None:  # the hot path: no headers keyword, positional only
                for partition, key, value in rows:
                    try:
                        produce(topic, value, key, partition)
                    except BufferError:  # the local queue is full: let it drain, then go on
                        self._produce_blocking(topic, value, key, partition, None)
            else:
                for (partition, key, value), hdrs in zip(rows, block.headers, strict=True):
                    try:
                        produce(topic, value, key, partition, headers=hdrs)
                    except BufferError:
                        self._produce_blocking(topic, value, key, partition, hdrs)
            self.producer.poll(0)

    def _produce_blocking(
        self, topic: str, value: bytes | None, key: bytes | None, partition: int, hdrs: Any
    ) -> None:
        while True:
            self.producer.poll(0.05)
            try:
                self.producer.produce(topic, value, key, partition, headers=hdrs)
                return
            except BufferError:
                continue

    def _commit_transaction(self) -> None:
        for attempt in range(10):
            try:
                _bounded(lambda: self.producer.commit_transaction(60), 90, "commit_transaction")
                return
            except KafkaException as exc:
                err = exc.args[0]
                if err.retriable() and not err.txn_requires_abort() and attempt < 9:
                    log.warning("commit_transaction: %s; retrying", err)
                    time.sleep(min(0.2 * 2**attempt, 5.0))
                    continue
                raise

    def _adopt(self, out: BatchOutput) -> None:
        self.held = out.held
        for p, live in out.live_keys.items():
            pm = self.meta.setdefault(p, PartitionMeta(generation=_now_us()))
            pm.live_keys = live
            pm.batches_since_snapshot = 0 if p in out.snapshotted else pm.batches_since_snapshot + 1
        metrics.STATE_TENANTS.set(self.held.owners.height)

    def _record(self, out: BatchOutput) -> None:
        self.summary.batches += 1
        self.summary.counts.update(out.counts)
        self.summary.charges.update(out.charges)
        self.summary.events.update(out.events)
        metrics.CONSUMED.inc(out.counts["consumed"])
        for status in ("rated", "unrated", "invalid", "duplicate", "dead_lettered"):
            metrics.RECORDS.labels(status).inc(out.counts[status])
        for currency, micros in out.charges.items():
            metrics.CHARGED_MICROS.labels(currency).inc(micros)
        for event, n in out.events.items():
            metrics.BALANCE_EVENTS.labels(event).inc(n)
        for reason, n in out.dead_reasons.items():
            metrics.DEAD_LETTERED.labels(reason).inc(n)
        metrics.TOPUPS.labels("applied").inc(out.counts["topup_applied"])
        metrics.TOPUPS.labels("duplicate").inc(out.counts["topup_duplicate"])

    def _rewind(self, batch: InputBatch) -> None:
        for (topic, p), first in batch.first.items():
            self.consumer.seek(TopicPartition(topic, p, first))

    # -- partitions moving ---------------------------------------------------------------

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        cdrs = self.settings.topics.cdrs
        mine = [tp.partition for tp in partitions if tp.topic == cdrs]
        started = time.monotonic()
        restored = restore_partitions(self.settings, self.settings.topics.changelog, mine)
        for p, replayer in restored.items():
            self.held = self.held.add_partition(p, replayer.state)
            self.meta[p] = PartitionMeta(generation=_now_us(), live_keys=replayer.live_keys)
            self.rated_sink.assign(cdrs, p)
            self.event_sink.assign(cdrs, p)
        if mine:
            metrics.RESTORE_SECONDS.observe(time.monotonic() - started)
            log.info("assigned %s%s: state restored", cdrs, mine)
        self._idle_since = time.monotonic()  # idleness counts from the assignment on
        metrics.STATE_TENANTS.set(self.held.owners.height)

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        self._pending.drop_partitions({(tp.topic, tp.partition) for tp in partitions})
        for tp in partitions:
            if tp.topic == self.settings.topics.cdrs:
                self.held = self.held.drop_partition(tp.partition)
                self.meta.pop(tp.partition, None)
                self.rated_sink.revoke(tp.topic, tp.partition)
                self.event_sink.revoke(tp.topic, tp.partition)
        log.info("revoked %d partitions", len(partitions))

    # -- set-up and tear-down ------------------------------------------------------------

    def _ensure_topics(self) -> None:
        s = self.settings
        t = s.topics
        admin = s.kafka.client_config()
        ensure_topics(admin, [TopicSpec(t.cdrs, t.partitions)])
        n = _partition_count(admin, t.cdrs)
        ensure_topics(
            admin,
            [
                TopicSpec(t.topups, n),
                TopicSpec(t.rated, n),
                TopicSpec(t.events, n),
                TopicSpec(t.dead_letter, n),
                TopicSpec(t.changelog, n, {"cleanup.policy": "compact"}),
            ],
        )
        for topic in (t.topups, t.changelog):
            count = _partition_count(admin, topic)
            if count != n:
                raise ConfigError(
                    f"topic {topic}",
                    None,
                    f"has {count} partitions but {t.cdrs} has {n}",
                    "a tenant's CDRs, top-ups and state must share a partition number: "
                    "give these topics the same partition count",
                )

    def _close_clients(self) -> None:
        # Bounded: a client stuck on a lost coordinator must not keep the job from going on.
        # An abandoned transactional producer is fenced by the next one's init_transactions.
        if self.consumer is not None:
            consumer, self.consumer = self.consumer, None
            try:
                _bounded(consumer.close, 30, "consumer.close")
            except Exception as exc:  # closing must never hide the original error
                log.warning("closing consumer: %s", exc)
        if self.producer is not None:
            producer, self.producer = self.producer, None
            try:
                _bounded(lambda: producer.flush(10), 30, "producer.flush")
            except Exception as exc:
                log.warning("closing producer: %s", exc)
        self.held = HeldState.empty()
        self.meta.clear()

    def _install_signal_handlers(self) -> None:
        def handler(signum: int, frame: FrameType | None) -> None:
            log.info("signal %d: finishing the current batch, then stopping", signum)
            self._stopping = True

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


def _partition_count(admin_conf: dict[str, Any], topic: str) -> int:
    from confluent_kafka.admin import AdminClient

    md = AdminClient(admin_conf).list_topics(topic, timeout=30)
    return len(md.topics[topic].partitions)


def _bounded(call: Callable[[], object], timeout_s: float, what: str) -> None:
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


@contextlib.contextmanager
def _stage(name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        metrics.STAGE_SECONDS.labels(name).observe(time.perf_counter() - started)


def _now_us() -> int:
    return time.time_ns() // 1000
