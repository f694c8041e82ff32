"""subscriptions.csv (optional): changes of each tenant's seats, commitments and one-time
charges, validated with the line of every problem.

| column | meaning |
| --- | --- |
| change_id | unique per tenant |
| tenant_id | a tenant of tenants.csv |
| product_id | a product of the tenant's plan |
| change | ``add``, ``remove`` (seats), ``commit`` (seats: the committed minimum), ``charge`` (one_time) |
| quantity | integer >= 1; for ``commit``, >= 0 |
| at | ISO-8601 timestamp with offset: when the change takes effect |
"""

from __future__ import annotations

from collections import defaultdict
from itertools import groupby
from pathlib import Path

from rater.core.rating import VALID_FROM_US, VALID_UNTIL_US
from rater.core.tariff.model import Plan, SubscriptionChange, Tenant
from rater.errors import ConfigError
from rater.tariff_files.csv_rows import epoch_us, parse_instant, read_csv
from rater.tariff_files.text import label, shown

__all__ = ["SUBSCRIPTIONS_FILE", "SUBSCRIPTION_COLUMNS", "load_subscriptions"]

SUBSCRIPTIONS_FILE = "subscriptions.csv"
SUBSCRIPTION_COLUMNS = ("change_id", "tenant_id", "product_id", "change", "quantity", "at")
_CHANGES = {"add": "seat", "remove": "seat", "commit": "seat", "charge": "one_time"}
_MAX_QUANTITY = 1_000_000
_MAX_ID_CHARS = 128


def load_subscriptions(
    directory: Path, plans: dict[str, Plan], tenants: dict[str, Tenant]
) -> tuple[SubscriptionChange, ...]:
    """The changes of ``directory``/subscriptions.csv ordered by time, then file line
    (none when the file does not exist)."""
    path = directory / SUBSCRIPTIONS_FILE
    if not path.exists():
        return ()
    file = str(path)
    changes: list[SubscriptionChange] = []
    seen: dict[tuple[str, str], int] = {}
    for line, row in read_csv(path, SUBSCRIPTION_COLUMNS):
        change = _change(row, line, file, plans, tenants)
        key = (change.tenant_id, change.change_id)
        if key in seen:
            raise ConfigError(
                file,
                line,
                f"change_id {shown(change.change_id)} of tenant {label(change.tenant_id)} "
                f"repeats line {seen[key]}",
                "give every change of a tenant its own change_id",
            )
        seen[key] = line
        changes.append(change)
    changes.sort(key=lambda c: (c.at_us, c.line))
    _check_removals(changes, file)
    return tuple(changes)


def _change(
    row: dict[str, str], line: int, file: str, plans: dict[str, Plan], tenants: dict[str, Tenant]
) -> SubscriptionChange:
    change_id, tenant_id = row["change_id"], row["tenant_id"]
    if not change_id or len(change_id) > _MAX_ID_CHARS:
        raise ConfigError(file, line, f"change_id {shown(change_id)}", "give every change an id")
    tenant = tenants.get(tenant_id)
    if tenant is None:
        raise ConfigError(
            file, line, f"unknown tenant {shown(tenant_id)}", "use a tenant_id of tenants.csv"
        )
    plan = plans[tenant.plan_id]
    product = plan.product(row["product_id"])
    if product is None:
        raise ConfigError(
            file,
            line,
            f"product {shown(row['product_id'])} is not a product of plan {plan.id}",
            f"use one of: {', '.join(p.id for p in plan.products) or '(the plan has none)'}",
        )
    change = row["change"]
    if change not in _CHANGES:
        raise ConfigError(
            file, line, f"unknown change {shown(change)}", "use add, remove, commit or charge"
        )
    if _CHANGES[change] != product.type:
        raise ConfigError(
            file,
            line,
            f"{change} does not fit product {product.id} ({product.type})",
            "add, remove and commit change seats; charge bills a one_time product",
        )
    return SubscriptionChange(
        change_id=change_id,
        tenant_id=tenant_id,
        product_id=product.id,
        change=change,  # type: ignore[arg-type]
        quantity=_quantity(row["quantity"], change, line, file),
        at_us=_time(row["at"], line, file),
        line=line,
    )


def _quantity(text: str, change: str, line: int, file: str) -> int:
    least = 0 if change == "commit" else 1
    if not text.isdigit() or not least <= int(text) <= _MAX_QUANTITY:
        raise ConfigError(
            file,
            line,
            f"quantity {shown(text)}",
            f"write a whole number from {least} to {_MAX_QUANTITY}",
        )
    return int(text)


def _time(text: str, line: int, file: str) -> int:
    at = epoch_us(parse_instant(text, file, line, "at"))
    if not VALID_FROM_US <= at < VALID_UNTIL_US:
        raise ConfigError(
            file, line, f"at {shown(text)} is not within 2000..2099", "write a date of this century"
        )
    return at


def _check_removals(changes: list[SubscriptionChange], file: str) -> None:
    """No instant leaves fewer than 0 seats active (changes at one instant count together)."""
    active: dict[tuple[str, str], int] = defaultdict(int)
    for _, group in groupby(changes, key=lambda c: c.at_us):
        at_instant = list(group)
        for change in at_instant:
            key = (change.tenant_id, change.product_id)
            if change.change == "add":
                active[key] += change.quantity
            elif change.change == "remove":
                active[key] -= change.quantity
        for change in at_instant:
            key = (change.tenant_id, change.product_id)
            if change.change == "remove" and active[key] < 0:
                raise ConfigError(
                    file,
                    change.line,
                    f"removes {change.quantity} {change.product_id} of tenant "
                    f"{label(change.tenant_id)}: that leaves {active[key]} active",
                    "remove at most the seats added before this change",
                )
