"""The documents' Jinja2 environment: templates from package data, escaped, strict, exact.

Every customer document (invoices; usage and consumption reports) is one HTML page
rendered here from ``rater/documents/templates/``; its PDF is made from that same HTML
(:func:`rater.documents.pdf.html_to_pdf`), so the two cannot disagree.

The environment:

- autoescapes every template, so a tenant called ``<script>`` stays text;
- uses :class:`jinja2.StrictUndefined`: a missing key is an error, never an empty cell;
- refuses to print a ``float`` or ``None`` (:func:`_finalize`): amounts go through the
  exact filters of :mod:`rater.documents.formatting`, and an absent value is a template
  bug, not the word "None";
- registers the filters ``money(micros, currency, decimals)``, ``amount(micros,
  decimals)``, ``quantity(text)``, ``percent(rate)`` and ``date(value)``.

A new document extends ``base.html`` (header with the issuer and customer blocks, A4 pages
numbered "Page n of m", the table styles) and fills ``{% block content %}``; its context
holds ``doc``, a :class:`DocumentHeader`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import jinja2

from rater.documents.errors import DocumentError
from rater.documents.formatting import (
    format_amount,
    format_date,
    format_money,
    format_percent,
    format_quantity,
)

__all__ = [
    "DocumentHeader",
    "Party",
    "environment",
    "party_from_mapping",
    "render_document",
]


@dataclass(frozen=True)
class Party:
    """Who issues or receives a document: a name and the lines printed under it."""

    name: str
    lines: tuple[str, ...] = ()


@dataclass(frozen=True)
class DocumentHeader:
    """What ``base.html`` prints above every document.

    ``title`` ("Invoice") and ``reference`` (its number) head the page and its footer;
    ``facts`` are (label, value) pairs printed beside the title (period, dates, account);
    ``created`` (an ISO date, optional) becomes the PDF's creation date, so that it is
    the same on every render.
    """

    title: str
    reference: str
    issuer: Party
    customer: Party
    customer_label: str
    facts: tuple[tuple[str, str], ...] = ()
    created: str | None = None


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise DocumentError(f"{what} must be text, got {type(value).__name__} {value!r}")
    return value


def party_from_mapping(
    party: Mapping[str, object], *, what: str, default_name: str | None = None
) -> Party:
    """A :class:`Party` from a mapping of ``name``, ``address``, ``tax_id``, ``email``, ``phone``.

    ``name`` is required unless ``default_name`` is given. ``address`` is one string
    (lines separated by newlines) or a sequence of lines. Other keys are ignored.
    """
    name = party.get("name", default_name)
    if name is None:
        raise DocumentError(f"{what} has no 'name'")
    lines: list[str] = []
    address = party.get("address")
    if isinstance(address, str):
        lines.extend(address.splitlines())
    elif isinstance(address, Sequence):
        lines.extend(_text(line, f"{what} address line") for line in address)
    elif address is not None:
        raise DocumentError(f"{what} 'address' must be text or a list of lines")
    for key, label in (("tax_id", "Tax ID"), ("email", "Email"), ("phone", "Phone")):
        value = party.get(key)
        if value is not None:
            lines.append(f"{label}: {_text(value, f'{what} {key!r}')}")
    return Party(_text(name, f"{what} 'name'"), tuple(line for line in lines if line.strip()))


def _finalize(value: object) -> object:
    """What ``{{ ... }}`` may print: never a float (inexact) nor None (a missing value)."""
    if isinstance(value, float):
        raise TypeError(f"a template printed the float {value!r}: use the money/quantity filters")
    if value is None:
        raise TypeError("a template printed None: test for the value or give a default")
    return value


@functools.cache
def environment() -> jinja2.Environment:
    """The shared environment (built once; rendering from it is thread-safe)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("rater.documents", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )
    env.filters.update(
        money=format_money,
        amount=format_amount,
        quantity=format_quantity,
        percent=format_percent,
        date=format_date,
    )
    return env


def render_document(template_name: str, context: Mapping[str, object]) -> str:
    """Render ``template_name`` (a file of ``rater/documents/templates/``) with ``context``."""
    return environment().get_template(template_name).render(context)
