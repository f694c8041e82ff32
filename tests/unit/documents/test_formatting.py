"""The documents' number and date formats: exact, locale-free, never through a float."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from rater.documents.formatting import (
    format_amount,
    format_date,
    format_money,
    format_percent,
    format_quantity,
)


@pytest.mark.parametrize(
    ("micros", "currency", "decimals", "text"),
    [
        (1_234_567_890_000, "EUR", 2, "1,234,567.89 EUR"),
        (-1_234_567_890_000, "EUR", 2, "-1,234,567.89 EUR"),
        (1_234_567_890, "EUR", 2, "1,234.56789 EUR"),  # more precision than 2 places: kept
        (0, "EUR", 2, "0.00 EUR"),
        (0, "JPY", 0, "0 JPY"),
        (0, "EUR", 6, "0.000000 EUR"),
        (5_000_000, "JPY", 0, "5 JPY"),
        (1_500_000, "JPY", 0, "1.5 JPY"),
        (999_000_000, "EUR", 0, "999 EUR"),
        (1_000_000_000, "EUR", 0, "1,000 EUR"),
        (12_345_678, "EUR", 6, "12.345678 EUR"),
        (12_500, "EUR", 2, "0.0125 EUR"),
        (1, "EUR", 2, "0.000001 EUR"),
        (-1, "EUR", 2, "-0.000001 EUR"),
        (-300_000, "EUR", 2, "-0.30 EUR"),
        (100_000_000, "EUR", 4, "100.0000 EUR"),
        (1_000_000, "", 2, "1.00"),
        # Beyond 2**53: a float would already have lost the last digits.
        (2**53 + 1, "EUR", 6, "9,007,199,254.740993 EUR"),
        (2**63 - 1, "EUR", 2, "9,223,372,036,854.775807 EUR"),
        (-(2**63), "EUR", 2, "-9,223,372,036,854.775808 EUR"),
        (10**30, "EUR", 2, "1,000,000,000,000,000,000,000,000.00 EUR"),
    ],
)
def test_money_is_exact(micros: int, currency: str, decimals: int, text: str) -> None:
    assert format_money(micros, currency, decimals) == text


def test_beyond_2_to_the_53_a_float_would_be_wrong_and_we_are_not() -> None:
    micros = 2**53 + 1
    assert int(float(micros)) != micros
    assert format_amount(micros, 6).replace(",", "").replace(".", "") == str(micros)


def test_point_one_plus_point_two_is_point_three() -> None:
    assert 0.1 + 0.2 != 0.3  # what binary floating point would print
    assert format_amount(100_000 + 200_000, 2) == "0.30"
    assert format_money(100_000 + 200_000, "EUR", 2) == "0.30 EUR"


@pytest.mark.parametrize("bad", [0.3, 300000.0, Decimal("300000"), True, "300000", None])
def test_money_refuses_anything_but_integer_micros(bad: object) -> None:
    with pytest.raises(TypeError):
        format_money(bad, "EUR", 2)  # type: ignore[arg-type]


@pytest.mark.parametrize("decimals", [-1, 7])
def test_money_decimals_are_0_to_6(decimals: int) -> None:
    with pytest.raises(ValueError, match=r"0\.\.6"):
        format_amount(1, decimals)


def test_money_decimals_may_not_be_a_float() -> None:
    with pytest.raises(TypeError):
        format_amount(1, 2.0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("12.500000", "12.5"),
        ("1234567.25", "1,234,567.25"),
        ("0", "0"),
        ("-0.000", "0"),
        ("-3.5", "-3.5"),
        ("+4", "4"),
        (".5", "0.5"),
        ("007", "7"),
        ("0.333333", "0.333333"),
        (
            "123456789012345678901234567890.000000001",
            "123,456,789,012,345,678,901,234,567,890.000000001",
        ),
        (7, "7"),
        (Decimal("1E+3"), "1,000"),
        (Decimal("0.10"), "0.1"),
    ],
)
def test_quantity_is_exact(value: str | int | Decimal, text: str) -> None:
    assert format_quantity(value) == text


@pytest.mark.parametrize("bad", ["", "abc", "1e3", "1,5", "--1", "1.2.3", "nan", "inf", "1 000"])
def test_quantity_refuses_what_is_not_plain_decimal(bad: str) -> None:
    with pytest.raises(ValueError):
        format_quantity(bad)


@pytest.mark.parametrize("bad", [0.5, True, None, Decimal("NaN")])
def test_quantity_refuses_floats_and_non_numbers(bad: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        format_quantity(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rate", "text"),
    [
        ("0.20", "20%"),
        ("0.2", "20%"),
        ("0.055", "5.5%"),
        ("0", "0%"),
        ("1", "100%"),
        ("0.00001", "0.001%"),
        ("0.196", "19.6%"),
        (Decimal("0.07"), "7%"),
    ],
)
def test_percent(rate: str | Decimal, text: str) -> None:
    assert format_percent(rate) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (dt.date(2026, 4, 30), "2026-04-30"),
        ("2026-04-01", "2026-04-01"),
        (" 2026-04-01 ", "2026-04-01"),
        (dt.datetime(2026, 4, 30, 23, 59), "2026-04-30"),
        ("2026-04-30T23:59:00+02:00", "2026-04-30"),
    ],
)
def test_date_is_iso(value: dt.date | str, text: str) -> None:
    assert format_date(value) == text


def test_date_refuses_what_is_not_a_date() -> None:
    with pytest.raises(ValueError, match="ISO date"):
        format_date("30/04/2026")
    with pytest.raises(TypeError):
        format_date(20260430)  # type: ignore[arg-type]
