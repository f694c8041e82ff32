"""The reports' charts as inline SVG: Vega-Lite specifications built with Altair and
rendered by vl-convert (an embedded engine: no browser, no network), so a page shows
them offline and prints them, and its PDF holds the same drawing.

Exact amounts. A chart's data carries each amount twice, as text: the exact decimal
string (``"12.3456"``) and the label a person reads (``"12.3456 EUR"``, from the same
integer micros through :func:`rater.documents.format_money`). The only number the chart
engine computes is a bar's length, ``toNumber`` of the decimal string, used for geometry
alone: the quantitative axis is hidden (no ticks, no tick labels, no grid), and every
amount printed in the picture, its text marks and its accessible descriptions
(``aria-label``) are the exact label strings. No float is formatted for a reader.

Text given by users (team names, ...) reaches the SVG escaped by the renderer; the SVG
is checked to hold no script, no event handler and no external reference before it is
embedded (:func:`_checked`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from rater.core.money import format_micros
from rater.documents import DocumentError, format_money

__all__ = ["Bar", "bar_chart_svg", "column_chart_svg"]

FONT = "DejaVu Sans"
_WIDTH = 560
_VEGA_LITE = "6.4"
_UNSAFE = re.compile(r"<script|\bon[a-z]+\s*=|(?:href|src)\s*=\s*\"(?!#)", re.IGNORECASE)


@dataclass(frozen=True)
class Bar:
    """One bar: its category and its amount in integer micros."""

    label: str
    micros: int


@functools.cache
def _vega() -> tuple[Any, Any]:
    import altair
    import vl_convert

    return altair, vl_convert


def _data(bars: Sequence[Bar], currency: str, decimals: int) -> list[dict[str, str]]:
    return [
        {
            "category": bar.label,
            "amount": format_micros(bar.micros, 6),  # exact decimal text, for geometry
            "shown": format_money(bar.micros, currency, decimals),  # what a person reads
            "order": f"{i:06d}",
        }
        for i, bar in enumerate(bars)
    ]


def _base(alt: Any, title: str, bars: Sequence[Bar], currency: str, decimals: int) -> Any:
    """A chart of ``bars`` whose ``length`` (geometry only) is its exact decimal text."""
    return alt.Chart(
        alt.Data(values=_data(bars, currency, decimals)), title=title
    ).transform_calculate(length="toNumber(datum.amount)")


def bar_chart_svg(title: str, bars: Sequence[Bar], currency: str, decimals: int) -> Markup:
    """Horizontal bars (one per category, in the order given), each labelled with its
    exact amount."""
    alt, _ = _vega()
    base = _base(alt, title, bars, currency, decimals)
    y = alt.Y(
        "category:N",
        sort=alt.EncodingSortField(field="order", op="min"),
        title=None,
        axis=alt.Axis(labelLimit=180),
    )
    x = alt.X("length:Q", axis=None, scale=alt.Scale(zero=True, nice=False))
    rects = base.mark_bar(color="#4c78a8").encode(y=y, x=x, description="shown:N")
    text = base.mark_text(align="left", dx=4, fontSize=10).encode(
        y=y, x=x, text="shown:N", description="shown:N"
    )
    height = max(1, len(bars)) * 22
    return _render((rects + text).properties(width=_WIDTH - 260, height=height))


def column_chart_svg(
    title: str, bars: Sequence[Bar], currency: str, decimals: int, *, labels: bool = True
) -> Markup:
    """Vertical columns (one per category, e.g. a day, in the order given), each labelled
    above with its exact amount (``labels``; without, only the accessible descriptions
    carry the amounts)."""
    alt, _ = _vega()
    base = _base(alt, title, bars, currency, decimals)
    x = alt.X(
        "category:N",
        sort=alt.EncodingSortField(field="order", op="min"),
        title=None,
        axis=alt.Axis(labelAngle=-90),
    )
    y = alt.Y("length:Q", axis=None, scale=alt.Scale(zero=True, nice=False))
    columns = base.mark_bar(color="#4c78a8").encode(x=x, y=y, description="shown:N")
    text = base.mark_text(angle=270, align="left", dx=4, fontSize=8).encode(
        x=x, y=y, text="shown:N", description="shown:N"
    )
    chart = columns + text if labels else columns
    return _render(chart.properties(width=_WIDTH, height=180))


def _render(chart: Any) -> Markup:
    _, vl_convert = _vega()
    spec = chart.configure(font=FONT).configure_view(stroke=None).to_dict()
    svg: str = vl_convert.vegalite_to_svg(spec, vl_version=_VEGA_LITE, allowed_base_urls=[])
    return Markup(_checked(svg))


def _checked(svg: str) -> str:
    """The SVG, once proven to hold nothing active or external (else a DocumentError)."""
    if not svg.lstrip().startswith("<svg") or _UNSAFE.search(svg):
        raise DocumentError("a chart's SVG holds a script, a handler or an external reference")
    return svg
