"""The three reports' pages in a real browser, and their PDFs as Poppler reads them.

Chromium (headless) loads each HTML page as a file: the DOM it dumps after rendering holds
the charts (inline SVG, one bar per category) and the tables, and every total it shows is
the exact decimal text of the number computed here from the rated records, independently
of the reports' code; the hostile ids of the test tariff stay text (no element is made of
them). A screenshot is taken and decoded, and the page as the browser prints it shows the
same totals. The PDF the report command writes (WeasyPrint) is read back with pdftotext
and shows them too.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
from PIL import Image
from reportbrowser import (
    PNG_SIGNATURE,
    Node,
    dump_dom,
    micros_of_text,
    pdf_text,
    print_to_pdf,
    screenshot,
)
from reportdeck import NOW_US, Deck

from rater.core.billing import USAGE_COLUMNS, usage_so_far
from rater.documents import format_amount, format_money, format_quantity
from rater.reports import make_report

MONTH = ("2026-11-01", "2026-11-30")
WINDOW = (1280, 2200)
CHART_BLUE = (0x4C, 0x78, 0xA8)  # the bars' fill
CHARTS = ("Daily spend", "Usage by team", "Spend by destination")


def _write(deck: Deck, report: str, tenant: str, output: Path) -> Path:
    usage = report == "usage"
    make_report(
        deck.tariff_dir,
        deck.rated_dir,
        report,
        tenant_id=tenant,
        output=output,
        format=None,  # from the file name
        start=None if usage else MONTH[0],
        end=None if usage else MONTH[1],
        now_us=NOW_US,
    )
    return output


def _money(deck: Deck, tenant: str, micros: int, *, usage: bool = False) -> str:
    """As a page shows it: record charges and balances with the plan's rating decimals,
    the usage page's invoice amounts with its invoice decimals."""
    plan = deck.tariff.plans[deck.tariff.tenants[tenant].plan_id]
    decimals = plan.invoice_decimals if usage else max(plan.decimals, plan.invoice_decimals)
    return format_money(micros, plan.currency, decimals)


def _zone(deck: Deck, tenant: str) -> str:
    return deck.tariff.plans[deck.tariff.tenants[tenant].plan_id].timezone


def _month_us(deck: Deck, tenant: str) -> tuple[int, int]:
    zone = ZoneInfo(_zone(deck, tenant))
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    first = dt.datetime(2026, 11, 1, tzinfo=zone)
    end = dt.datetime(2026, 12, 1, tzinfo=zone)
    return (first - epoch) // dt.timedelta(microseconds=1), (end - epoch) // dt.timedelta(
        microseconds=1
    )


def _rated_in_month(deck: Deck, tenant: str) -> pl.DataFrame:
    start, end = _month_us(deck, tenant)
    rating_us = pl.coalesce("answer_time", "start_time").dt.epoch("us")
    return deck.rated().filter(
        (pl.col("tenant_id") == tenant)
        & (pl.col("status") == "rated")
        & (rating_us >= start)
        & (rating_us < end)
    )


def _rows(table: Node) -> list[list[str]]:
    """The texts of the cells of each body row."""
    body = table.one("tbody")
    return [[cell.text for cell in row.all("td")] for row in body.all("tr")]


def _assert_decodes(png: Path, width: int, height: int) -> Image.Image:
    data = png.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 20_000
    with Image.open(png) as image:
        image.load()
        rgb = image.convert("RGB")
    assert rgb.size == (width, height)
    colors = rgb.getcolors(maxcolors=width * height)
    assert colors is not None and len(colors) > 20  # text, rules and fills: not a blank page
    return rgb


def _assert_no_markup_from_ids(dom: Node) -> None:
    """The hostile ids (``<script>``, ``<img onerror>``, ``<b>``) are text, not elements."""
    assert dom.all("script") == [] and dom.all("img") == [] and dom.all("b") == []
    assert not [n for n in dom.iter() if any(k.startswith("on") for k in n.attrs)]


# ------------------------------------------------------------------ consumption


@dataclass(frozen=True)
class Expected:
    total_micros: int
    records: int
    teams: dict[str, int]  # team (or "(none)") -> charge micros
    days: int


def _consumption_expected(deck: Deck, tenant: str) -> Expected:
    rows = _rated_in_month(deck, tenant)
    teams = rows.group_by("team_id").agg(pl.col("charge_micros").sum())
    return Expected(
        total_micros=int(rows.get_column("charge_micros").sum()),
        records=rows.height,
        teams={(t if t is not None else "(none)"): int(c) for t, c in teams.iter_rows()},
        days=30,
    )


def test_the_consumption_page_in_a_browser(deck: Deck, tmp_path: Path) -> None:
    tenant = "globex"  # hostile team names and user ids
    page = _write(deck, "consumption", tenant, tmp_path / "consumption.html")
    want = _consumption_expected(deck, tenant)
    assert want.records > 100 and len(want.teams) > 3
    total = _money(deck, tenant, want.total_micros)
    dom = dump_dom(page, tmp_path / "dom")
    _assert_no_markup_from_ids(dom)

    # The summary and the footer of every totals table show the computed total.
    assert dom.by_id("total-charge").text == total
    assert dom.by_id("total-records").text == format_quantity(want.records)
    tables = ("by-kind", "by-team", "by-user", "by-destination", "by-day")
    footers = [dom.one("td", data_total=table) for table in tables]
    assert [cell.text for cell in footers] == [total] * 5

    # The tables: each present with its rows; by team, each team's own exact sum.
    for table_id in ("by-kind", "by-team", "by-user", "by-destination", "by-day", "records"):
        assert dom.one("table", id=table_id).one("tbody").all("tr"), table_id
    teams = {cells[0]: cells[-1] for cells in _rows(dom.by_id("by-team"))}
    assert teams == {t: format_amount(c, 4) for t, c in want.teams.items()}  # pro-eu: 4
    assert "<b>ops</b>" in teams  # a hostile team name, shown as text
    assert len(_rows(dom.by_id("records"))) == want.records  # all of them (under 1,000)
    assert len(_rows(dom.by_id("by-day"))) == want.days

    # The charts: an SVG each, one bar per category labelled with its exact amount; the
    # bars of each chart add up to the total.
    for title in CHARTS:
        svg = dom.one("figure", aria_label=title).one("svg")
        bars = svg.all("path", aria_roledescription="bar")
        assert bars, title
        assert sum(micros_of_text(bar.attrs["aria-label"]) for bar in bars) == want.total_micros
    daily = dom.one("figure", aria_label="Daily spend").all("path", aria_roledescription="bar")
    assert len(daily) == want.days
    team_bars = dom.one("figure", aria_label="Usage by team").all(
        "path", aria_roledescription="bar"
    )
    expected_bars = sorted(_money(deck, tenant, c) for c in want.teams.values())
    assert sorted(b.attrs["aria-label"] for b in team_bars) == expected_bars

    # What the browser paints: the chart bars' colour is on the screenshot; printed, the
    # page shows the total in the summary and the five table footers.
    image = _assert_decodes(screenshot(page, tmp_path / "shot", *WINDOW), *WINDOW)
    painted = dict((color, n) for n, color in image.getcolors(WINDOW[0] * WINDOW[1]) or [])
    assert painted.get(CHART_BLUE, 0) > 2_000  # pixels of bars, drawn
    printed = pdf_text(print_to_pdf(page, tmp_path / "print"))
    assert printed.count(total) >= 6


def test_the_consumption_pdf_shows_the_same_totals(deck: Deck, tmp_path: Path) -> None:
    tenant = "globex"
    want = _consumption_expected(deck, tenant)
    text = pdf_text(_write(deck, "consumption", tenant, tmp_path / "consumption.pdf"))
    assert text.count(_money(deck, tenant, want.total_micros)) >= 6  # summary + 5 footers
    assert "Detailed consumption" in text and "Daily spend" in text
    for micros in want.teams.values():  # each team's total, in the chart and the table
        assert _money(deck, tenant, micros) in text
        assert format_amount(micros, 4) in text


# ------------------------------------------------------------------ activity


@dataclass(frozen=True)
class Statement:
    opening: int
    credits: int
    debits: int
    closing: int
    moves: int


def _statement_expected(deck: Deck, tenant: str) -> Statement:
    """November's moves from the rated records and applied adjustments; the closing
    balance is the one the rater recorded last (no move after November)."""
    start, end = _month_us(deck, tenant)
    charged = _rated_in_month(deck, tenant).filter(pl.col("charge_micros") != 0)
    time_us = pl.col("time").dt.epoch("us")
    moves = deck.applied().filter(
        (pl.col("tenant_id") == tenant) & (time_us >= start) & (time_us < end)
    )
    credits = int(moves.filter(pl.col("kind") != "charge").get_column("amount_micros").sum())
    charges = int(moves.filter(pl.col("kind") == "charge").get_column("amount_micros").sum())
    debits = int(charged.get_column("charge_micros").sum()) + charges
    balances = pl.read_parquet(deck.rated_dir / "balances.parquet")
    closing = int(balances.filter(pl.col("tenant_id") == tenant).get_column("balance_micros")[0])
    return Statement(
        closing - credits + debits, credits, debits, closing, charged.height + len(moves)
    )


def test_the_activity_page_in_a_browser(deck: Deck, tmp_path: Path) -> None:
    tenant = "globex"
    page = _write(deck, "activity", tenant, tmp_path / "activity.html")
    want = _statement_expected(deck, tenant)
    assert want.credits > 0 and want.debits > 0
    dom = dump_dom(page, tmp_path / "dom")
    _assert_no_markup_from_ids(dom)
    shown = {key: dom.by_id(key).text for key in ("opening", "credits", "debits", "closing")}
    assert shown == {
        "opening": _money(deck, tenant, want.opening),
        "credits": _money(deck, tenant, want.credits),
        "debits": _money(deck, tenant, want.debits),
        "closing": _money(deck, tenant, want.closing),
    }
    rows = _rows(dom.one("table", id="activity"))
    assert len(rows) == 1 + want.moves  # the opening line, then every move
    assert rows[0][1] == "Opening balance" and rows[0][-1] == format_amount(want.opening, 4)
    assert rows[-1][-1] == format_amount(want.closing, 4)  # the last running balance
    names = {cells[1] for cells in rows[1:]}
    assert {"Phone call charge", "Funds added"} <= names
    assert dom.one("td", data_total="closing").text == shown["closing"]
    _assert_decodes(screenshot(page, tmp_path / "shot", *WINDOW), *WINDOW)
    printed = pdf_text(print_to_pdf(page, tmp_path / "print"))
    for text in shown.values():
        assert text in printed


def test_the_activity_pdf_shows_the_same_totals(deck: Deck, tmp_path: Path) -> None:
    tenant = "globex"
    want = _statement_expected(deck, tenant)
    text = pdf_text(_write(deck, "activity", tenant, tmp_path / "activity.pdf"))
    for micros in (want.opening, want.credits, want.debits):
        assert _money(deck, tenant, micros) in text
    assert text.count(_money(deck, tenant, want.closing)) >= 2  # the summary and the footer


# ------------------------------------------------------------------ usage


def _usage_expected(deck: Deck, tenant: str) -> dict[str, int]:
    """The billing core's numbers for the tenant's period as of the deck's "now"."""
    records = deck.rated().filter(pl.col("tenant_id") == tenant)
    adjustments = deck.applied().filter(pl.col("tenant_id") == tenant)
    so_far = usage_so_far(
        deck.tariff, tenant, NOW_US, records.select(*USAGE_COLUMNS, "callee"), adjustments
    )
    tax = sum(int(line["amount_micros"]) for line in so_far.lines if line["type"] == "tax")
    return {
        "overage": int(so_far.overage_micros),
        "estimated-total": int(so_far.estimated_total_micros),
        "subtotal": int(so_far.estimated_total_micros) - tax,
    }


def test_the_usage_page_in_a_browser(deck: Deck, tmp_path: Path) -> None:
    tenant = "acme"  # a flat-rate plan: seats, allowances and usage beyond them
    page = _write(deck, "usage", tenant, tmp_path / "usage.html")
    want = _usage_expected(deck, tenant)
    assert want["overage"] > 0
    dom = dump_dom(page, tmp_path / "dom")
    assert dom.by_id("overage").text == _money(deck, tenant, want["overage"], usage=True)
    estimated = _money(deck, tenant, want["estimated-total"], usage=True)
    assert dom.by_id("estimated-total").text == estimated
    assert dom.one("td", data_total="estimated").text == estimated
    assert dom.one("td", data_total="subtotal").text == _money(
        deck, tenant, want["subtotal"], usage=True
    )
    for table_id in ("seats", "allowances", "lines"):
        assert _rows(dom.one("table", id=table_id)), table_id
    lines = dom.one("table", id="lines").one("tbody").all("td", class_="num")
    amounts = [micros_of_text(c.text) for c in lines if "data-micros" in c.attrs]
    assert sum(amounts) == want["subtotal"]  # the lines shown add up to the subtotal
    _assert_decodes(screenshot(page, tmp_path / "shot", *WINDOW), *WINDOW)
    printed = pdf_text(print_to_pdf(page, tmp_path / "print"))
    assert estimated in printed and _money(deck, tenant, want["overage"], usage=True) in printed


def test_the_usage_pdf_shows_the_same_totals(deck: Deck, tmp_path: Path) -> None:
    tenant = "acme"
    want = _usage_expected(deck, tenant)
    text = pdf_text(_write(deck, "usage", tenant, tmp_path / "usage.pdf"))
    assert text.count(_money(deck, tenant, want["estimated-total"], usage=True)) >= 2
    assert _money(deck, tenant, want["overage"], usage=True) in text
    assert _money(deck, tenant, want["subtotal"], usage=True) in text
