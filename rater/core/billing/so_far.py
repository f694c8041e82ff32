"""Usage this period: the numbers a tenant admin sees mid-month.

For one tenant and the period holding an instant ``as_of`` (its plan's calendar month):
per seat product what is held, included and billed so far; per allowance what is
included and used; and the invoice as it stands (``bill_period`` over what happened
before ``as_of``): overage so far (the usage lines) and the estimated total.

Allowance use is replayed from the rated records: each record's ``covered`` units are
taken from its plan's allowances in listed order, each up to what is left of it (rule 8
draws the same way), so the split per allowance is the rater's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from rater.core.billing.accounts import Account, terms_frame
from rater.core.billing.invoices import Bill, bill_period
from rater.core.billing.lines import micro_units_text
from rater.core.billing.period import Period
from rater.core.billing.products import seat_counts
from rater.core.billing.usage import period_records
from rater.core.money import decimal_to_micros, format_micros
from rater.core.tariff import Allowance, Tariff

__all__ = ["AllowanceUse", "SeatUse", "UsageSoFar", "usage_so_far"]


@dataclass(frozen=True)
class SeatUse:
    product_id: str
    name: str
    active: int
    committed: int
    held: int
    included: int
    billed: int  # chargeable units billed so far this period (the high-water mark)
    price_micros: int


@dataclass(frozen=True)
class AllowanceUse:
    kind: str
    direction: str
    prefixes: tuple[str, ...]
    unit: str  # minute | segment
    included: int  # micro-units (micro-minutes, micro-segments)
    used: int

    @property
    def left(self) -> int:
        return max(0, self.included - self.used)


@dataclass(frozen=True)
class UsageSoFar:
    """One tenant's open period as of an instant."""

    account: Account
    as_of_us: int
    seats: list[SeatUse]
    allowances: list[AllowanceUse]
    bill: Bill
    lines: list[dict[str, Any]] = field(default_factory=list)

    @property
    def overage_micros(self) -> int:
        return sum(int(line["amount_micros"]) for line in self.lines if line["type"] == "usage")

    @property
    def estimated_total_micros(self) -> int:
        rows = self.bill.invoices
        return int(rows.get_column("total_micros")[0]) if rows.height else 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values; money as micros and as exact decimal text."""
        plan, decimals = self.account.plan, self.account.plan.invoice_decimals

        def money(micros: int) -> dict[str, Any]:
            return {"micros": micros, "amount": format_micros(micros, decimals)}

        return {
            "tenant_id": self.account.tenant_id,
            "plan_id": plan.id,
            "billing": self.account.tenant.billing,
            "currency": plan.currency,
            "period": self.account.period.label,
            "as_of_us": self.as_of_us,
            "seats": [
                {**seat.__dict__, "price": format_micros(seat.price_micros, decimals)}
                for seat in self.seats
            ],
            "allowances": [
                {
                    "kind": a.kind,
                    "direction": a.direction,
                    "prefixes": list(a.prefixes),
                    "unit": a.unit,
                    "included": micro_units_text(a.included),
                    "used": micro_units_text(a.used),
                    "left": micro_units_text(a.left),
                }
                for a in self.allowances
            ],
            "lines": [
                {k: v for k, v in line.items() if k not in ("invoice_id", "tenant_id", "period")}
                for line in self.lines
            ],
            "overage": money(self.overage_micros),
            "estimated_total": money(self.estimated_total_micros),
        }


def usage_so_far(
    tariff: Tariff,
    tenant_id: str,
    as_of_us: int,
    records: pl.DataFrame,
    adjustments: pl.DataFrame | None = None,
) -> UsageSoFar:
    """The period of ``tenant_id`` holding ``as_of_us``, as it stands then. ``records``
    in input order (allowance draws follow it). KeyError for an unknown tenant."""
    tenant = tariff.tenants[tenant_id]
    plan = tariff.plans[tenant.plan_id]
    period = Period.containing(as_of_us, plan.timezone)
    account = Account(tenant, plan, period)
    bill = bill_period(
        tariff, period.label, records, adjustments, tenants=[tenant_id], until_us=as_of_us
    )
    changes = [c for c in tariff.subscriptions if c.tenant_id == tenant_id]
    return UsageSoFar(
        account=account,
        as_of_us=as_of_us,
        seats=_seats(account, changes, bill, as_of_us),
        allowances=_allowances(account, records, as_of_us),
        bill=bill,
        lines=bill.lines.to_dicts(),
    )


def _seats(account: Account, changes: list[Any], bill: Bill, as_of_us: int) -> list[SeatUse]:
    out = []
    for product in account.plan.products:
        if product.type != "seat":
            continue
        mine = [c for c in changes if c.product_id == product.id and c.at_us < as_of_us]
        now = seat_counts(mine, as_of_us)
        billed = sum(
            int(q)
            for q, t, p in bill.lines.select("quantity", "type", "product_id").iter_rows()
            if p == product.id and t in ("recurring", "prorated")
        )
        out.append(
            SeatUse(
                product_id=product.id,
                name=product.name,
                active=now.active,
                committed=now.committed,
                held=now.held,
                included=product.included,
                billed=billed,
                price_micros=decimal_to_micros(product.price),
            )
        )
    return out


def _allowances(account: Account, records: pl.DataFrame, as_of_us: int) -> list[AllowanceUse]:
    allowances = account.plan.allowances
    left = [a.quantity for a in allowances]
    used = [0] * len(allowances)
    terms = terms_frame([account]).with_columns(pl.col("_end_us").clip(upper_bound=as_of_us))
    covered = (
        period_records(records.with_columns(_callee(records)), terms, ["_callee"])
        .filter(pl.col("_covered") > 0)
        .select("kind", "direction", "_callee", "_covered")
        .collect()
    )
    for kind, direction, callee, amount in covered.iter_rows():
        need = int(amount)
        for i, allowance in enumerate(allowances):
            if need == 0:
                break
            if left[i] and _draws_on(allowance, kind, direction, callee or ""):
                take = min(left[i], need)
                left[i] -= take
                used[i] += take
                need -= take
    return [
        AllowanceUse(
            kind=a.kind,
            direction=a.direction,
            prefixes=a.prefixes,
            unit="minute" if a.kind == "call" else "segment",
            included=_micro_units(a, a.quantity),
            used=_micro_units(a, used[i]),
        )
        for i, a in enumerate(allowances)
    ]


def _callee(records: pl.DataFrame) -> pl.Expr:
    if "callee" not in records.columns:
        return pl.lit(None, pl.String).alias("_callee")
    return pl.col("callee").str.strip_prefix("+").alias("_callee")


def _draws_on(allowance: Allowance, kind: str, direction: str, digits: str) -> bool:
    return (
        allowance.kind == kind
        and allowance.direction in (direction, "any")
        and (not allowance.prefixes or any(digits.startswith(p) for p in allowance.prefixes))
    )


def _micro_units(allowance: Allowance, units: int) -> int:
    """Seconds as micro-minutes (half_up), segments as micro-segments."""
    if allowance.kind == "call":
        return (units * 2_000_000 + 60) // 120
    return units * 1_000_000
