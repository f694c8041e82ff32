"""What a customer reads: debit and credit names, masked numbers, durations, countries,
exact decimal text."""

from __future__ import annotations

import polars as pl
from hypothesis import given
from hypothesis import strategies as st
from reportdeck import PLANS_YAML  # noqa: F401  (the deck's plans name the products)

from rater.core.money import format_micros
from rater.core.tariff import Plan, Product
from rater.reports.countries import country_of
from rater.reports.naming import (
    adjustment_name,
    duration_text,
    mask_number,
    mask_number_expr,
    money_text_expr,
    record_name,
)

PLAN = Plan(
    id="p",
    currency="EUR",
    timezone="UTC",
    products=(
        Product(id="did", name="Phone number", type="seat", price="5"),  # type: ignore[arg-type]
        Product(id="lic", name="BASIC license", type="seat", price="19.5"),  # type: ignore[arg-type]
        Product(id="setup", name="Phone number setup", type="one_time", price="1"),  # type: ignore[arg-type]
    ),
)


def test_debits_and_credits_are_named_as_the_customer_knows_them() -> None:
    assert record_name("call", "outbound") == "Phone call charge"
    assert record_name("call", "inbound") == "Phone call charge"
    assert record_name("sms", "outbound") == "Outgoing text message"
    assert record_name("sms", "inbound") == "Incoming text message"
    assert record_name("ring_through", "inbound") == "Ring-through connection attempt"
    assert adjustment_name("charge", None, "did", "recurring", PLAN) == "Phone number charge"
    assert (
        adjustment_name("charge", None, "lic", "prorated", PLAN)
        == "BASIC license charge (prorated)"
    )
    assert adjustment_name("charge", None, "setup", "one_time", PLAN) == (
        "Phone number setup charge (one-time)"
    )
    assert adjustment_name("charge", None, "gone", "fee", PLAN) == "Account charge"
    assert adjustment_name("topup", "manual", None, None, PLAN) == "Funds added"
    assert adjustment_name("topup", "auto_recharge", None, None, PLAN) == (
        "Funds added by auto-recharge"
    )
    assert adjustment_name("refund", None, None, None, PLAN) == "Refund"


def test_masking_keeps_the_country_and_the_last_digits() -> None:
    assert mask_number("+33612345678") == "+3361\u2022\u2022\u2022\u2022\u202278"
    assert mask_number("123") == "\u202223"
    assert mask_number("") == "" and mask_number(None) == ""


@given(st.lists(st.one_of(st.none(), st.text(max_size=20)), max_size=30))
def test_masking_in_a_column_is_the_same(numbers: list[str | None]) -> None:
    got = pl.DataFrame({"n": numbers}, schema={"n": pl.String}).select(mask_number_expr("n"))
    want = [None if n is None else mask_number(n) for n in numbers]
    assert got.get_column("n").to_list() == want
    for number, masked in zip(numbers, want, strict=True):
        if number:
            assert len(masked or "") == len(number) and masked[-2:] == number[-2:]  # type: ignore[index]


@given(st.lists(st.integers(-(10**15), 10**15), max_size=40), st.integers(0, 6))
def test_money_text_is_format_micros(values: list[int], decimals: int) -> None:
    got = pl.DataFrame({"m": values}, schema={"m": pl.Int64}).select(
        money_text_expr(pl.col("m"), decimals)
    )
    assert got.to_series().to_list() == [format_micros(v, decimals) for v in values]


def test_durations_and_countries() -> None:
    assert duration_text(0) == "0:00:00" and duration_text(3725) == "1:02:05"
    assert duration_text(100 * 3600) == "100:00:00"
    assert [country_of(p) for p in ("33", "336", "44", "49", "1", "1416", "1876", "212")] == [
        "France",
        "France",
        "United Kingdom",
        "Germany",
        "United States",
        "Canada",
        "Jamaica",
        "Morocco",
    ]
    assert country_of("") == "" and country_of(None) == "" and country_of("x1") == ""
    assert country_of("\u0663\u0663") == ""  # Arabic-Indic digits are not a prefix
