"""rates.csv: one row per rate, validated, with exact integer numerators of its prices.

Prices stay decimals as written (``connect_fee``, ``price``, ``min_charge``) next to
their exact numerators over ``10**scale`` (``connect_num``, ``price_num``, ``min_num``,
Int128), where ``scale`` is the deck's largest number of decimals: the rating core
computes every charge from those integers, rounded once.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl

from rater.core.money import MAX_CHARGE_MICROS, MICROS, decimal_places
from rater.core.tariff.model import DIRECTIONS, KINDS, MAX_PREFIX_DIGITS, Plan
from rater.errors import ConfigError
from rater.tariff_files.csv_rows import (
    DIGITS,
    epoch_us,
    parse_amount,
    parse_instant,
    parse_int,
    read_csv,
)
from rater.tariff_files.text import shown

__all__ = ["RATES_FILE", "RATE_COLUMNS", "check_charge_bounds", "load_rates"]

RATES_FILE = "rates.csv"
RATE_COLUMNS = (
    "plan_id",
    "kind",
    "direction",
    "prefix",
    "band",
    "effective_from",
    "effective_to",
    "connect_fee",
    "price",
    "first_increment",
    "increment",
    "min_charge",
)
_OPTIONAL = ("min_charge", "connect_fee", "effective_to")
_AMOUNTS = ("connect_fee", "price", "min_charge")
_SCHEMA = {
    "plan_id": pl.String,
    "kind": pl.String,
    "direction": pl.String,
    "prefix": pl.String,
    "band": pl.String,
    "effective_from": pl.Int64,
    "effective_to": pl.Int64,
    "connect_fee": pl.String,
    "price": pl.String,
    "first_increment": pl.Int64,
    "increment": pl.Int64,
    "min_charge": pl.String,
    "line": pl.Int64,
}


def load_rates(directory: Path, plans: dict[str, Plan]) -> tuple[pl.DataFrame, int]:
    """(rates, scale) of ``directory``/rates.csv; ConfigError on the first bad row."""
    file = str(directory / RATES_FILE)
    records: list[dict[str, Any]] = []
    amounts: list[dict[str, Decimal]] = []
    seen: dict[tuple[str, str, str, str, str, int], int] = {}
    for line, row in read_csv(directory / RATES_FILE, RATE_COLUMNS, optional=_OPTIONAL):
        record, values = _rate_record(row, plans, file, line)
        key = (*(record[c] for c in ("plan_id", "kind", "direction", "prefix", "band")),)
        key += (record["effective_from"],)
        if key in seen:
            raise ConfigError(
                file,
                line,
                "duplicate rate key (plan_id, kind, direction, prefix, band, effective_from) "
                f"of line {seen[key]}",
                "remove one row or change its effective_from",
            )
        seen[key] = line  # type: ignore[index]
        records.append(record)
        amounts.append(values)
    scale = max((decimal_places(v) for a in amounts for v in a.values()), default=0)
    return _rates_frame(records, amounts, scale), scale


def _rate_record(
    row: dict[str, str], plans: dict[str, Plan], file: str, line: int
) -> tuple[dict[str, Any], dict[str, Decimal]]:
    """One rate row's key, dates, amounts and increments, each checked in this order."""
    plan_id, kind, direction = row["plan_id"], row["kind"], row["direction"]
    plan = plans.get(plan_id)
    if plan is None:
        raise ConfigError(
            file, line, f"unknown plan {shown(plan_id)}", "use a plan id defined in plans.yaml"
        )
    if kind not in KINDS:
        raise ConfigError(
            file, line, f"unknown kind {shown(kind)}", "use call, sms or ring_through"
        )
    if direction not in DIRECTIONS:
        raise ConfigError(
            file, line, f"unknown direction {shown(direction)}", "use inbound or outbound"
        )
    prefix, band = row["prefix"], row["band"]
    if not DIGITS.fullmatch(prefix) or len(prefix) > MAX_PREFIX_DIGITS:
        raise ConfigError(
            file,
            line,
            f"prefix {shown(prefix)} is not up to {MAX_PREFIX_DIGITS} digits",
            "write digits only, no '+'",
        )
    if band != "any" and band not in {b.name for b in plan.bands}:
        raise ConfigError(
            file,
            line,
            f"band {shown(band)} is not a band of plan {plan_id}",
            "use 'any' or a band name of the plan",
        )
    from_us, to_us = _effective(row, file, line)
    values = _amounts(row, file, line)
    first, inc = _increments(row, kind, file, line)
    return {
        "plan_id": plan_id,
        "kind": kind,
        "direction": direction,
        "prefix": prefix,
        "band": band,
        "effective_from": from_us,
        "effective_to": to_us,
        **{c: row.get(c, "") for c in _AMOUNTS},
        "first_increment": first,
        "increment": inc,
        "line": line,
    }, values


def _effective(row: dict[str, str], file: str, line: int) -> tuple[int, int | None]:
    """[effective_from, effective_to) in microseconds (None: open-ended)."""
    from_us = epoch_us(parse_instant(row["effective_from"], file, line, "effective_from"))
    text = row.get("effective_to", "")
    if not text:
        return from_us, None
    to_us = epoch_us(parse_instant(text, file, line, "effective_to"))
    if to_us <= from_us:
        raise ConfigError(
            file, line, "effective_to is not after effective_from", "swap or fix the dates"
        )
    return from_us, to_us


def _increments(row: dict[str, str], kind: str, file: str, line: int) -> tuple[int, int]:
    """(first_increment, increment): required for calls, 1 when empty otherwise."""
    out = []
    for column in ("first_increment", "increment"):
        text = row[column]
        out.append(parse_int(text, file, line, column, minimum=1) if kind == "call" or text else 1)
    return out[0], out[1]


def _amounts(row: dict[str, str], file: str, line: int) -> dict[str, Decimal]:
    """The row's fee, price and minimum charge as exact decimals (empty = 0 but price)."""
    values: dict[str, Decimal] = {}
    for column in _AMOUNTS:
        text = row.get(column, "")
        value = (
            Decimal(0)
            if text == "" and column != "price"
            else parse_amount(text, file, line, column)
        )
        if value < 0:
            raise ConfigError(
                file, line, f"column {column!r} is negative", "prices and fees must be >= 0"
            )
        values[column] = value
    return values


def _rates_frame(
    records: list[dict[str, Any]], amounts: list[dict[str, Decimal]], scale: int
) -> pl.DataFrame:
    factor = 10**scale
    frame = (
        pl.DataFrame(records, schema=_SCHEMA, orient="row")
        if records
        else pl.DataFrame(schema=_SCHEMA)
    )
    numerators = {
        f"{name}_num": [int(a[column] * factor) for a in amounts]
        for name, column in (("connect", "connect_fee"), ("price", "price"), ("min", "min_charge"))
    }
    return frame.with_columns(
        pl.col("effective_from").cast(pl.Datetime("us", "UTC")),
        pl.col("effective_to").cast(pl.Datetime("us", "UTC")),
        *(pl.Series(name, values, dtype=pl.Int128) for name, values in numerators.items()),
    )


def check_charge_bounds(rates: pl.DataFrame, scale: int, max_call_seconds: int, file: str) -> None:
    """Every charge a rate can make stays within MAX_CHARGE_MICROS: a call of
    max_call_seconds, one sms segment, one ring-through attempt (an sms with too many
    segments to charge exactly is the core's bad_segments)."""
    limit = MAX_CHARGE_MICROS // MICROS * 60 * 10**scale  # in the numerators' unit
    columns = (
        "kind",
        "connect_num",
        "price_num",
        "min_num",
        "first_increment",
        "increment",
        "line",
    )
    for kind, connect, price, minimum, first, inc, line in rates.select(columns).iter_rows():
        if kind == "call":
            billed = (
                first
                if max_call_seconds <= first
                else first + -(-(max_call_seconds - first) // inc) * inc
            )
            most = max(minimum * 60, connect * 60 + price * billed)
            what = f"a call of max_call_seconds ({max_call_seconds} s)"
        else:
            most, what = price * 60, f"one {'segment' if kind == 'sms' else 'attempt'}"
        if most > limit:
            raise ConfigError(
                file,
                line,
                f"{what} at this rate would cost more than {MAX_CHARGE_MICROS // MICROS:,} "
                "currency units, the most one record is ever charged",
                "check the price (a decimal per minute, segment or attempt), or lower "
                "max_call_seconds in plans.yaml",
            )
