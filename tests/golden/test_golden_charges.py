"""Rule 9: charges, connect fees, minimum charges and rounding, worked by hand."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from .helpers import call, cdr, rate, row, write_tariff

AT = "2026-03-02T10:00:00Z"


def _plan(plan_id: str, decimals: int, rounding: str) -> str:
    return (
        f"  - {{id: {plan_id}, currency: EUR, timezone: UTC, "
        f"decimals: {decimals}, rounding: {rounding}}}\n"
    )


def test_connect_fee_and_minimum_charge(tmp_path: Path) -> None:
    plans = "plans:\n" + _plan("p", 6, "half_up")
    rates = [
        row("p", prefix="1", connect="0.10", price="0.60", first=6, inc=6, min_charge="0.50"),
        row("p", prefix="2", connect="0.10", price="0.60", first=60, inc=60),
    ]
    tariff = write_tariff(tmp_path, plans, rates, ["t1,p,postpaid,,,,false"])
    records = [
        call(AT, 6_000_000, callee="+1555"),  # 0.10 + 0.60 * 6/60 = 0.16 < 0.50 -> 0.50
        call(AT, 60_000_000, callee="+1555"),  # 0.10 + 0.60 = 0.70 > 0.50 -> 0.70
        call(AT, 60_000_000, callee="+2555"),  # 0.10 + 0.60 = 0.70 (no minimum)
        cdr(start=AT, end="2026-03-02T10:01:00Z", callee="+1555"),  # unanswered: 0, no minimum
    ]
    rated = rate(tariff, records).rated
    assert rated["charge_micros"].to_list() == [500_000, 700_000, 700_000, 0]


# sms of one segment: the exact charge is the price itself.
ROUNDING_CASES = [
    # decimals, rounding, price, expected micros
    (0, "half_up", "1.5", 2_000_000),
    (0, "up", "1.5", 2_000_000),
    (0, "down", "1.5", 1_000_000),
    (0, "half_up", "1.49", 1_000_000),
    (0, "up", "1.01", 2_000_000),
    (0, "down", "1.99", 1_000_000),
    (2, "half_up", "0.125", 130_000),
    (2, "up", "0.125", 130_000),
    (2, "down", "0.125", 120_000),
    (2, "half_up", "0.1249", 120_000),
    (2, "up", "0.1201", 130_000),
    (2, "down", "0.1299", 120_000),
    (2, "up", "0.12", 120_000),  # exact: no rounding in any method
    (4, "half_up", "0.00005", 100),
    (4, "up", "0.00005", 100),
    (4, "down", "0.00005", 0),
    (4, "half_up", "0.00004999", 0),
    (4, "up", "0.00000001", 100),
    (4, "down", "0.12349999", 123_400),
    (6, "half_up", "0.0000005", 1),
    (6, "up", "0.0000005", 1),
    (6, "down", "0.0000005", 0),
    (6, "half_up", "0.0000004999", 0),
    (6, "up", "0.0000000001", 1),
    (6, "down", "0.0000009999", 0),
    (6, "half_up", "1.0000005", 1_000_001),  # 1.0000005 has no exact binary form
]


def test_rounding_methods_and_decimals(tmp_path: Path) -> None:
    plans = "plans:\n"
    rates: list[str] = []
    tenants: list[str] = []
    records = []
    for i, (decimals, rounding, price, _expected) in enumerate(ROUNDING_CASES):
        plans += _plan(f"p{i}", decimals, rounding)
        rates.append(row(f"p{i}", kind="sms", price=price))
        tenants.append(f"t{i},p{i},postpaid,,,,false")
        records.append(cdr(kind="sms", tenant=f"t{i}", start=AT))
    tariff = write_tariff(tmp_path, plans, rates, tenants)
    rated = rate(tariff, records).rated
    assert rated["status"].to_list() == ["rated"] * len(ROUNDING_CASES)
    got = dict(zip(range(len(ROUNDING_CASES)), rated["charge_micros"].to_list(), strict=True))
    want = {i: case[3] for i, case in enumerate(ROUNDING_CASES)}
    assert got == want


@pytest.mark.parametrize(
    ("decimals", "rounding", "expected"),
    [
        # 0.01 per minute, 1 s billed: exact 0.01/60 = 0.000166666...
        (6, "half_up", 167),
        (6, "up", 167),
        (6, "down", 166),
        (4, "half_up", 200),  # 0.0002
        (4, "down", 100),  # 0.0001
        (0, "up", 1_000_000),
        (0, "half_up", 0),
    ],
)
def test_call_charge_is_rounded_once_from_the_exact_value(
    tmp_path: Path, decimals: int, rounding: str, expected: int
) -> None:
    plans = "plans:\n" + _plan("p", decimals, rounding)
    rates = [row("p", price="0.01", first=1, inc=1)]
    tariff = write_tariff(tmp_path, plans, rates, ["t1,p,postpaid,,,,false"])
    got = rate(tariff, [call(AT, 1_000_000)]).rated.row(0, named=True)
    assert (got["billed_seconds"], got["charge_micros"]) == (1, expected)


def test_price_with_ten_decimals_is_exact(tmp_path: Path) -> None:
    plans = "plans:\n" + _plan("p", 6, "half_up") + _plan("q", 6, "down")
    rates = [
        row("p", kind="sms", price="2.0000002500"),
        row("p", price="1.2345678901", first=1, inc=1),
        row("q", price="1.2345678901", first=1, inc=1),
    ]
    tenants = ["t1,p,postpaid,,,,false", "t2,q,postpaid,,,,false"]
    tariff = write_tariff(tmp_path, plans, rates, tenants)
    records = [
        cdr(kind="sms", start=AT, segments=2),  # 2 * 2.00000025 = 4.0000005 -> 4.000001
        call(AT, 60_000_000),  # 60 s at 1.2345678901/min = 1.2345678901 -> 1.234568
        call(AT, 60_000_000, tenant="t2"),  # rounded down -> 1.234567
        call(AT, 20_000_000),  # 1.2345678901 / 3 = 0.41152263003... -> 0.411523
    ]
    rated = rate(tariff, records).rated
    assert rated["charge_micros"].to_list() == [4_000_001, 1_234_568, 1_234_567, 411_523]
    assert [Decimal(c) for c in rated["charge"].to_list()] == [
        Decimal("4.000001"),
        Decimal("1.234568"),
        Decimal("1.234567"),
        Decimal("0.411523"),
    ]


def test_sms_multi_segment(tmp_path: Path) -> None:
    plans = "plans:\n" + _plan("p", 4, "half_up")
    rates = [row("p", kind="sms", price="0.0333")]
    tariff = write_tariff(tmp_path, plans, rates, ["t1,p,postpaid,,,,false"])
    records = [cdr(kind="sms", start=AT, segments=n) for n in (1, 3, 7)]
    # 0.0333 * 1, * 3 = 0.0999, * 7 = 0.2331 (exact at 4 decimals)
    rated = rate(tariff, records).rated
    assert rated["charge_micros"].to_list() == [33_300, 99_900, 233_100]


def test_ring_through_costs_its_price_answered_or_not(tmp_path: Path) -> None:
    plans = "plans:\n" + _plan("p", 2, "up")
    rates = [row("p", kind="ring_through", price="0.001")]
    tariff = write_tariff(tmp_path, plans, rates, ["t1,p,postpaid,,,,false"])
    records = [
        cdr(kind="ring_through", start=AT, end="2026-03-02T10:00:30Z"),
        cdr(kind="ring_through", start=AT, answer=AT, end="2026-03-02T10:05:00Z"),
    ]
    # 0.001 rounded up to 2 decimals -> 0.01 each
    rated = rate(tariff, records).rated
    assert rated["charge_micros"].to_list() == [10_000, 10_000]
    assert [Decimal(c) for c in rated["charge"].to_list()] == [Decimal("0.01")] * 2
