"""The tariff as the core sees it: plans, tenants, the rate deck, and their lookup tables.

A :class:`Tariff` is built by :func:`rater.core.tariff.build.build_tariff` from validated
plans, tenants and rate rows; reading them from files is the job of
:mod:`rater.tariff_files`, so the core never touches a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from rater.core.tariff.rate_index import MAX_PREFIX_DIGITS, OPEN_END_US, RateIndex, empty_index

__all__ = [
    "DEFAULT_MAX_CALL_SECONDS",
    "DIRECTIONS",
    "DIRECTION_CODE",
    "GROUPS_PER_PLAN",
    "KINDS",
    "KIND_CODE",
    "MAX_ALLOWANCE_QUANTITY",
    "MAX_BALANCE_MICROS",
    "MAX_CALL_SECONDS_LIMIT",
    "MAX_INCREMENT_SECONDS",
    "MAX_PREFIX_DIGITS",
    "OPEN_END_US",
    "Allowance",
    "Band",
    "Plan",
    "Product",
    "SubscriptionChange",
    "Tariff",
    "Tenant",
]

KINDS: tuple[str, ...] = ("call", "sms", "ring_through")
DIRECTIONS: tuple[str, ...] = ("inbound", "outbound")
KIND_CODE = {k: i for i, k in enumerate(KINDS)}
DIRECTION_CODE = {d: i for i, d in enumerate(DIRECTIONS)}
GROUPS_PER_PLAN = len(KINDS) * len(DIRECTIONS)
# Rule 1: a call longer than max_call_seconds (a top-level key of plans.yaml) is invalid.
DEFAULT_MAX_CALL_SECONDS = 86_400
# Valid times lie in [2000-01-01, 2100-01-01): no valid call can last longer than that.
MAX_CALL_SECONDS_LIMIT = 36_525 * 86_400
# Balances and thresholds: under 10**12 currency units (Int64 micros).
MAX_BALANCE_MICROS = 10**18 - 1
# Call increments: whole seconds, at most a day.
MAX_INCREMENT_SECONDS = 86_400
# Allowance quantities (seconds or segments a month): far beyond any real bundle,
# well within the Int64 sums of the rating engine.
MAX_ALLOWANCE_QUANTITY = 10**12


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Band(_Model):
    """A named time band. ``to_minute`` 1440 means end of day ("24:00").

    When ``from_minute`` > ``to_minute`` the band wraps past midnight on the same
    listed days: it contains times >= from or < to.
    """

    name: str
    days: tuple[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], ...]
    from_minute: int = Field(ge=0, le=1439)
    to_minute: int = Field(ge=1, le=1440)


class Allowance(_Model):
    """Free quantity per calendar month: ``seconds`` for calls, ``segments`` for sms."""

    kind: Literal["call", "sms"]
    direction: Literal["inbound", "outbound", "any"]
    prefixes: tuple[str, ...] = ()
    seconds: int | None = Field(default=None, ge=0, le=MAX_ALLOWANCE_QUANTITY)
    segments: int | None = Field(default=None, ge=0, le=MAX_ALLOWANCE_QUANTITY)

    @property
    def quantity(self) -> int:
        value = self.seconds if self.kind == "call" else self.segments
        return 0 if value is None else value


class Product(_Model):
    """What a plan bills besides usage (billing rules, catalogue).

    ``fee``: a flat amount every period; ``seat``: a unit a tenant holds (license, user,
    extension, number), priced per period, ``included`` of them covered by the plan;
    ``one_time``: charged when a ``charge`` change names it. ``price`` is exact.
    """

    id: str
    name: str
    type: Literal["fee", "seat", "one_time"]
    price: Decimal = Field(ge=0)
    included: int = Field(default=0, ge=0)


class Plan(_Model):
    id: str
    currency: str
    timezone: str
    decimals: int = Field(default=6, ge=0, le=6)
    rounding: Literal["half_up", "up", "down"] = "half_up"
    fallback: str | None = None
    bands: tuple[Band, ...] = ()
    allowances: tuple[Allowance, ...] = ()
    # Billing (billing rules): invoice line amounts are rounded to invoice_decimals.
    invoice_decimals: int = Field(default=2, ge=0, le=6)
    tax_rate: Decimal | None = Field(default=None, ge=0, le=1)
    tax_name: str = "Tax"
    products: tuple[Product, ...] = ()

    def product(self, product_id: str) -> Product | None:
        return next((p for p in self.products if p.id == product_id), None)


class SubscriptionChange(_Model):
    """One row of subscriptions.csv: a change of a tenant's seats, commitment or a
    one-time charge, effective at ``at_us`` (microseconds since the epoch)."""

    change_id: str
    tenant_id: str
    product_id: str
    change: Literal["add", "remove", "commit", "charge"]
    quantity: int = Field(ge=0)
    at_us: int
    line: int


class Tenant(_Model):
    tenant_id: str
    plan_id: str
    billing: Literal["prepaid", "postpaid"]
    opening_balance_micros: int = 0
    low_balance_threshold_micros: int = 0
    recharge_amount_micros: int = 0
    auto_recharge: bool = False


@dataclass(frozen=True)
class Tariff:
    """A loaded, validated tariff plus the lookup tables the engine joins against.

    ``rates`` holds one row per rates.csv row with the original decimal strings
    and exact integer numerators over ``10**price_scale`` (``connect_num``,
    ``price_num``, ``min_num``, Int128), effective dates as UTC datetimes and
    ``line`` (the CSV line).
    """

    plans: dict[str, Plan]
    tenants: dict[str, Tenant]
    rates: pl.DataFrame
    price_scale: int
    plan_ids: tuple[str, ...] = ()
    # Index of each plan's fallback in plan_ids, -1 for none.
    fallback_index: tuple[int, ...] = ()
    timezones: tuple[str, ...] = ()
    plan_timezone_index: tuple[int, ...] = ()
    # Band code per (plan, minute of the local week): plan * MINUTES_PER_WEEK + minute.
    band_table: pl.Series = field(default_factory=lambda: pl.Series(dtype=pl.Int16))
    # Longest-prefix rate selection tables; see :class:`RateIndex`.
    rate_index: RateIndex = field(default_factory=empty_index)
    tenant_frame: pl.DataFrame = field(default_factory=pl.DataFrame)
    max_price_num: int = 0
    # Rule 1: a call whose end_time - start_time exceeds this is invalid (bad_times).
    max_call_seconds: int = DEFAULT_MAX_CALL_SECONDS
    # Subscription changes (subscriptions.csv), ordered by time, then file line.
    subscriptions: tuple[SubscriptionChange, ...] = ()
