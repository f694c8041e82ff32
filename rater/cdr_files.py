"""Read CDR files (.csv, .parquet, .avro) into a frame with the core's CDR dtypes.

A file is rejected as a whole (``InputError`` naming the file, the line or row and
the fix) only when it cannot be interpreted: unreadable, a required column
missing, a timestamp or integer that does not parse, a kind or direction outside
the contract's values, or a missing identifier or time. Values that parse but
break a rating rule (end before start, a bad callee, negative hold) are kept: the
core marks those records ``invalid`` with the contract's reason.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl

from rater.core.columns import CDR_SCHEMA, TIME
from rater.errors import InputError

__all__ = [
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "SUPPORTED_SUFFIXES",
    "iter_cdr_batches",
    "read_cdrs",
]

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = (".csv", ".parquet", ".avro")
OPTIONAL_COLUMNS = ("user_id", "team_id", "answer_time", "hold_ms", "segments")
REQUIRED_COLUMNS = tuple(c for c in CDR_SCHEMA if c not in OPTIONAL_COLUMNS)
_TIME_COLUMNS = ("start_time", "answer_time", "end_time")
# Null in these makes a record meaningless (no key, no kind, no time); callee is
# not among them because an empty callee is the contract's ``bad_number``.
_NOT_NULL = ("cdr_id", "tenant_id", "kind", "direction", "start_time", "end_time")
_ENUMS = {"kind": ("call", "sms", "ring_through"), "direction": ("inbound", "outbound")}
_ISO_FORMAT = "%Y-%m-%dT%H:%M:%S%.f%z"


def read_cdrs(path: Path) -> pl.DataFrame:
    """Read a whole CDR file into CDR_SCHEMA dtypes, extra columns kept after them.

    Missing optional columns are added: ``user_id``, ``team_id`` and ``answer_time``
    as null, ``hold_ms`` as 0 and ``segments`` as 1 (nulls in those two columns
    get the same defaults). A null callee becomes the empty string.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"{path}: no such file. Fix: pass an existing .csv, .parquet or .avro file"
        )
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame = _read_csv(path)
        first_line = 2  # line 1 is the header
    elif suffix == ".parquet":
        frame = _read_parquet(path)
        first_line = 1
    elif suffix == ".avro":
        frame = _read_avro(path)
        first_line = 1
    else:
        raise InputError(
            f"{path}: unknown input format {suffix or '(no extension)'!r}. "
            "Fix: use a .csv, .parquet or .avro (object container) file"
        )
    return _coerce(frame, path, first_line, "line" if suffix == ".csv" else "record")


def iter_cdr_batches(frame: pl.DataFrame, batch_size: int) -> Iterator[pl.DataFrame]:
    """Yield consecutive slices of at most ``batch_size`` rows (at least one slice)."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    if frame.height == 0:
        yield frame
        return
    for offset in range(0, frame.height, batch_size):
        yield frame.slice(offset, batch_size)


def _read_csv(path: Path) -> pl.DataFrame:
    try:
        # Everything as text: types are applied by _coerce so that a bad value can be
        # reported with its line number instead of a parser's guess.
        frame = pl.read_csv(
            path,
            infer_schema=False,
            null_values=[""],
        )
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"{path}: not a readable CSV file ({_first_line(exc)}). "
            "Fix: provide UTF-8 CSV with a header line of CDR field names"
        ) from None
    return frame.with_columns(pl.col(c).str.strip_chars() for c in frame.columns)


def _read_parquet(path: Path) -> pl.DataFrame:
    try:
        return pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputError(
            f"{path}: not a readable Parquet file ({_first_line(exc)}). "
            "Fix: provide a Parquet file with the CDR fields as columns"
        ) from None


def _read_avro(path: Path) -> pl.DataFrame:
    import fastavro

    try:
        with path.open("rb") as fh:
            reader = fastavro.reader(fh)
            fields = [f["name"] for f in reader.writer_schema.get("fields", [])]  # type: ignore[union-attr]
            columns: dict[str, list[Any]] = {name: [] for name in fields}
            for record in reader:
                for name in fields:
                    columns[name].append(record.get(name))  # type: ignore[union-attr]
    except (ValueError, OSError, EOFError, TypeError, KeyError, AttributeError) as exc:
        raise InputError(
            f"{path}: not a readable Avro object container file ({_first_line(exc)}). "
            "Fix: provide an Avro object container written with schemas/cdr.avsc"
        ) from None
    series: list[pl.Series] = []
    for name, values in columns.items():
        try:
            if name in _TIME_COLUMNS:
                series.append(pl.Series(name, [_avro_time(v) for v in values], dtype=TIME))
            else:
                series.append(pl.Series(name, values, strict=False))
        except (pl.exceptions.PolarsError, TypeError, ValueError) as exc:
            raise InputError(
                f"{path}: field {name!r} has values of an unexpected type ({_first_line(exc)}). "
                "Fix: write the file with schemas/cdr.avsc"
            ) from None
    return pl.DataFrame(series)


def _avro_time(value: Any) -> dt.datetime | None:
    # fastavro decodes timestamp-micros to aware datetimes; a plain long is taken as
    # microseconds since the epoch, a naive datetime as UTC.
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, int):
        return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=value)
    if isinstance(value, str):
        return _parse_iso(value)
    return None


def _coerce(frame: pl.DataFrame, path: Path, first_line: int, unit: str) -> pl.DataFrame:
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(
            f"{path}: required column(s) missing: {', '.join(missing)}. "
            f"Fix: add them (the CDR fields are {', '.join(CDR_SCHEMA)})"
        )
    frame = frame.with_row_index("__row")
    defaults: dict[str, Any] = {"hold_ms": 0, "segments": 1}
    out: list[pl.Series] = []
    for name, dtype in CDR_SCHEMA.items():
        if name not in frame.columns:
            out.append(pl.Series(name, [defaults.get(name)] * frame.height, dtype=dtype))
            continue
        col = frame[name]
        if isinstance(dtype, pl.Datetime):
            col = _to_time(col, frame["__row"], path, first_line, unit)
        elif dtype.is_integer():
            col = _to_int(col, dtype, frame["__row"], path, first_line, unit)
            if name in defaults:
                col = col.fill_null(defaults[name])
        else:
            col = _to_str(col, path)
        out.append(col.alias(name))
    extras = [frame[c] for c in frame.columns if c not in CDR_SCHEMA and c != "__row"]
    result = pl.DataFrame(out + extras)
    result = result.with_columns(pl.col("callee").fill_null(""))
    _check_values(result, path, first_line, unit)
    return result


def _to_str(col: pl.Series, path: Path) -> pl.Series:
    if col.dtype == pl.String:
        return col
    if col.dtype == pl.Null:
        return col.cast(pl.String)
    if isinstance(col.dtype, pl.Categorical | pl.Enum):
        return col.cast(pl.String)
    if col.dtype.is_integer():
        return col.cast(pl.String)
    raise InputError(
        f"{path}: column {col.name!r} has type {col.dtype}, expected text. "
        "Fix: write it as a string column"
    )


def _to_int(
    col: pl.Series, dtype: pl.DataType, rows: pl.Series, path: Path, first_line: int, unit: str
) -> pl.Series:
    if col.dtype == pl.Null:
        return col.cast(dtype)
    if col.dtype.is_integer():
        return col.cast(dtype)
    if col.dtype == pl.String:
        parsed = col.cast(pl.Int64, strict=False)
        bad = col.is_not_null() & parsed.is_null()
        if bad.any():
            idx = int(rows.filter(bad)[0])
            raise InputError(
                f"{path}:{unit} {idx + first_line}: {col.name} {col[idx]!r} is not an integer. "
                f"Fix: write {col.name} as a whole number or leave it empty"
            )
        return parsed.cast(dtype)
    raise InputError(
        f"{path}: column {col.name!r} has type {col.dtype}, expected an integer. "
        "Fix: write it as an integer column"
    )


def _to_time(col: pl.Series, rows: pl.Series, path: Path, first_line: int, unit: str) -> pl.Series:
    if isinstance(col.dtype, pl.Datetime):
        if col.dtype.time_zone is None:
            # A naive timestamp column in Parquet is UTC by the contract.
            col = col.dt.replace_time_zone("UTC")
        return col.dt.convert_time_zone("UTC").cast(TIME)
    if col.dtype == pl.Null:
        return col.cast(TIME)
    if col.dtype != pl.String:
        raise InputError(
            f"{path}: column {col.name!r} has type {col.dtype}, expected a timestamp. "
            "Fix: write it as a UTC timestamp (microseconds) or ISO-8601 text"
        )
    text = col.str.replace(r"[zZ]$", "+00:00")
    parsed = text.str.to_datetime(_ISO_FORMAT, time_unit="us", time_zone="UTC", strict=False)
    bad = col.is_not_null() & parsed.is_null()
    if not bad.any():
        return parsed
    # The fast path wants the canonical form; anything else ISO-8601 accepts (a space
    # separator, a basic offset like +0100) is parsed one value at a time.
    values = parsed.to_list()
    for idx in rows.filter(bad).to_list():
        value = _parse_iso(col[idx])
        if value is None:
            raise InputError(
                f"{path}:{unit} {idx + first_line}: {col.name} {col[idx]!r} is not an "
                "ISO-8601 timestamp with an offset. "
                "Fix: write it like 2026-03-01T08:30:00Z or 2026-03-01T09:30:00+01:00"
            )
        values[idx] = value
    return pl.Series(col.name, values, dtype=TIME)


def _parse_iso(text: str) -> dt.datetime | None:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is None:
        # Ambiguous: a local time without its offset cannot be placed on the timeline.
        return None
    return value.astimezone(dt.UTC)


def _check_values(frame: pl.DataFrame, path: Path, first_line: int, unit: str) -> None:
    for name in _NOT_NULL:
        nulls = frame[name].is_null()
        if nulls.any():
            idx = int(nulls.arg_true()[0])
            raise InputError(
                f"{path}:{unit} {idx + first_line}: {name} is empty. "
                f"Fix: every record needs {', '.join(_NOT_NULL)}"
            )
    for name, allowed in _ENUMS.items():
        bad = ~frame[name].is_in(list(allowed))
        if bad.any():
            idx = int(bad.arg_true()[0])
            raise InputError(
                f"{path}:{unit} {idx + first_line}: {name} {frame[name][idx]!r} is not one of "
                f"{', '.join(allowed)}. Fix: use one of those lower-case values"
            )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
