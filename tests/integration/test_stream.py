"""`rater run` against a real Kafka broker: same output as `rater rate-file`, exactly once
through crashes, rescaling and a broker restart, and bad input dead-lettered."""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from rater import wire
from rater.batch import rate_file
from rater.core.columns import CDR_SCHEMA, EVENT_SCHEMA, RATED_EXTRA_SCHEMA
from rater.core.rating import balances_frame
from rater.core.state import RatingState
from rater.devbroker import LocalBroker
from rater.simulate import encode_cdrs_json, generate_cdrs
from rater.stream.clients import restore_partition
from rater.stream.job import RaterJob
from rater.tariff_files import load_tariff
from tests.integration.streamkit import (
    EXAMPLE_CONFIG,
    SlowPublisher,
    StreamEnv,
    cdr_items,
    create_topics,
    publish,
    rated_frame,
    read_topic,
    start_rater,
)

pytestmark = pytest.mark.kafka

COMPARED = [*CDR_SCHEMA, *RATED_EXTRA_SCHEMA]


@pytest.fixture
def stream_env(kafka_bootstrap: str, tmp_path: Path) -> StreamEnv:
    env = StreamEnv(kafka_bootstrap, f"s{uuid.uuid4().hex[:8]}", tmp_path / "out")
    create_topics(env)
    return env


def _cdrs(count: int, seed: int) -> pl.DataFrame:
    return generate_cdrs(EXAMPLE_CONFIG, count=count, seed=seed, duplicate_fraction=0.02)


def _reference(
    frame: pl.DataFrame, tmp_path: Path, adjustments: Path | None = None
) -> dict[str, pl.DataFrame]:
    """What `rater rate-file` makes of the same records in the same order."""
    src = tmp_path / "input.parquet"
    frame.select(list(CDR_SCHEMA)).write_parquet(src)
    out = tmp_path / "reference"
    rate_file(EXAMPLE_CONFIG, src, out, adjustments_path=adjustments)
    names = ("rated", "events", "balances", "adjustments")
    return {n: pl.read_parquet(out / f"{n}.parquet") for n in names}


def _canonical(rated: pl.DataFrame, like: pl.DataFrame) -> pl.DataFrame:
    return rated.select(pl.col(c).cast(like.schema[c]) for c in COMPARED).sort(COMPARED)


def _events(messages: list[Any]) -> pl.DataFrame:
    rows = [wire.decode_balance_event(m.value()) for m in messages]
    frame = (
        pl.DataFrame(rows, schema_overrides=EVENT_SCHEMA)
        if rows
        else pl.DataFrame(schema=EVENT_SCHEMA)
    )
    return frame.select(list(EVENT_SCHEMA)).sort("tenant_id", "cdr_id", "event")


def _stream_balances(env: StreamEnv) -> pl.DataFrame:
    """Balances as the changelog has them: what a new owner of each partition restores."""
    settings = env.settings()
    state = RatingState.empty()
    for p in range(env.partitions):
        state = state.merge(restore_partition(settings, env.topic("changelog"), p).state)
    return balances_frame(load_tariff(EXAMPLE_CONFIG), state)


def _assert_exactly_once(
    env: StreamEnv, published: pl.DataFrame, tmp_path: Path, adjustments: Path | None = None
) -> dict[str, pl.DataFrame]:
    ref = _reference(published, tmp_path, adjustments)
    messages = read_topic(env.bootstrap, env.topic("rated"))
    rated = rated_frame(messages)
    offsets = rated.select("source_partition", "source_offset")
    assert offsets.is_unique().all(), "a consumed record was rated twice"
    assert rated.height == published.height, "a consumed record is missing"
    assert _canonical(rated, ref["rated"]).equals(_canonical(ref["rated"], ref["rated"]))
    assert _events(read_topic(env.bootstrap, env.topic("events"))).equals(
        ref["events"].select(list(EVENT_SCHEMA)).sort("tenant_id", "cdr_id", "event")
    )
    assert _stream_balances(env).equals(ref["balances"])
    _assert_dataset_exactly_once(env, ref["rated"])
    return ref


def _assert_dataset_exactly_once(env: StreamEnv, ref: pl.DataFrame) -> None:
    """The Parquet dataset and its DuckDB view hold each consumed record once, as rated,
    and nothing of an uncommitted attempt is left anywhere."""
    files = sorted((env.out / "rated").glob("month=*/*.parquet"))
    rows = pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")
    assert rows.select("source_partition", "source_offset").is_unique().all()
    assert _canonical(rows, ref).equals(_canonical(ref, ref))
    assert not [p for p in env.out.rglob("_staging/**/*") if p.is_file()], "staged files left"
    assert not list(env.out.rglob("*.tmp")), "temporary files left"
    con = duckdb.connect(str(env.out / "rater.duckdb"), read_only=True)
    try:
        (n, micros) = con.execute(  # type: ignore[misc]
            "SELECT count(*), sum(charge_micros) FROM rated_usage"
        ).fetchone()
    finally:
        con.close()
    assert n == ref.height
    assert micros == ref.get_column("charge_micros").sum()


def _wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1.0)
    raise AssertionError(f"timed out waiting for {what}")


def _rated_count(env: StreamEnv) -> int:
    return len(read_topic(env.bootstrap, env.topic("rated")))


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0


def test_run_gives_the_same_output_as_rate_file(stream_env: StreamEnv, tmp_path: Path) -> None:
    published = _cdrs(4_000, seed=11)
    publish(stream_env.bootstrap, stream_env.topic("cdrs"), cdr_items(published))
    settings = stream_env.settings(RATER_STREAM__IDLE_EXIT_S="3")
    summary = RaterJob(settings, load_tariff(EXAMPLE_CONFIG), "a").run(handle_signals=False)

    reference = _assert_exactly_once(stream_env, published, tmp_path)
    ref = reference["rated"]
    assert sum(summary.events.values()) == reference["events"].height > 0
    c = summary.counts
    assert c["consumed"] == published.height
    assert c["consumed"] == sum(
        c[s] for s in ("rated", "unrated", "duplicate", "invalid", "dead_lettered")
    )
    assert c["duplicate"] > 0 and c["rated"] > 0
    # The Parquet dataset and its DuckDB views hold the same records.
    con = duckdb.connect(str(stream_env.out / "rater.duckdb"), read_only=True)
    (n, micros) = con.execute("SELECT count(*), sum(charge_micros) FROM rated_usage").fetchone()  # type: ignore[misc]
    assert n == published.height
    assert micros == ref.get_column("charge_micros").sum()


def _adjustment_records(published: pl.DataFrame, count: int, seed: int) -> list[dict[str, Any]]:
    """Top-ups, refunds and charges of the prepaid tenants over the traffic's time span."""
    rng = random.Random(seed)
    first, last = published["start_time"].min(), published["start_time"].max()
    span = int((last - first).total_seconds())  # type: ignore[operator]
    records = []
    for i in range(count):
        kind = rng.choice(["topup", "topup", "refund", "charge"])
        records.append(
            {
                "tenant_id": rng.choice(["globex", "tinyco", "wayne", "umbrella", "stark"]),
                "adjustment_id": f"adj-{i}",
                "kind": kind,
                "amount": f"{rng.randint(1, 300)}.{rng.randint(0, 99):02d}",
                "time": first + timedelta(seconds=rng.randint(-600, span + 600)),
                "source": "manual" if kind == "topup" else None,
                "reason": "goodwill" if kind == "refund" else None,
                "product_id": "did" if kind == "charge" else None,
                "line_type": "recurring" if kind == "charge" else None,
            }
        )
    return records


def _publish_adjustments(env: StreamEnv, records: list[dict[str, Any]]) -> None:
    """Top-ups alternately on the top-ups topic (their own schema) and the adjustments
    topic; the rest on the adjustments topic; a few sent twice."""
    topups, others = [], []
    for i, rec in enumerate(records + records[:5]):
        key = rec["tenant_id"].encode()
        if rec["kind"] == "topup" and i % 2:
            topup = {k: rec[k] for k in ("tenant_id", "amount", "source", "time")}
            topups.append((key, wire.encode_topup({**topup, "topup_id": rec["adjustment_id"]})))
        else:
            others.append((key, wire.encode_adjustment(rec)))
    publish(env.bootstrap, env.topic("topups"), topups)
    publish(env.bootstrap, env.topic("adjustments"), others)


def _adjustments_file(records: list[dict[str, Any]], path: Path) -> Path:
    pl.DataFrame(
        [{**r, "time": r["time"].isoformat()} for r in records], infer_schema_length=None
    ).write_csv(path)
    return path


def test_adjustments_apply_as_rate_file_applies_them(stream_env: StreamEnv, tmp_path: Path) -> None:
    """Adjustments consumed before the CDRs they fall among: the stream places each one
    just as `rate-file --adjustments` does over the whole file."""
    published = _cdrs(6_000, seed=13)
    records = _adjustment_records(published, 40, seed=13)
    _publish_adjustments(stream_env, records)
    tariff = load_tariff(EXAMPLE_CONFIG)
    first = RaterJob(stream_env.settings(), tariff, "a")  # no idle exit: nothing settles
    runner = threading.Thread(target=first.run, kwargs={"handle_signals": False})
    runner.start()
    _wait_for(lambda: first.summary.batches >= 1, 120, "the adjustments batch to commit")
    first.stop()
    runner.join(120)
    assert first.summary.counts["adjustment_applied"] == 0, "all wait for their CDRs"
    publish(stream_env.bootstrap, stream_env.topic("cdrs"), cdr_items(published))
    settings = stream_env.settings(
        RATER_STREAM__IDLE_EXIT_S="3", RATER_STREAM__BATCH_MAX_RECORDS="700"
    )
    RaterJob(settings, tariff, "a").run(handle_signals=False)

    ref = _assert_exactly_once(
        stream_env, published, tmp_path, _adjustments_file(records, tmp_path / "adj.csv")
    )
    files = sorted((stream_env.out / "adjustments").glob("month=*/*.parquet"))
    written = pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")
    keys = ["tenant_id", "adjustment_id", "kind", "amount_micros", "balance_after_micros"]
    applied = ref["adjustments"].filter(pl.col("status") == "applied")
    assert written.select(keys).sort(keys).equals(applied.select(keys).sort(keys))
    assert ref["events"].filter(pl.col("cdr_id").str.starts_with("adj-")).height > 0


def test_bad_input_is_dead_lettered_and_counts_add_up(
    stream_env: StreamEnv, tmp_path: Path
) -> None:
    good = _cdrs(300, seed=5).with_columns(pl.col("tenant_id").alias("tenant_id"))
    framed = [(k, wire.frame_message(v, 1)) for k, v in cdr_items(good)]
    body = framed[0][1]
    broken = good.head(1).with_columns(
        pl.lit("broken-1").alias("cdr_id"),
        (pl.col("start_time") - pl.duration(hours=1)).alias("end_time"),
    )
    bad = [
        (b"acme", b"\x00\x00\x00\x00\x01garbage bytes that are not avro at all \xff\xff\xff"),
        (b"acme", body[: len(body) // 2]),  # truncated Avro
        (b"acme", b"\x07" + body[1:]),  # wrong magic byte
        (b"acme", body[:1] + (99).to_bytes(4, "big") + body[5:]),  # unknown schema id
        (b"acme", b""),
        # Invalid (ends before it starts), keyed by its own tenant so that it is not misrouted.
        (cdr_items(broken)[0][0], wire.frame_message(cdr_items(broken)[0][1], 1)),
    ]
    items = framed[:100] + bad[:3] + framed[100:200] + bad[3:] + framed[200:]
    publish(stream_env.bootstrap, stream_env.topic("cdrs"), items)
    settings = stream_env.settings(
        RATER_STREAM__IDLE_EXIT_S="3", RATER_KAFKA__CONFLUENT_FRAMING="true"
    )
    summary = RaterJob(settings, load_tariff(EXAMPLE_CONFIG), "a").run(handle_signals=False)

    c = summary.counts
    assert c["consumed"] == len(items)
    assert c["dead_lettered"] == 5
    assert c["invalid"] >= 1
    assert c["consumed"] == sum(
        c[s] for s in ("rated", "unrated", "duplicate", "invalid", "dead_lettered")
    )
    dlq = read_topic(stream_env.bootstrap, stream_env.topic("dlq"))
    reasons = sorted(dict(m.headers())["rater.reason"].decode() for m in dlq)
    assert {"bad_magic_byte", "unknown_schema_id", "empty_message", "bad_times"} <= set(reasons)
    assert len(dlq) == c["dead_lettered"] + c["invalid"]
    sent = {v for _, v in bad}
    for m in dlq:
        h = dict(m.headers())
        assert h["rater.source.topic"].decode() == stream_env.topic("cdrs")
        assert int(h["rater.source.offset"]) >= 0
    assert sent - {b""} <= {m.value() for m in dlq if m.value()}
    rated = rated_frame(read_topic(stream_env.bootstrap, stream_env.topic("rated")), framed=True)
    assert rated.height == len(items) - c["dead_lettered"]


def test_exactly_once_through_repeated_kill_9(stream_env: StreamEnv, tmp_path: Path) -> None:
    published = _cdrs(30_000, seed=21)
    switch = SlowPublisher(
        stream_env.bootstrap, stream_env.topic("cdrs"), cdr_items(published), 1_000
    )
    rng = random.Random(7)
    log = tmp_path / "rater.log"
    kills = 0
    while kills < 5:
        proc = start_rater(stream_env, "a", log)
        time.sleep(rng.uniform(2.0, 6.0))
        if proc.poll() is not None:
            pytest.fail(f"the rater exited by itself: see {log}")
        proc.kill()  # SIGKILL: no chance to finish the batch or leave the group
        proc.wait()
        kills += 1
    proc = start_rater(stream_env, "a", log)
    try:
        switch.join()
        _wait_for(lambda: _rated_count(stream_env) >= published.height, 240, "every record rated")
    finally:
        _stop(proc)
    _assert_exactly_once(stream_env, published, tmp_path)


def test_scale_out_and_back(stream_env: StreamEnv, tmp_path: Path) -> None:
    published = _cdrs(20_000, seed=31)
    switch = SlowPublisher(
        stream_env.bootstrap, stream_env.topic("cdrs"), cdr_items(published), 1_000
    )
    log = tmp_path / "rater.log"
    a = start_rater(stream_env, "a", log)
    time.sleep(6)
    b = start_rater(stream_env, "b", log)  # 1 -> 2 processes
    time.sleep(8)
    _stop(a)  # 2 -> 1: b takes every partition over
    try:
        switch.join()
        _wait_for(lambda: _rated_count(stream_env) >= published.height, 240, "every record rated")
    finally:
        _stop(b)
    _assert_exactly_once(stream_env, published, tmp_path)


def test_broker_restart_during_a_run(
    stream_env: StreamEnv, kafka_broker: LocalBroker | None, tmp_path: Path
) -> None:
    if kafka_broker is None:
        pytest.skip("restarting the broker needs the suite's own local broker")
    published = _cdrs(20_000, seed=41)
    switch = SlowPublisher(
        stream_env.bootstrap, stream_env.topic("cdrs"), cdr_items(published), 1_000
    )
    log = tmp_path / "rater.log"
    proc = start_rater(stream_env, "a", log)
    try:
        time.sleep(6)
        kafka_broker.restart()
        switch.join()
        _wait_for(lambda: _rated_count(stream_env) >= published.height, 240, "every record rated")
    finally:
        _stop(proc)
    _assert_exactly_once(stream_env, published, tmp_path)


def test_json_cdrs_rate_like_avro(stream_env: StreamEnv, tmp_path: Path) -> None:
    published = _cdrs(1_500, seed=13)
    values = encode_cdrs_json(published)
    keys = [t.encode() for t in published.get_column("tenant_id").to_list()]
    publish(stream_env.bootstrap, stream_env.topic("cdrs"), list(zip(keys, values, strict=True)))
    publish(stream_env.bootstrap, stream_env.topic("cdrs"), [(b"acme", b"{not json")])
    settings = stream_env.settings(RATER_STREAM__IDLE_EXIT_S="3", RATER_STREAM__INPUT_FORMAT="json")
    summary = RaterJob(settings, load_tariff(EXAMPLE_CONFIG), "a").run(handle_signals=False)

    assert summary.counts["dead_lettered"] == 1
    _assert_exactly_once(stream_env, published, tmp_path)


@pytest.mark.parametrize("delay_s", [0.0, 0.2, 0.6, 1.5, 4.0])
def test_sigterm_during_start_up_exits_0_and_writes_nothing_half(
    stream_env: StreamEnv, tmp_path: Path, delay_s: float
) -> None:
    publish(stream_env.bootstrap, stream_env.topic("cdrs"), cdr_items(_cdrs(2_000, seed=3)))
    log = tmp_path / "rater.log"
    # Held until the rater's code runs: a signal at any moment of start-up, even the first.
    proc = start_rater(stream_env, "a", log, signals_held=True)
    time.sleep(delay_s)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(90) == 0, log.read_text()
    text = log.read_text()
    assert "Traceback" not in text
    assert not [p for p in stream_env.out.rglob("_staging/**/*") if p.is_file()]
    assert not list(stream_env.out.rglob("*.tmp"))
