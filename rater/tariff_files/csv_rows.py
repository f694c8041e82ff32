"""Rows of the tariff's CSV files, and the parsers of their cells.

Every problem is a :class:`ConfigError` naming the file, the line and the fix.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from rater.core.money import parse_decimal
from rater.core.tariff.model import MAX_INCREMENT_SECONDS
from rater.errors import ConfigError
from rater.tariff_files.text import first_line, read_text, shown

__all__ = [
    "DIGITS",
    "MAX_AMOUNT_DECIMALS",
    "MAX_AMOUNT_WHOLE_DIGITS",
    "epoch_us",
    "parse_amount",
    "parse_instant",
    "parse_int",
    "read_csv",
]

# Amounts in rates.csv: at most this many digits before and after the point, so that
# every exact numerator over 10**price_scale fits an Int128 (and a 28-digit Decimal).
MAX_AMOUNT_WHOLE_DIGITS = 12
MAX_AMOUNT_DECIMALS = 15
DIGITS = re.compile(r"[0-9]*")


def read_csv(
    path: Path, columns: tuple[str, ...], optional: tuple[str, ...] = ()
) -> list[tuple[int, dict[str, str]]]:
    """(line, row) of every non-blank data line; line 1 is the header."""
    file = str(path)
    reader = csv.reader(io.StringIO(read_text(path), newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise ConfigError(file, 1, "empty file", f"write the header: {','.join(columns)}")
        header = [h.strip() for h in header]
        _check_header(header, columns, optional, file)
        return _read_rows(reader, header, file)
    except csv.Error as exc:
        raise ConfigError(
            file,
            reader.line_num,
            f"unreadable CSV ({first_line(exc)})",
            "close every quote on its line and keep fields under 128 KiB",
        ) from None


def _check_header(
    header: list[str], columns: tuple[str, ...], optional: tuple[str, ...], file: str
) -> None:
    missing = [c for c in columns if c not in header and c not in optional]
    if missing:
        raise ConfigError(
            file,
            1,
            f"missing column(s) {', '.join(missing)}",
            f"the header must have {','.join(columns)}",
        )


def _read_rows(reader: Any, header: list[str], file: str) -> list[tuple[int, dict[str, str]]]:
    rows: list[tuple[int, dict[str, str]]] = []
    for record in reader:
        if not record or all(not cell.strip() for cell in record):
            continue
        line = reader.line_num
        if len(record) != len(header):
            raise ConfigError(
                file,
                line,
                f"{len(record)} fields, expected {len(header)}",
                "match the header's columns",
            )
        rows.append((line, {h: v.strip() for h, v in zip(header, record, strict=True)}))
    return rows


def parse_instant(text: str, file: str, line: int, column: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None or value.utcoffset() is None:
        raise ConfigError(
            file,
            line,
            f"column {column!r}: {shown(text)} is not an ISO-8601 timestamp with offset",
            "write e.g. 2025-01-01T00:00:00+01:00 (or ...Z)",
        )
    return value


def epoch_us(value: datetime) -> int:
    delta = value - datetime.fromisoformat("1970-01-01T00:00:00+00:00")
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def parse_int(
    text: str,
    file: str,
    line: int,
    column: str,
    *,
    minimum: int,
    maximum: int = MAX_INCREMENT_SECONDS,
) -> int:
    # At most 9 digits: never more than int() reads from text, always within maximum's reach.
    if not re.fullmatch(r"[0-9]{1,9}", text) or not minimum <= int(text) <= maximum:
        raise ConfigError(
            file,
            line,
            f"column {column!r}: {shown(text)} is not an integer from {minimum} to {maximum}",
            f"write whole seconds from {minimum} to {maximum}",
        )
    return int(text)


def parse_amount(text: str, file: str, line: int, column: str) -> Decimal:
    """A price or fee of rates.csv: a plain decimal within the deck's digit limits."""
    if len(text) > 2 * (MAX_AMOUNT_WHOLE_DIGITS + MAX_AMOUNT_DECIMALS):
        raise _amount_too_long(text, file, line, column)
    value = parse_decimal(text, file=file, line=line, column=column)
    whole, _, fraction = text.strip().lstrip("+-").partition(".")
    if (
        len(whole.lstrip("0")) > MAX_AMOUNT_WHOLE_DIGITS
        or len(fraction.rstrip("0")) > MAX_AMOUNT_DECIMALS
    ):
        raise _amount_too_long(text, file, line, column)
    return value


def _amount_too_long(text: str, file: str, line: int, column: str) -> ConfigError:
    return ConfigError(
        file,
        line,
        f"column {column!r}: {shown(text)} has too many digits",
        f"write at most {MAX_AMOUNT_WHOLE_DIGITS} digits before the point "
        f"and {MAX_AMOUNT_DECIMALS} after it",
    )
