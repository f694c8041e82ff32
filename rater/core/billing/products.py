"""Fee, recurring, prorated and one-time lines of one account (billing rules 2 to 5).

- **Counts** of a seat product at instant t: active(t) = adds - removes with at <= t,
  committed(t) = the latest commit with at <= t (0 if none), held(t) = max(both).
- **In advance**: at the period start s, held(s) - included seats (when > 0) on a
  ``recurring`` line at the full price; every ``fee`` product on a ``fee`` line.
- **High-water mark** H, from held(s): when the changes at one instant t (applied
  together) take held(t) above H, the new chargeable units are charged for the rest of
  the period on a ``prorated`` line, unit price = price x days / D rounded once
  (days = D - local day of t + 1); then H = held(t). Removals are never refunded.
- **One-time**: a ``charge`` change in the period, quantity x price.

Every amount is exact integer arithmetic on micros, rounded once to the plan's
invoice_decimals with its rounding method.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from rater.core.billing.accounts import Account
from rater.core.billing.rounding import INT64_MAX, quantum, round_amount
from rater.core.money import decimal_to_micros, round_div
from rater.core.tariff import Product, SubscriptionChange

__all__ = ["SeatCounts", "product_lines", "seat_counts"]


@dataclass(frozen=True)
class SeatCounts:
    """A seat product's counts at an instant."""

    active: int
    committed: int

    @property
    def held(self) -> int:
        return max(self.active, self.committed)


def seat_counts(changes: Sequence[SubscriptionChange], at_us: int) -> SeatCounts:
    """Rule 2: the counts of one product at ``at_us`` from its changes (by at, then line)."""
    active = committed = 0
    for change in changes:
        if change.at_us > at_us:
            break
        if change.change == "add":
            active += change.quantity
        elif change.change == "remove":
            active -= change.quantity
        elif change.change == "commit":
            committed = change.quantity
    return SeatCounts(active, committed)


def product_lines(
    account: Account, changes: Sequence[SubscriptionChange], *, until_us: int | None = None
) -> list[dict[str, Any]]:
    """Draft lines (DRAFT_SCHEMA keys) of the account's products for its period, from its
    subscription changes ordered by (at, line). ``until_us`` leaves out the changes at or
    after it (a period still open: what is billed so far)."""
    end = account.period.end_us if until_us is None else min(until_us, account.period.end_us)
    lines: list[dict[str, Any]] = []
    for position, product in enumerate(account.plan.products):
        mine = [c for c in changes if c.product_id == product.id]
        if product.type == "fee":
            lines.append(_fee(account, product, position))
        elif product.type == "seat":
            lines += _seat_lines(account, product, position, mine, end)
        else:
            lines += _one_time_lines(account, product, position, mine, end)
    return lines


def _fee(account: Account, product: Product, position: int) -> dict[str, Any]:
    return _line(
        account, product, position, "fee", quantity=1, unit="month", unit_price=_micros(product)
    )


def _seat_lines(
    account: Account,
    product: Product,
    position: int,
    changes: list[SubscriptionChange],
    end_us: int,
) -> Iterator[dict[str, Any]]:
    start = account.period.start_us
    high = seat_counts(changes, start).held
    chargeable = high - product.included
    if chargeable > 0:
        yield _line(
            account,
            product,
            position,
            "recurring",
            quantity=chargeable,
            unit="unit",
            unit_price=_micros(product),
        )
    during = [c for c in changes if start < c.at_us < end_us]
    for at_us, group in groupby(during, key=lambda c: c.at_us):
        at_instant = list(group)
        held = seat_counts(changes, at_us).held
        if held <= high:
            continue
        new = max(0, held - product.included) - max(0, high - product.included)
        high = held
        if new > 0:
            yield _prorated(account, product, position, new, at_instant[-1])


def _prorated(
    account: Account, product: Product, position: int, quantity: int, change: SubscriptionChange
) -> dict[str, Any]:
    period = account.period
    days = period.days - period.local_day(change.at_us) + 1
    step = quantum(account.plan.invoice_decimals)
    # price x days / D, rounded once to invoice_decimals: exact in integers.
    unit_price = round_div(_micros(product) * days, period.days * step, account.plan.rounding)
    return _line(
        account,
        product,
        position,
        "prorated",
        quantity=quantity,
        unit="unit",
        unit_price=unit_price * step,
        days=days,
        change=change,
        description=f"{product.name}, {days} of {period.days} days from "
        f"{period.year:04d}-{period.month:02d}-{period.local_day(change.at_us):02d}",
    )


def _one_time_lines(
    account: Account,
    product: Product,
    position: int,
    changes: list[SubscriptionChange],
    end_us: int,
) -> Iterator[dict[str, Any]]:
    start = account.period.start_us
    for change in changes:
        if change.change == "charge" and start <= change.at_us < end_us:
            yield _line(
                account,
                product,
                position,
                "one_time",
                quantity=change.quantity,
                unit="unit",
                unit_price=_micros(product),
                change=change,
            )


def _line(
    account: Account,
    product: Product,
    position: int,
    line_type: str,
    *,
    quantity: int,
    unit: str,
    unit_price: int,
    days: int | None = None,
    change: SubscriptionChange | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    plan = account.plan
    amount = round_amount(quantity * unit_price, plan.invoice_decimals, plan.rounding)
    if amount > INT64_MAX:  # cannot happen within the catalogue's bounds; never wraps
        raise ValueError(f"{line_type} line of {product.id} exceeds the largest amount")
    return {
        "tenant_id": account.tenant_id,
        "type": line_type,
        "product_id": product.id,
        "description": description or product.name,
        "quantity": str(quantity),
        "unit": unit,
        "unit_price_micros": unit_price,
        "days": days,
        "amount_micros": amount,
        "time_us": account.period.start_us if change is None else change.at_us,
        "change_id": None if change is None else change.change_id,
        "_k1": position,
        "_k2": account.period.start_us if change is None else change.at_us,
        "_k3": 0 if change is None else change.line,
    }


def _micros(product: Product) -> int:
    return decimal_to_micros(product.price)
