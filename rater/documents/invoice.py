"""An invoice as the customer reads it: one HTML page (and, from it, the PDF).

:func:`render_invoice_html` takes one row of ``invoices`` and its rows of
``invoice_lines`` (the billing contract's columns, ``billing-rules.md``, "Batch command
and output files"), checks that they agree (lines add up to the subtotal, the tax line to
the tax, total = subtotal + tax, amount due = total - paid from balance, one currency)
and renders ``invoice.html``. Every number printed comes from those integer micros and
decimal strings, through the exact filters of :mod:`rater.documents.formatting`.

Lines are shown in the contract's order, under headings: plan and seats (fee, recurring,
prorated), one-time charges, usage, included in the plan, credits. The tax line is shown
in the totals, with ``tax_name`` and ``tax_rate`` when the invoice mapping has them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from rater.core.money import format_micros
from rater.documents.errors import DocumentError
from rater.documents.formatting import (
    format_date,
    format_percent,
    format_quantity,
    micros_of,
)
from rater.documents.render import DocumentHeader, party_from_mapping, render_document

__all__ = [
    "INVOICE_COLUMNS",
    "LINE_COLUMNS",
    "LINE_TYPES",
    "render_invoice_html",
]

INVOICE_COLUMNS: tuple[str, ...] = (
    "invoice_id",
    "tenant_id",
    "period",
    "period_start",
    "period_end",
    "currency",
    "subtotal_micros",
    "tax_micros",
    "total_micros",
    "paid_from_balance_micros",
    "amount_due_micros",
)
# The invoice_lines columns a document uses (the others may be present and are ignored).
LINE_COLUMNS: tuple[str, ...] = (
    "line_no",
    "type",
    "description",
    "quantity",
    "unit",
    "unit_price_micros",
    "days",
    "amount_micros",
    "amount",
    "currency",
)
LINE_TYPES: tuple[str, ...] = (
    "fee",
    "recurring",
    "prorated",
    "one_time",
    "usage",
    "included",
    "credit",
    "tax",
)
# (css class, heading, line types): the groups of the lines table, in the contract's order.
_SECTIONS: tuple[tuple[str, str, frozenset[str]], ...] = (
    ("subscription", "Plan and seats", frozenset({"fee", "recurring", "prorated"})),
    ("one-time", "One-time charges", frozenset({"one_time"})),
    ("usage", "Usage", frozenset({"usage"})),
    ("included", "Included in your plan", frozenset({"included"})),
    ("credit", "Credits", frozenset({"credit"})),
)
_UNITS: dict[str, tuple[str, str]] = {
    "month": ("month", "months"),
    "unit": ("unit", "units"),
    "minute": ("minute", "minutes"),
    "segment": ("segment", "segments"),
    "attempt": ("attempt", "attempts"),
}


@dataclass(frozen=True)
class LineView:
    """One row of the lines table: text ready to print, amounts still in micros."""

    type: str
    description: str
    quantity: str
    unit_price_micros: int | None
    detail: str | None
    amount_micros: int


@dataclass(frozen=True)
class Section:
    """A heading of the lines table and its rows."""

    css: str
    title: str
    lines: tuple[LineView, ...]


@dataclass(frozen=True)
class TotalRow:
    """A row of the totals table."""

    css: str
    label: str
    micros: int


class _Row:
    """Typed access to one mapping, with errors that name the invoice and the column."""

    def __init__(self, row: Mapping[str, object], where: str) -> None:
        self.row = row
        self.where = where

    def error(self, problem: str) -> DocumentError:
        return DocumentError(f"{self.where}: {problem}")

    def get(self, key: str) -> object:
        if key not in self.row:
            raise self.error(f"no column {key!r}")
        return self.row[key]

    def text(self, key: str) -> str:
        value = self.get(key)
        if not isinstance(value, str):
            raise self.error(f"{key} must be text, got {type(value).__name__} {value!r}")
        return value

    def micros(self, key: str) -> int:
        try:
            return micros_of(self.get(key), key)
        except TypeError as err:
            raise self.error(str(err)) from None

    def optional_micros(self, key: str) -> int | None:
        return None if self.row.get(key) is None else self.micros(key)

    def optional_text(self, key: str) -> str | None:
        return None if self.row.get(key) is None else self.text(key)

    def date(self, key: str) -> dt.date:
        value = self.get(key)
        if not isinstance(value, dt.date | str):
            raise self.error(f"{key} must be a date, got {type(value).__name__} {value!r}")
        try:
            return dt.date.fromisoformat(format_date(value))
        except ValueError as err:
            raise self.error(f"{key}: {err}") from None

    def optional_decimal(self, key: str) -> str | None:
        return None if self.row.get(key) is None else self.decimal(key)

    def decimal(self, key: str) -> str:
        """A decimal column (string, int or Decimal, never a float) as a plain string."""
        value = self.get(key)
        if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
            raise self.error(f"{key} must be a decimal string, got {type(value).__name__}")
        try:
            format_quantity(value)
        except ValueError as err:
            raise self.error(f"{key}: {err}") from None
        return format(value, "f") if isinstance(value, Decimal) else str(value).strip()


def _quantity_text(row: _Row) -> str:
    number = format_quantity(row.decimal("quantity"))
    unit = row.optional_text("unit")
    if not unit:
        return number
    singular, plural = _UNITS.get(unit, (unit, unit))
    return f"{number} {singular if number == '1' else plural}"


def _check_amount_text(row: _Row, amount_micros: int) -> None:
    """The line's ``amount`` string must be its ``amount_micros``, exactly."""
    text = row.decimal("amount")  # plain decimal notation only
    # Decimals built from strings, and their equality, are exact at any size.
    if Decimal(text) != Decimal(format_micros(amount_micros, 6)):
        raise row.error(f"amount {text!r} is not amount_micros {amount_micros}")


def _line_view(row: _Row, currency: str, days_in_period: int) -> LineView:
    line_type = row.text("type")
    if line_type not in LINE_TYPES:
        raise row.error(f"unknown line type {line_type!r}; expected one of {LINE_TYPES}")
    if row.text("currency") != currency:
        raise row.error(f"currency {row.row['currency']!r} is not the invoice's {currency!r}")
    amount = row.micros("amount_micros")
    _check_amount_text(row, amount)
    days = row.optional_micros("days")
    detail = None if days is None else f"Prorated: {days} of {days_in_period} days"
    return LineView(
        type=line_type,
        description=row.text("description"),
        quantity=_quantity_text(row),
        unit_price_micros=row.optional_micros("unit_price_micros"),
        detail=detail,
        amount_micros=amount,
    )


def _sections(views: Sequence[LineView]) -> tuple[Section, ...]:
    sections = []
    for css, title, types in _SECTIONS:
        members = tuple(view for view in views if view.type in types)
        if members:
            sections.append(Section(css, title, members))
    return tuple(sections)


def _tax_label(invoice: _Row, tax_lines: Sequence[LineView]) -> str:
    rate = invoice.optional_decimal("tax_rate")
    percent = "" if rate is None else " " + format_percent(rate)
    name = invoice.optional_text("tax_name")
    if name:
        return name + percent
    if tax_lines and tax_lines[0].description:
        return tax_lines[0].description
    return "Tax" + percent


def _totals(invoice: _Row, views: Sequence[LineView]) -> tuple[TotalRow, ...]:
    """The totals rows, after checking that they agree with each other and with the lines."""
    subtotal, tax, total, paid, due = (
        invoice.micros(key)
        for key in (
            "subtotal_micros",
            "tax_micros",
            "total_micros",
            "paid_from_balance_micros",
            "amount_due_micros",
        )
    )
    tax_lines = [view for view in views if view.type == "tax"]
    lines_sum = sum(view.amount_micros for view in views if view.type != "tax")
    checks = (
        (lines_sum == subtotal, f"the lines add up to {lines_sum}, not subtotal {subtotal}"),
        (sum(v.amount_micros for v in tax_lines) == tax, f"the tax lines are not tax {tax}"),
        (subtotal + tax == total, f"subtotal {subtotal} + tax {tax} is not total {total}"),
        (total - paid == due, f"total {total} - paid {paid} is not amount due {due}"),
    )
    for ok, problem in checks:
        if not ok:
            raise invoice.error(problem)
    rows = [TotalRow("subtotal", "Subtotal", subtotal)]
    if tax_lines or tax or invoice.row.get("tax_rate") is not None:
        rows.append(TotalRow("tax", _tax_label(invoice, tax_lines), tax))
    rows.append(TotalRow("total", "Total", total))
    if paid:
        rows.append(TotalRow("paid", "Paid from prepaid balance", -paid))
    rows.append(TotalRow("due", "Amount due", due))
    return tuple(rows)


def _header(
    invoice: _Row, issuer: Mapping[str, object], customer: Mapping[str, object]
) -> DocumentHeader:
    start, end = invoice.date("period_start"), invoice.date("period_end")
    facts = [
        ("Period", invoice.text("period")),
        ("Service period", f"{start.isoformat()} to {end.isoformat()}"),
    ]
    issued = due = None
    if invoice.row.get("issue_date") is not None:
        issued = invoice.date("issue_date").isoformat()
        facts.append(("Issue date", issued))
    if invoice.row.get("due_date") is not None:
        due = invoice.date("due_date").isoformat()
        facts.append(("Due date", due))
    tenant = invoice.text("tenant_id")
    facts.append(("Account", tenant))
    return DocumentHeader(
        title="Invoice",
        reference=invoice.text("invoice_id"),
        issuer=party_from_mapping(issuer, what="issuer"),
        customer=party_from_mapping(customer, what="customer", default_name=tenant),
        customer_label="Bill to",
        facts=tuple(facts),
        created=issued,
    )


def render_invoice_html(
    invoice: Mapping[str, object],
    lines: Sequence[Mapping[str, object]],
    *,
    issuer: Mapping[str, object],
    customer: Mapping[str, object],
    decimals: int,
) -> str:
    """The invoice as one self-contained HTML page (the PDF is made from this string).

    ``invoice``: a row of ``invoices`` (:data:`INVOICE_COLUMNS`), plus optional
    ``tax_name``, ``tax_rate`` (decimal string), ``issue_date`` and ``due_date``.
    ``lines``: its rows of ``invoice_lines`` (:data:`LINE_COLUMNS` used), any order
    (shown by ``line_no``). ``issuer`` and ``customer``: ``name`` (the customer's
    defaults to the tenant id), optional ``address`` (text or lines), ``tax_id``,
    ``email``, ``phone``. ``decimals``: the plan's ``invoice_decimals`` (0..6).

    Raises :class:`DocumentError` when a column is missing or of the wrong type (a float
    amount, say), or when the numbers disagree. The same inputs give the same string.
    """
    where = f"invoice {invoice.get('invoice_id', '?')}"
    row = _Row(invoice, where)
    if isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= 6:
        raise row.error(f"decimals must be an integer within 0..6, got {decimals!r}")
    currency = row.text("currency")
    header = _header(row, issuer, customer)
    days = (row.date("period_end") - row.date("period_start")).days + 1
    line_rows = [_Row(line, f"{where} line {line.get('line_no', '?')}") for line in lines]
    line_rows.sort(key=lambda line: line.micros("line_no"))
    views = [_line_view(line, currency, days) for line in line_rows]
    context = {
        "doc": header,
        "currency": currency,
        "decimals": decimals,
        "sections": _sections(views),
        "totals": _totals(row, views),
    }
    return render_document("invoice.html", context)
