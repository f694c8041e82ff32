"""Fixtures of the documents' tests: sample invoices (builders in invoicedeck.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The shared builders live next to the tests, which are plain modules, not a package.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from invoicedeck import Kit, build_invoice, worked_example_lines


@pytest.fixture
def kit() -> Kit:
    """The worked example: every line type, VAT 20%, postpaid."""
    return build_invoice(
        worked_example_lines(),
        issuer={"name": "Telco SAS", "address": "1 rue de la Paix\n75002 Paris", "tax_id": "FR12"},
        issue_date="2026-05-01",
    )
