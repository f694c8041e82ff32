"""Rule 1: which records are ``invalid``, checked before any arithmetic on them.

No value a CDR's fields can carry makes these checks raise: every comparison is made on
integers that exist for any input (times in microseconds, the callee's length and its
parse), so a record either passes or gets the reason of the first rule it breaks. The
times of a record that passes lie within [2000, 2100): only then are its differences
computed and its times ever read as calendar dates.
"""

from __future__ import annotations

import polars as pl

from rater.core.money import MAX_CHARGE_MICROS
from rater.core.rating.kernels import CALL, RING, SMS
from rater.core.rating.outcome import Outcome
from rater.core.tariff import DIRECTION_CODE, MAX_PREFIX_DIGITS, Tariff

__all__ = [
    "VALID_FROM_US",
    "VALID_UNTIL_US",
    "in_valid_range",
    "max_sms_segments",
    "rating_time",
    "validate",
]

# Rule 1: times outside [2000-01-01, 2100-01-01) UTC are bad_times. Inside it every
# difference and calendar computation below is safe; outside it Polars' temporal
# functions can panic, so nothing but these comparisons ever sees such a time.
VALID_FROM_US = 946_684_800_000_000
VALID_UNTIL_US = 4_102_444_800_000_000
_MAX_DIGITS = MAX_PREFIX_DIGITS  # E.164: at most 15 digits


def in_valid_range(us: pl.Expr) -> pl.Expr:
    return (us >= VALID_FROM_US) & (us < VALID_UNTIL_US)


def rating_time() -> pl.Expr:
    """Rule 3's rating time of a CDR row (answer_time, else start_time), as a Datetime;
    null when it lies outside the valid range (only an invalid record's can)."""
    time = pl.coalesce("answer_time", "start_time")
    return pl.when(in_valid_range(time.dt.epoch("us"))).then(time).alias("rating_time")


def max_sms_segments(tariff: Tariff) -> int | None:
    """The most segments an sms may have so that its charge stays within MAX_CHARGE_MICROS
    at the deck's dearest sms price (None when no sms rate costs anything)."""
    rates = tariff.rates.filter(pl.col("kind") == "sms")
    if rates.height == 0:
        return None
    dearest = rates.get_column("price_num").max()
    assert isinstance(dearest, int)
    if dearest <= 0:
        return None
    # price_num / 10**scale units per segment; MAX_CHARGE_MICROS / 10**6 units at most.
    scale: int = 10**tariff.price_scale
    return MAX_CHARGE_MICROS * scale // (dearest * 1_000_000)


def _callee_digits() -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """(number_ok, digit count, value) of the callee after one leading '+'.

    A callee is a number when what follows one optional '+' is 1 to 15 ASCII digits.
    Polars' integer parse accepts exactly ``[+-]?[0-9]+``, so with no '-' and at most
    16 bytes a successful parse proves the rule; longer callees are never numbers, and
    their parse (null) cannot fail or overflow.
    """
    callee = pl.col("callee")
    plus = callee.str.starts_with("+").cast(pl.Int64)
    digits = callee.str.len_bytes().cast(pl.Int64) - plus
    value = callee.cast(pl.Int64, strict=False)
    ok = (
        digits.is_between(1, _MAX_DIGITS) & value.is_not_null() & ~callee.str.starts_with("-")
    ).fill_null(False)
    return ok, pl.when(ok).then(digits).otherwise(0), pl.when(ok).then(value).otherwise(0)


_TIMES = ("start_time", "answer_time", "end_time")


def validate(
    tariff: Tariff, cdrs: pl.DataFrame, tenant_of_row: pl.Series, plan_of_tenant: pl.Series
) -> pl.DataFrame:
    """The working frame of the later stages: one row per CDR with its rule 1 outcome
    (``_rule1``, ``Outcome.RATED`` when valid) and, for valid rows only, the integers the
    later stages use (null or 0 otherwise): ``_row`` (input position), ``_tenant`` and
    ``_plan`` (indexes into the tariff), ``_kind``, ``_direction``, ``_rating_us``,
    ``_billable_ms``, ``_segments``, ``_callee_digits`` / ``_callee_length`` (the callee
    as an integer and its digit count) and ``_key_hash`` (of the dedupe key)."""
    tenant = pl.col("_tenant")
    start_us, answer_us, end_us = (pl.col(c).dt.epoch("us") for c in _TIMES)
    answered = answer_us.is_not_null()
    hold = pl.col("hold_ms").fill_null(0)
    segments = pl.col("segments").cast(pl.Int64).fill_null(1)
    # Only read where the times are good: then no difference can overflow.
    answered_ms = pl.when(answered).then((end_us - answer_us) // 1000).otherwise(0)
    number_ok, digit_count, value = _callee_digits()
    code = _rule1(tariff, answered_ms, segments, number_ok)
    valid = pl.col("_rule1") == Outcome.RATED
    return (
        cdrs.lazy()
        .with_columns(pl.lit(tenant_of_row).alias("_tenant"))
        .select(
            pl.int_range(pl.len(), dtype=pl.Int64).alias("_row"),
            "_tenant",
            code.alias("_rule1"),
            _kind_code().alias("_kind"),
            _direction_code().alias("_direction"),
            pl.coalesce(answer_us, start_us).alias("_rating_us"),
            (answered_ms - hold).alias("_billable_ms"),
            segments.alias("_segments"),
            value.alias("_callee_digits"),
            digit_count.alias("_callee_length"),
            pl.col("cdr_id"),
        )
        .select(
            "_row",
            "_tenant",
            pl.lit(plan_of_tenant).gather(tenant).alias("_plan"),
            "_rule1",
            "_kind",
            "_direction",
            pl.when(valid).then(pl.col("_rating_us")).alias("_rating_us"),
            pl.when(valid).then(pl.col("_billable_ms")).otherwise(0).alias("_billable_ms"),
            "_segments",
            "_callee_digits",
            pl.col("_callee_length").clip(upper_bound=MAX_PREFIX_DIGITS),
            (pl.col("cdr_id").hash(0x5EED) ^ tenant.hash(0xC0DE)).alias("_key_hash"),
        )
        .collect()
    )


def _rule1(tariff: Tariff, answered_ms: pl.Expr, segments: pl.Expr, number_ok: pl.Expr) -> pl.Expr:
    """The outcome code of rule 1: the first reason that applies, in the contract's order
    (then ``bad_kind``, an extension for kinds and directions outside the contract)."""
    hold = pl.col("hold_ms").fill_null(0)
    most = max_sms_segments(tariff)
    bad_segments = (pl.col("kind") == "sms") & (
        (segments < 1) if most is None else ~segments.is_between(1, most)
    )
    return (
        pl.when(pl.col("_tenant").is_null())
        .then(Outcome.UNKNOWN_TENANT)
        .when(_bad_times(tariff.max_call_seconds * 1_000_000))
        .then(Outcome.BAD_TIMES)
        .when((hold < 0) | (hold > answered_ms))
        .then(Outcome.BAD_HOLD)
        .when(bad_segments.fill_null(False))
        .then(Outcome.BAD_SEGMENTS)
        .when(~number_ok)
        .then(Outcome.BAD_NUMBER)
        .when(_kind_code().is_null() | _direction_code().is_null())
        .then(Outcome.BAD_KIND)
        .otherwise(Outcome.RATED)
        .cast(pl.Int8)
    )


def _bad_times(max_call_us: int) -> pl.Expr:
    """A time missing or outside [2000, 2100), end before start, answer outside
    [start, end], or a record longer than max_call_seconds."""
    start_us, answer_us, end_us = (pl.col(c).dt.epoch("us") for c in _TIMES)
    answered = answer_us.is_not_null()
    return (
        start_us.is_null()
        | end_us.is_null()
        | ~in_valid_range(start_us)
        | ~in_valid_range(end_us)
        | (answered & ~in_valid_range(answer_us))
        | (end_us < start_us)
        | (answered & ((answer_us < start_us) | (answer_us > end_us)))
        | (end_us - start_us > max_call_us)
    ).fill_null(True)


def _kind_code() -> pl.Expr:
    kind = pl.col("kind")
    return (
        pl.when(kind == "call")
        .then(CALL)
        .when(kind == "sms")
        .then(SMS)
        .when(kind == "ring_through")
        .then(RING)
    )


def _direction_code() -> pl.Expr:
    direction = pl.col("direction")
    return (
        pl.when(direction == "inbound")
        .then(DIRECTION_CODE["inbound"])
        .when(direction == "outbound")
        .then(DIRECTION_CODE["outbound"])
    )
