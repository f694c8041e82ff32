"""The findings of the hardening review, each through the whole commit path on in-memory
Kafka: absurd CDRs and top-ups, stray tenants in a changelog, topic settings."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import fastavro  # noqa: F401 - the rated records must read back with it (wire.decode_rated)
import polars as pl
from streamworld import World

from rater import wire
from rater.core.state import RatingState
from rater.stream.changelog import encode_entry, entry_messages
from rater.stream.partitioner import partition_for

BIG_TENANTS = ("acme", "globex")


def _one(world: World, **fields: object) -> dict[str, object]:
    base = world.cdrs(1, seed=99).row(0, named=True)
    return {**base, **fields}


def _publish(world: World, rows: list[dict[str, object]]) -> None:
    for row in rows:
        value = wire.encode_cdr(row)
        world.cluster.publish("cdrs", value, str(row["tenant_id"]).encode())


def test_long_callees_among_good_records_stop_nobody(world: World) -> None:
    good = world.cdrs(100, seed=1)
    world.publish_cdrs(good.head(50))
    long = [_one(world, cdr_id=f"long-{i}", callee="+" + "3" * (35 + i)) for i in range(3)]
    _publish(world, long)
    world.publish_cdrs(good.tail(50))
    summary = world.run()
    c = summary.counts
    assert c["consumed"] == 103 and c["invalid"] >= 3
    rated = world.rated()
    assert (
        rated.filter(pl.col("cdr_id").str.starts_with("long-")).get_column("reason").to_list()
        == ["bad_number"] * 3
    )


def test_absurd_times_are_invalid_or_dead_lettered_never_billed(world: World) -> None:
    start = datetime(2026, 9, 21, 10, tzinfo=UTC)
    rows = [
        _one(
            world,
            cdr_id="to-9999",
            kind="call",
            start_time=start,
            answer_time=start,
            end_time=datetime(9999, 12, 31, tzinfo=UTC),
        ),
        _one(
            world,
            cdr_id="from-1",
            kind="call",
            start_time=datetime(1, 1, 1, tzinfo=UTC),
            answer_time=None,
            end_time=start,
        ),
        _one(
            world,
            cdr_id="year-148959",
            kind="call",
            start_time=start,
            answer_time=None,
            end_time=4_638_000_000_000_000_000,
        ),  # micros: far beyond any calendar
        _one(
            world,
            cdr_id="long-day",
            kind="call",
            start_time=start,
            answer_time=start,
            end_time=datetime(2026, 9, 23, tzinfo=UTC),
        ),
    ]
    _publish(world, rows)
    summary = world.run()
    rated = world.rated()  # every produced record reads back with fastavro
    by_id = dict(rated.select("cdr_id", "reason").iter_rows())
    assert by_id == {"to-9999": "bad_times", "from-1": "bad_times", "long-day": "bad_times"}
    assert rated.get_column("charge_micros").sum() == 0
    assert [r for r, _ in world.dead_letters() if r != "bad_times"] == ["timestamp_out_of_range"]
    assert summary.counts["dead_lettered"] == 1
    months = {p.name for p in (world.root / "rated").glob("month=*")}
    assert months == {"month=undated", "month=2026-09"}


def test_hostile_topups_are_dead_lettered_and_good_ones_credited(world: World) -> None:
    now = datetime.fromtimestamp(world.clock.now, UTC)

    def topup(tid: str, amount: str, time: object = now, tenant: str = "tinyco") -> bytes:
        return wire.encode_topup(
            {
                "tenant_id": tenant,
                "topup_id": tid,
                "amount": amount,
                "source": "manual",
                "time": time,
            }
        )

    def send(value: bytes, tenant: str = "tinyco") -> None:
        world.cluster.publish("topups", value, tenant.encode())

    send(topup("huge", "1e30"))
    send(topup("nan", "NaN"))
    send(topup("neg", "-5"))
    send(topup("many", "1" + "0" * 40))
    send(topup("fine-print", "1.0000001"))
    send(topup("y9999", "5.00", datetime(9999, 1, 1, tzinfo=UTC)))
    send(topup("ok", "12.50"))
    send(topup("ok", "12.50"))  # a resend: credited once
    send(topup("postpaid", "5.00", tenant="acme"), tenant="acme")
    summary = world.run()
    reasons = sorted(r for r, _ in world.dead_letters())
    assert reasons == ["bad_amount"] * 5 + ["bad_time", "postpaid_tenant"]
    assert summary.counts["adjustment_applied"] == 1 and summary.counts["adjustment_duplicate"] == 1


def test_json_topups_with_iso_times_and_huge_numbers(world: World) -> None:
    world.settings = world.settings.model_copy(
        update={"stream": world.settings.stream.model_copy(update={"input_format": "json"})}
    )
    now = datetime.fromtimestamp(world.clock.now, UTC)
    good = {
        "tenant_id": "tinyco",
        "topup_id": "a",
        "amount": "3.00",
        "source": "manual",
        "time": now.isoformat(),
    }
    hostile = [
        {**good, "topup_id": "b", "amount": 1e30},
        {**good, "topup_id": "c", "time": "not a time"},
        {**good, "topup_id": "d", "time": 10**30},
        {**good, "topup_id": "e", "amount": "10" * 30},
        [1, 2, 3],
        {**good, "topup_id": "\ud800"},  # a lone surrogate: not text (was a crash loop)
    ]
    for item in [good, *hostile]:
        world.cluster.publish("topups", json.dumps(item).encode(), b"tinyco")
    world.cluster.publish("topups", b"\xff\xfe not json", b"tinyco")
    summary = world.run()
    assert summary.counts["adjustment_applied"] == 1
    assert len(world.dead_letters()) == 7


def test_stray_tenants_in_a_restored_changelog_are_dropped(world: World) -> None:
    """A changelog written before keys were checked may hold a tenant on the wrong
    partition; its stale copy must never overwrite the tenant's real state."""
    home = partition_for(b"tinyco", 3, "murmur2_random")
    stray = (home + 1) % 3
    stale = RatingState.of(balances=pl.DataFrame({"tenant_id": ["tinyco"], "balance_micros": [1]}))
    world.cluster.create_topic("rater-state-changelog", 3)
    for key, value in entry_messages("snap", "old", encode_entry(stale, "old")):
        world.cluster.publish("rater-state-changelog", value, key, partition=stray)
    cdr = world.cdrs(200, seed=5).filter(pl.col("tenant_id") == "tinyco").head(1)
    world.publish_cdrs(cdr)
    world.run()
    rated = world.rated()
    opening = 500_000  # tinyco opens with 0.50 (config/tenants.csv)
    assert (
        rated.get_column("balance_after_micros")[0]
        == opening - rated.get_column("charge_micros")[0]
    )


def test_topics_are_created_with_the_replication_factor(world: World) -> None:
    world.settings = world.settings.model_copy(
        update={"topics": world.settings.topics.model_copy(update={"replication_factor": 3})}
    )
    world.run()
    created = world.cluster.replication
    assert created and set(created.values()) == {3}
