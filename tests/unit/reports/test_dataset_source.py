"""Reports over the streaming job's dataset (month directories, each source offset read
once: the newest writer generation) equal the reports over ``rate-file``'s outputs of the
same records and adjustments."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from reportdeck import NOW, NOW_US, Deck, adjustments, rated_output, traffic, write_adjustments

from rater import wire
from rater.core.columns import CDR_SCHEMA
from rater.reports import build_request
from rater.reports.activity import build_activity
from rater.reports.consumption import build_consumption, export_frame
from rater.reports.store import RecordStore, open_dataset
from rater.settings import load_settings
from rater.stream.job import RaterJob
from rater.stream.testing import FakeClock, FakeCluster

PARTITIONS = 3


def _stream(deck: Deck, cdrs: pl.DataFrame, moves: list[dict[str, object]], root: Path) -> Path:
    cluster = FakeCluster()
    for topic in ("cdrs", "topups", "adjustments"):
        cluster.create_topic(topic, PARTITIONS)
    for move in moves:
        record = {k: (v or None) for k, v in move.items()}
        record["time"] = dt.datetime.fromisoformat(str(move["time"]))
        cluster.publish(
            "adjustments", wire.encode_adjustment(record), str(move["tenant_id"]).encode()
        )
    values = wire.encode_cdrs(cdrs.select(list(CDR_SCHEMA)))
    for value, tenant in zip(values, cdrs.get_column("tenant_id").to_list(), strict=True):
        cluster.publish("cdrs", value, tenant.encode())
    settings = load_settings(
        tariff_dir=deck.tariff_dir,
        metrics_enabled=False,
        topics={"partitions": PARTITIONS},
        stream={
            "idle_exit_s": 0.05,
            "batch_max_wait_ms": 20,
            "batch_max_records": 500,
            "dedupe_horizon_days": 90,
        },
        output={"dataset_dir": root, "duckdb_path": root / "rater.duckdb"},
    )
    clock = FakeClock(now=NOW.timestamp())
    RaterJob(settings, deck.tariff, "a", clients=cluster, clock=clock, sleep=lambda s: None).run(
        handle_signals=False
    )
    return root


@pytest.fixture(scope="module")
def sources(deck: Deck, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("dataset")
    cdrs = traffic(deck.tariff_dir, 1_500, seed=5)
    moves = [m for m in adjustments(cdrs, 30, seed=9) if m["tenant_id"] != "ghost"]
    batch = rated_output(
        deck.tariff_dir, cdrs, write_adjustments(root / "adj.csv", moves), root / "batch"
    )
    return _stream(deck, cdrs, moves, root / "out"), batch


def _reports(
    deck: Deck, path: Path, tenant: str, tmp: Path
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    def request(report: str):  # type: ignore[no-untyped-def]
        return build_request(
            deck.tariff,
            report,
            tenant_id=tenant,
            output=tmp / "r.csv",
            format="csv",
            start="2026-10-01",
            end="2026-11-30",
            now_us=NOW_US,
        )

    with RecordStore(open_dataset(path)) as store:
        build_consumption(store, request("consumption"))
        records = export_frame(store, request("consumption"))
        lines = None
        if deck.tariff.tenants[tenant].billing == "prepaid":
            lines = build_activity(store, request("activity")).lines
    return records, lines


@pytest.mark.parametrize("tenant", ["acme", "globex", "wayne", "<script>alert(1)</script>", "%"])
def test_the_dataset_gives_the_reports_of_rate_file(
    deck: Deck, sources: tuple[Path, Path], tmp_path: Path, tenant: str
) -> None:
    dataset, batch = sources
    assert open_dataset(dataset).kind == "dataset" and open_dataset(batch).kind == "rate_file"
    streamed, streamed_lines = _reports(deck, dataset, tenant, tmp_path)
    rated, rated_lines = _reports(deck, batch, tenant, tmp_path)
    assert streamed.height > 0
    assert streamed.sort("cdr_id").equals(rated.sort("cdr_id"))
    if rated_lines is not None:
        assert streamed_lines is not None and streamed_lines.height > 0
        columns = ["reference", "amount_micros", "balance_after_micros"]
        assert streamed_lines.select(columns).equals(rated_lines.select(columns))


def test_a_replayed_file_counts_once(
    deck: Deck, sources: tuple[Path, Path], tmp_path: Path
) -> None:
    """A batch written again by a newer writer generation (a replay after a crash): each
    consumed record still counts once."""
    dataset, _ = sources
    copy = tmp_path / "out"
    for path in dataset.rglob("*.parquet"):
        target = copy / path.relative_to(dataset)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    before, _ = _reports(deck, copy, "acme", tmp_path)
    first = sorted((copy / "rated").glob("month=*/*.parquet"))[0]
    replay = pl.read_parquet(first).with_columns(pl.col("writer_generation") + 1)
    assert replay.filter(pl.col("tenant_id") == "acme").height > 0
    replay.write_parquet(first.with_name("replay-" + first.name))
    after, _ = _reports(deck, copy, "acme", tmp_path)
    assert after.height == before.height
    assert after.get_column("charge_micros").sum() == before.get_column("charge_micros").sum()
