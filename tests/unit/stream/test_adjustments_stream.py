"""Balance adjustments through the streaming job on in-memory Kafka: the same sequence of
debits and credits as one batch of the whole input (what `rate-file --adjustments` does),
whatever the batches, crashes and restarts; each adjustment applied and written once."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import polars as pl
import pytest
from streamworld import World, canonical

from rater import wire
from rater.core.columns import CDR_SCHEMA, EVENT_SCHEMA
from rater.core.rating import RatingResult, balances_frame, rate_batch
from rater.core.state import RatingState
from rater.stream.testing import Crash
from tests.builders import adjustment_frame

PREPAID = ("globex", "tinyco", "wayne", "umbrella", "stark")


def _adjustments(published: pl.DataFrame, count: int, seed: int) -> list[dict[str, Any]]:
    """Top-ups, refunds and charges over the traffic's time span (and a few after it, with
    no CDR to wait for), some resent, some for postpaid tenants."""
    rng = random.Random(seed)
    first = published.get_column("start_time").min()
    last = published.get_column("start_time").max()
    assert first is not None and last is not None
    span = int((last - first).total_seconds())  # type: ignore[operator]
    out = []
    for i in range(count):
        kind = rng.choice(["topup", "topup", "refund", "charge"])
        rec = {
            "tenant_id": rng.choice([*PREPAID, *PREPAID, "acme", "hooli"]),
            "adjustment_id": f"adj-{i}",
            "kind": kind,
            "amount": f"{rng.randint(1, 40_000)}.{rng.randint(0, 99):02d}",
            "time": first + timedelta(seconds=rng.randint(-3_600, span + 7_200)),
            "source": rng.choice(["manual", "auto_recharge"]) if kind == "topup" else None,
            "reason": "goodwill" if kind == "refund" else None,
            "product_id": "did" if kind == "charge" else None,
            "line_type": "recurring" if kind == "charge" else None,
        }
        out.append(rec)
    return out + rng.sample(out, k=count // 10)  # resent: applied once


def _publish(world: World, records: list[dict[str, Any]]) -> None:
    for rec in records:
        world.cluster.publish("adjustments", wire.encode_adjustment(rec), rec["tenant_id"].encode())


def _reference(world: World, cdrs: pl.DataFrame, records: list[dict[str, Any]]) -> RatingResult:
    frame = adjustment_frame(
        [
            {
                **{k: v for k, v in rec.items() if k != "amount"},
                "amount_micros": int(pl.Series([rec["amount"]]).str.to_decimal(scale=6)[0] * 10**6),
            }
            for rec in records
        ]
    )
    return rate_batch(
        world.tariff, cdrs.select(list(CDR_SCHEMA)), RatingState.empty(), adjustments=frame
    )


def _applied_files(world: World) -> pl.DataFrame:
    files = sorted((world.root / "adjustments").glob("month=*/*.parquet"))
    rows = pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")
    return rows.select("tenant_id", "adjustment_id", "status", "balance_after_micros")


def _events(world: World) -> pl.DataFrame:
    rows = [wire.decode_balance_event(m.value()) for m in world.cluster.messages("balance-events")]
    frame = pl.DataFrame(
        rows or None, schema_overrides=EVENT_SCHEMA, schema=None if rows else EVENT_SCHEMA
    ).select(list(EVENT_SCHEMA))
    return frame.sort("tenant_id", "cdr_id", "event")


def _restored(world: World) -> RatingState:
    """The state every partition's next owner restores from the changelog."""
    from rater.stream.clients import restore_partitions

    replayers = restore_partitions(
        world.settings, "rater-state-changelog", [0, 1, 2], clients=world.cluster
    )
    state = RatingState.empty()
    for replayer in replayers.values():
        state = state.merge(replayer.state)
    return state


def _check(world: World, ref: RatingResult) -> None:
    final_state = _restored(world)
    assert canonical(world.rated()).equals(canonical(ref.rated))
    assert _events(world).equals(ref.events.sort("tenant_id", "cdr_id", "event"))
    assert balances_frame(world.tariff, final_state).equals(balances_frame(world.tariff, ref.state))
    applied = ref.adjustments.filter(pl.col("status") == "applied").select(
        "tenant_id", "adjustment_id", "status", "balance_after_micros"
    )
    files = _applied_files(world)
    assert files.select("tenant_id", "adjustment_id").is_unique().all(), "written twice"
    keys = ["tenant_id", "adjustment_id"]
    assert files.sort(keys).equals(applied.sort(keys))
    assert final_state.pending_adjustments().height == 0


def test_a_backlog_of_adjustments_and_cdrs_rates_as_one_batch(world: World) -> None:
    cdrs = world.cdrs(2_400, seed=21, duplicate_fraction=0.02)
    records = _adjustments(cdrs, 60, seed=21)
    _publish(world, records)  # consumed first: the condition under which both agree
    world.publish_cdrs(cdrs)
    summary = world.run()
    ref = _reference(world, cdrs, records)
    _check(world, ref)
    statuses = dict(ref.adjustments.group_by("status").len().iter_rows())
    assert summary.counts["adjustment_applied"] == statuses["applied"]
    assert summary.counts["adjustment_duplicate"] == statuses["duplicate"]
    # What the core ignores (a top-up or charge of a postpaid tenant), the job dead-letters.
    letters = [m for m in world.cluster.messages("cdrs-dlq") if m.topic() == "cdrs-dlq"]
    assert len(letters) == statuses["ignored"] > 0
    assert ref.events.filter(pl.col("cdr_id").str.starts_with("adj-")).height > 0


@pytest.mark.parametrize("operation", ["produce", "send_offsets", "commit"])
@pytest.mark.parametrize("kind", ["crash", "crash_after"])
def test_a_crash_with_adjustments_waiting_then_a_restart(
    world: World, operation: str, kind: str
) -> None:
    cdrs = world.cdrs(1_600, seed=22, duplicate_fraction=0.02)
    records = _adjustments(cdrs, 40, seed=22)
    _publish(world, records)
    world.publish_cdrs(cdrs)
    world.cluster.fail(operation, kind, skip=1)  # the second batch: adjustments are waiting
    with pytest.raises(Crash):
        world.run()
    world.run()  # restores the waiting adjustments, goes on
    _check(world, _reference(world, cdrs, records))


def test_a_top_up_alone_applies_when_the_input_is_complete(world: World) -> None:
    cdrs = world.cdrs(200, seed=23)
    world.publish_cdrs(cdrs)
    world.run()
    late = cdrs.get_column("start_time").max() + timedelta(days=1)  # type: ignore[operator]
    top = {"tenant_id": "tinyco", "adjustment_id": "t-late", "kind": "topup", "amount": "10"}
    _publish(world, [{**top, "time": late, "source": "manual"}])
    summary = world.run()
    assert summary.counts["adjustment_applied"] == 1
    assert _restored(world).pending_adjustments().height == 0
    assert _applied_files(world).get_column("adjustment_id").to_list() == ["t-late"]
