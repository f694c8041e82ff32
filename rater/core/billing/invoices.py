"""``bill_period``: a period's invoices, from the tariff (products, subscriptions), rated
records and balance adjustments. A pipeline of named stages:

1. **accounts**: who is billed, on which terms (rule 1);
2. **products**: fee, recurring, prorated and one-time lines (rules 2 to 5);
3. **usage**: usage and included lines (rule 6);
4. **credits**: a postpaid tenant's refunds (rule 7);
5. **order**: lines in the contract's order, numbered within their invoice (rule 8);
6. **totals**: subtotal, tax line, total, and what a prepaid balance paid (rule 8,
   "Balance adjustments");
7. **debits**: a prepaid tenant's product lines as ``charge`` adjustments.

Only accounts with a line other than tax get an invoice (rule 9). The same inputs give
the same frames, row for row.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl

from rater.core.billing.accounts import Account, accounts_of, terms_frame
from rater.core.billing.credits import credit_lines
from rater.core.billing.lines import (
    DRAFT_SCHEMA,
    INVOICE_SCHEMA,
    LINE_SCHEMA,
    LINE_TYPES,
    SORT_KEYS,
    amount_text_expr,
)
from rater.core.billing.products import product_lines
from rater.core.billing.rounding import INT64_MAX, quantum, round_amount
from rater.core.billing.usage import usage_lines
from rater.core.columns import ADJUSTMENT_SCHEMA
from rater.core.money import round_div
from rater.core.tariff import SubscriptionChange, Tariff

__all__ = ["Bill", "bill_period", "debit_id"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEBITED = ("fee", "recurring", "prorated", "one_time")


@dataclass(frozen=True)
class Bill:
    """A period's invoices (INVOICE_SCHEMA, by invoice_id), their lines (LINE_SCHEMA, by
    invoice_id then line_no) and the prepaid debits (ADJUSTMENT_SCHEMA)."""

    period: str
    invoices: pl.DataFrame
    lines: pl.DataFrame
    debits: pl.DataFrame


def bill_period(
    tariff: Tariff,
    period: str,
    records: pl.DataFrame,
    adjustments: pl.DataFrame | None = None,
    *,
    tenants: Iterable[str] | None = None,
    until_us: int | None = None,
) -> Bill:
    """Invoice ``period`` (YYYY-MM) for ``tenants`` (every tenant when None).

    ``records``: rated records (at least usage.USAGE_COLUMNS); ``adjustments``: balance
    adjustments (ADJUSTMENT_SCHEMA, with ``status`` when they are an output of the
    rater). ``until_us`` bills only what happened before that instant: the period so far.
    """
    accounts = accounts_of(tariff, period, tenants)  # 1
    terms = terms_frame(accounts)
    if until_us is not None:
        terms = terms.with_columns(pl.col("_end_us").clip(upper_bound=until_us))
    products = _product_drafts(tariff, accounts, until_us)  # 2
    usage, charges = usage_lines(records, terms)  # 3
    given = pl.DataFrame(schema=ADJUSTMENT_SCHEMA) if adjustments is None else adjustments
    credits = credit_lines(tariff, given, terms)  # 4
    drafts = _ordered(pl.concat([products, usage, credits], how="vertical_relaxed"))  # 5
    lines, invoices = _totals(accounts, drafts, charges)  # 6
    return Bill(period, invoices, lines, _debits(accounts, drafts))  # 7


def debit_id(invoice_id: str, line_type: str, product_id: str, change_id: str | None) -> str:
    """The adjustment_id of a prepaid debit: ``<invoice_id>:<line type>:<product_id>:
    <change_id or "start">``."""
    return f"{invoice_id}:{line_type}:{product_id}:{change_id or 'start'}"


def _product_drafts(tariff: Tariff, accounts: list[Account], until_us: int | None) -> pl.DataFrame:
    by_tenant: dict[str, list[SubscriptionChange]] = defaultdict(list)
    for change in tariff.subscriptions:  # ordered by (at, line)
        by_tenant[change.tenant_id].append(change)
    rows = [
        row
        for account in accounts
        for row in product_lines(account, by_tenant[account.tenant_id], until_us=until_us)
    ]
    schema = {k: v for k, v in DRAFT_SCHEMA.items() if k != "_type"}
    return pl.DataFrame(rows, schema=schema) if rows else pl.DataFrame(schema=schema)


def _ordered(drafts: pl.DataFrame) -> pl.DataFrame:
    """Rule 8's order, then ``line_no`` from 1 within each tenant's invoice."""
    rank = {t: i for i, t in enumerate(LINE_TYPES)}
    return (
        drafts.with_columns(
            pl.col("type").replace_strict(rank, return_dtype=pl.Int32).alias("_type")
        )
        .select(list(DRAFT_SCHEMA))
        .sort(list(SORT_KEYS), nulls_last=False, maintain_order=True)
        .with_columns(
            pl.int_range(1, pl.len() + 1, dtype=pl.Int32).over("tenant_id").alias("line_no")
        )
    )


def _totals(
    accounts: list[Account], drafts: pl.DataFrame, charges: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(lines, invoices): a tax line per taxed invoice, then each invoice's totals."""
    subtotals = dict(drafts.group_by("tenant_id").agg(pl.col("amount_micros").sum()).iter_rows())
    debited = dict(
        drafts.filter(pl.col("type").is_in(DEBITED))
        .group_by("tenant_id")
        .agg(pl.col("amount_micros").sum())
        .iter_rows()
    )
    paid_charges = dict(charges.iter_rows())
    invoices, taxes = [], []
    for account in accounts:
        if account.tenant_id not in subtotals:
            continue  # rule 9: no line, no invoice
        plan = account.plan
        subtotal = int(subtotals[account.tenant_id])
        tax = 0
        if plan.tax_rate is not None:
            tax = _tax(subtotal, account)
            taxes.append(_tax_line(account, tax))
        paid = 0
        if account.prepaid:
            spent = paid_charges.get(account.tenant_id, 0) + debited.get(account.tenant_id, 0)
            paid = round_amount(spent, plan.invoice_decimals, plan.rounding)
        invoices.append(_invoice_row(account, subtotal, tax, paid))
    lines = pl.concat([drafts, _tax_frame(taxes, drafts)], how="vertical_relaxed")
    return _line_columns(accounts, lines), _invoice_frame(invoices)


def _tax(subtotal: int, account: Account) -> int:
    """subtotal x tax_rate, rounded once to invoice_decimals (exact: integers only)."""
    plan = account.plan
    assert plan.tax_rate is not None
    numerator, denominator = plan.tax_rate.as_integer_ratio()
    step = quantum(plan.invoice_decimals)
    return round_div(subtotal * numerator, denominator * step, plan.rounding) * step


def _tax_line(account: Account, tax: int) -> dict[str, object]:
    plan = account.plan
    rate = plan.tax_rate
    assert rate is not None
    percent = format(rate * 100, "f").rstrip("0").rstrip(".") if rate else "0"
    return {
        "tenant_id": account.tenant_id,
        "type": "tax",
        "description": f"{plan.tax_name} {percent}%",
        "quantity": "1",
        "amount_micros": tax,
    }


def _tax_frame(taxes: list[dict[str, object]], drafts: pl.DataFrame) -> pl.DataFrame:
    """Tax lines last in their invoice."""
    schema = {**DRAFT_SCHEMA, "line_no": pl.Int32()}
    frame = pl.DataFrame(taxes, schema=schema) if taxes else pl.DataFrame(schema=schema)
    last = drafts.group_by("tenant_id").agg(pl.col("line_no").max().alias("_last"))
    return (
        frame.join(last, on="tenant_id", how="left")
        .with_columns((pl.col("_last") + 1).cast(pl.Int32).alias("line_no"))
        .drop("_last")
    )


def _line_columns(accounts: list[Account], lines: pl.DataFrame) -> pl.DataFrame:
    """LINE_SCHEMA: invoice ids, period, decimal text of each amount, currency."""
    by_tenant = {a.tenant_id: a for a in accounts}
    tenants = lines.get_column("tenant_id").unique().to_list()
    info = pl.DataFrame(
        {
            "tenant_id": tenants,
            "invoice_id": [by_tenant[t].invoice_id for t in tenants],
            "period": [by_tenant[t].period.label for t in tenants],
            "currency": [by_tenant[t].plan.currency for t in tenants],
            "_decimals": [by_tenant[t].plan.invoice_decimals for t in tenants],
        },
        schema={
            "tenant_id": pl.String(),
            "invoice_id": pl.String(),
            "period": pl.String(),
            "currency": pl.String(),
            "_decimals": pl.Int32(),
        },
    )
    out = lines.join(info, on="tenant_id", how="left").sort("invoice_id", "line_no")
    amount = amount_text_expr(pl.col("amount_micros"), pl.col("_decimals"))
    return out.with_columns(amount.alias("amount")).select(
        pl.col(c).cast(t) for c, t in LINE_SCHEMA.items()
    )


def _invoice_row(account: Account, subtotal: int, tax: int, paid: int) -> dict[str, object]:
    plan = account.plan
    total = subtotal + tax
    for value in (subtotal, tax, total, paid, total - paid):
        if abs(value) > INT64_MAX:
            raise ValueError(f"invoice {account.invoice_id} exceeds the largest amount")
    taxed = plan.tax_rate is not None
    return {
        "invoice_id": account.invoice_id,
        "tenant_id": account.tenant_id,
        "period": account.period.label,
        "period_start": account.period.first_day,
        "period_end": account.period.last_day,
        "currency": plan.currency,
        "subtotal_micros": subtotal,
        "tax_micros": tax,
        "total_micros": total,
        "paid_from_balance_micros": paid,
        "amount_due_micros": total - paid,
        "billing": account.tenant.billing,
        "invoice_decimals": plan.invoice_decimals,
        "tax_name": plan.tax_name if taxed else None,
        "tax_rate": format(plan.tax_rate, "f") if plan.tax_rate is not None else None,
    }


def _invoice_frame(rows: list[dict[str, object]]) -> pl.DataFrame:
    frame = (
        pl.DataFrame(rows, schema=INVOICE_SCHEMA) if rows else pl.DataFrame(schema=INVOICE_SCHEMA)
    )
    return frame.sort("invoice_id")


def _debits(accounts: list[Account], drafts: pl.DataFrame) -> pl.DataFrame:
    """Rule "Balance adjustments": a prepaid tenant's fee, recurring, prorated and one-time
    lines as charges at their instant (lines of amount 0 debit nothing)."""
    prepaid = {a.tenant_id: a for a in accounts if a.prepaid}
    rows = []
    for row in drafts.filter(
        pl.col("tenant_id").is_in(list(prepaid))
        & pl.col("type").is_in(DEBITED)
        & (pl.col("amount_micros") > 0)
    ).iter_rows(named=True):
        account = prepaid[row["tenant_id"]]
        rows.append(
            {
                "tenant_id": row["tenant_id"],
                "adjustment_id": debit_id(
                    account.invoice_id, row["type"], row["product_id"], row["change_id"]
                ),
                "kind": "charge",
                "amount_micros": row["amount_micros"],
                "time": _EPOCH + timedelta(microseconds=row["time_us"]),
                "source": None,
                "reason": None,
                "product_id": row["product_id"],
                "line_type": row["type"],
            }
        )
    return (
        pl.DataFrame(rows, schema=ADJUSTMENT_SCHEMA)
        if rows
        else pl.DataFrame(schema=ADJUSTMENT_SCHEMA)
    )
