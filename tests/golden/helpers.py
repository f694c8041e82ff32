"""Builders for hand-worked golden cases: a tiny tariff directory and a few CDRs."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path
from typing import Any

from rater.core.rating import RatingResult, rate_batch
from rater.core.state import RatingState
from rater.core.tariff import Tariff
from rater.tariff_files import load_tariff
from tests import builders

__all__ = [
    "RATES_HEADER",
    "TENANTS_HEADER",
    "call",
    "cdr",
    "cdr_frame",
    "rate",
    "row",
    "t",
    "write_tariff",
]

RATES_HEADER = (
    "plan_id,kind,direction,prefix,band,effective_from,effective_to,"
    "connect_fee,price,first_increment,increment,min_charge"
)
TENANTS_HEADER = (
    "tenant_id,plan_id,billing,opening_balance,low_balance_threshold,recharge_amount,auto_recharge"
)
SINCE = "2020-01-01T00:00:00+00:00"

t = builders.utc


def row(
    plan: str,
    *,
    kind: str = "call",
    direction: str = "outbound",
    prefix: str = "",
    band: str = "any",
    start: str = SINCE,
    end: str = "",
    connect: str = "0",
    price: str = "0.60",
    first: int | str = 60,
    inc: int | str = 60,
    min_charge: str = "",
) -> str:
    """One rates.csv line; call defaults: 0.60 per minute (0.01 per second), 60/60."""
    if kind != "call":
        connect, first, inc, min_charge = "", "", "", ""
    return (
        f"{plan},{kind},{direction},{prefix},{band},{start},{end},"
        f"{connect},{price},{first},{inc},{min_charge}"
    )


def write_tariff(
    root: Path,
    plans_yaml: str,
    rates: list[str],
    tenants: list[str],
    *,
    name: str = "tariff",
) -> Path:
    """Write plans.yaml, rates.csv and tenants.csv into ``root/name``; return the directory."""
    directory = root / name
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "plans.yaml").write_text(textwrap.dedent(plans_yaml).lstrip(), encoding="utf-8")
    (directory / "rates.csv").write_text("\n".join([RATES_HEADER, *rates]) + "\n", encoding="utf-8")
    (directory / "tenants.csv").write_text(
        "\n".join([TENANTS_HEADER, *tenants]) + "\n", encoding="utf-8"
    )
    return directory


cdr = builders.cdr


def call(
    at: str,
    billable_us: int,
    *,
    ring_s: int = 0,
    **kwargs: Any,
) -> dict[str, Any]:
    """An answered call: set up at ``at``, answered ``ring_s`` later, lasting ``billable_us``."""
    start = t(at)
    answer = start + dt.timedelta(seconds=ring_s)
    end = answer + dt.timedelta(microseconds=billable_us)
    return cdr(start=start, answer=answer, end=end, **kwargs)


cdr_frame = builders.cdr_frame


def rate(
    tariff: Tariff | Path, records: list[dict[str, Any]], state: RatingState | None = None
) -> RatingResult:
    loaded = load_tariff(tariff) if isinstance(tariff, Path) else tariff
    return rate_batch(loaded, cdr_frame(records), state or RatingState.empty())
