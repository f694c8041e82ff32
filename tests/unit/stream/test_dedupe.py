"""Rule 2 in streaming: duplicate protection nobody can switch off, whatever crashes,
restarts or rebalances happen, and whatever times a record carries."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from streamworld import World, make_settings

from rater.core.seen_index import SeenIndex
from rater.core.state import CLOCK_SKEW_US
from rater.stream.testing import Crash, FakeClock, FakeCluster

DAY = timedelta(days=1)


def _statuses(world: World) -> dict[str, list[str]]:
    """Statuses per cdr_id, in the order the resends were rated."""
    rated = world.rated().sort("source_partition", "source_offset")
    out: dict[str, list[str]] = {}
    for cdr_id, status in rated.select("cdr_id", "status").iter_rows():
        out.setdefault(cdr_id, []).append(status)
    return out


def _at(world: World, offset: timedelta) -> datetime:
    return datetime.fromtimestamp(world.clock.now, UTC) + offset


def _moved(frame: pl.DataFrame, to: datetime) -> pl.DataFrame:
    """The same records, their times shifted so the first starts at ``to``."""
    shift = to - frame.get_column("start_time").min()  # type: ignore[operator]
    return frame.with_columns(pl.col(c) + shift for c in ("start_time", "answer_time", "end_time"))


def test_a_future_dated_cdr_does_not_switch_dedupe_off(world: World) -> None:
    world.settings = make_settings(world.root, snapshot_every_batches=1, batch_max_records=20)
    early = world.cdrs(60, seed=1)
    tenant = early.get_column("tenant_id")[0]
    mine = early.filter(pl.col("tenant_id") == tenant)
    future = _moved(mine.head(1), datetime(2090, 1, 1, tzinfo=UTC)).with_columns(
        pl.lit("from-2090").alias("cdr_id")
    )
    world.publish_cdrs(mine)
    world.publish_cdrs(future)
    world.publish_cdrs(world.cdrs(200, seed=2))  # more batches, more snapshots and pruning
    world.publish_cdrs(mine)  # every one a resend within the horizon
    world.run()
    statuses = _statuses(world)
    for cdr_id in mine.get_column("cdr_id").to_list():
        assert statuses[cdr_id][-1] == "duplicate", cdr_id
    assert statuses["from-2090"] == ["rated"]


def test_the_watermark_never_runs_past_the_wall_clock(world: World) -> None:
    world.publish_cdrs(_moved(world.cdrs(5, seed=3), datetime(2090, 1, 1, tzinfo=UTC)))
    job = world.job()
    marks: list[dict[int, int | None]] = []
    close = job._close_clients

    def keep() -> None:
        marks.append(dict(job.held.watermarks))
        close()

    job._close_clients = keep  # type: ignore[method-assign]
    job.run(handle_signals=False)
    now_us = int(world.clock.now * 1_000_000)
    assert {m for m in marks[0].values() if m is not None} == {now_us + CLOCK_SKEW_US}


def test_keys_are_forgotten_past_the_horizon_and_kept_within_it(world: World) -> None:
    world.settings = make_settings(world.root, snapshot_every_batches=1, dedupe_horizon_days=7)
    old = world.cdrs(40, seed=4)
    world.publish_cdrs(old)
    world.run()
    world.clock.advance(3 * 86_400)
    world.publish_cdrs(world.cdrs(40, seed=5))  # the watermark moves 3 days on
    world.publish_cdrs(old.head(10))  # within the horizon: duplicates
    world.run()
    world.clock.advance(10 * 86_400)
    world.publish_cdrs(world.cdrs(300, seed=6))  # 13 days on: snapshots prune the old keys
    world.run()
    world.publish_cdrs(old.tail(10))  # beyond the horizon: rated again, as documented
    world.run()
    statuses = _statuses(world)
    assert all(statuses[c][-1] == "duplicate" for c in old.head(10).get_column("cdr_id"))
    valid = [c for c in old.tail(10).get_column("cdr_id") if statuses[c][0] != "invalid"]
    assert valid and all(statuses[c][-1] != "duplicate" for c in valid)


_CRASH_OPS = st.sampled_from(["begin", "produce", "send_offsets", "commit", "init"])


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    seed=st.integers(0, 10_000),
    crashes=st.lists(
        st.tuples(_CRASH_OPS, st.booleans(), st.integers(0, 6), st.sampled_from("abc")),
        max_size=4,
    ),
    resend_share=st.floats(0.1, 0.5),
)
def test_a_resend_within_the_horizon_is_always_a_duplicate(
    tmp_path_factory: object,
    seed: int,
    crashes: list[tuple[str, bool, int, str]],
    resend_share: float,
) -> None:
    root = tmp_path_factory.mktemp("dedupe") / "out"  # type: ignore[attr-defined]
    cluster = FakeCluster()
    for topic in ("cdrs", "topups", "adjustments"):
        cluster.create_topic(topic, 3)
    from streamworld import CONFIG

    from rater.tariff_files import load_tariff

    world = World(
        cluster,
        FakeClock(),
        make_settings(root, batch_max_records=37, snapshot_every_batches=2),
        load_tariff(CONFIG),
        root,
    )
    first = world.cdrs(150, seed=seed)
    world.publish_cdrs(first)
    resends = first.sample(fraction=resend_share, seed=seed)
    world.publish_cdrs(resends)
    for operation, after, skip, instance in crashes:
        world.cluster.fail(operation, "crash_after" if after else "crash", skip=skip)
        with contextlib.suppress(Crash):
            world.run(instance)
        world.cluster.heal()
        world.clock.advance(3_600)
        world.publish_cdrs(resends.sample(fraction=0.5, seed=skip))
    world.run("z")
    statuses = _statuses(world)
    for cdr_id, seen in statuses.items():
        assert seen.count("rated") + seen.count("unrated") <= 1, (cdr_id, seen)
        if seen[0] in ("rated", "unrated"):
            assert set(seen[1:]) <= {"duplicate"}, (cdr_id, seen)


def test_the_held_keys_index_is_carried_from_batch_to_batch(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Rebuilding the index hashes every held key: it happens when a state has none (read
    # back, cut at a rebalance or pruned at a snapshot), never batch after batch.
    world.settings = make_settings(world.root, batch_max_records=20, snapshot_every_batches=1000)
    rebuilt: list[int] = []
    build = SeenIndex.of

    def counted(seen: pl.DataFrame) -> SeenIndex:
        rebuilt.append(seen.height)
        return build(seen)

    monkeypatch.setattr(SeenIndex, "of", staticmethod(counted))
    first = world.cdrs(200, seed=7)
    world.publish_cdrs(first)
    world.publish_cdrs(first.head(30))  # resends, found through the carried index
    summary = world.run()
    assert summary.batches >= 10
    assert [n for n in rebuilt if n] == []
    statuses = _statuses(world)
    valid = [c for c in first.head(30).get_column("cdr_id") if statuses[c][0] != "invalid"]
    assert valid and all(statuses[c][-1] == "duplicate" for c in valid)
