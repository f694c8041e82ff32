"""Reconciliation on simulated data, for any seed: every usage line equals its records'
charges rounded once, and a prepaid balance moves by exactly minus its debits (calls and
the invoice's product lines) plus its credits."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from rater.core.billing import bill_period
from rater.core.columns import ADJUSTMENT_SCHEMA
from rater.core.rating import balances_frame, rate_batch
from rater.core.state import RatingState
from rater.simulate import generate_cdrs
from rater.tariff_files import load_tariff

CONFIG = Path(__file__).resolve().parents[3] / "config"
TARIFF = load_tariff(CONFIG)
_METHODS = {"half_up": ROUND_HALF_UP, "up": ROUND_UP, "down": ROUND_DOWN}


def _round(micros: int, decimals: int, method: str) -> int:
    """The contract's rounding, written independently: Decimal on the magnitude."""
    value = Decimal(abs(micros)) / Decimal(1_000_000)
    rounded = value.quantize(Decimal(1).scaleb(-decimals), rounding=_METHODS[method])
    return (-1 if micros < 0 else 1) * int(rounded * 1_000_000)


def _expected_usage(rated: pl.DataFrame, period: str) -> dict[tuple[Any, ...], int]:
    """(tenant, kind, direction, plan, prefix, band) -> the line amount, by plain loops."""
    sums: dict[tuple[Any, ...], int] = defaultdict(int)
    for row in rated.iter_rows(named=True):
        tenant = TARIFF.tenants.get(row["tenant_id"])
        if row["status"] != "rated" or tenant is None:
            continue
        zone = ZoneInfo(TARIFF.plans[tenant.plan_id].timezone)
        when = (row["answer_time"] or row["start_time"]).astimezone(zone)
        if when.strftime("%Y-%m") != period:
            continue
        key = (
            row["tenant_id"],
            row["kind"],
            row["direction"],
            row["plan_id"],
            row["rate_prefix"],
            row["band"],
        )
        sums[key] += row["charge_micros"]
    out = {}
    for key, micros in sums.items():
        plan = TARIFF.plans[TARIFF.tenants[key[0]].plan_id]
        out[key] = _round(micros, plan.invoice_decimals, plan.rounding)
    return out


def _adjustments(seed: int, start: datetime) -> pl.DataFrame:
    rng = random.Random(seed)
    rows = []
    for i in range(rng.randint(0, 12)):
        kind = rng.choice(["topup", "refund", "refund"])
        rows.append(
            {
                "tenant_id": rng.choice(["globex", "tinyco", "wayne", "umbrella", "stark", "acme"]),
                "adjustment_id": f"a{i}",
                "kind": kind,
                "amount_micros": rng.randint(1, 90_000_000),
                "time": start + timedelta(hours=rng.randint(0, 24 * 9)),
                "source": "manual" if kind == "topup" else None,
                "reason": "goodwill" if kind == "refund" else None,
            }
        )
    return pl.DataFrame(rows, schema=ADJUSTMENT_SCHEMA)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), count=st.integers(50, 2_500), day=st.integers(3, 18))
def test_lines_and_balances_reconcile(seed: int, count: int, day: int) -> None:
    now = datetime(2026, 11, day, 12, tzinfo=UTC)
    cdrs = generate_cdrs(
        CONFIG,
        count,
        seed,
        now=now,
        span=timedelta(days=2),
        duplicate_fraction=0.03,
        invalid_fraction=0.02,
    )
    given_adjustments = _adjustments(seed, now - timedelta(days=2))
    first = rate_batch(TARIFF, cdrs, RatingState.empty(), adjustments=given_adjustments)
    bill = bill_period(TARIFF, "2026-11", first.rated, first.adjustments)

    # 1. Every usage line: its records' charges, rounded once.
    usage = bill.lines.filter(pl.col("type") == "usage")
    got = {
        (r["tenant_id"], r["kind"], r["direction"], r["plan_id"], r["rate_prefix"], r["band"]): r[
            "amount_micros"
        ]
        for r in usage.iter_rows(named=True)
    }
    expected = {k: v for k, v in _expected_usage(first.rated, "2026-11").items()}
    shown = {k: v for k, v in expected.items() if k in got}
    assert got == shown
    dropped = {k for k in expected if k not in got}
    assert all(expected[k] == 0 for k in dropped)

    # 2. A prepaid balance moves by minus the debits plus the credits: the invoice's
    # product lines, applied as charges with the same CDRs, cost exactly their amounts.
    debits = bill.debits
    second = rate_batch(
        TARIFF,
        cdrs,
        RatingState.empty(),
        adjustments=pl.concat([given_adjustments, debits]),
    )
    before = dict(balances_frame(TARIFF, RatingState.empty()).iter_rows())
    after = dict(balances_frame(TARIFF, second.state).iter_rows())
    applied = second.adjustments.filter(pl.col("status") == "applied")
    for tenant_id, opening in before.items():
        charges = second.rated.filter(pl.col("tenant_id") == tenant_id)["charge_micros"].sum()
        mine = applied.filter(pl.col("tenant_id") == tenant_id)
        credits = mine.filter(pl.col("kind") != "charge")["amount_micros"].sum()
        debited = mine.filter(pl.col("kind") == "charge")["amount_micros"].sum()
        assert debited == debits.filter(pl.col("tenant_id") == tenant_id)["amount_micros"].sum()
        assert after[tenant_id] == opening + credits - charges - debited, tenant_id

    # 3. Each invoice: lines add up, total = subtotal + tax, due = total - paid.
    sums = dict(
        bill.lines.filter(pl.col("type") != "tax")
        .group_by("invoice_id")
        .agg(pl.col("amount_micros").sum())
        .iter_rows()
    )
    for inv in bill.invoices.iter_rows(named=True):
        assert sums[inv["invoice_id"]] == inv["subtotal_micros"]
        assert inv["total_micros"] == inv["subtotal_micros"] + inv["tax_micros"]
        assert inv["amount_due_micros"] == inv["total_micros"] - inv["paid_from_balance_micros"]
