"""``rater invoice --preview``: usage this period, for one tenant, as JSON or text.

What a tenant admin sees mid-month (:func:`rater.core.billing.usage_so_far`): seats held,
included and billed; allowances included, used and left; the lines billed so far; overage
so far (usage lines) and the estimated total (the invoice as it stands, tax included).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rater.billing.run import load_for_period
from rater.core.billing import Period, UsageSoFar, micro_units_text, usage_so_far
from rater.core.money import format_micros
from rater.core.tariff import Tariff
from rater.errors import UsageError

__all__ = ["preview", "preview_json", "preview_text"]


def preview(
    tariff: Tariff, tenant_id: str, as_of_us: int, rated: Path, adjustments: Path | None
) -> UsageSoFar:
    """The open period of ``tenant_id`` as of ``as_of_us``."""
    tenant = tariff.tenants.get(tenant_id)
    if tenant is None:
        raise UsageError(
            f"--tenant {tenant_id!r}: not a tenant of tenants.csv. Fix: use a tenant_id listed there"
        )
    period = Period.containing(as_of_us, tariff.plans[tenant.plan_id].timezone)
    records, given = load_for_period(
        tariff, period.label, rated, adjustments, [tenant_id], callee=True
    )
    return usage_so_far(tariff, tenant_id, as_of_us, records, given)


def preview_json(so_far: UsageSoFar) -> str:
    return json.dumps(so_far.to_dict(), indent=2, sort_keys=False, default=str) + "\n"


def preview_text(so_far: UsageSoFar) -> str:
    account = so_far.account
    plan, decimals = account.plan, account.plan.invoice_decimals
    instant = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=so_far.as_of_us)
    as_of = instant.isoformat(timespec="seconds")
    out = [
        f"Usage this period: {account.tenant_id} ({plan.id}, {account.tenant.billing}), "
        f"{account.period.label} as of {as_of}",
    ]
    if so_far.seats:
        out.append("  seats                 held  included  billed  (active, committed)")
        for s in so_far.seats:
            out.append(
                f"    {s.name[:20]:<20} {s.held:>5} {s.included:>9} {s.billed:>7}  "
                f"({s.active}, {s.committed})"
            )
    if so_far.allowances:
        out.append("  allowances            included      used      left")
        for a in so_far.allowances:
            what = f"{a.kind} {a.direction} {'/'.join(a.prefixes) or 'all'}"[:20]
            out.append(
                f"    {what:<20} {micro_units_text(a.included):>9} {micro_units_text(a.used):>9}"
                f" {micro_units_text(a.left):>9} {a.unit}s"
            )
    out.append("  billed so far")
    for line in so_far.lines:
        out.append(f"    {line['description'][:48]:<48} {line['amount']:>14} {plan.currency}")
    out.append(
        f"  overage so far   {format_micros(so_far.overage_micros, decimals)} {plan.currency}"
    )
    out.append(
        f"  estimated total  {format_micros(so_far.estimated_total_micros, decimals)} "
        f"{plan.currency}"
    )
    return "\n".join(out) + "\n"
