"""Usage this period: one tenant's open period as it stands, for a page.

The numbers are the billing core's (:func:`rater.core.billing.usage_so_far`) over the
tenant's rated records of the period up to the as-of instant, in the order the rater
read them (allowance draws follow it), and its applied adjustments:

- a flat-rate plan (a fee, seats or allowances): per seat product what is included, in
  use, billed beyond the included ones and its amount so far; per allowance what is
  included, used and left;
- every plan: the period's lines so far, quantity x rate = amount (a usage line's rate
  is the tariff's price for its destination at the as-of instant; its amount is the sum
  of the rated charges, connect fees, increments and minimums included), the overage
  (the usage lines) and the estimated total.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import polars as pl

from rater.core.billing import USAGE_COLUMNS, Period, usage_so_far
from rater.core.billing.lines import micro_units_text
from rater.core.tariff import Tariff
from rater.reports.request import ReportRequest
from rater.reports.store import Filters, RecordStore

__all__ = ["USAGE_EXPORT_SCHEMA", "UsageView", "build_usage", "usage_rows"]

_UNIT_RATES = {"minute": "per minute", "segment": "per segment", "attempt": "per attempt"}
_RECORDS = "SELECT * FROM report_records ORDER BY _seq"
# What usage_so_far reads of each record.
_RECORD_SCHEMA: dict[Any, Any] = {**USAGE_COLUMNS, "callee": pl.String()}
USAGE_EXPORT_SCHEMA: dict[str, pl.DataType] = {
    "tenant_id": pl.String(),
    "period": pl.String(),
    "section": pl.String(),  # seat | allowance | line | total
    "item": pl.String(),
    "included": pl.String(),  # decimal text
    "used": pl.String(),
    "left": pl.String(),
    "quantity": pl.String(),
    "unit": pl.String(),
    "rate": pl.String(),  # decimal text: the unit price or the tariff's price
    "unit_price_micros": pl.Int64(),
    "amount_micros": pl.Int64(),
    "currency": pl.String(),
}


@dataclass(frozen=True)
class UsageView:
    request: ReportRequest
    period: Period
    as_of_us: int
    flat_rate: bool
    seats: list[dict[str, Any]]
    allowances: list[dict[str, Any]]
    lines: list[dict[str, Any]]  # without the tax line
    overage_micros: int
    tax_micros: int
    estimated_total_micros: int
    records: int

    @property
    def subtotal_micros(self) -> int:
        return sum(int(line["amount_micros"]) for line in self.lines)

    @property
    def as_of_text(self) -> str:
        moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=self.as_of_us)
        return moment.astimezone(self.request.zone).strftime("%Y-%m-%d %H:%M:%S")


def build_usage(store: RecordStore, request: ReportRequest, tariff: Tariff) -> UsageView:
    """The tenant's period holding ``request.as_of_us`` as it stands at that instant."""
    as_of = request.as_of_us
    period = Period.containing(as_of, request.plan.timezone)
    count = store.select_records(
        request.tenant_id, period.start_us, as_of, request.plan.timezone, Filters()
    )
    records = store.frame(_RECORDS).select(*_RECORD_SCHEMA).cast(_RECORD_SCHEMA)
    so_far = usage_so_far(
        tariff, request.tenant_id, as_of, records, store.adjustments(request.tenant_id)
    )
    lines = [_line(line, tariff, request, as_of) for line in so_far.lines]
    plan = request.plan
    return UsageView(
        request=request,
        period=period,
        as_of_us=as_of,
        flat_rate=bool(plan.allowances)
        or any(
            p.type in ("fee", "seat") and (p.type == "fee" or p.included) for p in plan.products
        ),
        seats=[_seat(seat, so_far.lines) for seat in so_far.seats],
        allowances=[_allowance(a) for a in so_far.allowances],
        lines=[line for line in lines if line["type"] != "tax"],
        overage_micros=int(so_far.overage_micros),
        tax_micros=sum(int(line["amount_micros"]) for line in lines if line["type"] == "tax"),
        estimated_total_micros=int(so_far.estimated_total_micros),
        records=count,
    )


def _seat(seat: Any, lines: list[dict[str, Any]]) -> dict[str, Any]:
    amount = sum(
        int(line["amount_micros"])
        for line in lines
        if line.get("product_id") == seat.product_id and line["type"] in ("recurring", "prorated")
    )
    return {
        "name": seat.name,
        "included": seat.included,
        "held": seat.held,
        "billed": seat.billed,
        "price_micros": seat.price_micros,
        "amount_micros": amount,
    }


def _allowance(allowance: Any) -> dict[str, Any]:
    direction = "" if allowance.direction == "any" else f"{allowance.direction.capitalize()} "
    what = "calls" if allowance.kind == "call" else "text messages"
    where = f" to {', '.join(allowance.prefixes)}" if allowance.prefixes else ""
    return {
        "name": f"{direction}{what}{where}".capitalize(),
        "unit": f"{allowance.unit}s",
        "included": micro_units_text(allowance.included),
        "used": micro_units_text(allowance.used),
        "left": micro_units_text(allowance.left),
    }


def _line(
    line: dict[str, Any], tariff: Tariff, request: ReportRequest, as_of: int
) -> dict[str, Any]:
    unit = line.get("unit") or ""
    price = line.get("unit_price_micros")
    rate = None
    if price is None and line["type"] == "usage":
        rate = _tariff_price(tariff, line, as_of)
    quantity = line.get("quantity") or ""
    return {
        "type": line["type"],
        "description": line["description"],
        "quantity": quantity,
        "unit": unit,
        "units": unit if quantity in ("1", "") else f"{unit}s",
        "unit_price_micros": None if price is None else int(price),
        "rate": rate,
        "rate_unit": _UNIT_RATES.get(unit, ""),
        "amount_micros": int(line["amount_micros"]),
    }


def _tariff_price(tariff: Tariff, line: dict[str, Any], as_of: int) -> str | None:
    """The tariff's price (decimal text) for a usage line's destination at ``as_of``."""
    moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=as_of)
    rates = tariff.rates.filter(
        (pl.col("plan_id") == line.get("plan_id"))
        & (pl.col("kind") == line.get("kind"))
        & (pl.col("direction") == line.get("direction"))
        & (pl.col("prefix") == (line.get("rate_prefix") or ""))
        & (pl.col("band") == (line.get("band") or "any"))
        & (pl.col("effective_from") <= moment)
        & (pl.col("effective_to").is_null() | (pl.col("effective_to") > moment))
    ).sort("effective_from")
    return None if rates.height == 0 else str(rates.get_column("price")[-1])


def usage_rows(view: UsageView) -> pl.DataFrame:
    """The page's numbers, one row per seat, allowance, line and total (exports)."""
    base = {"tenant_id": view.request.tenant_id, "period": view.period.label}
    currency = view.request.plan.currency
    rows: list[dict[str, Any]] = []
    for seat in view.seats:
        rows.append(
            {
                **base,
                "section": "seat",
                "item": seat["name"],
                "included": str(seat["included"]),
                "used": str(seat["held"]),
                "quantity": str(seat["billed"]),
                "unit": "unit",
                "unit_price_micros": seat["price_micros"],
                "amount_micros": seat["amount_micros"],
                "currency": currency,
            }
        )
    for allowance in view.allowances:
        rows.append(
            {
                **base,
                "section": "allowance",
                "item": allowance["name"],
                "included": allowance["included"],
                "used": allowance["used"],
                "left": allowance["left"],
                "unit": allowance["unit"],
            }
        )
    for line in view.lines:
        rows.append(
            {
                **base,
                "section": "line",
                "item": line["description"],
                "quantity": line["quantity"],
                "unit": line["unit"],
                "rate": line["rate"],
                "unit_price_micros": line["unit_price_micros"],
                "amount_micros": line["amount_micros"],
                "currency": currency,
            }
        )
    for item, micros in (
        ("Overage so far", view.overage_micros),
        ("Subtotal", view.subtotal_micros),
        ("Tax", view.tax_micros),
        ("Estimated total", view.estimated_total_micros),
    ):
        rows.append(
            {
                **base,
                "section": "total",
                "item": item,
                "amount_micros": micros,
                "currency": currency,
            }
        )
    return pl.DataFrame(rows, schema=USAGE_EXPORT_SCHEMA)
