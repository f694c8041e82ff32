from __future__ import annotations

from decimal import Decimal

import pytest

from rater.core.money import (
    decimal_to_micros,
    format_micros,
    parse_decimal,
    round_div,
    round_to_micros,
)
from rater.errors import ConfigError


def test_parse_decimal_is_exact_for_many_decimals() -> None:
    assert parse_decimal("0.0123456789012345678", file="f", line=2, column="price") == Decimal(
        "0.0123456789012345678"
    )


@pytest.mark.parametrize("text", ["", "abc", "1e3", "nan", "1,5", "--1", "1.2.3"])
def test_parse_decimal_rejects_non_decimals(text: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_decimal(text, file="rates.csv", line=7, column="price")
    assert err.value.line == 7 and err.value.file == "rates.csv"
    assert "price" in err.value.problem


@pytest.mark.parametrize(
    ("value", "decimals", "rounding", "micros"),
    [
        ("0.00005", 4, "half_up", 100),
        ("0.000049", 4, "half_up", 0),
        ("0.000001", 4, "up", 100),
        ("0.00009", 4, "down", 0),
        ("-0.00005", 4, "half_up", -100),
        ("-0.000001", 4, "up", -100),
        ("1.5", 0, "half_up", 2_000_000),
        ("2.5", 0, "down", 2_000_000),
        ("0.0000005", 6, "half_up", 1),
    ],
)
def test_round_to_micros(value: str, decimals: int, rounding: str, micros: int) -> None:
    assert round_to_micros(Decimal(value), decimals, rounding) == micros


def test_round_div_matches_decimal_rounding() -> None:
    for num in range(-50, 51):
        for rounding in ("half_up", "up", "down"):
            expected = round_to_micros(Decimal(num) / 10, 0, rounding) // 1_000_000
            assert round_div(num, 10, rounding) == expected


def test_decimal_to_micros_exact_or_raises() -> None:
    assert decimal_to_micros(Decimal("12.345678")) == 12_345_678
    assert decimal_to_micros(Decimal("-0.5")) == -500_000
    with pytest.raises(ValueError):
        decimal_to_micros(Decimal("0.0000001"))


@pytest.mark.parametrize(
    ("micros", "decimals", "text"),
    [
        (12_340_000, 4, "12.3400"),
        (-1_500_000, 2, "-1.50"),
        (-500_000, 2, "-0.50"),
        (7_000_000, 0, "7"),
        (1, 6, "0.000001"),
        (1, 2, "0.000001"),  # never drops digits
        (0, 4, "0.0000"),
    ],
)
def test_format_micros(micros: int, decimals: int, text: str) -> None:
    assert format_micros(micros, decimals) == text
