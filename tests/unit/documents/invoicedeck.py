"""Invoices for the documents' tests, built the way the billing contract defines them.

:func:`build_invoice` takes line specs and computes the invoice row from them with integer
arithmetic (subtotal = sum of line amounts, tax rounded half up to the invoice's decimals,
total, paid from balance, amount due), so every sample is consistent by construction.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any

from rater.core.money import format_micros, round_div
from rater.documents import render_invoice_html

Row = dict[str, Any]


@dataclass
class Kit:
    """An invoice row, its lines and the parties: what render_invoice_html takes."""

    invoice: Row
    lines: list[Row]
    issuer: Row = field(default_factory=lambda: {"name": "Telco SAS"})
    customer: Row = field(default_factory=lambda: {"name": "Acme Ltd"})
    decimals: int = 2

    def html(self) -> str:
        return render_invoice_html(
            self.invoice,
            self.lines,
            issuer=self.issuer,
            customer=self.customer,
            decimals=self.decimals,
        )


def line(
    line_no: int,
    type_: str,
    description: str,
    quantity: str,
    unit: str | None,
    unit_price_micros: int | None,
    amount_micros: int,
    *,
    days: int | None = None,
    decimals: int = 2,
    currency: str = "EUR",
) -> Row:
    """One invoice_lines row (the contract's columns)."""
    return {
        "invoice_id": "acme-2026-04",
        "tenant_id": "acme",
        "period": "2026-04",
        "line_no": line_no,
        "type": type_,
        "product_id": None,
        "kind": None,
        "direction": None,
        "plan_id": None,
        "rate_prefix": None,
        "band": None,
        "description": description,
        "quantity": quantity,
        "unit": unit,
        "unit_price_micros": unit_price_micros,
        "days": days,
        "amount_micros": amount_micros,
        "amount": format_micros(amount_micros, decimals),
        "currency": currency,
    }


def build_invoice(
    lines: list[Row],
    *,
    tax_percent: int | None = 20,
    paid_micros: int = 0,
    decimals: int = 2,
    tenant_id: str = "acme",
    issuer: Row | None = None,
    customer: Row | None = None,
    **extra: Any,
) -> Kit:
    """A consistent invoice for ``lines`` (a tax line is appended when tax_percent is set)."""
    subtotal = sum(row["amount_micros"] for row in lines)
    tax = 0
    rows = list(lines)
    quantum = 10 ** (6 - decimals)
    if tax_percent is not None:
        tax = round_div(subtotal * tax_percent, 100 * quantum, "half_up") * quantum
        rows.append(
            line(
                len(rows) + 1, "tax", f"VAT {tax_percent}%", "1", None, None, tax, decimals=decimals
            )
        )
    invoice: Row = {
        "invoice_id": f"{tenant_id}-2026-04",
        "tenant_id": tenant_id,
        "period": "2026-04",
        "period_start": "2026-04-01",
        "period_end": "2026-04-30",
        "currency": "EUR",
        "subtotal_micros": subtotal,
        "tax_micros": tax,
        "total_micros": subtotal + tax,
        "paid_from_balance_micros": paid_micros,
        "amount_due_micros": subtotal + tax - paid_micros,
    }
    if tax_percent is not None:
        invoice.update(tax_name="VAT", tax_rate=f"0.{tax_percent:02d}")
    invoice.update(extra)
    kit = Kit(invoice, rows, decimals=decimals)
    if issuer is not None:
        kit.issuer = issuer
    if customer is not None:
        kit.customer = customer
    return kit


def worked_example_lines() -> list[Row]:
    """The contract's worked example (acme, April 2026) plus one line of every other type."""
    return [
        line(1, "fee", "Professional plan", "1", "month", 49_000_000, 49_000_000),
        line(2, "recurring", "ADVANCED license", "10", "unit", 64_000_000, 640_000_000),
        line(3, "recurring", "Extension", "2", "unit", 4_000_000, 8_000_000),
        line(4, "prorated", "ADVANCED license", "1", "unit", 49_070_000, 49_070_000, days=23),
        line(5, "one_time", "Number setup", "3", "unit", 1_500_000, 4_500_000),
        line(6, "usage", "Outbound calls to France mobile", "12.500000", "minute", None, 1_250_000),
        line(7, "usage", "Outbound SMS", "42", "segment", None, 2_100_000),
        line(8, "included", "Outbound calls (included minutes)", "300", "minute", None, 0),
        line(9, "credit", "Refund: dropped calls on 2026-04-12", "1", "unit", None, -5_000_000),
    ]


def long_invoice_lines(count: int) -> list[Row]:
    """``count`` lines: a fee, then usage lines for many destination prefixes."""
    rows = [line(1, "fee", "Professional plan", "1", "month", 49_000_000, 49_000_000)]
    for n in range(2, count + 1):
        minutes = n * 7
        amount = minutes * 12_500  # 0.0125 per minute, an exact multiple of 0.01 below
        amount -= amount % 10_000
        rows.append(
            line(
                n,
                "usage",
                f"Outbound calls to prefix 33{n:03d}",
                f"{minutes}",
                "minute",
                None,
                amount,
            )
        )
    return rows


def pdf_text(pdf: bytes) -> str:
    """The PDF's text as Poppler's pdftotext reads it (layout kept, one line per row)."""
    tool = shutil.which("pdftotext")
    assert tool, "pdftotext is missing: `make setup` installs poppler-utils"
    done = subprocess.run(
        [tool, "-layout", "-enc", "UTF-8", "-", "-"], input=pdf, capture_output=True, check=True
    )
    return done.stdout.decode("utf-8")


def pdf_info(pdf: bytes) -> str:
    """pdfinfo's report on the PDF (pages, dates, title)."""
    tool = shutil.which("pdfinfo")
    assert tool, "pdfinfo is missing: `make setup` installs poppler-utils"
    done = subprocess.run([tool, "-"], input=pdf, capture_output=True, check=True)
    return done.stdout.decode("utf-8")
