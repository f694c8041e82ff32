"""``rater run``: the consumer-group member that rates CDRs with exactly-once output."""

from __future__ import annotations

import logging
import signal
import time
import uuid
from collections.abc import Callable
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from types import FrameType
from typing import Any

from confluent_kafka import KafkaException, TopicPartition

from rater import metrics, signals
from rater.core.state import RatingState
from rater.core.tariff import Tariff
from rater.errors import TerminalError, TransientError
from rater.health import HEALTH
from rater.settings import Settings
from rater.stream import observe, registry
from rater.stream.changelog import PartitionMeta
from rater.stream.clients import (
    ConfluentClients,
    KafkaClients,
    client_config,
    close_clients,
    consumer_config,
    producer_config,
    restore_partitions,
)
from rater.stream.inputs import InputBatch, collect_batch
from rater.stream.outputs import BatchOutput
from rater.stream.ownership import let_go, take_over
from rater.stream.partitioner import TenantPartitioner
from rater.stream.rate_messages import RatingContext, rate_messages
from rater.stream.summary import RunSummary
from rater.stream.topics import check_partition_count, ensure_job_topics
from rater.stream.transaction import Transaction
from sinks import DuckDBCatalog, LocalDirectory, MonthPartitionedDataset

__all__ = ["PublishError", "RaterJob", "RunSummary", "SinkError"]

log = logging.getLogger(__name__)

_MAX_BACKOFF_S = 30.0


class SinkError(TransientError):
    """Writing a batch's files failed (a full disk, a lost mount): the batch is aborted,
    rewound and tried again later, like an abortable Kafka error."""


class PublishError(TransientError):
    """A committed batch's files could not be moved into the dataset: they stay staged,
    and the partition's next owner publishes them (the job restarts its clients)."""

    out: BatchOutput


class RaterJob:
    """One member of the rater's consumer group.

    ``clients`` makes the Kafka clients (real ones by default); ``clock`` is the wall
    clock in seconds (it caps the dedupe watermark); ``sleep`` waits between retries.
    """

    def __init__(
        self,
        settings: Settings,
        tariff: Tariff,
        instance_id: str,
        *,
        clients: KafkaClients | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.tariff = tariff
        self.instance_id = instance_id
        self.clients: KafkaClients = clients or ConfluentClients()
        self.clock = clock
        self.sleep = sleep
        self.summary = RunSummary()
        self.held = RatingState.empty()
        self.meta: dict[int, PartitionMeta] = {}
        self.partitioner: TenantPartitioner | None = None
        self._stopping = False
        self._pending = InputBatch()
        self._idle_since = time.monotonic()
        self._failures = 0
        out = settings.output
        self.rated_sink = MonthPartitionedDataset(
            LocalDirectory(out.dataset_dir / "rated"), time_column="rating_time"
        )
        self.event_sink = MonthPartitionedDataset(
            LocalDirectory(out.dataset_dir / "events"), time_column="rating_time"
        )
        self.adjustment_sink = MonthPartitionedDataset(
            LocalDirectory(out.dataset_dir / "adjustments"), time_column="time"
        )
        self.catalog = (
            DuckDBCatalog.of(out.duckdb_path, out.dataset_dir) if out.duckdb_path else None
        )
        # Parquet writing runs outside the GIL: one thread overlaps it with producing.
        self._files = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sinks")
        self.consumer: Any = None
        self.producer: Any = None
        HEALTH.configure(settings.health_stall_s)
        self.txn: Transaction = Transaction(None, sleep)

    # -- the commit path ----------------------------------------------------------------

    def commit_batch(self, batch: InputBatch, token: str | None = None) -> BatchOutput:
        """Rate one batch and make its effects visible exactly once.

        1. rate: decode, rate CDRs and place adjustments against the held state (not adopted).
        2. write sinks: the batch's Parquet files are staged under ``token``, invisible to
           readers, by a background thread while 3 and 4 run; complete before 5.
        3. produce: rated records, balance events, dead letters and the state changelog
           (which names ``token``), all inside one Kafka transaction.
        4. send offsets: the input offsets after the batch join the same transaction.
        5. commit: outputs, changelog and offsets become visible together, or not at all;
           only then does this process adopt the new state.
        6. publish: the staged files are renamed into the dataset. A crash before this
           leaves them staged; the partition's next owner finds ``token`` as the last
           committed batch in the changelog and publishes them (sinks.parquet_dataset).
        """
        token = token or self._new_token()
        with observe.stage("rate", self.summary.stage_s):  # 1
            out = rate_messages(self._context(token), batch, self.held, self.meta)
        staged = self._files.submit(self._stage_files, out)  # 2
        try:
            with observe.stage("produce", self.summary.stage_s):  # 3
                self.txn.begin()
                self.txn.produce(out.blocks)
            with observe.stage("send_offsets", self.summary.stage_s):  # 4
                offsets = [TopicPartition(t, p, last + 1) for (t, p), last in batch.last.items()]
                if offsets:  # none when the batch only applies adjustments that waited
                    self.txn.send_offsets(offsets, self.consumer.consumer_group_metadata())
        finally:
            with observe.stage(
                "sinks", self.summary.stage_s
            ):  # never leave a file being written behind this function
                futures.wait([staged])
        _raise_sink_error(staged)
        with observe.stage("commit", self.summary.stage_s):  # 5
            self.txn.commit()
            self._adopt(out)
        with observe.stage("publish", self.summary.stage_s):  # 6
            try:
                self._publish(out.token)
            except PublishError as exc:
                exc.out = out
                raise
        return out

    def _context(self, token: str) -> RatingContext:
        if self.partitioner is None:
            raise TransientError("no partition count known yet: topics not checked")
        now_us = int(self.clock() * 1_000_000)
        return RatingContext(self.settings, self.tariff, self.partitioner, now_us, token)

    def _new_token(self) -> str:
        return f"{self.instance_id}-{uuid.uuid4().hex[:16]}"

    def _stage_files(self, out: BatchOutput) -> None:
        for sb in out.rated_sinks:
            self.rated_sink.stage(sb, out.token)
        for sb in out.event_sinks:
            self.event_sink.stage(sb, out.token)
        for sb in out.adjustment_sinks:
            self.adjustment_sink.stage(sb, out.token)

    def _publish(self, token: str) -> None:
        try:
            for sink in self._sinks():
                sink.publish(token)
        except OSError as exc:
            # Committed but not published: the next owner publishes it (recover).
            raise PublishError(f"publishing committed batch {token}: {exc}") from exc

    # -- the loop ------------------------------------------------------------------------

    def run(self, *, handle_signals: bool = True) -> RunSummary:
        if handle_signals:
            self._install_signal_handlers()
            self._stopping = self._stopping or signals.requested()
        try:
            self._run_sessions()
        finally:
            self._close_clients()
            self._files.shutdown(wait=True)
        if self.catalog is not None:
            self.catalog.refresh()
        return self.summary

    def _run_sessions(self) -> None:
        while not self._stopping:
            try:
                if self.partitioner is None:
                    self._ensure_topics()
                if not self._stopping:
                    self._session()
            except TerminalError:
                raise
            except KafkaException as exc:
                err = exc.args[0]
                level = logging.ERROR if err.fatal() or not err.retriable() else logging.WARNING
                log.log(level, "Kafka error, restarting clients: %s", err)
                self._restart()
            except Exception as exc:  # a transient error, or a bug: never a crash loop
                log.error("%s: %s; restarting clients", type(exc).__name__, exc)
                log.debug("details", exc_info=True)
                self._restart()

    def _restart(self) -> None:
        HEALTH.unassigned()  # new clients: a new assignment, its state restored again
        self._close_clients()
        self._backoff()

    def _backoff(self) -> None:
        self._failures += 1
        delay = min(_MAX_BACKOFF_S, 0.5 * 2 ** min(self._failures, 8))
        waited = 0.0
        while waited < delay and not self._stopping:
            HEALTH.turned()
            self.sleep(min(0.25, delay - waited))
            waited += 0.25

    def stop(self) -> None:
        HEALTH.stopping()
        self._stopping = True

    def _session(self) -> None:
        s = self.settings
        registry.prepare(s)  # the output schemas' ids, when a schema registry is configured
        self.producer = self.clients.producer(producer_config(s, self.instance_id))
        self.producer.init_transactions(60)  # fences a previous incarnation of this instance
        self.txn = Transaction(self.producer, self.sleep)
        if self._stopping:
            return
        conf = consumer_config(s, self.instance_id)
        conf.update(observe.consumer_observers())  # lag and broker reachability
        self.consumer = self.clients.consumer(conf)
        self.consumer.subscribe(
            self._input_topics(), on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        self._idle_since = time.monotonic()
        while not self._stopping:
            HEALTH.turned()
            batch = self._pending = InputBatch()
            started = time.perf_counter()
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
                    self._settle()
                    self._stopping = True
                continue
            self._idle_since = time.monotonic()
            self.summary.stage_s["collect"] += time.perf_counter() - started  # type: ignore[assignment]
            self._process(batch)

    def _settle(self) -> None:
        """The input is complete: adjustments still waiting for a CDR at or after their
        time apply now, after every CDR rated (a batch without input)."""
        if self.held.pending_adjustments().height:
            self._process(InputBatch(settle=True))

    def _process(self, batch: InputBatch) -> None:
        metrics.BATCH_RECORDS.observe(len(batch))
        if self.summary.busy_from is None:
            self.summary.busy_from = batch.received_at
        token = self._new_token()
        try:
            out = self.commit_batch(batch, token)
        except PublishError as exc:
            self.summary.record(exc.out)  # committed: it counts; recovery publishes its files
            raise
        except KafkaException as exc:
            err = exc.args[0]
            if not err.txn_requires_abort():
                raise
            self._abort(batch, token, f"transaction aborted ({err})")
            return
        except SinkError as exc:
            self._abort(batch, token, str(exc))
            self._backoff()
            return
        self._failures = 0
        metrics.TRANSACTIONS.labels("committed").inc()
        metrics.BATCHES.labels("committed").inc()
        log.debug("committed a batch of %d messages", len(batch))
        self.summary.record(out)
        self.summary.busy_until = time.monotonic()
        observe.batch_committed(self.held)

    def _abort(self, batch: InputBatch, token: str, why: str) -> None:
        """Abort the open transaction, forget the staged files, read the batch again."""
        log.warning("%s; rewinding %d partitions", why, len(batch.first))
        metrics.TRANSACTIONS.labels("aborted").inc()
        metrics.BATCHES.labels("aborted").inc()
        self.summary.aborted += 1
        self.txn.abort()
        for sink in self._sinks():
            sink.discard(token)
        for (topic, p), first in batch.first.items():
            self.consumer.seek(TopicPartition(topic, p, first))

    def _adopt(self, out: BatchOutput) -> None:
        self.held = out.held
        for p, live in out.live_keys.items():
            pm = self.meta.setdefault(p, PartitionMeta(generation=0))
            pm.live_keys = live
            pm.batches_since_snapshot = 0 if p in out.snapshotted else pm.batches_since_snapshot + 1

    def _sinks(self) -> tuple[MonthPartitionedDataset, ...]:
        return (self.rated_sink, self.event_sink, self.adjustment_sink)

    def _input_topics(self) -> list[str]:
        t = self.settings.topics
        return [t.cdrs, t.topups, t.adjustments]

    # -- partitions moving ---------------------------------------------------------------

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        cdrs = self.settings.topics.cdrs
        mine = [tp.partition for tp in partitions if tp.topic == cdrs]
        started = time.monotonic()
        HEALTH.assigning(mine)
        HEALTH.broker_ok()  # the group coordinator just answered
        assert self.partitioner is not None
        check_partition_count(consumer, cdrs, self.partitioner.partitions)
        restored = restore_partitions(
            self.settings, self.settings.topics.changelog, mine, clients=self.clients
        )
        for p, replayer in restored.items():
            self.held = take_over(self.held, p, replayer.state, self.partitioner)
            self.meta[p] = PartitionMeta(
                generation=replayer.end_offset, live_keys=replayer.live_keys
            )
            for topic in self._input_topics():
                for sink in self._sinks():
                    sink.recover(topic, p, replayer.last_batch)
        if mine:
            metrics.RESTORE_SECONDS.observe(time.monotonic() - started)
            log.info("assigned %s%s: state restored", cdrs, mine)
        observe.state_held(self.held)
        HEALTH.restored()
        self._idle_since = time.monotonic()  # idleness counts from the assignment on

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        self._pending.drop_partitions({(tp.topic, tp.partition) for tp in partitions})
        for tp in partitions:
            if tp.topic == self.settings.topics.cdrs and self.partitioner is not None:
                self.held = let_go(self.held, tp.partition, self.partitioner)
                self.meta.pop(tp.partition, None)
        HEALTH.unassigned()
        observe.forget_lag((tp.topic, tp.partition) for tp in partitions)
        observe.state_held(self.held)
        log.info("revoked %d partitions", len(partitions))

    # -- set-up and tear-down ------------------------------------------------------------

    def _ensure_topics(self) -> None:
        admin = self.clients.admin(client_config(self.settings))
        partitions = ensure_job_topics(admin, self.settings.topics)
        self.partitioner = TenantPartitioner(partitions, self.settings.kafka.partitioner)

    def _close_clients(self) -> None:
        consumer, producer, self.consumer, self.producer = self.consumer, self.producer, None, None
        close_clients(consumer, producer)
        self.held = RatingState.empty()
        self.meta.clear()

    def _install_signal_handlers(self) -> None:
        def handler(signum: int, frame: FrameType | None) -> None:
            log.info("signal %d: finishing the current batch, then stopping", signum)
            HEALTH.stopping()
            self._stopping = True

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


def _raise_sink_error(staged: futures.Future[None]) -> None:
    exc = staged.exception()
    if exc is not None:
        raise SinkError(f"writing the batch's files: {type(exc).__name__}: {exc}") from exc
