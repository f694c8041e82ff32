"""``rater rate-file``: rate one CDR file with the same core as the streaming job.

The file is rated in slices of ``batch_size`` records, threading the rating state
(seen ids, allowance usage, balances) from one slice to the next, so the output is
the same whatever the slice size. The three output files are written under
temporary names (``.<name>.<pid>.tmp``) in the output directory and renamed into
place only once all of them are complete, so a reader never sees a half-written
file; the temporary files a killed run left behind are removed by the next run.

The output directory is checked (created if missing, proven writable) before the
input is read, so a bad ``--output`` fails fast with one line.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import polars as pl

from rater.batch.cdr_files import check_input_file, iter_cdr_batches, read_cdrs
from rater.core.columns import BALANCE_SCHEMA, EVENT_SCHEMA, RATED_EXTRA_SCHEMA
from rater.core.money import format_micros
from rater.core.rating import balances_frame, rate_batch
from rater.core.state import RatingState
from rater.core.tariff import Tariff
from rater.errors import UsageError

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "OUTPUT_FILES",
    "BatchSummary",
    "rate_file",
]

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 100_000
OUTPUT_FILES = ("rated.parquet", "events.parquet", "balances.parquet")
# The temporary name of an output file while it is written: .<name>.<pid>.tmp
_TEMP_NAME = re.compile(
    r"\.(?P<name>" + "|".join(re.escape(n) for n in OUTPUT_FILES) + r")\.(?P<pid>[0-9]+)\.tmp"
)
# A run writes its temporary files within minutes; one untouched this long is stale
# even if its pid now belongs to another process.
_STALE_TEMP_SECONDS = 24 * 3600
STATUSES = ("rated", "unrated", "invalid", "duplicate")
# Below this many records the run is over before a bar would be worth drawing.
PROGRESS_MIN_RECORDS = 200_000


@dataclass(frozen=True)
class BatchSummary:
    """What one ``rate_file`` run produced."""

    input_path: Path
    output_dir: Path
    records: int
    by_status: dict[str, int] = field(default_factory=dict)
    charges_by_currency: dict[str, int] = field(default_factory=dict)  # micros
    events: int = 0
    prepaid_tenants: int = 0

    def lines(self) -> list[str]:
        """The human summary printed by ``rater rate-file``."""
        statuses = ", ".join(f"{s} {self.by_status.get(s, 0)}" for s in STATUSES)
        charges = ", ".join(
            f"{cur} {format_micros(m)}" for cur, m in sorted(self.charges_by_currency.items())
        )
        return [
            f"{self.records} records from {self.input_path} -> {self.output_dir}",
            f"  status:  {statuses}",
            f"  charged: {charges or 'nothing'}",
            f"  events:  {self.events}; balances: {self.prepaid_tenants} prepaid tenants",
        ]


def rate_file(
    config_dir: Path,
    input_path: Path,
    output_dir: Path,
    *,
    batch_size: int | None = None,
    progress: bool = False,
) -> BatchSummary:
    """Rate ``input_path`` against the tariff in ``config_dir`` into ``output_dir``.

    Writes ``rated.parquet``, ``events.parquet`` and ``balances.parquet``. Raises
    ConfigError for a bad tariff, InputError for an unreadable input file and
    UsageError for a bad argument. ``progress`` draws a bar on stderr for large files.
    """
    from rater.tariff_files import load_tariff

    size = DEFAULT_BATCH_SIZE if batch_size is None else batch_size
    if size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {size}")
    config_dir, input_path, output_dir = Path(config_dir), Path(input_path), Path(output_dir)
    if not _exists(config_dir):
        raise UsageError(
            f"tariff directory {config_dir} does not exist: pass --config DIR "
            "(or set RATER_TARIFF_DIR) to a directory holding plans.yaml, rates.csv, tenants.csv"
        )
    tariff = load_tariff(config_dir)  # a file, not a directory: ConfigError from here
    check_input_file(input_path)
    _prepare_output_dir(output_dir)
    cdrs = read_cdrs(input_path)

    bar = (
        _ProgressBar(cdrs.height, sys.stderr)
        if progress and cdrs.height >= PROGRESS_MIN_RECORDS
        else None
    )
    rated, events, balances = _rate_slices(tariff, cdrs, size, bar)
    _write_atomically(output_dir, dict(zip(OUTPUT_FILES, (rated, events, balances), strict=True)))
    return _summarize(input_path, output_dir, rated, events, balances)


def _rate_slices(
    tariff: Tariff, cdrs: pl.DataFrame, size: int, bar: _ProgressBar | None
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(rated, events, balances) of ``cdrs`` rated in slices of ``size``, the state
    threaded from one slice to the next."""
    state = RatingState.empty()
    rated_parts: list[pl.DataFrame] = []
    event_parts: list[pl.DataFrame] = []
    done = 0
    for chunk in iter_cdr_batches(cdrs, size):
        if chunk.height == 0:
            continue
        result = rate_batch(tariff, chunk, state)
        state = result.state
        # Per-slice dtypes can differ (an all-null column); pin them so slices concatenate.
        rated_parts.append(
            result.rated.with_columns(pl.col(c).cast(t) for c, t in RATED_EXTRA_SCHEMA.items())
        )
        event_parts.append(result.events.select(pl.col(c).cast(t) for c, t in EVENT_SCHEMA.items()))
        done += chunk.height
        if bar is not None:
            bar.update(done)
    if bar is not None:
        bar.finish()
    rated = pl.concat(rated_parts, how="vertical") if rated_parts else _empty_rated(cdrs)
    events = (
        pl.concat(event_parts, how="vertical") if event_parts else pl.DataFrame(schema=EVENT_SCHEMA)
    )
    balances = balances_frame(tariff, state).select(
        pl.col(c).cast(t) for c, t in BALANCE_SCHEMA.items()
    )
    return rated, events, balances


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:
        return True  # present but unreadable: loading it says why


def _prepare_output_dir(output_dir: Path) -> None:
    """Create ``output_dir`` if missing, prove it writable, remove stale temporary files.

    Raises UsageError (one line, with the fix) when it is not a directory, cannot be
    created or cannot be written to.
    """
    try:
        if output_dir.exists() and not output_dir.is_dir():
            raise UsageError(
                f"--output {output_dir}: exists and is not a directory. "
                "Fix: choose a directory (it is created if missing)"
            )
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"--output {output_dir}: cannot be created ({_reason(exc)}). "
            "Fix: choose a directory you can write to"
        ) from None
    _check_writable(output_dir)
    _remove_stale_temps(output_dir)


def _check_writable(output_dir: Path) -> None:
    """Create and remove a probe file: the only test that holds for every user
    (root included), file system (read-only mounts) and access control scheme."""
    try:
        handle, probe = tempfile.mkstemp(prefix=".rater-write-check.", dir=output_dir)
    except OSError as exc:
        raise UsageError(
            f"--output {output_dir}: not writable ({_reason(exc)}). "
            "Fix: choose a directory you can write to"
        ) from None
    os.close(handle)
    Path(probe).unlink(missing_ok=True)


def _remove_stale_temps(output_dir: Path) -> None:
    """Delete ``.<output name>.<pid>.tmp`` files of runs that no longer exist."""
    try:
        entries = list(os.scandir(output_dir))
    except OSError:
        return
    for entry in entries:
        match = _TEMP_NAME.fullmatch(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            continue
        if _process_alive(int(match["pid"])) and not _untouched_for_long(entry):
            continue  # another run writing right now: leave it
        try:
            os.unlink(entry.path)
            log.info("removed %s, left by an interrupted run", entry.path)
        except OSError as exc:
            log.warning("cannot remove %s (%s)", entry.path, _reason(exc))


def _untouched_for_long(entry: os.DirEntry[str]) -> bool:
    try:
        modified = entry.stat(follow_symlinks=False).st_mtime
    except OSError:
        return False
    return time.time() - modified > _STALE_TEMP_SECONDS


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # ours from an earlier call in this process, now stale
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True  # exists, but belongs to another user
    except (ProcessLookupError, OverflowError):
        return False  # gone, or a number no process can have
    return True


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _empty_rated(cdrs: pl.DataFrame) -> pl.DataFrame:
    return pl.concat([cdrs, pl.DataFrame(schema=RATED_EXTRA_SCHEMA)], how="horizontal")


def _write_atomically(output_dir: Path, frames: dict[str, pl.DataFrame]) -> None:
    temps: dict[str, Path] = {}
    try:
        for name, frame in frames.items():
            tmp = output_dir / f".{name}.{os.getpid()}.tmp"
            temps[name] = tmp
            frame.write_parquet(tmp, compression="zstd", statistics=True)
        for name, tmp in temps.items():
            os.replace(tmp, output_dir / name)
    except (OSError, pl.exceptions.PolarsError) as exc:
        reason = _reason(exc) if isinstance(exc, OSError) else str(exc).strip().split("\n")[0]
        raise UsageError(
            f"--output {output_dir}: writing the results failed ({reason}). "
            "Fix: free some space or choose another directory you can write to"
        ) from None
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)


def _summarize(
    input_path: Path,
    output_dir: Path,
    rated: pl.DataFrame,
    events: pl.DataFrame,
    balances: pl.DataFrame,
) -> BatchSummary:
    counts = rated.group_by("status").len()
    by_status = {str(s): int(n) for s, n in counts.iter_rows()}
    charges = (
        rated.filter(pl.col("currency").is_not_null())
        .group_by("currency")
        .agg(pl.col("charge_micros").sum())
    )
    by_currency = {str(c): int(m) for c, m in charges.iter_rows()}
    return BatchSummary(
        input_path=input_path,
        output_dir=output_dir,
        records=rated.height,
        by_status=by_status,
        charges_by_currency=by_currency,
        events=events.height,
        prepaid_tenants=balances.height,
    )


class _ProgressBar:
    """A one-line text bar redrawn in place with carriage returns."""

    WIDTH = 30

    def __init__(self, total: int, stream: TextIO, clock: Callable[[], float] = time.monotonic):
        self.total = max(total, 1)
        self.stream = stream
        self.clock = clock
        self.started = clock()

    def update(self, done: int) -> None:
        filled = self.WIDTH * done // self.total
        elapsed = max(self.clock() - self.started, 1e-9)
        rate = done / elapsed
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (self.WIDTH - filled)}] "
            f"{done}/{self.total} records {100 * done // self.total}% {rate:,.0f}/s"
        )
        self.stream.flush()

    def finish(self) -> None:
        self.stream.write("\n")
        self.stream.flush()
