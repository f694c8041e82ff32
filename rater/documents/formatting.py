"""Numbers and dates for people: the documents' filters, exact and locale-free.

Amounts arrive as integer micros (1 EUR = 1_000_000 micros), quantities and rates as
decimal strings, dates as :class:`datetime.date` or ISO strings. Everything is done on
integers and digit strings; a ``float`` is refused with :class:`TypeError` wherever one
could slip in, so no binary rounding can reach a document.

The format is the same in every document and does not depend on the machine's locale:

- amounts: ``1,234,567.89 EUR``, ``-0.30 EUR``: comma thousands separators, a point for
  decimals (the point of the invoice CSV files), an ASCII minus sign, the ISO 4217 code
  after the number. Exactly ``decimals`` places, and more (never fewer) when the micros
  carry more precision: ``0.0125`` stays ``0.0125`` at 2 decimals. Nothing is rounded;
- quantities: ``1,234.5``, with trailing fractional zeros dropped (the same value);
- rates: ``20%``, ``5.5%``;
- dates: ISO 8601, ``2026-04-30``.
"""

from __future__ import annotations

import datetime as dt
import operator
import re
from decimal import Decimal
from typing import SupportsIndex

from rater.core.money import MICROS

__all__ = [
    "format_amount",
    "format_date",
    "format_money",
    "format_percent",
    "format_quantity",
    "micros_of",
]

_MICRO_PLACES = 6
# Plain decimal notation only, as in the tariff and invoice files: no exponent, no
# "nan"/"inf", no thousands separators.
_DECIMAL_RE = re.compile(r"([+-]?)([0-9]+)(?:\.([0-9]*))?|([+-]?)\.([0-9]+)")


def micros_of(value: object, what: str = "amount") -> int:
    """``value`` as an exact integer (ints and integer-like types such as NumPy's).

    :class:`TypeError` for a float, a bool, a Decimal or anything else that is not an
    integer: amounts in micros are integers by contract.
    """
    if isinstance(value, bool) or not isinstance(value, SupportsIndex):
        raise TypeError(f"{what} must be an integer, got {type(value).__name__} {value!r}")
    return operator.index(value)


def _check_decimals(decimals: object) -> int:
    places = micros_of(decimals, "decimals")
    if not 0 <= places <= _MICRO_PLACES:
        raise ValueError(f"decimals must be within 0..6, got {places}")
    return places


def _group(digits: str) -> str:
    """Thousands separators for a string of digits (exact for any length)."""
    head = len(digits) % 3 or 3
    groups = [digits[:head]] + [digits[i : i + 3] for i in range(head, len(digits), 3)]
    return ",".join(groups)


def format_amount(micros: int, decimals: int) -> str:
    """Micros as ``1,234,567.89``: at least ``decimals`` places, every needed one shown.

    >>> format_amount(-1_234_567_890_000, 2)
    '-1,234,567.89'
    >>> format_amount(12_500, 2)
    '0.0125'
    """
    value = micros_of(micros)
    places = _check_decimals(decimals)
    whole, frac = divmod(abs(value), MICROS)
    frac_digits = f"{frac:0{_MICRO_PLACES}d}"
    shown = max(places, len(frac_digits.rstrip("0")))
    sign = "-" if value < 0 else ""
    number = _group(str(whole))
    return f"{sign}{number}.{frac_digits[:shown]}" if shown else f"{sign}{number}"


def format_money(micros: int, currency: str, decimals: int) -> str:
    """Micros as ``1,234,567.89 EUR`` (see :func:`format_amount`); no code when empty."""
    if not isinstance(currency, str):
        raise TypeError(f"currency must be a string, got {type(currency).__name__}")
    number = format_amount(micros, decimals)
    return f"{number} {currency}" if currency else number


def _decimal_parts(value: object) -> tuple[str, str, str]:
    """(sign, integer digits, fractional digits) of a decimal string, int or Decimal."""
    if isinstance(value, bool | float):
        raise TypeError(f"expected a decimal string, got {type(value).__name__} {value!r}")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"not a finite number: {value}")
        text = format(value, "f")
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise TypeError(f"expected a decimal string, got {type(value).__name__} {value!r}")
    match = _DECIMAL_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"{value!r} is not a plain decimal number")
    if match.group(2) is not None:
        return match.group(1), match.group(2), match.group(3) or ""
    return match.group(4), "0", match.group(5)


def _format_decimal(sign: str, whole: str, frac: str) -> str:
    whole = whole.lstrip("0") or "0"
    frac = frac.rstrip("0")
    if whole == "0" and not frac:
        sign = ""
    number = _group(whole)
    return f"{'-' if sign == '-' else ''}{number}{'.' + frac if frac else ''}"


def format_quantity(value: str | int | Decimal) -> str:
    """A decimal string as ``1,234.5``: exact, trailing fractional zeros dropped.

    >>> format_quantity("12.500000")
    '12.5'
    """
    return _format_decimal(*_decimal_parts(value))


def format_percent(rate: str | int | Decimal) -> str:
    """A rate given as a decimal fraction, as a percentage: ``"0.055"`` -> ``5.5%``."""
    sign, whole, frac = _decimal_parts(rate)
    # Times 100: move the point two places right, exactly, on the digits.
    frac = frac.ljust(2, "0")
    return _format_decimal(sign, whole + frac[:2], frac[2:]) + "%"


def format_date(value: dt.date | str) -> str:
    """A calendar date as ISO 8601 ``YYYY-MM-DD`` (a datetime gives its own date)."""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 10:
                return dt.date.fromisoformat(text).isoformat()
            return dt.datetime.fromisoformat(text).date().isoformat()
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO date (YYYY-MM-DD)") from None
    raise TypeError(f"expected a date or an ISO date string, got {type(value).__name__}")
