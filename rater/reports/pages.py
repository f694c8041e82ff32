"""The reports as pages: HTML from the templates of ``rater/documents/templates/reports/``
(autoescaped, strict, through :func:`rater.documents.render_document`), charts inline,
and the PDF printed from that same HTML (:func:`rater.documents.html_to_pdf`), so the
page and the PDF show the same numbers."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup

from rater.core.tariff import Plan
from rater.documents import DocumentHeader, Party, render_document
from rater.reports.activity import Activity
from rater.reports.charts import Bar, bar_chart_svg, column_chart_svg
from rater.reports.consumption import Consumption, Total
from rater.reports.naming import duration_text
from rater.reports.request import ReportRequest
from rater.reports.usage import UsageView

__all__ = ["activity_html", "consumption_html", "record_decimals", "usage_html"]

_TITLES = {
    "consumption": "Detailed consumption",
    "activity": "Account activity",
    "usage": "Usage this period",
}
# Charts show the largest categories; the rest are one bar ("Other").
_CHART_BARS = 12
# Above this many days, daily columns lose their amount labels (the table has them).
_LABELLED_DAYS = 31


def _header(request: ReportRequest, facts: Sequence[tuple[str, str]]) -> DocumentHeader:
    tenant, plan = request.tenant, request.plan
    return DocumentHeader(
        title=_TITLES[request.report],
        reference=f"{tenant.tenant_id} {request.first_day.isoformat()}..{request.last_day.isoformat()}",
        issuer=Party(request.issuer_name or "Usage reports"),
        customer=Party(tenant.tenant_id, (f"Plan {plan.id}, {tenant.billing}",)),
        customer_label="Account",
        facts=tuple(facts),
    )


def record_decimals(plan: Plan) -> int:
    """Places shown for record charges and balances (consumption, activity): the plan's
    rating decimals, so that a column of charges lines up (0.1260, 0.0435), and at least
    its invoice decimals. An amount with more precision still shows all of it."""
    return max(plan.decimals, plan.invoice_decimals)


def _context(
    request: ReportRequest, facts: Sequence[tuple[str, str]], decimals: int
) -> dict[str, object]:
    return {
        "doc": _header(request, facts),
        "currency": request.plan.currency,
        "decimals": decimals,
        "hms": duration_text,
    }


def consumption_html(c: Consumption) -> str:
    request = c.request
    facts = [("Period", request.range_text), *request.filters]
    context = _context(request, facts, record_decimals(request.plan))
    context.update(
        c=c,
        total=Total(("Total",), c.records, c.call_seconds, c.charge_micros),
        charts=_consumption_charts(c)
        if c.records
        else {"daily": "", "teams": "", "destinations": ""},
    )
    return render_document("reports/consumption.html", context)


def _consumption_charts(c: Consumption) -> dict[str, Markup]:
    currency, decimals = c.request.plan.currency, record_decimals(c.request.plan)
    days = [Bar(t.labels[0], t.charge_micros) for t in c.by_day]
    if len(days) <= _LABELLED_DAYS:
        daily = column_chart_svg("Daily spend", days, currency, decimals)
    else:
        daily = column_chart_svg("Daily spend", days, currency, decimals, labels=False)
    teams = _top([Bar(t.labels[0], t.charge_micros) for t in c.by_team])
    places = _top(
        [Bar(" ".join(x for x in t.labels if x), t.charge_micros) for t in c.by_destination]
    )
    return {
        "daily": daily,
        "teams": bar_chart_svg("Usage by team", teams, currency, decimals),
        "destinations": bar_chart_svg("Spend by destination", places, currency, decimals),
    }


def _top(bars: list[Bar]) -> list[Bar]:
    """The first bars (the rows come largest first) and the rest summed as "Other"."""
    if len(bars) <= _CHART_BARS:
        return bars
    kept = bars[: _CHART_BARS - 1]
    rest = sum(bar.micros for bar in bars[_CHART_BARS - 1 :])
    return [*kept, Bar(f"Other ({len(bars) - len(kept)})", rest)]


def activity_html(a: Activity) -> str:
    request = a.request
    facts = [("Period", request.range_text), ("Showing", request.show)]
    context = _context(request, facts, record_decimals(request.plan))
    context.update(a=a, lines=a.page_lines())
    return render_document("reports/activity.html", context)


def usage_html(u: UsageView) -> str:
    request = u.request
    facts = [
        ("Period", u.period.label),
        ("As of", u.as_of_text),
        ("Time zone", request.plan.timezone),
    ]
    context = _context(request, facts, request.plan.invoice_decimals)
    context.update(u=u)
    return render_document("reports/usage.html", context)
