"""Invoice amounts rounded once to a plan's invoice_decimals with its rounding method.

Rounding methods apply to magnitudes and the sign comes after (billing rule 7): -0.125
rounded half_up to 2 decimals is -0.13, ``up`` takes 0.121 to 0.13 and -0.121 to -0.13.
Integer arithmetic only, in Python for single values and as Polars expressions for
columns.
"""

from __future__ import annotations

from decimal import Decimal

import polars as pl

from rater.core.money import ROUNDING_METHODS, round_div, round_to_micros

__all__ = [
    "INT64_MAX",
    "METHOD_CODES",
    "quantum",
    "round_amount",
    "round_amount_expr",
    "round_decimal",
]

INT64_MAX = 2**63 - 1
METHOD_CODES = {name: code for code, name in enumerate(sorted(ROUNDING_METHODS))}


def quantum(decimals: int) -> int:
    """Micros per last place of an amount with ``decimals`` decimals (0..6)."""
    if not 0 <= decimals <= 6:
        raise ValueError(f"decimals must be within 0..6, got {decimals}")
    return int(10 ** (6 - decimals))


def round_amount(micros: int, decimals: int, rounding: str) -> int:
    """``micros`` rounded to ``decimals`` places (still in micros)."""
    step = quantum(decimals)
    return round_div(micros, step, rounding) * step


def round_decimal(value: Decimal, decimals: int, rounding: str) -> int:
    """An exact decimal amount rounded once to ``decimals`` places, in micros."""
    return round_to_micros(value, decimals, rounding)


def round_amount_expr(micros: pl.Expr, step: pl.Expr, method: pl.Expr) -> pl.Expr:
    """Column version of :func:`round_amount`: ``step`` is the quantum per row and
    ``method`` the code of the rounding method (:data:`METHOD_CODES`). Computed in Int128,
    so no intermediate can overflow."""
    m = micros.cast(pl.Int128)
    q = step.cast(pl.Int128)
    magnitude = m.abs()
    rounded = (
        pl.when(method == METHOD_CODES["down"])
        .then(magnitude // q)
        .when(method == METHOD_CODES["up"])
        .then((magnitude + q - 1) // q)
        .otherwise((2 * magnitude + q) // (2 * q))
        * q
    )
    return pl.when(m < 0).then(pl.lit(0, dtype=pl.Int128) - rounded).otherwise(rounded)
