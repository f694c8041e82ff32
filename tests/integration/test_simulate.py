"""The simulator against a real broker: what is published decodes back to what was generated."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from rater import wire
from rater.cli import main
from rater.simulate import generate_cdrs, publish

pytestmark = pytest.mark.kafka

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("schema_id", [None, 11])
def test_published_cdrs_decode_back_to_the_generated_frame(
    tiny_tariff_dir: Path,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    consume_topic: Callable[..., list[Any]],
    schema_id: int | None,
) -> None:
    frame = generate_cdrs(tiny_tariff_dir, 3000, seed=8, now=NOW)
    topic = make_topic(partitions=3)
    stats = publish(frame, {"bootstrap.servers": kafka_bootstrap}, topic, schema_id=schema_id)
    assert stats.delivered == 3000 and stats.failed == 0
    msgs = consume_topic(topic, 3000)
    assert len(msgs) == 3000
    # Keyed by tenant: each tenant's records sit in one partition, in publish order.
    by_tenant: dict[bytes, set[int]] = {}
    for m in msgs:
        by_tenant.setdefault(m.key(), set()).add(m.partition())
    assert all(len(parts) == 1 for parts in by_tenant.values())
    msgs.sort(key=lambda m: (m.partition(), m.offset()))
    result = wire.decode_cdrs(
        [m.value() for m in msgs], framed=schema_id is not None, schema_id=schema_id
    )
    assert result.errors == []
    got = result.frame.sort("cdr_id")
    assert got.equals(frame.sort("cdr_id"))
    for tenant in ("acme", "globex", "initech"):
        in_order = result.frame.filter(result.frame["tenant_id"] == tenant)["cdr_id"]
        expected = frame.filter(frame["tenant_id"] == tenant)["cdr_id"]
        assert in_order.to_list() == expected.to_list()


def test_cli_publishes_with_bad_and_duplicate_records(
    tiny_tariff_dir: Path,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    consume_topic: Callable[..., list[Any]],
) -> None:
    topic = make_topic(partitions=2)
    argv = [
        "simulate", "--config", str(tiny_tariff_dir), "--topic", topic,
        "--bootstrap-servers", kafka_bootstrap, "--count", "2000", "--seed", "3",
        "--bad-fraction", "0.04", "--duplicate-fraction", "0.02",
    ]  # fmt: skip
    assert main(argv) == 0
    msgs = consume_topic(topic, 2000)
    assert len(msgs) == 2000
    result = wire.decode_cdrs([m.value() for m in msgs], framed=False)
    assert 20 < len(result.errors) < 80  # ~2% undecodable messages
    assert result.frame.height == 2000 - len(result.errors)
    assert result.frame["cdr_id"].n_unique() < result.frame.height  # resent records


def test_cli_publishes_json(
    tiny_tariff_dir: Path,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    consume_topic: Callable[..., list[Any]],
) -> None:
    topic = make_topic()
    argv = [
        "simulate", "--config", str(tiny_tariff_dir), "--topic", topic,
        "--bootstrap-servers", kafka_bootstrap, "--count", "200", "--format", "json",
    ]  # fmt: skip
    assert main(argv) == 0
    result = wire.decode_cdrs_json([m.value() for m in consume_topic(topic, 200)])
    assert result.errors == [] and result.frame.height == 200
