"""Shared helpers of the streaming benchmarks: a broker, a topic, publishing, `rater run`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl
from confluent_kafka import Producer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rater import wire  # noqa: E402
from rater.devbroker import LocalBroker  # noqa: E402


@contextmanager
def broker() -> Iterator[str]:
    """KAFKA_BOOTSTRAP_SERVERS, or a local broker for the duration."""
    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if given:
        yield given
        return
    local = LocalBroker(heap="1g").start()
    try:
        yield local.bootstrap
    finally:
        local.stop()


def publish_frame(bootstrap: str, topic: str, frame: pl.DataFrame) -> None:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            # The rater checks that each tenant is on its murmur2 partition (the default).
            "partitioner": "murmur2_random",
            "linger.ms": 50,
            "batch.size": 1_000_000,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 2_000_000,
            "queue.buffering.max.kbytes": 2_000_000,
        }
    )
    # The wire format has no null for these two: null means the contract's default.
    frame = frame.with_columns(pl.col("segments").fill_null(1), pl.col("hold_ms").fill_null(0))
    values = wire.encode_cdrs(frame)
    keys = frame.get_column("tenant_id").to_list()
    for key, value in zip(keys, values, strict=True):
        while True:
            try:
                producer.produce(topic, value=value, key=key.encode())
                break
            except BufferError:
                producer.poll(0.1)
    producer.flush()


def rater_env(
    bootstrap: str, topic: str, tariff: Path, workdir: Path, **extra: str
) -> dict[str, str]:
    name = f"b{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "RATER_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "RATER_TARIFF_DIR": str(tariff),
        "RATER_TOPICS__CDRS": topic,
        "RATER_TOPICS__TOPUPS": f"{topic}-topups",
        "RATER_TOPICS__RATED": f"{name}-rated",
        "RATER_TOPICS__EVENTS": f"{name}-events",
        "RATER_TOPICS__DEAD_LETTER": f"{name}-dlq",
        "RATER_TOPICS__CHANGELOG": f"{name}-changelog",
        "RATER_STREAM__GROUP_ID": name,
        "RATER_STREAM__INSTANCE_ID": name,
        "RATER_STREAM__IDLE_EXIT_S": "3",
        "RATER_OUTPUT__DATASET_DIR": str(workdir / name),
        "RATER_OUTPUT__DUCKDB_PATH": str(workdir / name / "rater.duckdb"),
        "RATER_METRICS_PORT": "0",
        "RATER_LOG_LEVEL": "WARNING",
    }
    env.update(extra)
    return env


def run_rater(env: dict[str, str], profile: Path | None = None) -> tuple[str, int]:
    """Run `rater run` to completion (under cProfile into ``profile`` when given); its
    stdout and peak RSS in MB."""
    profiler = ["-m", "cProfile", "-o", str(profile)] if profile else []
    proc = subprocess.Popen(
        [sys.executable, *profiler, "-m", "rater", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    stdout = proc.stdout.read() if proc.stdout else ""
    stderr = proc.stderr.read() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"rater run failed:\n{stdout}\n{stderr[-3000:]}")
    return stdout, usage.ru_maxrss // 1024


def busy_rate(stdout: str) -> tuple[float, int]:
    m = re.search(r"busy ([\d.]+)s .*?: ([\d,]+) CDRs/s", stdout)
    consumed = re.search(r"consumed (\d+)", stdout)
    assert m and consumed, stdout
    return float(m.group(2).replace(",", "")), int(consumed.group(1))
