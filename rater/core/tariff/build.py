"""From validated plans, tenants and rate rows to a :class:`Tariff` with its lookup tables.

Pure: the rows come from :mod:`rater.tariff_files` (or from a test); nothing here reads a
file. The tables let the rating core find, for a whole batch at once, the band of a
rating time (one gather in a table of the minutes of a week), the rate a record gets
(:mod:`rater.core.tariff.rate_index`) and a tenant's attributes (one join).
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from rater.core.calendar import DAYS, MINUTES_PER_DAY, MINUTES_PER_WEEK
from rater.core.tariff.model import (
    DEFAULT_MAX_CALL_SECONDS,
    DIRECTION_CODE,
    DIRECTIONS,
    GROUPS_PER_PLAN,
    KIND_CODE,
    MAX_PREFIX_DIGITS,
    OPEN_END_US,
    Band,
    Plan,
    SubscriptionChange,
    Tariff,
    Tenant,
)
from rater.core.tariff.rate_index import DENSE_INDEX_LIMIT, build_rate_index

__all__ = ["MAX_PLANS", "NO_BAND", "band_week_table", "build_tariff"]

# key = group * 10**length + prefix value must fit in int64 for every length.
MAX_PLANS = (2**63 - 1) // (10**MAX_PREFIX_DIGITS) // GROUPS_PER_PLAN
NO_BAND = -2  # a time no band contains; never equal to a rate's band code (-1 = any)


def build_tariff(
    plans: dict[str, Plan],
    tenants: dict[str, Tenant],
    rates: pl.DataFrame,
    scale: int,
    *,
    dense_limit: int = DENSE_INDEX_LIMIT,
    max_call_seconds: int = DEFAULT_MAX_CALL_SECONDS,
    subscriptions: tuple[SubscriptionChange, ...] = (),
) -> Tariff:
    """The tariff of validated ``plans``, ``tenants`` and ``rates`` (one row per rate, with
    exact numerators over ``10**scale``: see :class:`Tariff`)."""
    plan_ids = tuple(plans)
    if len(plan_ids) > MAX_PLANS:
        raise ValueError(f"more than {MAX_PLANS} plans")
    index = {p: i for i, p in enumerate(plan_ids)}
    timezones = tuple(dict.fromkeys(p.timezone for p in plans.values()))
    fallback = tuple(index[plans[p].fallback] if plans[p].fallback else -1 for p in plan_ids)  # type: ignore[index]
    band_counts = [len(plans[p].bands) for p in plan_ids]
    keyed = _keyed_rates(rates, plans, index)
    return Tariff(
        plans=plans,
        tenants=tenants,
        rates=rates,
        price_scale=scale,
        plan_ids=plan_ids,
        fallback_index=fallback,
        timezones=timezones,
        plan_timezone_index=tuple(timezones.index(plans[p].timezone) for p in plan_ids),
        band_table=pl.concat([band_week_table(plans[p].bands) for p in plan_ids]),
        rate_index=build_rate_index(keyed, band_counts, dense_limit=dense_limit),
        tenant_frame=_tenant_frame(tenants, index),
        max_price_num=_max_numerator(rates),
        max_call_seconds=max_call_seconds,
        subscriptions=subscriptions,
    )


def band_week_table(bands: Sequence[Band]) -> pl.Series:
    """Band index (in listed order) for each minute of the week; NO_BAND where none applies.

    The first listed band that contains a minute wins, so bands are painted in
    reverse order.
    """
    table = [NO_BAND] * MINUTES_PER_WEEK
    for index in range(len(bands) - 1, -1, -1):
        band = bands[index]
        if band.from_minute < band.to_minute:
            spans = [(band.from_minute, band.to_minute)]
        else:  # wraps past midnight on the same listed day
            spans = [(band.from_minute, MINUTES_PER_DAY), (0, band.to_minute)]
        for day in band.days:
            base = DAYS.index(day) * MINUTES_PER_DAY
            for start, end in spans:
                table[base + start : base + end] = [index] * (end - start)
    return pl.Series("band", table, dtype=pl.Int16)


def _keyed_rates(
    rates: pl.DataFrame, plans: dict[str, Plan], index: dict[str, int]
) -> pl.DataFrame:
    """The rate index's input: each rate row's group (plan, kind, direction), prefix, band
    code (-1 for ``any``), effective interval in microseconds and plan."""
    band_codes = pl.DataFrame(
        [(p, b.name, i) for p in plans for i, b in enumerate(plans[p].bands)],
        schema={"plan_id": pl.String, "band": pl.String, "r_band": pl.Int32},
        orient="row",
    )
    plan = pl.col("plan_id").replace_strict(index, return_dtype=pl.Int64)
    return (
        rates.with_row_index("r_idx")
        .join(band_codes, on=["plan_id", "band"], how="left", maintain_order="left")
        .select(
            pl.col("r_idx").cast(pl.Int32),
            (
                plan * GROUPS_PER_PLAN
                + pl.col("kind").replace_strict(KIND_CODE, return_dtype=pl.Int64) * len(DIRECTIONS)
                + pl.col("direction").replace_strict(DIRECTION_CODE, return_dtype=pl.Int64)
            ).alias("group"),
            "prefix",
            pl.col("r_band").fill_null(-1),
            pl.col("effective_from").cast(pl.Int64).alias("r_from"),
            pl.col("effective_to").cast(pl.Int64).fill_null(OPEN_END_US).alias("r_to"),
            plan.alias("plan"),
        )
    )


_TENANT_SCHEMA = {
    "tenant_id": pl.String,
    "_plan": pl.Int32,
    "_prepaid": pl.Boolean,
    "_opening": pl.Int64,
    "_threshold": pl.Int64,
    "_recharge": pl.Int64,
    "_auto": pl.Boolean,
}


def _tenant_frame(tenants: dict[str, Tenant], index: dict[str, int]) -> pl.DataFrame:
    """One row per tenant: its plan's index and its prepaid attributes in micros."""
    rows = [
        {
            "tenant_id": t.tenant_id,
            "_plan": index[t.plan_id],
            "_prepaid": t.billing == "prepaid",
            "_opening": t.opening_balance_micros,
            "_threshold": t.low_balance_threshold_micros,
            "_recharge": t.recharge_amount_micros,
            "_auto": t.auto_recharge,
        }
        for t in tenants.values()
    ]
    return pl.DataFrame(rows, schema=_TENANT_SCHEMA)


def _max_numerator(rates: pl.DataFrame) -> int:
    """The largest price numerator of the deck: it decides how wide charges are computed."""
    largest = 0
    if rates.height:
        for column in ("connect_num", "price_num", "min_num"):
            value = rates[column].max()
            assert isinstance(value, int)
            largest = max(largest, value)
    return largest
