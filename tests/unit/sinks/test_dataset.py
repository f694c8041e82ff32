"""The Parquet dataset sink and its DuckDB views, on real files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from sinks import DuckDBCatalog, LocalDirectory, MonthPartitionedDataset, SinkBatch


def _rows(offsets: list[int], tenants: list[str], months: list[int]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "tenant_id": tenants,
            "status": ["rated"] * len(offsets),
            "currency": ["EUR"] * len(offsets),
            "billed_seconds": [60] * len(offsets),
            "charge_micros": [1_000_000 + o for o in offsets],
            "rating_time": [datetime(2026, m, 15, tzinfo=UTC) for m in months],
            "source_topic": ["cdrs"] * len(offsets),
            "source_partition": [0] * len(offsets),
            "source_offset": offsets,
        }
    )


def _sink(root: Path) -> MonthPartitionedDataset:
    return MonthPartitionedDataset(LocalDirectory(root), time_column="rating_time")


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.parquet"))


def test_staged_files_are_invisible_until_published(tmp_path: Path) -> None:
    sink = _sink(tmp_path)
    sink.stage(
        SinkBatch("cdrs", 0, 10, 12, 1, _rows([10, 11, 12], ["b", "a", "b"], [10, 11, 10])), "t1"
    )
    assert _files(tmp_path / "month=2026-10") == []
    sink.publish("t1")
    assert _files(tmp_path) == [
        "month=2026-10/cdrs-0-00000000000000000010-00000000000000000012.parquet",
        "month=2026-11/cdrs-0-00000000000000000010-00000000000000000012.parquet",
    ]
    oct_rows = pl.read_parquet(tmp_path / "month=2026-10")
    assert oct_rows.get_column("tenant_id").to_list() == ["b", "b"]
    assert oct_rows.get_column("writer_generation").to_list() == [1, 1]
    assert not list(tmp_path.rglob("*.tmp")), "no temporary file is left behind"
    assert [p for p in tmp_path.rglob("_staging/**/*") if p.is_file()] == []


def test_discarded_attempts_leave_nothing(tmp_path: Path) -> None:
    sink = _sink(tmp_path)
    sink.stage(
        SinkBatch("cdrs", 0, 0, 3, 1, _rows([0, 1, 2, 3], ["a", "a", "b", "b"], [10, 10, 11, 11])),
        "t1",
    )
    sink.discard("t1")
    sink.stage(SinkBatch("cdrs", 0, 0, 1, 1, _rows([0, 1], ["a", "a"], [10, 10])), "t2")
    sink.publish("t2")
    rows = pl.read_parquet(tmp_path / "month=*/*.parquet")
    assert sorted(rows.get_column("source_offset").to_list()) == [0, 1]


def test_recover_publishes_the_committed_token_and_deletes_the_others(tmp_path: Path) -> None:
    # A crash after the commit of t1 and during the staging of t2 (never committed).
    crashed = _sink(tmp_path)
    crashed.stage(SinkBatch("cdrs", 0, 0, 1, 1, _rows([0, 1], ["a", "a"], [10, 10])), "t1")
    crashed.stage(SinkBatch("cdrs", 0, 2, 3, 1, _rows([2, 3], ["a", "a"], [10, 10])), "t2")
    other = _rows([0], ["z"], [10]).with_columns(pl.lit(1).alias("source_partition"))
    crashed.stage(SinkBatch("cdrs", 1, 0, 0, 1, other), "t2")
    owner = _sink(tmp_path)
    owner.recover("cdrs", 0, committed="t1")
    rows = pl.read_parquet(tmp_path / "month=*/*.parquet")
    assert rows.get_column("source_offset").to_list() == [0, 1]
    # Partition 1's staged file is its own owner's business.
    assert [p.name for p in tmp_path.rglob("_staging/**/*.parquet")] == [
        "cdrs-1-00000000000000000000-00000000000000000000.parquet"
    ]
    owner.recover("cdrs", 1, committed="")  # nothing ever committed there
    assert not [p for p in tmp_path.rglob("_staging/**/*") if p.is_file()]


def test_rows_without_a_rating_time_are_undated(tmp_path: Path) -> None:
    sink = _sink(tmp_path)
    rows = _rows([0, 1], ["a", "a"], [10, 10]).with_columns(
        pl.when(pl.col("source_offset") == 1).then(pl.col("rating_time")).alias("rating_time")
    )
    sink.stage(SinkBatch("cdrs", 0, 0, 1, 1, rows), "t1")
    sink.publish("t1")
    assert _files(tmp_path) == [
        "month=2026-10/cdrs-0-00000000000000000000-00000000000000000001.parquet",
        "month=undated/cdrs-0-00000000000000000000-00000000000000000001.parquet",
    ]


def test_duckdb_views_keep_the_newest_generation(tmp_path: Path) -> None:
    rated = tmp_path / "rated"
    # Belt and braces: should two files ever hold the same offsets, each offset is counted
    # once, from the newest writer generation.
    sink = _sink(rated)
    sink.stage(SinkBatch("cdrs", 0, 5, 6, 2, _rows([5, 6], ["a", "a"], [11, 11])), "t2")
    old_rows = _rows([5], ["a"], [11]).with_columns(pl.lit(999).alias("charge_micros"))
    sink.stage(SinkBatch("cdrs", 0, 4, 5, 1, old_rows), "t1")
    sink.publish("t1")
    sink.publish("t2")
    catalog = DuckDBCatalog(tmp_path / "r.duckdb", rated, tmp_path / "events")
    catalog.refresh()
    con = duckdb.connect(str(tmp_path / "r.duckdb"))
    got = con.execute(
        "SELECT source_offset, charge_micros FROM rated_usage ORDER BY source_offset"
    ).fetchall()
    assert got == [(5, 1_000_005), (6, 1_000_006)]
    summary = con.execute(
        "SELECT tenant_id, month, records, charge_micros FROM usage_by_tenant_month"
    ).fetchall()
    assert summary == [("a", "2026-11", 2, 2_000_011)]
