"""Rule 9: the charge of each rated record, exact, rounded once to the plan's decimals.

Prices are integer numerators over ``10**price_scale``; a charge's exact value is a
numerator over D = 60 * 10**scale (per-minute prices), rounded once in integers with the
tenant plan's method, then stored as micros.
"""

from __future__ import annotations

import polars as pl

from rater.core.money import round_div
from rater.core.rating.kernels import CALL, SMS, gather
from rater.core.tariff import Tariff

__all__ = ["charge_text", "charges"]

# Numbers below this fit Int128 with room to spare for the rounding's additions.
_INT128_SAFE = 2**125


def charges(tariff: Tariff, w: pl.DataFrame) -> pl.Series:
    """charge_micros: exact numerators over D = 60 * 10**scale, rounded once in integers.

    units = round(num * 10**decimals / D) for the tenant plan's decimals and rounding;
    the power of ten is cancelled against D first, so the numbers stay small enough
    for Int64 on ordinary decks (Int128, then Python integers, when they may not).
    """
    plans = [tariff.plans[p] for p in tariff.plan_ids]
    rates = tariff.rates
    scale = tariff.price_scale
    charged = pl.col("_charged_units")
    max_charged = w.select(charged.max()).item() or 0
    multiplier = [10 ** max(0, d - scale) for d in range(7)]
    divisor = [60 * 10 ** max(0, scale - d) for d in range(7)]
    bound = (tariff.max_price_num * 60 * (max_charged + 1) + 1) * 2 * max(multiplier) + 2 * max(
        divisor
    )
    # Size-dependent: Int64 when every product fits (ordinary decks), Int128 beyond, and
    # exact Python integers past Int128 (decks whose numbers no fixed width holds).
    big = pl.Int128()
    exact = bound < _INT128_SAFE
    dtype = pl.Int64() if bound < 2**62 else big
    r = pl.col("_rate_row")
    cn, pn, mn = (
        pl.lit(rates[c].cast(dtype)).gather(r) for c in ("connect_num", "price_num", "min_num")
    )
    k = pl.col("_kind")
    per_unit = pl.when(k == CALL).then(charged).when(k == SMS).then(charged * 60).otherwise(60)
    base = pn * per_unit.cast(dtype)
    zero = pl.lit(0, dtype=dtype)
    numerator = (
        pl.when(~pl.col("_rated") | pl.col("_zero_call"))
        .then(zero)
        .when(k == CALL)
        .then(
            pl.when(charged == 0).then(zero).otherwise(pl.max_horizontal(mn * 60, cn * 60 + base))
        )
        .otherwise(base)
    )
    if not exact:
        num = w.select(numerator.alias("_num"), "_plan")
        return _slow_micros(tariff, num, 60 * 10**scale)
    p = pl.col("_plan")
    decimals = [pl_.decimals for pl_ in plans]
    mult = [multiplier[d] for d in decimals]
    div = [divisor[d] for d in decimals]
    add = [
        {"half_up": dv // 2, "up": dv - 1, "down": 0}[pl_.rounding]
        for dv, pl_ in zip(div, plans, strict=True)
    ]
    unit = [10 ** (6 - d) for d in decimals]
    units = (numerator * gather(mult, p, dtype) + gather(add, p, dtype)) // gather(div, p, dtype)
    micros = (units * gather(unit, p, dtype)).cast(pl.Int64).fill_null(0)
    return w.select(micros.alias("charge_micros")).to_series()


def _slow_micros(tariff: Tariff, num: pl.DataFrame, denominator: int) -> pl.Series:
    """Exact charges with Python integers, for decks whose numbers could overflow Int128."""
    out: list[int] = []
    for value, plan in num.select("_num", "_plan").iter_rows():
        if not value:
            out.append(0)
            continue
        p = tariff.plans[tariff.plan_ids[plan]]
        units = round_div(value * 10**p.decimals, denominator, p.rounding)
        out.append(units * 10 ** (6 - p.decimals))
    return pl.Series("charge_micros", out, dtype=pl.Int64)


def charge_text(micros: pl.Expr, decimals: pl.Expr) -> pl.Expr:
    """The charge as a decimal string with the tenant plan's decimals ("0" without a plan)."""
    whole = (micros // 1_000_000).cast(pl.String)
    frac = (micros % 1_000_000) // gather([10 ** (6 - d) for d in range(7)], decimals, pl.Int64)
    frac_text = (
        (frac + gather([10**d for d in range(7)], decimals, pl.Int64)).cast(pl.String).str.slice(1)
    )
    return (
        pl.when(decimals.is_null())
        .then(pl.lit("0"))
        .when(decimals == 0)
        .then(whole)
        .otherwise(pl.concat_str(whole, pl.lit("."), frac_text))
    )
