"""Customer documents: invoices now, usage and consumption reports next.

One HTML source per document, rendered with Jinja2 from the templates in
``rater/documents/templates/`` (autoescaped, strict, inline styles only); the PDF is
printed from that same HTML string by WeasyPrint, offline, so the two cannot disagree and
the same input gives the same bytes.

- :mod:`~rater.documents.invoice`: :func:`render_invoice_html`, an invoice from the
  billing contract's ``invoices`` and ``invoice_lines`` rows;
- :mod:`~rater.documents.pdf`: :func:`html_to_pdf`, any document's HTML to PDF bytes;
- :mod:`~rater.documents.render`: the shared environment, :func:`render_document` and the
  header every document extends (``base.html``);
- :mod:`~rater.documents.formatting`: exact, locale-free money, quantities, rates and
  dates (the templates' filters);
- :mod:`~rater.documents.errors`: :class:`DocumentError`.

May import :mod:`rater.core.money`, :mod:`rater.errors`, Jinja2 and WeasyPrint; never
Kafka, the streaming job, the CLI or the billing that calls it (``make lint`` checks).
"""

from __future__ import annotations

from rater.documents.errors import DocumentError, ExternalResourceError
from rater.documents.formatting import (
    format_amount,
    format_date,
    format_money,
    format_percent,
    format_quantity,
)
from rater.documents.invoice import INVOICE_COLUMNS, LINE_COLUMNS, render_invoice_html
from rater.documents.pdf import html_to_pdf
from rater.documents.render import DocumentHeader, Party, party_from_mapping, render_document

__all__ = [
    "INVOICE_COLUMNS",
    "LINE_COLUMNS",
    "DocumentError",
    "DocumentHeader",
    "ExternalResourceError",
    "Party",
    "format_amount",
    "format_date",
    "format_money",
    "format_percent",
    "format_quantity",
    "html_to_pdf",
    "party_from_mapping",
    "render_document",
    "render_invoice_html",
]
