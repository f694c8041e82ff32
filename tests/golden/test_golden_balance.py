"""Rule 10: prepaid balances and their events. An sms costs 0.30 (300_000 micros)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from rater.core.columns import BALANCE_SCHEMA, EVENT_SCHEMA
from rater.core.rating import balances_frame
from rater.tariff_files import load_tariff

from .helpers import cdr, rate, row, write_tariff

PLANS = """
plans:
  - {id: p, currency: EUR, timezone: UTC, decimals: 6}
"""
AT = "2026-03-02T10:00:00Z"


@pytest.fixture
def tariff(tmp_path: Path) -> Path:
    tenants = [
        # tenant_id, plan, billing, opening, threshold, recharge, auto_recharge
        "a,p,prepaid,0.90,0.50,10.00,true",
        "b,p,prepaid,0.80,0.50,10.00,false",
        "c,p,prepaid,0.40,0.50,5.00,false",
        "d,p,prepaid,1.00,0.50,20.00,true",
        "e,p,prepaid,0,0.50,1.00,false",
        "z,p,prepaid,7.00,1.00,1.00,false",
        "post,p,postpaid,,,,false",
    ]
    return write_tariff(tmp_path, PLANS, [row("p", kind="sms", price="0.30")], tenants)


def _sms(tenant: str, n: int, segments: int = 1) -> dict[str, object]:
    return cdr(cdr_id=f"{tenant}{n}", tenant=tenant, kind="sms", start=AT, segments=segments)


def test_low_balance_then_exhausted_each_once(tariff: Path) -> None:
    # a: 0.90 -> 0.60 -> 0.30 (below 0.50: low_balance) -> 0.00 (exhausted) -> -0.30
    result = rate(tariff, [_sms("a", i) for i in range(1, 5)])
    assert result.rated["balance_after_micros"].to_list() == [600_000, 300_000, 0, -300_000]
    assert result.events.to_dicts() == [
        {
            "tenant_id": "a",
            "event": "low_balance",
            "cdr_id": "a2",
            "balance_micros": 300_000,
            "threshold_micros": 500_000,
            "recharge_amount_micros": 10_000_000,
            "auto_recharge": True,
        },
        {
            "tenant_id": "a",
            "event": "exhausted",
            "cdr_id": "a3",
            "balance_micros": 0,
            "threshold_micros": 500_000,
            "recharge_amount_micros": 10_000_000,
            "auto_recharge": True,
        },
    ]
    assert list(result.events.schema.items()) == list(EVENT_SCHEMA.items())


def test_landing_exactly_on_the_threshold_is_not_below(tariff: Path) -> None:
    # b: 0.80 -> 0.50 (== threshold: no event) -> 0.20 (low_balance)
    result = rate(tariff, [_sms("b", 1), _sms("b", 2)])
    assert result.rated["balance_after_micros"].to_list() == [500_000, 200_000]
    assert result.events.select("event", "cdr_id", "balance_micros").rows() == [
        ("low_balance", "b2", 200_000)
    ]


def test_starting_below_the_threshold_emits_no_low_balance(tariff: Path) -> None:
    # c: 0.40 -> 0.10 (was already below: nothing) -> -0.20 (exhausted)
    result = rate(tariff, [_sms("c", 1), _sms("c", 2)])
    assert result.events.select("event", "cdr_id", "balance_micros").rows() == [
        ("exhausted", "c2", -200_000)
    ]


def test_one_debit_crossing_both_emits_low_balance_first(tariff: Path) -> None:
    # d: 1.00 - 4 * 0.30 = -0.20: crosses 0.50 and 0 in one debit
    result = rate(tariff, [_sms("d", 1, segments=4)])
    assert result.events.select("event", "cdr_id", "balance_micros", "auto_recharge").rows() == [
        ("low_balance", "d1", -200_000, True),
        ("exhausted", "d1", -200_000, True),
    ]


def test_starting_at_zero_emits_nothing(tariff: Path) -> None:
    # e: 0 -> -0.30: not from > 0, and not from >= threshold
    result = rate(tariff, [_sms("e", 1)])
    assert result.rated["balance_after_micros"].to_list() == [-300_000]
    assert result.events.height == 0


def test_events_are_not_repeated_in_a_later_batch(tariff: Path) -> None:
    first = rate(tariff, [_sms("a", 1), _sms("a", 2)])  # low_balance at a2
    second = rate(tariff, [_sms("a", 3), _sms("a", 4)], first.state)  # exhausted at a3
    third = rate(tariff, [_sms("a", 5)], second.state)
    assert first.events["event"].to_list() == ["low_balance"]
    assert second.events.select("event", "cdr_id").rows() == [("exhausted", "a3")]
    assert third.events.height == 0
    assert third.rated["balance_after_micros"].to_list() == [-600_000]


def test_postpaid_has_no_balance_and_no_events(tariff: Path) -> None:
    result = rate(tariff, [_sms("post", i, segments=100) for i in range(3)])
    assert result.rated["charge_micros"].to_list() == [30_000_000] * 3
    assert result.rated["balance_after_micros"].to_list() == [None] * 3
    assert result.events.height == 0


def test_events_follow_input_order_across_tenants(tariff: Path) -> None:
    records = [_sms("d", 1, segments=2), _sms("b", 1, segments=2), _sms("d", 2, segments=2)]
    # d: 1.00 -> 0.40 (low) ; b: 0.80 -> 0.20 (low) ; d: 0.40 -> -0.20 (exhausted)
    events = rate(tariff, records).events
    assert events.select("tenant_id", "event", "cdr_id").rows() == [
        ("d", "low_balance", "d1"),
        ("b", "low_balance", "b1"),
        ("d", "exhausted", "d2"),
    ]


def test_balances_frame_lists_every_prepaid_tenant(tariff: Path) -> None:
    loaded = load_tariff(tariff)
    result = rate(loaded, [_sms("a", 1), _sms("d", 1, segments=2), _sms("post", 1)])
    balances = balances_frame(loaded, result.state)
    expected = pl.DataFrame(
        {
            "tenant_id": ["a", "b", "c", "d", "e", "z"],
            # untouched tenants keep their opening balance
            "balance_micros": [600_000, 800_000, 400_000, 400_000, 0, 7_000_000],
        },
        schema=BALANCE_SCHEMA,
    )
    assert balances.equals(expected)
