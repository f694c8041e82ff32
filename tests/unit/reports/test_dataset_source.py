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
from rater.reports.store import RecordStore, _month_files, open_dataset
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


def _copy(dataset: Path, target: Path) -> Path:
    for path in dataset.rglob("*.parquet"):
        if "_staging" not in path.parts:
            copied = target / path.relative_to(dataset)
            copied.parent.mkdir(parents=True, exist_ok=True)
            copied.write_bytes(path.read_bytes())
    return target


def _month_report(deck: Deck, path: Path, tenant: str, month: str, tmp: Path) -> pl.DataFrame:
    last = {"2026-10": "31", "2026-11": "30"}[month]
    request = build_request(
        deck.tariff,
        "consumption",
        tenant_id=tenant,
        output=tmp / "r.csv",
        format="csv",
        start=f"{month}-01",
        end=f"{month}-{last}",
        now_us=NOW_US,
    )
    with RecordStore(open_dataset(path)) as store:
        build_consumption(store, request)
        return export_frame(store, request).sort("cdr_id")


def test_each_local_month_reads_the_utc_months_it_spans(
    deck: Deck, sources: tuple[Path, Path], tmp_path: Path
) -> None:
    """Rows are filed under the UTC month of their rating time; a local month starts and
    ends hours away from it (Paris, New York): its report lists the records of its range
    found in either UTC month, as rate-file's output does."""
    dataset, batch = sources
    rated = pl.read_parquet(batch / "rated.parquet").filter(pl.col("status") == "rated")
    across = 0
    for tenant in ("acme", "globex", "hooli", "umbrella", "wayne"):
        zone = deck.tariff.plans[deck.tariff.tenants[tenant].plan_id].timezone
        time = pl.coalesce("answer_time", "start_time")
        own = rated.filter(pl.col("tenant_id") == tenant)
        across += own.filter(
            time.dt.strftime("%Y-%m") != time.dt.convert_time_zone(zone).dt.strftime("%Y-%m")
        ).height
        for month in ("2026-10", "2026-11"):
            streamed = _month_report(deck, dataset, tenant, month, tmp_path)
            assert streamed.equals(_month_report(deck, batch, tenant, month, tmp_path))
    assert across > 0  # records filed under another month than their local one


def test_month_directories_are_chosen_by_the_utc_instants_of_the_range(tmp_path: Path) -> None:
    root = tmp_path / "rated"
    for month in ("2026-09", "2026-10", "2026-11", "2026-12", "undated"):
        (root / f"month={month}").mkdir(parents=True)
        (root / f"month={month}" / "cdrs-0.parquet").write_bytes(b"")

    def months(first: str, last: str | None) -> list[str]:
        def us(text: str) -> int:
            return int(dt.datetime.fromisoformat(text).timestamp()) * 1_000_000

        files = _month_files(root, us(first), None if last is None else us(last) - 1)
        return [Path(f).parent.name[6:] for f in files]

    # November in Paris: 2026-10-31T23:00Z to 2026-11-30T23:00Z.
    assert months("2026-11-01T00:00+01:00", "2026-12-01T00:00+01:00") == ["2026-10", "2026-11"]
    # October in New York: 2026-10-01T04:00Z to 2026-11-01T04:00Z.
    assert months("2026-10-01T00:00-04:00", "2026-11-01T00:00-04:00") == ["2026-10", "2026-11"]
    # A UTC month exactly; before a UTC instant (the charges before a range).
    assert months("2026-10-01T00:00Z", "2026-11-01T00:00Z") == ["2026-10"]
    assert _month_files(root, None, 0) == []


def test_without_rating_time_the_dataset_is_read_all_the_same(
    deck: Deck, sources: tuple[Path, Path], tmp_path: Path
) -> None:
    """Files written without the rating_time column (the bounds are then not pushed into
    the scan) give the same reports."""
    dataset, _ = sources
    copy = _copy(dataset, tmp_path / "old")
    for path in (copy / "rated").glob("month=*/*.parquet"):
        pl.read_parquet(path).drop("rating_time").write_parquet(path)
    for tenant in ("acme", "globex"):
        expected, expected_lines = _reports(deck, dataset, tenant, tmp_path)
        records, lines = _reports(deck, copy, tenant, tmp_path)
        assert records.equals(expected)
        if expected_lines is not None:
            assert lines is not None and lines.equals(expected_lines)


def test_the_newest_generation_decides_the_status(
    deck: Deck, sources: tuple[Path, Path], tmp_path: Path
) -> None:
    """The range and filters are applied before the newest writer generation is chosen,
    the status after: a record a newer generation marks otherwise no longer counts."""
    dataset, _ = sources
    copy = _copy(dataset, tmp_path / "out")
    before, _ = _reports(deck, copy, "acme", tmp_path)
    first = sorted((copy / "rated").glob("month=*/*.parquet"))[0]
    replay = pl.read_parquet(first).with_columns(
        pl.col("writer_generation") + 1,
        pl.when(pl.col("tenant_id") == "acme")
        .then(pl.lit("duplicate"))
        .otherwise(pl.col("status"))
        .alias("status"),
    )
    gone = set(replay.filter(pl.col("tenant_id") == "acme").get_column("cdr_id")) & set(
        before.get_column("cdr_id")
    )
    assert gone
    replay.write_parquet(first.with_name("replay-" + first.name))
    after, _ = _reports(deck, copy, "acme", tmp_path)
    assert sorted(after.get_column("cdr_id")) == sorted(set(before.get_column("cdr_id")) - gone)
