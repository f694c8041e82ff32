"""Helpers for the streaming tests: publish CDRs, read topics back, run the rater."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from rater import wire
from rater.core.columns import CDR_SCHEMA
from rater.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = REPO / "config"


@dataclass(frozen=True)
class StreamEnv:
    """Unique topic names, group and output folder of one streaming test."""

    bootstrap: str
    name: str
    out: Path
    partitions: int = 3

    def env(self, instance: str = "a", **extra: str) -> dict[str, str]:
        env = {
            "RATER_KAFKA__BOOTSTRAP_SERVERS": self.bootstrap,
            "RATER_TARIFF_DIR": str(EXAMPLE_CONFIG),
            "RATER_TOPICS__CDRS": f"{self.name}-cdrs",
            "RATER_TOPICS__TOPUPS": f"{self.name}-topups",
            "RATER_TOPICS__ADJUSTMENTS": f"{self.name}-adjustments",
            "RATER_TOPICS__RATED": f"{self.name}-rated",
            "RATER_TOPICS__EVENTS": f"{self.name}-events",
            "RATER_TOPICS__DEAD_LETTER": f"{self.name}-dlq",
            "RATER_TOPICS__CHANGELOG": f"{self.name}-changelog",
            "RATER_TOPICS__PARTITIONS": str(self.partitions),
            "RATER_STREAM__GROUP_ID": f"{self.name}-group",
            "RATER_STREAM__INSTANCE_ID": f"{self.name}-{instance}",
            "RATER_STREAM__BATCH_MAX_RECORDS": "2000",
            "RATER_STREAM__BATCH_MAX_WAIT_MS": "200",
            "RATER_STREAM__SNAPSHOT_EVERY_BATCHES": "4",
            "RATER_OUTPUT__DATASET_DIR": str(self.out),
            "RATER_OUTPUT__DUCKDB_PATH": str(self.out / "rater.duckdb"),
            "RATER_METRICS_PORT": "0",
        }
        env.update(extra)
        return env

    def settings(self, instance: str = "a", **extra: str) -> Settings:
        saved = dict(os.environ)
        try:
            os.environ.update(self.env(instance, **extra))
            return load_settings()
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def topic(self, kind: str) -> str:
        return f"{self.name}-{kind}"


def create_topics(env: StreamEnv) -> None:
    from rater.stream.topics import TopicSpec, ensure_topics

    ensure_topics(
        {"bootstrap.servers": env.bootstrap},
        [
            TopicSpec(env.topic("cdrs"), env.partitions),
            TopicSpec(env.topic("topups"), env.partitions),
            TopicSpec(env.topic("adjustments"), env.partitions),
        ],
    )


def publish(
    bootstrap: str,
    topic: str,
    items: Sequence[tuple[bytes | None, bytes | None]],
) -> None:
    """Produce (key, value) pairs in order with the default partitioner, then flush."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "enable.idempotence": True,
            # What the rater expects of producers keyed by tenant (its default partitioner).
            "partitioner": "murmur2_random",
        }
    )
    for key, value in items:
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(60) == 0


def cdr_items(frame: pl.DataFrame) -> list[tuple[bytes | None, bytes | None]]:
    values = wire.encode_cdrs(frame.select(list(CDR_SCHEMA)))
    keys = [t.encode() for t in frame.get_column("tenant_id").to_list()]
    return list(zip(keys, values, strict=True))


def read_topic(bootstrap: str, topic: str, timeout_s: float = 60.0) -> list[Any]:
    """Every committed message of ``topic``, in partition then offset order."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    parts = admin.list_topics(topic, timeout=30).topics[topic].partitions
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{time.time_ns()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        pending = set(parts)
        out: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            for m in consumer.consume(10_000, timeout=1.0):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.discard(m.partition())
                        continue
                    raise RuntimeError(str(err))
                out.append(m)
        assert not pending, f"could not read {topic} to its end"
        return sorted(out, key=lambda m: (m.partition(), m.offset()))
    finally:
        consumer.close()


def rated_frame(messages: list[Any], *, framed: bool = False) -> pl.DataFrame:
    rows = [wire.decode_rated(m.value(), framed=framed) for m in messages]
    return pl.DataFrame(rows, infer_schema_length=None)


def start_rater(
    env: StreamEnv, instance: str, log: Path, *, signals_held: bool = False, **extra: str
) -> subprocess.Popen[bytes]:
    """``rater run`` in a child process. ``signals_held``: start it with SIGTERM and SIGINT
    blocked, so that one sent at once stays pending until the rater's own code runs."""
    import signal

    full = {**os.environ, **env.env(instance, **extra)}

    def hold() -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})

    with open(log, "ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "rater", "run"],
            env=full,
            stdout=fh,
            stderr=subprocess.STDOUT,
            preexec_fn=hold if signals_held else None,
        )


class SlowPublisher:
    """Publishes items in order, ``per_second`` at a time, from a background thread:
    the switch keeps sending while the rater is killed, rescaled or the broker restarts."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        items: Sequence[tuple[bytes | None, bytes | None]],
        per_second: int,
    ) -> None:
        import threading

        self.error: BaseException | None = None
        self._args = (bootstrap, topic, items, per_second)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        bootstrap, topic, items, per_second = self._args
        try:
            for start in range(0, len(items), per_second):
                began = time.monotonic()
                publish(bootstrap, topic, items[start : start + per_second])
                time.sleep(max(0.0, 1.0 - (time.monotonic() - began)))
        except BaseException as exc:  # reported by join()
            self.error = exc

    def join(self, timeout_s: float = 300.0) -> None:
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the publisher did not finish"
        if self.error is not None:
            raise self.error
