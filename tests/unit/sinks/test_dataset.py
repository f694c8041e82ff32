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


def test_files_are_named_by_offsets_and_partitioned_by_month(tmp_path: Path) -> None:
    sink = _sink(tmp_path)
    sink.write(SinkBatch("cdrs", 0, 10, 12, 1, _rows([10, 11, 12], ["b", "a", "b"], [10, 11, 10])))
    assert _files(tmp_path) == [
        "month=2026-10/cdrs-0-00000000000000000010-00000000000000000012.parquet",
        "month=2026-11/cdrs-0-00000000000000000010-00000000000000000012.parquet",
    ]
    oct_rows = pl.read_parquet(tmp_path / "month=2026-10")
    assert oct_rows.get_column("tenant_id").to_list() == ["b", "b"]
    assert oct_rows.get_column("writer_generation").to_list() == [1, 1]
    assert not list(tmp_path.rglob("*.tmp")), "no temporary file is left behind"


def test_replay_with_other_batch_bounds_never_duplicates(tmp_path: Path) -> None:
    # A batch [0, 3] written but never committed (crash), then replayed as [0, 1] and [2, 3]:
    # the tenant-month "a/11" of the first attempt has no twin in the replay's first batch.
    sink = _sink(tmp_path)
    sink.write(
        SinkBatch("cdrs", 0, 0, 3, 1, _rows([0, 1, 2, 3], ["a", "a", "b", "b"], [10, 10, 11, 11]))
    )
    restarted = _sink(tmp_path)
    restarted.assign("cdrs", 0)
    restarted.write(SinkBatch("cdrs", 0, 0, 1, 2, _rows([0, 1], ["a", "a"], [10, 10])))
    restarted.write(SinkBatch("cdrs", 0, 2, 3, 2, _rows([2, 3], ["b", "b"], [11, 11])))
    all_rows = pl.read_parquet(tmp_path / "**/*.parquet")
    assert sorted(all_rows.get_column("source_offset").to_list()) == [0, 1, 2, 3]
    assert set(all_rows.get_column("writer_generation").to_list()) == {2}


def test_committed_files_of_other_partitions_are_kept(tmp_path: Path) -> None:
    sink = _sink(tmp_path)
    sink.write(SinkBatch("cdrs", 0, 0, 0, 1, _rows([0], ["a"], [10])))
    other = _rows([0], ["z"], [10]).with_columns(pl.lit(1).alias("source_partition"))
    sink.write(SinkBatch("cdrs", 1, 0, 0, 1, other))
    sink.write(SinkBatch("cdrs", 0, 1, 1, 1, _rows([1], ["a"], [10])))
    assert len(_files(tmp_path)) == 3


def test_duckdb_views_keep_the_newest_generation(tmp_path: Path) -> None:
    rated = tmp_path / "rated"
    # A fenced process (generation 1) wrote offsets 5..6 after the new owner (generation 2)
    # took over and wrote them too: each offset must be counted once, from generation 2.
    zombie = _sink(rated)
    owner = _sink(rated)
    owner.write(SinkBatch("cdrs", 0, 5, 6, 2, _rows([5, 6], ["a", "a"], [11, 11])))
    zombie_rows = _rows([5], ["a"], [11]).with_columns(pl.lit(999).alias("charge_micros"))
    zombie._scanned.add(("cdrs", 0))  # it never saw the owner's files
    zombie.write(SinkBatch("cdrs", 0, 4, 5, 1, zombie_rows))
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
