"""Exact money: decimal parsing, rounding to a plan's decimals, micro-unit integers.

Amounts are integers in micro-units of the currency (1 EUR = 1_000_000 micros).
Binary floating point never appears: prices are parsed into :class:`Decimal`
and, on the vectorized path, into integer numerators over a power of ten.
"""

from __future__ import annotations

import re
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal, InvalidOperation

from rater.errors import ConfigError

__all__ = [
    "MAX_CHARGE_MICROS",
    "MICROS",
    "ROUNDING_METHODS",
    "decimal_places",
    "decimal_to_micros",
    "format_micros",
    "parse_decimal",
    "round_div",
    "round_to_micros",
]

MICROS = 1_000_000
# No record is ever charged more than this (one million currency units): no switch produces
# more for one call or message, and below it every running sum of a batch stays exact.
MAX_CHARGE_MICROS = 10**12

# Contract names -> decimal module constants. "up" rounds away from zero.
ROUNDING_METHODS: dict[str, str] = {
    "half_up": ROUND_HALF_UP,
    "up": ROUND_UP,
    "down": ROUND_DOWN,
}

# Plain decimal notation only: no exponent, no "nan"/"inf", no thousands separators,
# so that what an operator reads in the CSV is exactly the value billed.
_DECIMAL_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def parse_decimal(text: str, *, file: str, line: int, column: str) -> Decimal:
    """Parse ``text`` exactly (any number of decimals); raise ConfigError naming the place."""
    stripped = text.strip()
    if not _DECIMAL_RE.fullmatch(stripped):
        raise ConfigError(
            file,
            line,
            f"column {column!r}: {text!r} is not a decimal number",
            f"write {column} as plain digits with an optional '.', e.g. 0.0125",
        )
    try:
        return Decimal(stripped)
    except InvalidOperation:  # pragma: no cover - the regex admits only valid literals
        raise ConfigError(
            file, line, f"column {column!r}: {text!r} is not a decimal number", "fix the value"
        ) from None


def decimal_places(value: Decimal) -> int:
    """Number of digits after the point needed to write ``value`` exactly (>= 0)."""
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


def _check_rounding(decimals: int, rounding: str) -> None:
    if rounding not in ROUNDING_METHODS:
        raise ValueError(
            f"unknown rounding {rounding!r}; expected one of {sorted(ROUNDING_METHODS)}"
        )
    if not 0 <= decimals <= 6:
        raise ValueError(f"decimals must be within 0..6, got {decimals}")


def round_to_micros(value: Decimal, decimals: int, rounding: str) -> int:
    """Round ``value`` once to ``decimals`` places with ``rounding``; return exact micros."""
    _check_rounding(decimals, rounding)
    quantum = Decimal(1).scaleb(-decimals)
    rounded = value.quantize(quantum, rounding=ROUNDING_METHODS[rounding])
    return int(rounded.scaleb(6))


def round_div(numerator: int, denominator: int, rounding: str) -> int:
    """``numerator / denominator`` rounded to an integer with a contract rounding method.

    Pure integer arithmetic; ties and "up" are taken away from zero, like
    :func:`round_to_micros`.
    """
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    if rounding not in ROUNDING_METHODS:
        raise ValueError(f"unknown rounding {rounding!r}")
    sign = -1 if numerator < 0 else 1
    n = abs(numerator)
    if rounding == "down":
        q = n // denominator
    elif rounding == "up":
        q = -(-n // denominator)
    else:
        q = (2 * n + denominator) // (2 * denominator)
    return sign * q


def decimal_to_micros(value: Decimal) -> int:
    """Exact conversion to micros; ValueError when ``value`` has more than 6 decimals."""
    scaled = value.scaleb(6)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value} has more than 6 decimals and cannot be held in micros")
    return int(scaled)


def format_micros(micros: int, decimals: int = 6) -> str:
    """Format micros as a decimal string with ``decimals`` places, e.g. ``"12.3400"``.

    Exact: when ``micros`` carries more precision than ``decimals`` shows, all 6
    places are written rather than dropping digits.
    """
    if not 0 <= decimals <= 6:
        raise ValueError(f"decimals must be within 0..6, got {decimals}")
    if micros % 10 ** (6 - decimals):
        decimals = 6
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), MICROS)
    if decimals == 0:
        return f"{sign}{whole}"
    digits = f"{frac:06d}"[:decimals]
    return f"{sign}{whole}.{digits}"
