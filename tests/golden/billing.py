"""Builders for the billing golden cases: a tariff directory with products and
subscriptions, and the lines of an invoice as tuples that read like the contract."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import polars as pl

from rater.core.billing import USAGE_COLUMNS, Bill, bill_period
from rater.core.columns import ADJUSTMENT_SCHEMA
from rater.tariff_files import load_tariff

from .helpers import RATES_HEADER, TENANTS_HEADER

SUBSCRIPTIONS_HEADER = "change_id,tenant_id,product_id,change,quantity,at"

# The contract's example catalogue (billing rules, "Catalogue").
PRO_EU = """
plans:
  - id: pro-eu
    currency: EUR
    timezone: Europe/Paris
    decimals: 4
    rounding: {rounding}
    invoice_decimals: {invoice_decimals}
    tax_rate: "0.20"
    tax_name: VAT
    products:
      - {{id: pro-fee, name: "Professional plan", type: fee, price: "49.00"}}
      - {{id: license-advanced, name: "ADVANCED license", type: seat, price: "64.00"}}
      - {{id: extension, name: "Extension", type: seat, price: "4.00", included: 5}}
      - {{id: did, name: "Phone number", type: seat, price: "5.00"}}
      - {{id: did-setup, name: "Number setup", type: one_time, price: "1.50"}}
"""


def pro_eu(rounding: str = "half_up", invoice_decimals: int = 2) -> str:
    return PRO_EU.format(rounding=rounding, invoice_decimals=invoice_decimals)


def write_billing_tariff(
    root: Path,
    plans_yaml: str,
    subscriptions: list[str],
    *,
    tenants: list[str] | None = None,
    rates: list[str] | None = None,
) -> Path:
    """plans.yaml, rates.csv, tenants.csv and subscriptions.csv in ``root/tariff``."""
    directory = root / "tariff"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "plans.yaml").write_text(textwrap.dedent(plans_yaml).lstrip(), encoding="utf-8")
    (directory / "rates.csv").write_text(
        "\n".join([RATES_HEADER, *(rates or [])]) + "\n", encoding="utf-8"
    )
    (directory / "tenants.csv").write_text(
        "\n".join([TENANTS_HEADER, *(tenants or ["acme,pro-eu,postpaid,,,,false"])]) + "\n",
        encoding="utf-8",
    )
    (directory / "subscriptions.csv").write_text(
        "\n".join([SUBSCRIPTIONS_HEADER, *subscriptions]) + "\n", encoding="utf-8"
    )
    return directory


def bill(
    tariff_dir: Path,
    period: str,
    records: pl.DataFrame | None = None,
    adjustments: list[dict[str, Any]] | None = None,
) -> Bill:
    frame = records if records is not None else pl.DataFrame(schema=USAGE_COLUMNS)
    given = pl.DataFrame(adjustments or [], schema=ADJUSTMENT_SCHEMA)
    return bill_period(load_tariff(tariff_dir), period, frame, given)


def lines(result: Bill, tenant: str = "acme") -> list[tuple[Any, ...]]:
    """(type, product_id, quantity, unit price micros, days, amount) of a tenant's lines."""
    return (
        result.lines.filter(pl.col("tenant_id") == tenant)
        .select("type", "product_id", "quantity", "unit_price_micros", "days", "amount")
        .rows()
    )


def invoice(result: Bill, tenant: str = "acme") -> dict[str, Any]:
    rows = result.invoices.filter(pl.col("tenant_id") == tenant).to_dicts()
    assert len(rows) == 1, f"{len(rows)} invoices of {tenant}"
    return rows[0]
