"""Who is billed for a period, and on which terms: each tenant with its plan and its
period (the calendar month in its plan's time zone)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl

from rater.core.billing.period import Period
from rater.core.billing.rounding import METHOD_CODES, quantum
from rater.core.tariff import Plan, Tariff, Tenant

__all__ = ["Account", "accounts_of", "terms_frame"]


@dataclass(frozen=True)
class Account:
    """One tenant, its plan and its period."""

    tenant: Tenant
    plan: Plan
    period: Period

    @property
    def tenant_id(self) -> str:
        return self.tenant.tenant_id

    @property
    def invoice_id(self) -> str:
        """Rule 9: ``<tenant_id>-<YYYY-MM>``."""
        return f"{self.tenant.tenant_id}-{self.period.label}"

    @property
    def prepaid(self) -> bool:
        return self.tenant.billing == "prepaid"


def accounts_of(tariff: Tariff, label: str, tenants: Iterable[str] | None = None) -> list[Account]:
    """The accounts of period ``label`` (YYYY-MM) for ``tenants`` (all when None), in
    tenant order. ValueError for a bad label; KeyError names an unknown tenant."""
    wanted = sorted(tariff.tenants) if tenants is None else list(dict.fromkeys(tenants))
    out = []
    for tenant_id in wanted:
        tenant = tariff.tenants[tenant_id]
        plan = tariff.plans[tenant.plan_id]
        out.append(Account(tenant, plan, Period.of(label, plan.timezone)))
    return out


def terms_frame(accounts: list[Account]) -> pl.DataFrame:
    """One row per account: tenant_id, the period's instants, the amount quantum and
    rounding method code, currency, the tenant's plan and billing."""
    return pl.DataFrame(
        {
            "tenant_id": [a.tenant_id for a in accounts],
            "_start_us": [a.period.start_us for a in accounts],
            "_end_us": [a.period.end_us for a in accounts],
            "_step": [quantum(a.plan.invoice_decimals) for a in accounts],
            "_method": [METHOD_CODES[a.plan.rounding] for a in accounts],
            "_tenant_plan": [a.plan.id for a in accounts],
        },
        schema={
            "tenant_id": pl.String(),
            "_start_us": pl.Int64(),
            "_end_us": pl.Int64(),
            "_step": pl.Int64(),
            "_method": pl.Int32(),
            "_tenant_plan": pl.String(),
        },
    )
