"""The document a customer reads for each invoice: one HTML page and the PDF printed from
that same HTML (so the two cannot disagree), named after the invoice.

The issue date is the day after the period and the due date the issue date plus the
payment terms, so that invoicing the same inputs again gives the same bytes. PDFs take
most of the time: beyond a handful they are rendered by a pool of processes.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import re
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import date, timedelta
from typing import Any

from rater.core.billing import Bill
from rater.documents import html_to_pdf, render_invoice_html
from rater.settings import InvoiceSettings

__all__ = ["document_name", "invoice_documents"]

log = logging.getLogger(__name__)

_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,150}")
_IN_PROCESS = 4  # fewer PDFs than this are rendered without a pool


def document_name(invoice_id: str) -> str:
    """A file name for an invoice's documents: the invoice id when it is a plain name,
    else its safe characters and a short hash (a tenant id may hold '/', '..', spaces)."""
    if _SAFE.fullmatch(invoice_id):
        return invoice_id
    kept = re.sub(r"[^A-Za-z0-9._-]", "_", invoice_id).lstrip(".")[:100] or "invoice"
    digest = hashlib.sha256(invoice_id.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{kept}-{digest}"


def invoice_documents(
    bill: Bill, terms: InvoiceSettings, *, pdf: bool
) -> Iterator[tuple[str, bytes]]:
    """(file name, bytes) of every invoice's HTML, and PDF when ``pdf``."""
    htmls = list(_htmls(bill, terms))
    for name, html in htmls:
        yield f"{name}.html", html.encode("utf-8")
    if pdf:
        for (name, _), data in zip(htmls, _pdfs([h for _, h in htmls], terms), strict=True):
            yield f"{name}.pdf", data


def _htmls(bill: Bill, terms: InvoiceSettings) -> Iterator[tuple[str, str]]:
    issuer = _issuer(terms)
    lines_of = bill.lines.partition_by("invoice_id", as_dict=True, maintain_order=True)
    for invoice in bill.invoices.iter_rows(named=True):
        lines = lines_of[(invoice["invoice_id"],)].to_dicts()
        issued: date = invoice["period_end"] + timedelta(days=1)
        mapping = {
            **invoice,
            "issue_date": issued,
            "due_date": issued + timedelta(days=terms.payment_terms_days),
        }
        html = render_invoice_html(
            mapping,
            lines,
            issuer=issuer,
            customer={"name": invoice["tenant_id"]},
            decimals=invoice["invoice_decimals"],
        )
        yield document_name(invoice["invoice_id"]), html


def _issuer(terms: InvoiceSettings) -> dict[str, Any]:
    issuer: dict[str, Any] = {"name": terms.issuer_name or "Invoice"}
    if terms.issuer_address:
        issuer["address"] = [part.strip() for part in terms.issuer_address.split(";")]
    if terms.issuer_tax_id:
        issuer["tax_id"] = terms.issuer_tax_id
    if terms.issuer_email:
        issuer["email"] = terms.issuer_email
    return issuer


def _pdfs(htmls: list[str], terms: InvoiceSettings) -> Iterator[bytes]:
    workers = terms.pdf_workers or os.cpu_count() or 1
    if len(htmls) < _IN_PROCESS or workers == 1:
        yield from (html_to_pdf(h) for h in htmls)
        return
    # Processes started fresh ("spawn"): forking a process that runs Polars' threads can
    # deadlock a child.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(htmls)), mp_context=context) as pool:
        chunk = max(1, len(htmls) // (workers * 8))
        yield from pool.map(html_to_pdf, htmls, chunksize=chunk)
