"""The commit path on in-memory Kafka: every failure at every step, crashes, rebalances,
misrouted and poison messages. Each test runs in milliseconds."""

from __future__ import annotations

import threading
from pathlib import Path

import polars as pl
import pytest
from streamworld import World, canonical, reference

from rater.stream import rate_messages
from rater.stream.job import RaterJob
from rater.stream.testing import Crash

STEPS = ["begin", "produce", "send_offsets", "commit"]


def assert_exactly_once(world: World, published: pl.DataFrame) -> None:
    """Topic, dataset and offsets hold each consumed record once, rated as rate-file does."""
    ref = canonical(reference(world.tariff, published))
    rated = world.rated()
    assert rated.select("source_partition", "source_offset").is_unique().all()
    assert canonical(rated).equals(ref)
    files = world.dataset()
    assert files.select("source_partition", "source_offset").is_unique().all()
    assert canonical(files).equals(ref)
    assert world.staged() == [], "staged files left behind"
    assert not list(world.root.rglob("*.tmp"))
    for p in range(3):
        assert world.cluster.committed("rater", "cdrs", p) == len(world.cluster.logs["cdrs"][p])


def test_batches_commit_outputs_offsets_and_files_together(world: World) -> None:
    published = world.cdrs(1_500, seed=1, duplicate_fraction=0.03)
    world.publish_cdrs(published)
    summary = world.run()
    c = summary.counts
    assert (
        c["consumed"]
        == 1_500
        == sum(c[s] for s in ("rated", "unrated", "duplicate", "invalid", "dead_lettered"))
    )
    assert c["duplicate"] > 0 and summary.batches > 3
    assert_exactly_once(world, published)


@pytest.mark.parametrize("operation", STEPS)
@pytest.mark.parametrize("kind", ["abortable", "retriable", "fatal"])
def test_a_failed_step_loses_and_doubles_nothing(world: World, operation: str, kind: str) -> None:
    published = world.cdrs(1_000, seed=2, duplicate_fraction=0.02)
    world.publish_cdrs(published)
    world.cluster.fail(operation, kind, times=2)
    world.run()
    assert_exactly_once(world, published)


@pytest.mark.parametrize("operation", [*STEPS, "init"])
@pytest.mark.parametrize("kind", ["crash", "crash_after"])
def test_a_crash_at_any_step_then_a_restart_is_exactly_once(
    world: World, operation: str, kind: str
) -> None:
    published = world.cdrs(1_200, seed=3, duplicate_fraction=0.02)
    world.publish_cdrs(published)
    # A few batches commit first, so the crash hits partitions with history.
    skip = {"init": 0, "produce": 900}.get(operation, 2)
    world.cluster.fail(operation, kind, skip=skip)
    with pytest.raises(Crash):
        world.run()
    world.run()  # the same instance id: fences the dead one, restores, goes on
    assert_exactly_once(world, published)


def test_a_crash_between_commit_and_publish_is_published_by_the_next_owner(
    world: World,
) -> None:
    published = world.cdrs(300, seed=4)
    world.publish_cdrs(published)
    world.cluster.fail("commit", "crash_after")
    with pytest.raises(Crash):
        world.run()
    assert world.staged(), "the committed batch is still staged"
    world.run("b")  # another instance takes the partitions over
    assert_exactly_once(world, published)


def test_a_sink_that_fails_aborts_the_batch_and_retries_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    published = world.cdrs(800, seed=5)
    world.publish_cdrs(published)
    job = world.job()
    real, failures = job.rated_sink.stage, [0]

    def full_disk(batch: object, token: str) -> None:
        if failures[0] < 2:
            failures[0] += 1
            raise OSError(28, "No space left on device")
        real(batch, token)  # type: ignore[arg-type]

    monkeypatch.setattr(job.rated_sink, "stage", full_disk)
    summary = job.run(handle_signals=False)
    assert summary.aborted == 2
    assert_exactly_once(world, published)


def test_a_publish_that_fails_after_commit_is_recovered(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    published = world.cdrs(500, seed=6)
    world.publish_cdrs(published)
    job = world.job()
    real, failures = job.rated_sink.publish, [0]

    def lost_mount(token: str) -> None:
        if failures[0] < 1:
            failures[0] += 1
            raise OSError(5, "Input/output error")
        real(token)

    monkeypatch.setattr(job.rated_sink, "publish", lost_mount)
    job.run(handle_signals=False)
    assert_exactly_once(world, published)


def test_misrouted_messages_are_dead_lettered_and_counted(world: World) -> None:
    good = world.cdrs(200, seed=7)
    world.publish_cdrs(good)
    one = world.cdrs(3, seed=8).with_columns(
        pl.format("stray-{}", pl.col("cdr_id")).alias("cdr_id")
    )
    from rater import wire

    values = wire.encode_cdrs(one)
    tenant = one.get_column("tenant_id")[0].encode()
    own = world.cluster.publish("cdrs", values[0], tenant).partition()
    world.cluster.publish("cdrs", values[0], None, partition=0)  # null key
    world.cluster.publish("cdrs", values[1], b"another-tenant", partition=own)  # wrong key
    world.cluster.publish("cdrs", values[2], tenant, partition=(own + 1) % 3)  # wrong partition
    summary = world.run()
    reasons = [r for r, _ in world.dead_letters()]
    assert reasons.count("misrouted") == 3
    c = summary.counts
    assert c["dead_lettered"] == 3 and c["consumed"] == 204
    assert c["consumed"] == sum(
        c[s] for s in ("rated", "unrated", "duplicate", "invalid", "dead_lettered")
    )


def test_a_poison_message_costs_only_itself(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    published = world.cdrs(600, seed=9)
    poison = published.get_column("cdr_id")[123]
    world.publish_cdrs(published)
    real = rate_messages.rate_batch

    def fragile(tariff, cdrs, state, **options):  # type: ignore[no-untyped-def]
        if poison in cdrs.get_column("cdr_id").to_list():
            raise pl.exceptions.ComputeError("a bug that only this record triggers")
        return real(tariff, cdrs, state, **options)

    monkeypatch.setattr(rate_messages, "rate_batch", fragile)
    summary = world.run()
    assert [r for r, _ in world.dead_letters()] == ["rating_error"]
    assert summary.counts["dead_lettered"] == 1
    rest = published.filter(pl.col("cdr_id") != poison)
    assert canonical(world.rated()).equals(canonical(reference(world.tariff, rest)))


def test_a_fault_of_the_rater_itself_commits_nothing(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.publish_cdrs(world.cdrs(200, seed=10))

    def broken(tariff, cdrs, state, **options):  # type: ignore[no-untyped-def]
        raise RuntimeError("a bug hit by every record")

    monkeypatch.setattr(rate_messages, "rate_batch", broken)
    job = world.job()
    attempts = [0]

    def sleep(seconds: float) -> None:
        attempts[0] += 1
        if attempts[0] > 20:
            job.stop()

    job.sleep = sleep
    job.run(handle_signals=False)
    assert world.cluster.messages("rated-usage") == []
    assert world.cluster.messages("cdrs-dlq") == [], "good traffic was not dead-lettered"
    assert all(world.cluster.committed("rater", "cdrs", p) == 0 for p in range(3))


def test_two_members_share_the_partitions_then_one_leaves(world: World) -> None:
    published = world.cdrs(3_000, seed=11, duplicate_fraction=0.02)
    world.publish_cdrs(published.head(1_500))
    a, b = world.job("a"), world.job("b")
    b.settings = b.settings.model_copy(
        update={"stream": b.settings.stream.model_copy(update={"idle_exit_s": 0.3})}
    )
    runner = threading.Thread(target=lambda: b.run(handle_signals=False))
    runner.start()
    a.run(handle_signals=False)
    runner.join()
    world.publish_cdrs(published.tail(1_500))
    world.run("b")  # b alone: takes every partition over, with its state
    assert_exactly_once(world, published)


def test_restored_state_equals_the_state_of_a_process_that_kept_running(world: World) -> None:
    from rater.stream.clients import restore_partitions
    from rater.stream.ownership import partition_state

    published = world.cdrs(2_000, seed=12, duplicate_fraction=0.05)
    world.publish_cdrs(published)
    job = world.job()
    held: dict[str, object] = {}
    close = job._close_clients

    def keep_state() -> None:
        held.setdefault("state", job.held)
        close()

    job._close_clients = keep_state  # type: ignore[method-assign]
    job.run(handle_signals=False)
    kept = held["state"]
    restored = restore_partitions(
        world.settings, "rater-state-changelog", [0, 1, 2], clients=world.cluster
    )
    assert job.partitioner is not None
    for p, replayer in restored.items():
        running = partition_state(kept, p, job.partitioner)  # type: ignore[arg-type]
        assert replayer.state.equals(running)
        assert running.watermarks and running.seen.height


def test_job_reports_a_settings_problem_once(tmp_path: Path, world: World) -> None:
    world.cluster.create_topic("topups-odd", 5)
    settings = world.settings.model_copy(
        update={"topics": world.settings.topics.model_copy(update={"topups": "topups-odd"})}
    )
    from rater.errors import ConfigError

    job = RaterJob(settings, world.tariff, "a", clients=world.cluster, clock=world.clock)
    with pytest.raises(ConfigError, match="same partition count"):
        job.run(handle_signals=False)
