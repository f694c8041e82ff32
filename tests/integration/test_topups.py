"""Top-ups from their own topic: credited once per topup_id, in order, re-arming events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from rater import wire
from rater.core.columns import CDR_SCHEMA
from rater.stream.job import RaterJob
from rater.tariff_files import load_tariff
from tests.integration.streamkit import (
    EXAMPLE_CONFIG,
    StreamEnv,
    cdr_items,
    create_topics,
    publish,
    rated_frame,
    read_topic,
)

pytestmark = pytest.mark.kafka


def _calls(first: int, n: int) -> pl.DataFrame:
    """n half-hour calls of tinyco (prepaid, opening 0.50, threshold 0.40) to Italy."""
    t0 = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)
    starts = [t0 + timedelta(hours=i) for i in range(first, first + n)]
    return pl.DataFrame(
        {
            "cdr_id": [f"call-{i}" for i in range(first, first + n)],
            "tenant_id": ["tinyco"] * n,
            "user_id": [None] * n,
            "team_id": [None] * n,
            "kind": ["call"] * n,
            "direction": ["outbound"] * n,
            "caller": ["+33100000000"] * n,
            "callee": ["+390612345678"] * n,
            "start_time": starts,
            "answer_time": starts,
            "end_time": [s + timedelta(minutes=30) for s in starts],
            "hold_ms": [0] * n,
            "segments": [1] * n,
        },
        schema=CDR_SCHEMA,
    )


def _run(env: StreamEnv) -> None:
    RaterJob(env.settings(RATER_STREAM__IDLE_EXIT_S="2"), load_tariff(EXAMPLE_CONFIG), "a").run(
        handle_signals=False
    )


def test_topups_are_credited_once_and_rearm_the_events(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    env = StreamEnv(kafka_bootstrap, f"u{uuid.uuid4().hex[:8]}", tmp_path / "out")
    create_topics(env)
    topup = {
        "tenant_id": "tinyco",
        "topup_id": "t-1",
        "amount": "10.00",
        "source": "auto_recharge",
        "time": datetime(2026, 11, 18, 12, 0, tzinfo=UTC),
    }

    publish(env.bootstrap, env.topic("cdrs"), cdr_items(_calls(0, 3)))
    _run(env)  # 0.50 - 3 * 0.48: low_balance and exhausted
    value = wire.encode_topup(topup)
    # Resent by the billing system: the same topup_id must be credited once.
    publish(env.bootstrap, env.topic("topups"), [(b"tinyco", value), (b"tinyco", value)])
    publish(
        env.bootstrap,
        env.topic("topups"),
        [(b"ghost", wire.encode_topup({**topup, "tenant_id": "ghost"}))],
    )
    _run(env)
    publish(env.bootstrap, env.topic("cdrs"), cdr_items(_calls(3, 30)))
    _run(env)  # each run restores the state the previous one committed

    rated = rated_frame(read_topic(env.bootstrap, env.topic("rated"))).sort("cdr_id")
    charges = rated.get_column("charge_micros").sum()
    assert rated.get_column("status").unique().to_list() == ["rated"]
    events = [
        wire.decode_balance_event(m.value()) for m in read_topic(env.bootstrap, env.topic("events"))
    ]
    assert [e["event"] for e in events] == ["low_balance", "exhausted", "low_balance", "exhausted"]
    final = rated.filter(pl.col("cdr_id") == "call-32").get_column("balance_after_micros").item()
    assert final == 500_000 + 10_000_000 - charges, "the top-up was credited exactly once"
    dlq = read_topic(env.bootstrap, env.topic("dlq"))
    assert [dict(m.headers())["rater.reason"] for m in dlq] == [b"unknown_tenant"]
