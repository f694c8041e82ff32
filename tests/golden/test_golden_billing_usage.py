"""Billing rules 6 to 8 and the prepaid rules: usage and included lines, credits, tax and
totals, what a prepaid balance paid, and the debits sent for it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from rater.core.billing import USAGE_COLUMNS

from .billing import bill, invoice, lines, pro_eu, write_billing_tariff

PLANS = """
plans:
  - id: flat
    currency: EUR
    timezone: Europe/Paris
    rounding: {rounding}
    invoice_decimals: {decimals}
    tax_rate: "0.10"
    products:
      - {{id: fee, name: "Flat", type: fee, price: "10.00"}}
  - id: other
    currency: EUR
    timezone: Europe/Paris
"""
TENANTS = [
    "post,flat,postpaid,,,,false",
    "pre,flat,prepaid,100.00,5.00,20.00,true",
]


def _tariff(tmp_path: Path, rounding: str = "half_up", decimals: int = 2) -> Path:
    plans = PLANS.format(rounding=rounding, decimals=decimals)
    return write_billing_tariff(tmp_path, plans, [], tenants=TENANTS)


def rec(
    tenant: str = "post",
    *,
    kind: str = "call",
    direction: str = "outbound",
    plan: str | None = "flat",
    prefix: str | None = "33",
    band: str | None = "any",
    billed: int | None = 60,
    covered: int | None = 0,
    segments: int | None = 1,
    charge: int = 10_000,
    status: str = "rated",
    at: str = "2026-04-10T10:00:00+02:00",
    answered: bool = True,
) -> dict[str, Any]:
    when = datetime.fromisoformat(at).astimezone(UTC)
    return {
        "tenant_id": tenant,
        "status": status,
        "kind": kind,
        "direction": direction,
        "plan_id": plan,
        "rate_prefix": prefix,
        "band": band,
        "billed_seconds": billed if kind == "call" else None,
        "covered": covered,
        "segments": segments,
        "charge_micros": charge,
        "start_time": when,
        "answer_time": when if answered and kind == "call" else None,
    }


def frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=USAGE_COLUMNS)


def usage(result: Any, tenant: str = "post") -> list[tuple[Any, ...]]:
    return (
        result.lines.filter(
            (pl.col("tenant_id") == tenant) & pl.col("type").is_in(["usage", "included"])
        )
        .select(
            "type",
            "kind",
            "direction",
            "plan_id",
            "rate_prefix",
            "band",
            "quantity",
            "unit",
            "amount",
        )
        .rows()
    )


def test_usage_lines_group_round_once_and_order(tmp_path: Path) -> None:
    rows = [
        rec(billed=90, charge=12_345),  # 1.5 min
        rec(billed=31, charge=5_005),  # 0.516666... min
        rec(band="peak", billed=60, covered=60, charge=0),  # covered: no usage line
        rec(prefix=None, band=None, billed=0, covered=0, charge=0),  # both 0: no line
        rec(kind="sms", prefix="44", segments=3, covered=1, charge=140_000),  # 2 charged
        rec(kind="ring_through", direction="inbound", prefix="", band="any", charge=1_250),
        rec(kind="ring_through", direction="inbound", prefix="", band="any", charge=1_250),
        rec(plan="other", prefix="1", billed=120, charge=20_000),  # a fallback plan's row
        rec(direction="inbound", prefix=None, band=None, billed=600, charge=0),  # free: kept
        rec(status="unrated", charge=0),
        rec(status="duplicate", charge=0),
    ]
    result = bill(_tariff(tmp_path), "2026-04", frame(rows))
    assert usage(result) == [
        ("usage", "call", "inbound", "flat", None, None, "10", "minute", "0.00"),
        ("usage", "call", "outbound", "flat", "33", "any", "2.016667", "minute", "0.02"),
        ("usage", "call", "outbound", "other", "1", "any", "2", "minute", "0.02"),
        ("usage", "sms", "outbound", "flat", "44", "any", "2", "segment", "0.14"),
        ("usage", "ring_through", "inbound", "flat", "", "any", "2", "attempt", "0.00"),
        ("included", "call", "outbound", None, None, None, "1", "minute", "0.00"),
        ("included", "sms", "outbound", None, None, None, "1", "segment", "0.00"),
    ]
    # 12_345 + 5_005 = 17_350 -> 0.02 (half_up, rounded once for the group)
    amounts = result.lines.filter(pl.col("tenant_id") == "post")["amount_micros"].to_list()
    assert amounts[1:6] == [0, 20_000, 20_000, 140_000, 0]


def test_usage_in_the_period_is_read_in_the_plan_zone(tmp_path: Path) -> None:
    rows = [
        rec(at="2026-03-31T23:30:00+02:00", charge=1_000_000),  # March in Paris
        rec(at="2026-03-31T22:30:00Z", charge=2_000_000),  # 00:30 April 1st in Paris
        rec(at="2026-04-30T21:59:59+00:00", charge=3_000_000),  # 23:59:59 April 30th
        rec(at="2026-04-30T22:00:00Z", charge=4_000_000),  # May
        # An unanswered call: rating time = start time.
        rec(at="2026-04-15T10:00:00+02:00", billed=0, charge=500_000, answered=False),
    ]
    result = bill(_tariff(tmp_path), "2026-04", frame(rows))
    mine = result.lines.filter((pl.col("tenant_id") == "post") & (pl.col("type") == "usage"))
    total = mine["amount_micros"].sum()
    assert total == 5_500_000


@pytest.mark.parametrize(
    ("rounding", "decimals", "expected"),
    [
        ("half_up", 2, ["0.13", "-0.13"]),
        ("up", 2, ["0.13", "-0.13"]),
        ("down", 2, ["0.12", "-0.12"]),
        ("half_up", 0, ["0", "0"]),
        ("half_up", 3, ["0.125", "-0.125"]),
    ],
)
def test_rounding_applies_to_magnitudes(
    tmp_path: Path, rounding: str, decimals: int, expected: list[str]
) -> None:
    refund = {
        "tenant_id": "post",
        "adjustment_id": "r1",
        "kind": "refund",
        "amount_micros": 125_000,
        "time": datetime(2026, 4, 5, tzinfo=UTC),
        "reason": "Dropped calls on 3 April",
    }
    result = bill(
        _tariff(tmp_path, rounding, decimals), "2026-04", frame([rec(charge=125_000)]), [refund]
    )
    got = result.lines.filter(
        (pl.col("tenant_id") == "post") & pl.col("type").is_in(["usage", "credit"])
    )["amount"].to_list()
    assert got == expected


def test_credits_of_postpaid_refunds_in_the_period(tmp_path: Path) -> None:
    def refund(i: str, tenant: str, micros: int, day: int, **kw: Any) -> dict[str, Any]:
        return {
            "tenant_id": tenant,
            "adjustment_id": i,
            "kind": "refund",
            "amount_micros": micros,
            "time": datetime(2026, 4, day, 12, tzinfo=UTC),
            "reason": kw.get("reason"),
        }

    given = [
        refund("r2", "post", 2_500_000, 20, reason="Outage credit"),
        refund("r1", "post", 1_000_000, 3),
        refund("r1", "post", 1_000_000, 3),  # resent: once
        refund("r3", "post", 9_000_000, 1 if False else 30, reason="Later")
        | {
            "time": datetime(2026, 4, 30, 23, tzinfo=UTC)  # May 1st in Paris
        },
        refund("r4", "pre", 3_000_000, 10),  # prepaid: credits the balance, no line
        {**refund("t1", "post", 5_000_000, 10), "kind": "topup"},
    ]
    result = bill(_tariff(tmp_path), "2026-04", None, given)
    credits = result.lines.filter(pl.col("type") == "credit")
    assert credits.select("tenant_id", "description", "quantity", "unit", "amount").rows() == [
        ("post", "Refund", "1", None, "-1.00"),
        ("post", "Outage credit", "1", None, "-2.50"),
    ]
    inv = invoice(result, "post")
    # fee 10.00 - 3.50 = 6.50; tax 0.65
    assert (inv["subtotal_micros"], inv["tax_micros"], inv["total_micros"]) == (
        6_500_000,
        650_000,
        7_150_000,
    )


def test_a_credit_larger_than_the_charges_gives_negative_totals(tmp_path: Path) -> None:
    given = [
        {
            "tenant_id": "post",
            "adjustment_id": "big",
            "kind": "refund",
            "amount_micros": 30_000_000,
            "time": datetime(2026, 4, 2, tzinfo=UTC),
        }
    ]
    inv = invoice(bill(_tariff(tmp_path), "2026-04", None, given), "post")
    assert (inv["subtotal_micros"], inv["tax_micros"], inv["total_micros"]) == (
        -20_000_000,
        -2_000_000,
        -22_000_000,
    )


def test_prepaid_paid_from_balance_and_amount_due(tmp_path: Path) -> None:
    rows = [rec("pre", charge=1_234_567), rec("pre", kind="sms", charge=2_000_001)]
    result = bill(_tariff(tmp_path), "2026-04", frame(rows))
    inv = invoice(result, "pre")
    # usage lines 1.23 + 2.00; charges 3.234568 + fee 10.00 -> paid 13.23 (rounded once)
    assert inv["subtotal_micros"] == 13_230_000
    assert inv["paid_from_balance_micros"] == 13_230_000
    assert inv["tax_micros"] == 1_320_000  # 13.23 x 0.10 = 1.323 -> 1.32
    assert inv["amount_due_micros"] == inv["total_micros"] - 13_230_000
    assert invoice(result, "post")["paid_from_balance_micros"] == 0


def test_prepaid_debits_carry_the_contract_ids(tmp_path: Path) -> None:
    plans = pro_eu()
    changes = [
        "c1,acme,license-advanced,add,2,2026-03-01T00:00:00+01:00",
        "c2,acme,license-advanced,add,1,2026-04-16T00:00:00+02:00",
        "c3,acme,did-setup,charge,2,2026-04-16T00:00:00+02:00",
    ]
    tenants = ["acme,pro-eu,prepaid,500.00,10.00,100.00,false"]
    result = bill(write_billing_tariff(tmp_path, plans, changes, tenants=tenants), "2026-04")
    debits = result.debits.select("adjustment_id", "kind", "amount_micros", "line_type").rows()
    assert debits == [
        ("acme-2026-04:fee:pro-fee:start", "charge", 49_000_000, "fee"),
        ("acme-2026-04:recurring:license-advanced:start", "charge", 128_000_000, "recurring"),
        ("acme-2026-04:prorated:license-advanced:c2", "charge", 32_000_000, "prorated"),
        ("acme-2026-04:one_time:did-setup:c3", "charge", 3_000_000, "one_time"),
    ]
    times = [str(t) for t in result.debits["time"]]
    assert times == [
        "2026-03-31 22:00:00+00:00",
        "2026-03-31 22:00:00+00:00",
        "2026-04-15 22:00:00+00:00",
        "2026-04-15 22:00:00+00:00",
    ]
    assert lines(result)[:4] == [
        ("fee", "pro-fee", "1", 49_000_000, None, "49.00"),
        ("recurring", "license-advanced", "2", 64_000_000, None, "128.00"),
        ("prorated", "license-advanced", "1", 32_000_000, 15, "32.00"),
        ("one_time", "did-setup", "2", 1_500_000, None, "3.00"),
    ]
