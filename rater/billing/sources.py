"""Where billing and reports read rated records and balance adjustments from.

A source is one of:

- a ``rate-file`` output directory: ``rated.parquet`` (records in input order) and
  ``adjustments.parquet`` (each adjustment with its status and the balance after it);
- the streaming job's dataset directory: ``rated/month=YYYY-MM/*.parquet`` and
  ``adjustments/month=YYYY-MM/*.parquet``; only the months that can hold the range asked
  for are read, each consumed record once (the newest writer generation of each source
  offset, as the DuckDB views do), in input order per partition;
- a single rated ``.parquet`` file.

Reading never changes anything. A path that is none of these, or a file that cannot be
read, is one line naming it and the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import polars as pl

from rater.core.columns import CDR_SCHEMA, RATED_EXTRA_SCHEMA
from rater.errors import InputError, UsageError
from rater.tariff_files.text import first_line

__all__ = ["Source", "open_source"]

_ROW_KEY = ["source_topic", "source_partition", "source_offset"]
RATED_SCHEMA: dict[str, pl.DataType] = {**CDR_SCHEMA, **RATED_EXTRA_SCHEMA}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Rating times are read in a plan's zone: a local month reaches 14 hours either side of
# the UTC month.
_ZONE_MARGIN = timedelta(hours=15)


@dataclass(frozen=True)
class Source:
    kind: Literal["rate_file", "dataset", "file"]
    path: Path

    def rated(
        self, start_us: int, end_us: int, columns: Sequence[str] | None = None
    ) -> pl.DataFrame:
        """The rated records whose rating time is in [start_us, end_us) (UTC), in input
        order, with ``columns`` (all when None)."""
        rating_us = pl.coalesce("answer_time", "start_time").dt.epoch("us")
        wanted = None if columns is None else list(dict.fromkeys(columns))
        frame = self._rated_frame(start_us, end_us)
        if frame is None:  # a dataset without a file for these months
            return pl.DataFrame(
                schema={c: RATED_SCHEMA.get(c, pl.String()) for c in wanted or RATED_SCHEMA}
            )
        missing = [c for c in wanted or [] if c not in _names(frame, self.path)]
        if missing:
            raise InputError(
                f"{self.path}: rated records without column(s) {', '.join(missing)}. "
                "Fix: point at a rate-file output directory or the streaming job's dataset"
            )
        frame = frame.filter((rating_us >= start_us) & (rating_us < end_us))
        return _collect(frame if wanted is None else frame.select(wanted), self.path)

    def adjustments(self) -> pl.DataFrame | None:
        """The adjustments recorded with the records (with their status), if any."""
        if self.kind == "rate_file":
            path = self.path / "adjustments.parquet"
            return _collect(pl.scan_parquet(path), path) if path.is_file() else None
        if self.kind == "dataset":
            files = sorted((self.path / "adjustments").glob("month=*/*.parquet"))
            if not files:
                return None
            where = self.path / "adjustments"
            frame = _newest(pl.scan_parquet(files, hive_partitioning=False), where)
            return _collect(frame.sort("time", "adjustment_id"), where)
        return None

    def _rated_frame(self, start_us: int, end_us: int) -> pl.LazyFrame | None:
        if self.kind == "file":
            return pl.scan_parquet(self.path)
        if self.kind == "rate_file":
            return pl.scan_parquet(self.path / "rated.parquet")
        files = _month_files(self.path / "rated", start_us, end_us)
        if not files:
            return None
        frame = _newest(pl.scan_parquet(files, hive_partitioning=False), self.path / "rated")
        return frame.sort("source_partition", "source_offset", maintain_order=True)


def open_source(path: Path, flag: str = "--rated") -> Source:
    """The source at ``path``; UsageError (one line, with the fix) when it is none."""
    path = Path(path)
    fix = (
        "Fix: pass a rate-file output directory (with rated.parquet), the streaming job's "
        "dataset directory (with rated/) or a rated .parquet file"
    )
    try:
        if path.is_file() and path.suffix.lower() == ".parquet":
            return Source("file", path)
        if (path / "rated.parquet").is_file():
            return Source("rate_file", path)
        if (path / "rated").is_dir():
            return Source("dataset", path)
        exists = path.exists()
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot be read ({exc.strerror}). {fix}") from None
    what = "holds no rated records" if exists else "no such file or directory"
    raise UsageError(f"{flag} {path}: {what}. {fix}")


def _month_files(root: Path, start_us: int, end_us: int) -> list[Path]:
    """The dataset's files of the UTC months that can hold [start_us, end_us) read in any
    zone."""
    first = _EPOCH + timedelta(microseconds=start_us) - _ZONE_MARGIN
    last = _EPOCH + timedelta(microseconds=end_us) + _ZONE_MARGIN
    wanted = {f"month={first.year:04d}-{first.month:02d}"}
    cursor = first.replace(day=1)
    while cursor <= last:
        wanted.add(f"month={cursor.year:04d}-{cursor.month:02d}")
        cursor = (cursor + timedelta(days=32)).replace(day=1)
    return sorted(f for d in wanted for f in (root / d).glob("*.parquet"))


def _newest(frame: pl.LazyFrame, path: Path) -> pl.LazyFrame:
    """Each source offset once: the row of the newest writer generation."""
    names = _names(frame, path)
    if not set(_ROW_KEY) <= set(names):
        return frame
    if "writer_generation" not in names:
        return frame.unique(_ROW_KEY, keep="first", maintain_order=True)
    return frame.sort("writer_generation", descending=True, maintain_order=True).unique(
        _ROW_KEY, keep="first", maintain_order=True
    )


def _names(frame: pl.LazyFrame, path: Path) -> list[str]:
    """The columns of ``frame`` (reading the files' footers)."""
    try:
        return frame.collect_schema().names()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise _unreadable(path, exc) from None


def _collect(frame: pl.LazyFrame, path: Path) -> pl.DataFrame:
    try:
        return frame.collect(engine="streaming")  # in chunks: a smaller peak of memory
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise _unreadable(path, exc) from None


def _unreadable(path: Path, exc: BaseException) -> InputError:
    return InputError(
        f"{path}: cannot be read ({first_line(exc)}). "
        "Fix: point at files the rater wrote (rate-file outputs or its dataset)"
    )
