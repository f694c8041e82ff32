"""Usage this period: the page and the exports show the billing core's numbers for the
tenant's period so far, read through DuckDB from the rated records."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from reportdeck import NOW_US, Deck

from rater.core.billing import USAGE_COLUMNS, usage_so_far
from rater.core.money import format_micros
from rater.reports import build_request
from rater.reports.exports import usage_export
from rater.reports.pages import usage_html
from rater.reports.store import RecordStore, open_dataset
from rater.reports.usage import build_usage, usage_rows


def _view(deck: Deck, tenant: str, end: str | None = None):  # type: ignore[no-untyped-def]
    request = build_request(
        deck.tariff,
        "usage",
        tenant_id=tenant,
        output=Path("u.html"),
        format=None,
        end=end,
        now_us=NOW_US,
    )
    with RecordStore(open_dataset(deck.rated_dir)) as store:
        return build_usage(store, request, deck.tariff)


def _direct(deck: Deck, tenant: str, as_of_us: int):  # type: ignore[no-untyped-def]
    """usage_so_far over the tenant's rated records read by Polars, in file order."""
    records = deck.rated().filter(pl.col("tenant_id") == tenant)
    adjustments = deck.applied().filter(pl.col("tenant_id") == tenant)
    return usage_so_far(
        deck.tariff, tenant, as_of_us, records.select(*USAGE_COLUMNS, "callee"), adjustments
    )


@pytest.mark.parametrize("tenant", ["acme", "globex", "initech", "hooli", "Zoë-東京"])
@pytest.mark.parametrize("end", [None, "2026-10-20"])
def test_the_report_shows_the_billing_core_numbers(
    deck: Deck, tenant: str, end: str | None
) -> None:
    view = _view(deck, tenant, end)
    direct = _direct(deck, tenant, view.as_of_us)
    assert view.overage_micros == direct.overage_micros
    assert view.estimated_total_micros == direct.estimated_total_micros
    assert [line["amount_micros"] for line in view.lines] == [
        int(line["amount_micros"]) for line in direct.lines if line["type"] != "tax"
    ]
    assert view.subtotal_micros + view.tax_micros == view.estimated_total_micros
    assert [(s["name"], s["held"], s["included"], s["billed"]) for s in view.seats] == [
        (s.name, s.held, s.included, s.billed) for s in direct.seats
    ]
    assert [a["used"] for a in view.allowances] == [
        d["used"] for d in direct.to_dict()["allowances"]
    ]
    assert view.period.label == ("2026-10" if end else "2026-11")


def test_flat_rate_and_pay_as_you_go_pages(deck: Deck) -> None:
    flat = _view(deck, "acme")
    assert flat.flat_rate and flat.seats and flat.allowances
    page = usage_html(flat)
    for marker in ('id="seats"', 'id="allowances"', 'id="lines"', "Extension", "Calls to 44, 49"):
        assert marker in page
    assert f'data-total="estimated" data-micros="{flat.estimated_total_micros}"' in page
    usage_lines = [line for line in flat.lines if line["type"] == "usage" and line["rate"]]
    assert usage_lines and " per minute" in page
    payg = _view(deck, "initech")
    assert not payg.flat_rate and not payg.allowances
    assert "Pay as you go" in usage_html(payg)


def test_the_exports_carry_micros_and_exact_text(deck: Deck) -> None:
    view = _view(deck, "hooli")
    rows = usage_export(usage_rows(view), 2)
    totals = dict(rows.filter(pl.col("section") == "total").select("item", "amount").iter_rows())
    assert totals["Estimated total"] == format_micros(view.estimated_total_micros, 2)
    lines = rows.filter(pl.col("section") == "line")
    assert int(lines.get_column("amount_micros").sum()) == view.subtotal_micros
    assert set(rows.get_column("section")) == {"seat", "allowance", "line", "total"}
