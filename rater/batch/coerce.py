"""CDR files' columns made into the core's CDR dtypes, each bad value named by its place.

A value that does not parse, or does not fit its column's type, is an ``InputError``
naming the file, the line (CSV) or record and the fix; values that parse are kept as
they are, however absurd (the core's rule 1 marks those records invalid).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl

from rater.core.columns import CDR_SCHEMA, RATED_EXTRA_SCHEMA, TIME
from rater.errors import InputError
from rater.tariff_files.text import shown

__all__ = [
    "EPOCH",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "TIME_COLUMNS",
    "Place",
    "TimeUnit",
    "coerce",
    "datetime_micros",
]

log = logging.getLogger(__name__)

TIME_COLUMNS = ("start_time", "answer_time", "end_time")
OPTIONAL_COLUMNS = ("user_id", "team_id", "answer_time", "hold_ms", "segments")
REQUIRED_COLUMNS = tuple(c for c in CDR_SCHEMA if c not in OPTIONAL_COLUMNS)
# Null in these makes a record meaningless (no key, no kind, no time); callee is
# not among them because an empty callee is the contract's ``bad_number``.
_NOT_NULL = ("cdr_id", "tenant_id", "kind", "direction", "start_time", "end_time")
_ENUMS = {"kind": ("call", "sms", "ring_through"), "direction": ("inbound", "outbound")}
_ISO_FORMAT = "%Y-%m-%dT%H:%M:%S%.f%z"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_INT64_MAX = 2**63 - 1
_INTEGER_TEXT = re.compile(r"[+-]?[0-9]+")
TimeUnit = Literal["ms", "us", "ns"]


@dataclass(frozen=True)
class Place:
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


def datetime_micros(value: dt.datetime) -> int:
    """Microseconds since the epoch, exact for any datetime (naive = UTC)."""
    if value.utcoffset() is None:
        value = value.replace(tzinfo=dt.UTC)
    delta = value - EPOCH  # aware subtraction: no intermediate datetime, no overflow
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def coerce(frame: pl.DataFrame, place: Place) -> pl.DataFrame:
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


def _without_output_columns(frame: pl.DataFrame, place: Place) -> pl.DataFrame:
    clash = [c for c in frame.columns if c in RATED_EXTRA_SCHEMA]
    if clash:
        log.warning(
            "%s: ignoring input column(s) %s: the rater writes its own",
            place.file,
            ", ".join(clash),
        )
    return frame.drop(clash)


def _column(frame: pl.DataFrame, name: str, dtype: pl.DataType, place: Place) -> pl.Series:
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


def _to_str(col: pl.Series, place: Place) -> pl.Series:
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


def _to_int(col: pl.Series, dtype: pl.DataType, place: Place) -> pl.Series:
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


def _parse_int_text(col: pl.Series, place: Place) -> pl.Series:
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
            f"{place.at(row)}: {col.name} {shown(text)} {problem}. "
            f"Fix: write {col.name} as a whole number or leave it empty"
        )
    return parsed


def _int_range(dtype: pl.DataType) -> tuple[int, int]:
    widths: dict[pl.DataType, int] = {pl.Int8(): 8, pl.Int16(): 16, pl.Int32(): 32}
    bits = widths.get(dtype, 64)
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def _to_time(col: pl.Series, place: Place) -> pl.Series:
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


def _datetime_to_us(col: pl.Series, place: Place) -> pl.Series:
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


def _parse_times(col: pl.Series, place: Place) -> pl.Series:
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
                f"{place.at(row)}: {col.name} {shown(col[row])} is not an "
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
    return datetime_micros(value)


def _check_values(frame: pl.DataFrame, place: Place) -> None:
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
                f"{place.at(row)}: {name} {shown(frame[name][row])} is not one of "
                f"{', '.join(allowed)}. Fix: use one of those lower-case values"
            )


def _first(mask: pl.Series) -> int:
    """Index of the first true value of ``mask`` (which has one)."""
    return int(mask.arg_true()[0])
