"""The reports' one way to the data: DuckDB over the source's Parquet files.

A :class:`RecordStore` wraps an in-memory DuckDB connection over a rate-file output
directory, the streaming job's dataset or a single rated ``.parquet`` file
(:func:`open_dataset` tells them apart, as ``rater invoice --rated`` does). Every query is a constant SQL text
whose values (file list, tenant, range, filters, time zone) are bound parameters: no
text given by a user is ever part of SQL, and every query names its tenant with an
equality (``tenant_id = $tenant``), so one tenant's report cannot hold another's rows.

In the streaming dataset a consumed record may have been written twice (a replay); each
source offset counts once, the row of its newest writer generation, as the DuckDB views
of :mod:`sinks.duckdb_catalog` do. Records keep the order the rater read them in (file
row order; in the dataset, per source partition and offset).

What keeps a large tenant's month fast in the dataset: only the month directories of
the range are listed (a row is filed under the UTC month of its rating time, and the
range is a pair of UTC instants, so no margin is needed); the tenant, the range (on the
dataset's ``rating_time`` column, which row-group statistics can skip on) and the
filters are pushed into the Parquet scan, before the newest writer generation is chosen.
That order is exact: those columns are the CDR's own (or its rating time), the same in
every generation of a record; the ``status``, which a later generation may change, is
read after the choice.

:meth:`RecordStore.select_records` materializes one tenant's records of a range (after
the filters) as the temporary table ``report_records``; the reports' aggregations and
listings read that table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import duckdb
import polars as pl

from rater.core.columns import (
    ADJUSTMENT_EXTRA_SCHEMA,
    ADJUSTMENT_SCHEMA,
    CDR_SCHEMA,
    RATED_EXTRA_SCHEMA,
)
from rater.errors import InputError, UsageError
from rater.tariff_files.text import first_line

__all__ = ["RATED_COLUMNS", "DataSource", "Filters", "RecordStore", "open_dataset"]

RATED_COLUMNS: dict[str, pl.DataType] = {**CDR_SCHEMA, **RATED_EXTRA_SCHEMA}
ADJUSTMENT_COLUMNS: dict[str, pl.DataType] = {**ADJUSTMENT_SCHEMA, **ADJUSTMENT_EXTRA_SCHEMA}
_SQL_TYPES = {
    pl.String: "VARCHAR",
    pl.Int64: "BIGINT",
    pl.Int32: "INTEGER",
    pl.Datetime: "TIMESTAMPTZ",
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# The select lists below are built from the constant schemas, never from input.
_RATED_SELECT = ", ".join(f'"{c}"' for c in RATED_COLUMNS)
_ADJUSTMENT_SELECT = ", ".join(f'"{c}"' for c in ADJUSTMENT_COLUMNS)
_RATING_US = "epoch_us(coalesce(answer_time, start_time))"
# One tenant's rows of the files (``{where}``: more conditions on the CDR's own columns);
# in the dataset each source offset once (newest writer).
_PLAIN_ROWS = """
    SELECT *, file_row_number AS _order_a, 0 AS _order_b, '' AS _order_t
    FROM read_parquet($files, union_by_name = true, file_row_number = true)
    WHERE tenant_id = $tenant {where}
"""
_DATASET_ROWS = """
    SELECT * EXCLUDE (_rank) FROM (
        SELECT *, source_partition AS _order_a, source_offset AS _order_b,
               source_topic AS _order_t,
               row_number() OVER (
                   PARTITION BY source_topic, source_partition, source_offset
                   ORDER BY writer_generation DESC) AS _rank
        FROM read_parquet($files, union_by_name = true, hive_partitioning = false)
        WHERE tenant_id = $tenant {where}
    ) WHERE _rank = 1
"""
# The range and the filters, on columns every generation of a record shares.
_IN_RANGE = f"""
      AND {_RATING_US} >= $start AND {_RATING_US} < $end
      AND (len($teams) = 0 OR list_contains($teams, team_id))
      AND (len($users) = 0 OR list_contains($users, user_id))
      AND (len($kinds) = 0 OR list_contains($kinds, kind))
      AND ($direction IS NULL OR direction = $direction)
"""
_BEFORE = f"AND {_RATING_US} < $start"
# The same bounds on the dataset's rating_time column: the Parquet scan skips on them.
_RATING_TIME_IN_RANGE = (
    "AND rating_time >= make_timestamptz($start) AND rating_time < make_timestamptz($end)"
)
_RATING_TIME_BEFORE = "AND rating_time < make_timestamptz($start)"
_FILTERED = f"""
    CREATE OR REPLACE TEMP TABLE report_records AS
    SELECT {_RATED_SELECT},
           {_RATING_US} AS _rating_us,
           CAST(timezone($zone, coalesce(answer_time, start_time)) AS DATE) AS _local_day,
           row_number() OVER (ORDER BY _order_t, _order_a, _order_b) AS _seq
    FROM ({{rows}}) AS tenant_rows
    WHERE status = 'rated'
"""
_EMPTY = (
    "CREATE OR REPLACE TEMP TABLE report_records AS SELECT "
    + ", ".join(f'CAST(NULL AS {_SQL_TYPES[type(t)]}) AS "{c}"' for c, t in RATED_COLUMNS.items())
    + ", CAST(NULL AS BIGINT) AS _rating_us, CAST(NULL AS DATE) AS _local_day,"
    " CAST(NULL AS BIGINT) AS _seq LIMIT 0"
)
_CHARGES_BEFORE = """
    SELECT coalesce(sum(charge_micros), 0) FROM ({rows}) AS tenant_rows
    WHERE status = 'rated'
"""
_ADJUSTMENTS = f"""
    SELECT {_ADJUSTMENT_SELECT} FROM ({{rows}}) AS tenant_rows
    WHERE status = 'applied'
    ORDER BY time, adjustment_id
"""


@dataclass(frozen=True)
class DataSource:
    """Where the rated records are: their layout and path."""

    kind: Literal["rate_file", "dataset", "file"]
    path: Path


def open_dataset(path: Path, flag: str = "--dataset") -> DataSource:
    """The source at ``path``; UsageError (one line, with the fix) when it is none."""
    path = Path(path)
    fix = (
        "Fix: pass the streaming job's dataset directory (with rated/), a rate-file output "
        "directory (with rated.parquet) or a rated .parquet file"
    )
    try:
        if path.is_file() and path.suffix.lower() == ".parquet":
            return DataSource("file", path)
        if (path / "rated.parquet").is_file():
            return DataSource("rate_file", path)
        if (path / "rated").is_dir():
            return DataSource("dataset", path)
        exists = path.exists()
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot be read ({exc.strerror}). {fix}") from None
    what = "holds no rated records" if exists else "no such file or directory"
    raise UsageError(f"{flag} {path}: {what}. {fix}")


@dataclass(frozen=True)
class Filters:
    """The consumption filters; empty = everything."""

    teams: Sequence[str] = ()
    users: Sequence[str] = ()
    kinds: Sequence[str] = ()
    direction: str | None = None


class RecordStore:
    """DuckDB over one source (see the module's docstring). Close it after use."""

    def __init__(self, source: DataSource) -> None:
        self.source = source
        self.con = duckdb.connect(":memory:")
        self.con.execute("SET TimeZone = 'UTC'")

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> RecordStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- queries

    def select_records(
        self, tenant_id: str, start_us: int, end_us: int, zone: str, filters: Filters
    ) -> int:
        """Materialize ``report_records``: the tenant's rated records whose rating time is
        in [start_us, end_us) and that pass ``filters``; the number of them."""
        files = self._rated_files(start_us, end_us - 1)
        if not files:
            self._execute(_EMPTY, {})
            return 0
        params = {
            "files": files,
            "tenant": tenant_id,
            "start": start_us,
            "end": end_us,
            "zone": zone,
            "teams": list(filters.teams),
            "users": list(filters.users),
            "kinds": list(filters.kinds),
            "direction": filters.direction,
        }
        rows = self._rows(files, _IN_RANGE, _RATING_TIME_IN_RANGE)
        self._execute(_FILTERED.format(rows=rows), params)
        return int(self.scalar("SELECT count(*) FROM report_records"))

    def charges_before(self, tenant_id: str, start_us: int) -> int:
        """The sum of the tenant's rated charges before ``start_us`` (every month)."""
        files = self._rated_files(None, start_us - 1)
        if not files:
            return 0
        sql = _CHARGES_BEFORE.format(rows=self._rows(files, _BEFORE, _RATING_TIME_BEFORE))
        return int(self.scalar(sql, {"files": files, "tenant": tenant_id, "start": start_us}))

    def adjustments(self, tenant_id: str) -> pl.DataFrame:
        """The tenant's applied adjustments (with the balance after each), by time."""
        files = self._adjustment_files()
        empty = pl.DataFrame(schema=ADJUSTMENT_COLUMNS)
        if not files:
            return empty
        rows = (_DATASET_ROWS if self._has_row_key(files) else _PLAIN_ROWS).format(where="")
        frame = self.frame(_ADJUSTMENTS.format(rows=rows), {"files": files, "tenant": tenant_id})
        return frame.cast(ADJUSTMENT_COLUMNS) if frame.height else empty  # type: ignore[arg-type]

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """All rows of a constant query over ``report_records``."""
        return self._execute(sql, params or {}).fetchall()

    def scalar(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        row = self._execute(sql, params or {}).fetchone()
        return None if row is None else row[0]

    def frame(self, sql: str, params: dict[str, Any] | None = None) -> pl.DataFrame:
        """A constant query's result as a Polars frame (through Arrow, no copy by row)."""
        try:
            return pl.DataFrame(self.con.sql(sql, params=params or {}))
        except duckdb.Error as exc:
            raise self._error(exc) from None

    # ----------------------------------------------------------------- files

    def _rows(self, files: list[str], where: str, pushed: str) -> str:
        """The tenant's rows of ``files`` meeting ``where``; in the dataset also ``pushed``
        (the same bounds on ``rating_time``) when every file has that column."""
        if self.source.kind != "dataset":
            return _PLAIN_ROWS.format(where=where)
        if self._in_every_file(files, "rating_time"):
            where = f"{pushed} {where}"
        return _DATASET_ROWS.format(where=where)

    def _rated_files(self, first_us: int | None, last_us: int) -> list[str]:
        if self.source.kind == "file":
            return [str(self.source.path)]
        if self.source.kind == "rate_file":
            return [str(self.source.path / "rated.parquet")]
        return _month_files(self.source.path / "rated", first_us, last_us)

    def _adjustment_files(self) -> list[str]:
        if self.source.kind == "rate_file":
            path = self.source.path / "adjustments.parquet"
            return [str(path)] if path.is_file() else []
        if self.source.kind == "dataset":
            return _month_files(self.source.path / "adjustments", None, None)
        return []

    def _has_row_key(self, files: list[str]) -> bool:
        names = {
            row[0]
            for row in self._execute(
                "DESCRIBE SELECT * FROM read_parquet($files, union_by_name = true)",
                {"files": files},
            ).fetchall()
        }
        return {"source_topic", "source_partition", "source_offset", "writer_generation"} <= names

    def _in_every_file(self, files: list[str], column: str) -> bool:
        found = self.scalar(
            "SELECT count(DISTINCT file_name) FROM parquet_schema($files) WHERE name = $column",
            {"files": files, "column": column},
        )
        return int(found) == len(files)

    def _execute(self, sql: str, params: dict[str, Any]) -> duckdb.DuckDBPyConnection:
        try:
            return self.con.execute(sql, params)
        except duckdb.Error as exc:
            raise self._error(exc) from None

    def _error(self, exc: Exception) -> InputError:
        return InputError(
            f"{self.source.path}: cannot be read ({first_line(exc)}). "
            "Fix: point --dataset at a rate-file output directory or the streaming job's "
            "dataset, as the rater wrote them"
        )


def _month_files(root: Path, first_us: int | None, last_us: int | None) -> list[str]:
    """The Parquet files of ``root/month=YYYY-MM/`` (the UTC month of each row's time)
    whose month can hold an instant of [first_us, last_us] (None: unbounded on that
    side)."""
    low = None if first_us is None else _month_label(first_us)
    high = None if last_us is None else _month_label(last_us)
    try:
        months = sorted(p for p in root.glob("month=*") if p.is_dir())
        chosen = [
            m
            for m in months
            if (low is None or m.name[6:] >= low) and (high is None or m.name[6:] <= high)
        ]
        return [str(f) for m in chosen for f in sorted(m.glob("*.parquet")) if f.is_file()]
    except OSError as exc:
        raise InputError(
            f"{root}: cannot be read ({exc.strerror or type(exc).__name__}). "
            "Fix: make the dataset readable by the user running the report"
        ) from None


def _month_label(instant_us: int) -> str:
    moment = _EPOCH + timedelta(microseconds=instant_us)
    return f"{moment.year:04d}-{moment.month:02d}"


def as_ints(rows: Iterable[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows with every integer-like value (DuckDB HUGEINT sums) as a Python int."""
    return [tuple(int(v) if isinstance(v, int) else v for v in row) for row in rows]
