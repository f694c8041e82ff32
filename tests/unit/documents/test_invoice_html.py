"""An invoice's HTML: what it shows, escaped, exact, self-contained and checked."""

from __future__ import annotations

import random
import re
from importlib import resources
from pathlib import Path

import pytest
from invoicedeck import Kit, build_invoice, line, worked_example_lines

from rater.documents import DocumentError
from rater.documents.formatting import format_money
from rater.documents.render import environment


def _text(html: str) -> str:
    """The page's text: head and tags dropped, whitespace collapsed (entities kept)."""
    body = html[html.index("<body>") :]
    return " ".join(re.sub(r"<[^>]+>", " ", body).split())


def test_the_header_names_issuer_customer_invoice_period_and_dates(kit: Kit) -> None:
    text = _text(kit.html())
    for expected in (
        "Telco SAS",
        "1 rue de la Paix",
        "75002 Paris",
        "Tax ID: FR12",
        "Bill to Acme Ltd",
        "Number acme-2026-04",
        "Period 2026-04",
        "Service period 2026-04-01 to 2026-04-30",
        "Issue date 2026-05-01",
        "Account acme",
    ):
        assert expected in text, expected


def test_lines_are_grouped_by_type_in_the_contract_order(kit: Kit) -> None:
    text = _text(kit.html())
    headings = ["Plan and seats", "One-time charges", "Usage", "Included in your plan", "Credits"]
    positions = [text.index(heading) for heading in headings]
    assert positions == sorted(positions)
    at = 0
    for row in kit.lines[:-1]:  # every line but tax, in line_no order, each after the last
        at = text.index(row["description"], at + 1)


def test_each_line_shows_quantity_unit_price_days_and_amount(kit: Kit) -> None:
    text = _text(kit.html())
    assert "Professional plan 1 month 49.00 49.00" in text
    assert "ADVANCED license 10 units 64.00 640.00" in text
    assert "ADVANCED license Prorated: 23 of 30 days 1 unit 49.07 49.07" in text
    assert "Number setup 3 units 1.50 4.50" in text
    assert "Outbound calls to France mobile 12.5 minutes 1.25" in text
    assert "Outbound SMS 42 segments 2.10" in text
    assert "Outbound calls (included minutes) 300 minutes 0.00" in text
    assert "Refund: dropped calls on 2026-04-12 1 unit -5.00" in text


def test_totals_show_subtotal_tax_with_name_and_rate_total_and_amount_due(kit: Kit) -> None:
    text = _text(kit.html())
    # 49 + 640 + 8 + 49.07 + 4.50 + 1.25 + 2.10 + 0 - 5 = 748.92; VAT 149.784 -> 149.78
    assert "Subtotal 748.92 EUR VAT 20% 149.78 EUR Total 898.70 EUR Amount due 898.70 EUR" in text
    assert "Paid from prepaid balance" not in text  # postpaid


def test_a_prepaid_invoice_shows_what_the_balance_paid() -> None:
    kit = build_invoice(worked_example_lines(), paid_micros=700_000_000)
    text = _text(kit.html())
    assert "Total 898.70 EUR Paid from prepaid balance -700.00 EUR Amount due 198.70 EUR" in text


def test_without_tax_rate_there_is_no_tax_row() -> None:
    text = _text(build_invoice(worked_example_lines(), tax_percent=None).html())
    assert "Subtotal 748.92 EUR Total 748.92 EUR Amount due 748.92 EUR" in text
    assert "VAT" not in text and "Tax " not in text


def test_without_tax_name_the_tax_line_describes_the_tax() -> None:
    kit = build_invoice(worked_example_lines())
    del kit.invoice["tax_name"]
    kit.lines[-1]["description"] = "Value added tax 20%"
    assert "Value added tax 20% 149.78 EUR" in _text(kit.html())


def test_names_and_descriptions_are_escaped() -> None:
    rows = worked_example_lines()
    rows[0]["description"] = "<img src=x onerror=alert(2)>"
    kit = build_invoice(
        rows,
        tenant_id="t1",
        issuer={"name": 'Telco & "quotes"', "address": ["<b>bold</b> street"]},
        customer={"name": "<script>alert(1)</script>"},
    )
    html = kit.html()
    assert "<script>" not in html and "<img" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt; street" in html
    assert "Telco &amp; &#34;quotes&#34;" in html
    # In an attribute too (the PDF's author), where a bare quote would end the value.
    assert '<meta name="author" content="Telco &amp; &#34;quotes&#34;">' in html


def test_the_same_input_gives_the_same_html_whatever_the_line_order(kit: Kit) -> None:
    first = kit.html()
    assert kit.html() == first
    random.Random(7).shuffle(kit.lines)
    assert kit.html() == first


def test_amounts_are_never_floats_in_the_page() -> None:
    rows = [
        line(1, "usage", "Ten cents", "1", "minute", None, 100_000),
        line(2, "usage", "Twenty cents", "2", "minute", None, 200_000),
    ]
    text = _text(build_invoice(rows, tax_percent=None).html())
    assert "Subtotal 0.30 EUR Total 0.30 EUR" in text
    assert "0.30000000000000004" not in text
    assert re.search(r"\d[eE][+-]?\d", text) is None  # no scientific notation either


def test_a_float_amount_is_refused() -> None:
    kit = build_invoice(worked_example_lines())
    kit.invoice["total_micros"] = float(kit.invoice["total_micros"])
    with pytest.raises(DocumentError, match="total_micros must be an integer, got float"):
        kit.html()
    kit = build_invoice(worked_example_lines())
    kit.lines[0]["quantity"] = 1.0
    with pytest.raises(DocumentError, match="quantity must be a decimal string"):
        kit.html()


def test_a_template_may_not_print_a_float_or_none() -> None:
    env = environment()
    with pytest.raises(TypeError, match="float"):
        env.from_string("{{ x }}").render(x=0.1 + 0.2)
    with pytest.raises(TypeError, match="None"):
        env.from_string("{{ x }}").render(x=None)
    assert env.from_string("{{ 300000 | money('EUR', 2) }}").render() == "0.30 EUR"


def test_a_missing_template_value_is_an_error() -> None:
    from jinja2 import UndefinedError

    with pytest.raises(UndefinedError):
        environment().from_string("{{ missing }}").render()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda k: k.invoice.update(subtotal_micros=1), "the lines add up to 748920000"),
        (lambda k: k.invoice.update(tax_micros=1), "tax lines are not tax 1"),
        (lambda k: k.invoice.update(total_micros=1), "is not total 1"),
        (lambda k: k.invoice.update(amount_due_micros=1), "is not amount due 1"),
        (lambda k: k.lines[0].update(amount="49.01"), "line 1: amount '49.01' is not"),
        (lambda k: k.lines[1].update(currency="USD"), "line 2: currency 'USD'"),
        (lambda k: k.lines[2].update(type="discount"), "unknown line type 'discount'"),
        (lambda k: k.lines[3].pop("amount_micros"), "line 4: no column 'amount_micros'"),
        (lambda k: k.invoice.pop("period_end"), "no column 'period_end'"),
        (lambda k: k.invoice.update(period_start="April"), "period_start"),
        (lambda k: k.invoice.update(tax_rate=0.2), "tax_rate must be a decimal string"),
        (lambda k: k.issuer.pop("name"), "issuer has no 'name'"),
    ],
)
def test_numbers_that_disagree_are_refused(kit: Kit, change: object, message: str) -> None:
    change(kit)  # type: ignore[operator]
    with pytest.raises(DocumentError, match=re.escape(message)):
        kit.html()


def test_the_customer_defaults_to_the_tenant_id() -> None:
    kit = build_invoice(worked_example_lines(), customer={})
    assert "Bill to acme" in _text(kit.html())


def test_unit_prices_keep_their_precision() -> None:
    rows = [line(1, "one_time", "Per-minute setup", "800", "unit", 12_500, 10_000_000)]
    text = _text(build_invoice(rows, tax_percent=None).html())
    assert "Per-minute setup 800 units 0.0125 10.00" in text


def test_the_page_refers_to_nothing_outside_itself(kit: Kit) -> None:
    external = re.compile(r"https?:|file:|//|url\(|@import|<link|<script|\bsrc=|\bhref=", re.I)
    assert external.findall(kit.html()) == []
    templates = Path(str(resources.files("rater.documents") / "templates"))
    files = sorted(p for p in templates.rglob("*") if p.is_file())
    names = {p.relative_to(templates).as_posix() for p in files}
    assert {"base.html", "base.css", "invoice.html", "reports/report.css"} <= names
    for path in files:
        assert external.findall(path.read_text(encoding="utf-8")) == [], path.name


def test_the_money_filter_is_the_formatting_function() -> None:
    assert environment().filters["money"] is format_money
