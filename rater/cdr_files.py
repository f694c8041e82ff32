"""Read CDR files (.csv, .parquet, .avro) into a frame with the core's CDR dtypes.

A file is rejected as a whole (``InputError`` naming the file, the line or record
and the fix) only when it cannot be interpreted: unreadable, not UTF-8 (CSV), a
required column missing, a timestamp or integer that does not parse or does not fit
its column's type, a kind or direction outside the contract's values, or a missing
identifier or time. Values that parse but break a rating rule (end before start,
year 9999, a 40-digit callee, negative hold, 0 segments) are kept as they are: the
core marks those records ``invalid`` with the contract's reason.

Nothing else escapes: whatever bytes a file holds, reading it either succeeds or
raises ``InputError``.
"""

from __future__ import annotations

import codecs
import datetime as dt
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import polars as pl

from rater.core.columns import CDR_SCHEMA, RATED_EXTRA_SCHEMA, TIME
from rater.errors import InputError

__all__ = [
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "SUPPORTED_SUFFIXES",
    "check_input_file",
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
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_INT64_MAX = 2**63 - 1
_INTEGER_TEXT = re.compile(r"[+-]?[0-9]+")
# Longest value quoted back in an error message.
_SHOWN_CHARS = 40
_FOREIGN_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)
_TimeUnit = Literal["ms", "us", "ns"]
# Avro logical types of a timestamp field, by the unit of their long value.
_AVRO_TIME_UNITS: dict[str, _TimeUnit] = {
    "timestamp-millis": "ms",
    "timestamp-micros": "us",
    "timestamp-nanos": "ns",
    "local-timestamp-millis": "ms",
    "local-timestamp-micros": "us",
    "local-timestamp-nanos": "ns",
}
_CSV_FIX = "Fix: provide UTF-8 CSV with a header line of CDR field names"
_AVRO_FIX = "Fix: provide an Avro object container written with schemas/cdr.avsc"


@dataclass(frozen=True)
class _Place:
    """Names a file, or one of its records, at the start of an error message."""

    path: Path
    first_line: int  # line (CSV) or record number of row 0
    unit: str  # "line" or "record"

    @property
    def file(self) -> str:
        text = str(self.path)
        return text if text.isprintable() else repr(text)

    def at(self, row: int) -> str:
        return f"{self.file}:{self.unit} {row + self.first_line}"


def check_input_file(path: Path) -> None:
    """Raise InputError unless ``path`` is a readable regular file of a supported format."""
    path = Path(path)
    name = _Place(path, 1, "line").file
    try:
        is_dir, exists, is_file = path.is_dir(), path.exists(), path.is_file()
    except OSError as exc:
        raise InputError(
            f"{name}: cannot be read ({_reason(exc)}). "
            "Fix: pass a file readable by the user running the rater"
        ) from None
    if is_dir:
        raise InputError(
            f"{name}: is a directory, not a file. Fix: pass one .csv, .parquet or .avro file"
        )
    if not exists:
        raise InputError(
            f"{name}: no such file. Fix: pass an existing .csv, .parquet or .avro file"
        )
    if not is_file:
        raise InputError(
            f"{name}: not a regular file. Fix: pass a .csv, .parquet or .avro file on disk"
        )
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise InputError(
            f"{name}: unknown input format {suffix or '(no extension)'!r}. "
            "Fix: use a .csv, .parquet or .avro (object container) file"
        )
    try:
        path.open("rb").close()
    except OSError as exc:
        raise InputError(
            f"{name}: cannot be read ({_reason(exc)}). "
            "Fix: make it readable by the user running the rater"
        ) from None


def read_cdrs(path: Path) -> pl.DataFrame:
    """Read a whole CDR file into CDR_SCHEMA dtypes, extra columns kept after them.

    Missing optional columns are added: ``user_id``, ``team_id`` and ``answer_time``
    as null, ``hold_ms`` as 0 and ``segments`` as 1 (nulls in those two columns
    get the same defaults). A null callee becomes the empty string. Input columns
    named like the rater's output columns (``status``, ``charge``, ...; a
    rated.parquet read back) are dropped with a warning.
    """
    path = Path(path)
    check_input_file(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        # Line 1 is the header.
        return _coerce(_read_csv(path), _Place(path, 2, "line"))
    place = _Place(path, 1, "record")
    frame = _read_parquet(place) if suffix == ".parquet" else _read_avro(place)
    return _coerce(frame, place)


def iter_cdr_batches(frame: pl.DataFrame, batch_size: int) -> Iterator[pl.DataFrame]:
    """Yield consecutive slices of at most ``batch_size`` rows (at least one slice)."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    if frame.height == 0:
        yield frame
        return
    for offset in range(0, frame.height, batch_size):
        yield frame.slice(offset, batch_size)


# ---------------------------------------------------------------------------------------
# CSV


def _read_csv(path: Path) -> pl.DataFrame:
    place = _Place(path, 1, "line")
    _check_csv_encoding(place)
    try:
        # Everything as text: types are applied by _coerce so that a bad value can be
        # reported with its line number instead of a parser's guess.
        frame = pl.read_csv(path, infer_schema=False, null_values=[""])
    except (pl.exceptions.PolarsError, OSError, pl.exceptions.PanicException) as exc:
        _raise_if_not_utf8(place)
        raise InputError(
            f"{place.file}: not a readable CSV file ({_first_line(exc)}). {_CSV_FIX}"
        ) from None
    return frame.with_columns(pl.col(c).str.strip_chars() for c in frame.columns)


def _check_csv_encoding(place: _Place) -> None:
    """Reject UTF-16/32 files and a header line that is not UTF-8 (read leniently by Polars).

    A UTF-8 byte order mark is accepted (Polars skips it).
    """
    try:
        with place.path.open("rb") as fh:
            head = fh.read(1 << 16)
    except OSError as exc:
        raise InputError(
            f"{place.file}: cannot be read ({_reason(exc)}). "
            "Fix: make it readable by the user running the rater"
        ) from None
    for bom, encoding in _FOREIGN_BOMS:
        if head.startswith(bom):
            raise InputError(
                f"{place.at(0)}: {encoding} text, not UTF-8. Fix: save the file as UTF-8"
            )
    header, newline, _ = head.partition(b"\n")
    if newline:
        _raise_if_not_utf8(place, header)


def _raise_if_not_utf8(place: _Place, data: bytes | None = None) -> None:
    """InputError naming the line of the first byte that is not UTF-8, if there is one.

    Reads ``data``, or else the whole file in chunks.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    row = 0  # lines before the current chunk
    try:
        for chunk in [data] if data is not None else _chunks(place.path):
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(chunk, final=data is not None)
            except UnicodeDecodeError as exc:
                start = min(max(exc.start - pending, 0), len(chunk) - 1)
                row += chunk.count(b"\n", 0, start)
                raise InputError(
                    f"{place.at(row)}: not UTF-8 text (byte 0x{chunk[start]:02x} cannot be "
                    "decoded). Fix: save the file as UTF-8"
                ) from None
            row += chunk.count(b"\n")
    except OSError:
        return  # unreadable: the caller reports its own error


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            yield chunk


# ---------------------------------------------------------------------------------------
# Parquet


def _read_parquet(place: _Place) -> pl.DataFrame:
    try:
        return pl.read_parquet(place.path)
    except (pl.exceptions.PolarsError, OSError, pl.exceptions.PanicException) as exc:
        raise InputError(
            f"{place.file}: not a readable Parquet file ({_first_line(exc)}). "
            "Fix: provide a Parquet file with the CDR fields as columns"
        ) from None


# ---------------------------------------------------------------------------------------
# Avro


def _read_avro(place: _Place) -> pl.DataFrame:
    columns, units = _avro_columns(place)
    series = []
    for name, values in columns.items():
        if name in _TIME_COLUMNS:
            series.append(_avro_times(name, values, units.get(name, "us"), place))
        else:
            series.append(_avro_values(name, values, place))
    return pl.DataFrame(series)


def _avro_columns(place: _Place) -> tuple[dict[str, list[Any]], dict[str, _TimeUnit]]:
    """Values of every top-level field, and the time unit of the timestamp fields."""
    import fastavro

    try:
        with place.path.open("rb") as fh:
            reader = fastavro.reader(fh)
            schema = _record_schema(reader.writer_schema, place)
            units = _raw_time_fields(schema, place)
            fields = [str(f["name"]) for f in schema.get("fields", [])]
            columns: dict[str, list[Any]] = {name: [] for name in fields}
            for record in reader:
                for name in fields:
                    columns[name].append(record.get(name))  # type: ignore[union-attr]
    except InputError:
        raise
    except Exception as exc:  # any decoding failure of a foreign file is the file's fault
        raise InputError(
            f"{place.file}: not a readable Avro object container file "
            f"({_first_line(exc)}). {_AVRO_FIX}"
        ) from None
    return columns, units


def _record_schema(schema: Any, place: _Place) -> dict[str, Any]:
    if isinstance(schema, dict) and schema.get("type") == "record":
        return schema
    kind = schema.get("type") if isinstance(schema, dict) else schema
    raise InputError(
        f"{place.file}: holds Avro {_shown(kind)} values, not CDR records. {_AVRO_FIX}"
    )


def _raw_time_fields(schema: dict[str, Any], place: _Place) -> dict[str, _TimeUnit]:
    """Units of the timestamp fields, whose logical type is then removed from the reader's
    copy of the schema: their longs come out raw, so that a value beyond Python's
    datetime range is kept (and later marked invalid) instead of failing the decoder."""
    units: dict[str, _TimeUnit] = {}
    for field in schema.get("fields", []):
        name = field.get("name") if isinstance(field, dict) else None
        if name not in _TIME_COLUMNS:
            continue
        branches = field["type"] if isinstance(field["type"], list) else [field["type"]]
        for branch in branches:
            if not isinstance(branch, dict) or "logicalType" not in branch:
                continue
            logical = branch["logicalType"]
            if logical not in _AVRO_TIME_UNITS:
                raise InputError(
                    f"{place.file}: field {name!r} has logical type {_shown(logical)}, "
                    f"expected timestamp-micros. {_AVRO_FIX}"
                )
            units[name] = _AVRO_TIME_UNITS[logical]
            del branch["logicalType"]
    return units


def _avro_times(name: str, values: list[Any], unit: _TimeUnit, place: _Place) -> pl.Series:
    """A timestamp field as Datetime (longs in ``unit``) or as text to parse later."""
    kinds = {type(v) for v in values if v is not None}
    if kinds <= {int}:
        return pl.Series(name, values, dtype=pl.Int64).cast(pl.Datetime(unit, "UTC"))
    if kinds <= {str}:
        return pl.Series(name, values, dtype=pl.String)
    if kinds <= {dt.datetime}:  # a decoder that converted the logical type anyway
        micros = [None if v is None else _datetime_micros(v) for v in values]
        return pl.Series(name, micros, dtype=pl.Int64).cast(TIME)
    shown = ", ".join(sorted(k.__name__ for k in kinds))
    raise InputError(
        f"{place.file}: field {name!r} holds {shown} values, expected timestamps. {_AVRO_FIX}"
    )


def _avro_values(name: str, values: list[Any], place: _Place) -> pl.Series:
    try:
        return pl.Series(name, values, strict=False)
    except (
        pl.exceptions.PolarsError,
        TypeError,
        ValueError,
        OverflowError,
        pl.exceptions.PanicException,
    ) as exc:
        raise InputError(
            f"{place.file}: field {name!r} has values of an unexpected type "
            f"({_first_line(exc)}). {_AVRO_FIX}"
        ) from None


def _datetime_micros(value: dt.datetime) -> int:
    """Microseconds since the epoch, exact for any datetime (naive = UTC)."""
    if value.utcoffset() is None:
        value = value.replace(tzinfo=dt.UTC)
    delta = value - _EPOCH  # aware subtraction: no intermediate datetime, no overflow
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


# ---------------------------------------------------------------------------------------
# Columns to CDR_SCHEMA dtypes


def _coerce(frame: pl.DataFrame, place: _Place) -> pl.DataFrame:
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(
            f"{place.file}: required column(s) missing: {', '.join(missing)}. "
            f"Fix: add them (the CDR fields are {', '.join(CDR_SCHEMA)})"
        )
    frame = _without_output_columns(frame, place)
    out = [_column(frame, name, dtype, place) for name, dtype in CDR_SCHEMA.items()]
    extras = [frame[c] for c in frame.columns if c not in CDR_SCHEMA]
    result = pl.DataFrame(out + extras)
    result = result.with_columns(pl.col("callee").fill_null(""))
    _check_values(result, place)
    return result


def _without_output_columns(frame: pl.DataFrame, place: _Place) -> pl.DataFrame:
    clash = [c for c in frame.columns if c in RATED_EXTRA_SCHEMA]
    if clash:
        log.warning(
            "%s: ignoring input column(s) %s: the rater writes its own",
            place.file,
            ", ".join(clash),
        )
    return frame.drop(clash)


def _column(frame: pl.DataFrame, name: str, dtype: pl.DataType, place: _Place) -> pl.Series:
    defaults: dict[str, int] = {"hold_ms": 0, "segments": 1}
    if name not in frame.columns:
        return pl.Series(name, [defaults.get(name)] * frame.height, dtype=dtype)
    col = frame[name]
    if isinstance(dtype, pl.Datetime):
        return _to_time(col, place).alias(name)
    if dtype.is_integer():
        col = _to_int(col, dtype, place)
        return col.fill_null(defaults[name]) if name in defaults else col
    return _to_str(col, place)


def _to_str(col: pl.Series, place: _Place) -> pl.Series:
    if col.dtype == pl.String:
        return col
    if col.dtype == pl.Null or isinstance(col.dtype, pl.Categorical | pl.Enum):
        return col.cast(pl.String)
    if col.dtype.is_integer():
        return col.cast(pl.String)
    raise InputError(
        f"{place.file}: column {col.name!r} has type {col.dtype}, expected text. "
        "Fix: write it as a string column"
    )


def _to_int(col: pl.Series, dtype: pl.DataType, place: _Place) -> pl.Series:
    if col.dtype == pl.Null:
        return col.cast(dtype)
    if col.dtype == pl.String:
        col = _parse_int_text(col, place)
    elif not col.dtype.is_integer():
        raise InputError(
            f"{place.file}: column {col.name!r} has type {col.dtype}, expected an integer. "
            "Fix: write it as an integer column"
        )
    fitted = col.cast(dtype, strict=False)
    lost = col.is_not_null() & fitted.is_null()
    if lost.any():
        row = _first(lost)
        low, high = _int_range(dtype)
        raise InputError(
            f"{place.at(row)}: {col.name} {col[row]} is out of range ({low}..{high}). "
            f"Fix: write {col.name} as a whole number in that range"
        )
    return fitted


def _parse_int_text(col: pl.Series, place: _Place) -> pl.Series:
    parsed = col.cast(pl.Int64, strict=False)
    bad = col.is_not_null() & parsed.is_null()
    if bad.any():
        row = _first(bad)
        text = str(col[row])
        if _INTEGER_TEXT.fullmatch(text):
            problem = "does not fit a 64-bit integer"
        else:
            problem = "is not an integer"
        raise InputError(
            f"{place.at(row)}: {col.name} {_shown(text)} {problem}. "
            f"Fix: write {col.name} as a whole number or leave it empty"
        )
    return parsed


def _int_range(dtype: pl.DataType) -> tuple[int, int]:
    widths: dict[pl.DataType, int] = {pl.Int8(): 8, pl.Int16(): 16, pl.Int32(): 32}
    bits = widths.get(dtype, 64)
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def _to_time(col: pl.Series, place: _Place) -> pl.Series:
    if isinstance(col.dtype, pl.Datetime):
        return _datetime_to_us(col, place)
    if col.dtype == pl.Null:
        return col.cast(TIME)
    if col.dtype != pl.String:
        raise InputError(
            f"{place.file}: column {col.name!r} has type {col.dtype}, expected a timestamp. "
            "Fix: write it as a UTC timestamp (microseconds) or ISO-8601 text"
        )
    return _parse_times(col, place)


def _datetime_to_us(col: pl.Series, place: _Place) -> pl.Series:
    """A Datetime column of any unit and zone as UTC microseconds, by integer arithmetic.

    The physical value is the UTC instant in the column's unit (a naive column is UTC
    by the contract); Polars' own casts can panic on values beyond its calendar.
    """
    assert isinstance(col.dtype, pl.Datetime)
    raw = col.cast(pl.Int64)
    unit = col.dtype.time_unit
    if unit == "ns":
        return (raw // 1000).cast(TIME)
    if unit == "ms":
        limit = _INT64_MAX // 1000
        beyond = (raw > limit) | (raw < -limit)
        if beyond.any():
            row = _first(beyond)
            raise InputError(
                f"{place.at(row)}: {col.name} ({raw[row]} ms since 1970) is beyond the "
                "range of microsecond timestamps. Fix: write a real time, "
                "e.g. 2026-03-01T08:30:00Z"
            )
        return (raw * 1000).cast(TIME)
    return raw.cast(TIME)


def _parse_times(col: pl.Series, place: _Place) -> pl.Series:
    text = col.str.replace(r"[zZ]$", "+00:00")
    parsed = text.str.to_datetime(_ISO_FORMAT, time_unit="us", time_zone="UTC", strict=False)
    bad = col.is_not_null() & parsed.is_null()
    if not bad.any():
        return parsed
    # The fast path wants the canonical form; anything else ISO-8601 accepts (a space
    # separator, a basic offset like +0100) is parsed one value at a time.
    micros = parsed.cast(pl.Int64).to_list()
    for row in bad.arg_true().to_list():
        value = _iso_micros(col[row])
        if value is None:
            raise InputError(
                f"{place.at(row)}: {col.name} {_shown(col[row])} is not an "
                "ISO-8601 timestamp with an offset. "
                "Fix: write it like 2026-03-01T08:30:00Z or 2026-03-01T09:30:00+01:00"
            )
        micros[row] = value
    return pl.Series(col.name, micros, dtype=pl.Int64).cast(TIME)


def _iso_micros(text: str) -> int | None:
    """Microseconds since the epoch of ISO-8601 ``text`` with an offset, else None."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.utcoffset() is None:
        # Ambiguous: a local time without its offset cannot be placed on the timeline.
        return None
    return _datetime_micros(value)


def _check_values(frame: pl.DataFrame, place: _Place) -> None:
    for name in _NOT_NULL:
        nulls = frame[name].is_null()
        if nulls.any():
            raise InputError(
                f"{place.at(_first(nulls))}: {name} is empty. "
                f"Fix: every record needs {', '.join(_NOT_NULL)}"
            )
    for name, allowed in _ENUMS.items():
        bad = ~frame[name].is_in(list(allowed))
        if bad.any():
            row = _first(bad)
            raise InputError(
                f"{place.at(row)}: {name} {_shown(frame[name][row])} is not one of "
                f"{', '.join(allowed)}. Fix: use one of those lower-case values"
            )


# ---------------------------------------------------------------------------------------
# Helpers


def _first(mask: pl.Series) -> int:
    """Index of the first true value of ``mask`` (which has one)."""
    return int(mask.arg_true()[0])


def _shown(value: object) -> str:
    """``repr(value)``, cut short so that an error message stays one readable line."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
