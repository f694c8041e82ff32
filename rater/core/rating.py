"""The vectorized rating engine: a batch of CDRs + state -> rated records, events, new state.

Every rule of the rating contract is evaluated with Polars expressions and joins over
the whole batch. The stateful parts (dedupe, allowance draw-down, prepaid balances)
are per-tenant cumulative sums seeded from :class:`RatingState`, so rating a stream in
one batch or in many gives the same result.

Output columns of records that are not rated (see :func:`rate_batch`):

========== ============================================================================
status     reason         plan_id / rate_prefix / band / billed_seconds / covered
========== ============================================================================
rated      null           plan whose row rated it, that row's prefix and band (a band
                          name or ``any``), billed seconds (calls), drawn allowance (0
                          when none). A call with billable time 0 has the tenant's
                          plan, null prefix and band, billed_seconds 0, covered 0.
unrated    ``no_rate``    all null
invalid    rule 1 reason  all null (``bad_kind`` when kind/direction is not a contract value)
duplicate  ``duplicate``  all null
========== ============================================================================

For every status: ``charge_micros`` is 0 unless rated; ``charge`` is formatted with the
tenant plan's decimals ("0" for an unknown tenant); ``currency`` is the tenant plan's
(null for an unknown tenant); ``balance_after_micros`` is the prepaid tenant's balance
after the record (unchanged by records not charged), null for postpaid/unknown tenants.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import IntEnum

import polars as pl

from rater.core.bands import MINUTES_PER_WEEK, local_naive_us, period_of, week_minute
from rater.core.columns import BALANCE_SCHEMA, EVENT_SCHEMA, RATED_EXTRA_SCHEMA
from rater.core.money import MAX_CHARGE_MICROS, round_div
from rater.core.state import RatingState
from rater.core.tariff import (
    DIRECTION_CODE,
    DIRECTIONS,
    GROUPS_PER_PLAN,
    KIND_CODE,
    KINDS,
    MAX_PREFIX_DIGITS,
    Plan,
    Tariff,
)

__all__ = [
    "MAX_CHARGE_MICROS",
    "VALID_FROM_US",
    "VALID_UNTIL_US",
    "Outcome",
    "RatingResult",
    "apply_topups",
    "balances_frame",
    "max_sms_segments",
    "rate_batch",
    "rating_time",
]

log = logging.getLogger(__name__)

_INT128_SAFE = 2**125
_CALL, _SMS, _RING = (KIND_CODE[k] for k in KINDS)


@dataclass(frozen=True)
class RatingResult:
    """What one batch produced.

    ``rated``: every input row in input order, input columns unchanged, then the
    RATED_EXTRA_SCHEMA columns. ``events``: EVENT_SCHEMA rows in emission order.
    ``state``: the state after the batch. ``delta``: only the state rows this batch
    added or changed (balances that moved, allowance use that grew, new dedupe keys).
    """

    rated: pl.DataFrame
    events: pl.DataFrame
    state: RatingState
    delta: RatingState


_PAD = 10**MAX_PREFIX_DIGITS
_POW10 = [10**i for i in range(19)]


class Outcome(IntEnum):
    """One code per outcome of a record; its status and reason are read from it."""

    RATED = 0
    UNKNOWN_TENANT = 1
    BAD_TIMES = 2
    BAD_HOLD = 3
    BAD_SEGMENTS = 4
    BAD_NUMBER = 5
    BAD_KIND = 6  # kind or direction is not a contract value (an extension of rule 1)
    DUPLICATE = 7
    NO_RATE = 8

    @property
    def status(self) -> str:
        if self is Outcome.RATED:
            return "rated"
        if self is Outcome.DUPLICATE:
            return "duplicate"
        return "unrated" if self is Outcome.NO_RATE else "invalid"

    @property
    def reason(self) -> str | None:
        return None if self is Outcome.RATED else self.name.lower()


_STATUSES = tuple(o.status for o in Outcome)
_REASONS = tuple(o.reason for o in Outcome)


def _gather(values: list[int], index: pl.Expr, dtype: pl.DataType | type[pl.DataType]) -> pl.Expr:
    """values[index] as an expression (small lookup tables indexed per row)."""
    return pl.lit(pl.Series(values, dtype=dtype)).gather(index)


_US_PER_MINUTE = 60_000_000
_US_PER_DAY = 86_400_000_000


@dataclass(frozen=True)
class _Clock:
    """Band slots and months of a batch's rating times, from tables per minute.

    A batch spans few minutes compared with its rows, so the local time, band and
    month are worked out once per minute of its range, per plan, and looked up per
    row (column ``_pos``: the row's minute in ``minutes``). Zone offsets change only
    on whole UTC minutes, and since 1972 every offset is a whole number of minutes:
    rating times are within 2000..2100 (rule 1), so a whole minute shares its band
    and month.
    """

    minutes: pl.Series
    slots: pl.Series  # plan * len(minutes) + position -> band slot (0 none, b + 1 band b)
    months: pl.Series  # plan * len(minutes) + position -> year * 12 + month - 1

    def _at(self, table: pl.Series, row: pl.Expr) -> pl.Expr:
        return pl.lit(table).gather(row * self.minutes.len() + pl.col("_pos"))

    def slot(self, tariff: Tariff, plan: pl.Expr) -> pl.Expr:
        """Band slot of the rating time (column _pos) in ``plan``."""
        return self._at(self.slots, plan)

    def month(self, tariff: Tariff, plan: pl.Expr) -> pl.Expr:
        """Month number (year * 12 + month - 1) of the rating time in ``plan``'s zone."""
        return self._at(self.months, plan)


def _month_number(period: pl.Expr) -> pl.Expr:
    return (period // 100 * 12 + period % 100 - 1).cast(pl.Int64)


def _clock(tariff: Tariff, frame: pl.DataFrame) -> tuple[_Clock, pl.Expr]:
    """The batch's :class:`_Clock` and the expression of ``_pos`` (from ``_rt_us``)."""
    minute = pl.col("_rt_us") // _US_PER_MINUTE
    low, high = frame.select(minute.min().alias("lo"), minute.max().alias("hi")).row(0)
    if low is None:
        minutes = pl.Series("m", [], dtype=pl.Int64)
        position: pl.Expr = pl.lit(None, dtype=pl.Int64)
    elif high - low + 1 <= max(frame.height, 1 << 16):
        minutes = pl.int_range(low, high + 1, dtype=pl.Int64, eager=True).alias("m")
        position = minute - low
    else:
        minutes = frame.select(minute.unique().sort().alias("m"))["m"].drop_nulls()
        position = pl.lit(minutes).search_sorted(minute).cast(pl.Int64)
    start = pl.col("m") * _US_PER_MINUTE
    table = pl.DataFrame({"m": minutes}).select(
        (local_naive_us(start.cast(pl.Datetime("us", "UTC")), zone) - start).alias(str(i))
        for i, zone in enumerate(tariff.timezones)
    )
    slots: list[pl.Series] = []
    months: list[pl.Series] = []
    if minutes.len():
        weeks: list[pl.Series] = []
        zone_months: list[pl.Series] = []
        for i in range(len(tariff.timezones)):
            local = (minutes * _US_PER_MINUTE + table[str(i)]).alias("l")
            # Months change at local midnight: worked out per day, not per minute.
            day = local // _US_PER_DAY
            first, last = day.min(), day.max()
            assert isinstance(first, int) and isinstance(last, int)
            per_day = pl.select(
                _month_number(
                    period_of(pl.int_range(first, last + 1, dtype=pl.Int64) * _US_PER_DAY)
                ).alias("mo")
            )["mo"]
            weeks.append(pl.select(week_minute(pl.lit(local))).to_series())
            zone_months.append(per_day.gather(day - first))
        for plan_index, zone_index in enumerate(tariff.plan_timezone_index):
            band = tariff.band_table.gather(plan_index * MINUTES_PER_WEEK + weeks[zone_index])
            slots.append((band.cast(pl.Int64) + 1).clip(lower_bound=0))
            months.append(zone_months[zone_index])
    empty = pl.Series([], dtype=pl.Int64)
    clock = _Clock(
        minutes=minutes,
        slots=pl.concat(slots) if slots else empty,
        months=pl.concat(months) if months else empty,
    )
    return clock, position


def _null_series(name: str, n: int, dtype: pl.DataType) -> pl.Series:
    return (
        pl.Series(name, [None], dtype=dtype).extend_constant(None, n - 1)
        if n
        else (pl.Series(name, [], dtype=dtype))
    )


def _lookup(tariff: Tariff, clock: _Clock, pending: pl.DataFrame, n: int) -> pl.Series:
    """Rate selection with fallback chains -> rate row per input row (Int32, null = none).

    ``pending`` holds _i, _p (plan index), _kd (kind*2+direction), _v15 (first up to 15
    callee digits as an integer), _nd (their count), _rt_us (rating time) and _pos
    (its minute in ``clock``). Per plan of the fallback chain, one search finds the
    longest prefix of each callee and one gather the row that applies at its band
    and time (see :class:`rater.core.tariff.RateIndex`); records without one go on
    to their fallback plan.
    """
    found = _null_series("_r", n, pl.Int32())
    index = tariff.rate_index
    if pending.height == 0 or index.parent.len() == 0:
        return found
    slots, epochs = index.slots, index.epochs
    current = pending.select(
        "_i",
        "_p",
        "_kd",
        (pl.col("_v15") * _gather(_POW10, MAX_PREFIX_DIGITS - pl.col("_nd"), pl.Int64())).alias(
            "_pad"
        ),
        "_nd",
        "_rt_us",
        "_pos",
        pl.lit(index.boundaries)
        .search_sorted(pl.col("_rt_us"), side="right")
        .cast(pl.Int64)
        .alias("_epoch"),
    )
    fallback = list(tariff.fallback_index)
    node = pl.col("_node")
    while current.height:
        plan = pl.col("_p").cast(pl.Int64)
        key = (plan * GROUPS_PER_PLAN + pl.col("_kd")) * _PAD + pl.col("_pad")
        step = current.select(
            "_i",
            pl.lit(index.nodes)
            .gather(pl.lit(index.starts).search_sorted(key, side="right").cast(pl.Int64) - 1)
            .cast(pl.Int64)
            .alias("_node"),
            clock.slot(tariff, plan).alias("_slot"),
            "_epoch",
            "_nd",
        )
        # A callee shorter than its prefix met it only through the zero padding.
        too_long = (node >= 0) & (
            pl.lit(index.node_length).gather(node.clip(lower_bound=0)) > pl.col("_nd")
        )
        while step.select(too_long.any()).item():
            step = step.with_columns(
                pl.when(too_long)
                .then(pl.lit(index.parent).gather(node.clip(lower_bound=0)).cast(pl.Int64))
                .otherwise(node)
                .alias("_node")
            )
        cell = node * slots + pl.col("_slot")
        if index.dense is not None:
            row = pl.lit(index.dense).gather((cell * epochs + pl.col("_epoch")).clip(lower_bound=0))
        else:
            position = (
                pl.lit(index.keys)
                .search_sorted(cell * epochs + pl.col("_epoch"), side="right")
                .cast(pl.Int64)
                - 1
            ).clip(lower_bound=0)
            row = (
                pl.when(pl.lit(index.keys).gather(position) // epochs == cell)
                .then(pl.lit(index.rows).gather(position))
                .otherwise(-1)
            )
        step = step.select("_i", pl.when((node >= 0) & (row >= 0)).then(row).alias("_r"))
        hits = step.filter(pl.col("_r").is_not_null())
        if hits.height:
            found.scatter(hits["_i"], hits["_r"].cast(pl.Int32))
        if hits.height == step.height:
            break
        current = (
            current.filter(step["_r"].is_null())
            .with_columns(_gather(fallback, pl.col("_p"), pl.Int32()).alias("_p"))
            .filter(pl.col("_p") >= 0)
        )
    return found


def _scatter(n: int, index: pl.Series, values: pl.Series, dtype: pl.DataType) -> pl.Series:
    """A length-n null Series with ``values`` placed at ``index``."""
    out = _null_series(values.name, n, dtype)
    if index.len():
        out.scatter(index, values.cast(dtype))
    return out


def _sorted_by(frame: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """``frame`` (non-negative integer columns) sorted by all its ``columns`` in order.

    When they fit, the columns are packed into one Int64 whose sorted values carry
    every column in their bits: sorting one integer column is much cheaper than
    sorting a frame by several and gathering the others after it.
    """
    if frame.height == 0:
        return frame.select(columns)
    highs = frame.select(pl.col(c).max() for c in columns).row(0)
    bits = [max(1, int(h or 0).bit_length()) for h in highs]
    if sum(bits) > 62:
        return frame.select(columns).sort(columns)
    packed: pl.Expr = pl.lit(0, dtype=pl.Int64)
    for column, width in zip(columns, bits, strict=True):
        packed = packed * (1 << width) + pl.col(column).cast(pl.Int64)
    order = frame.select(packed.sort().alias("_packed")).lazy()
    unpacked: list[pl.Expr] = []
    shift = 0
    for column, width in reversed(list(zip(columns, bits, strict=True))):
        unpacked.append(((pl.col("_packed") // (1 << shift)) % (1 << width)).alias(column))
        shift += width
    return order.select(reversed(unpacked)).collect()


def _period_text(period: pl.Expr) -> pl.Expr:
    return pl.format(
        "{}-{}",
        (period // 100).cast(pl.String),
        (period % 100 + 100).cast(pl.String).str.slice(1),
    )


def _period_int(text: pl.Expr) -> pl.Expr:
    return text.str.slice(0, 4).cast(pl.Int32) * 100 + text.str.slice(5, 2).cast(pl.Int32)


def _prefix_match(prefixes: tuple[str, ...]) -> pl.Expr:
    """The callee (digits ``_v15``, count ``_nd``, text ``_digits``) starts with one of them."""
    if not prefixes:
        return pl.lit(True)
    terms: list[pl.Expr] = []
    for prefix in prefixes:
        if len(prefix) > MAX_PREFIX_DIGITS:
            digits = pl.col("callee").str.strip_prefix("+")
            terms.append(digits.str.starts_with(prefix).fill_null(False))
            continue
        head = pl.col("_v15") // _gather(
            _POW10, (pl.col("_nd") - len(prefix)).clip(lower_bound=0), pl.Int64()
        )
        terms.append((pl.col("_nd") >= len(prefix)) & (head == int(prefix)))
    return pl.any_horizontal(terms)


def _tenant_columns(tariff: Tariff, state: RatingState) -> dict[str, pl.Series]:
    """Per known tenant (by its index in ``tariff.tenant_frame``): attributes and start balance."""
    frame = tariff.tenant_frame
    start = frame["_opening"]
    if state.balances.height:
        start = (
            frame.select("tenant_id", "_opening")
            .join(state.balances, on="tenant_id", how="left", maintain_order="left")
            .select(pl.coalesce("balance_micros", "_opening"))
            .to_series()
        )
    columns = {name: frame[name] for name in frame.columns}
    columns["_start"] = start.alias("_start")
    return columns


# Rule 1: times outside [2000-01-01, 2100-01-01) UTC are bad_times. Inside it every
# difference and calendar computation below is safe; outside it Polars' temporal
# functions can panic, so nothing but these comparisons ever sees such a time.
VALID_FROM_US = 946_684_800_000_000
VALID_UNTIL_US = 4_102_444_800_000_000
_MAX_DIGITS = MAX_PREFIX_DIGITS  # E.164: at most 15 digits


def _in_range(us: pl.Expr) -> pl.Expr:
    return (us >= VALID_FROM_US) & (us < VALID_UNTIL_US)


def rating_time() -> pl.Expr:
    """Rule 3's rating time of a CDR row (answer_time, else start_time), as a Datetime;
    null when it lies outside the valid range (only an invalid record's can)."""
    time = pl.coalesce("answer_time", "start_time")
    return pl.when(_in_range(time.dt.epoch("us"))).then(time).alias("rating_time")


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


def _validated(
    tariff: Tariff, cdrs: pl.DataFrame, t_of_row: pl.Series, tenants: dict[str, pl.Series]
) -> pl.DataFrame:
    """The working frame: one row per CDR with its rule 1 outcome (``_invalid``, 0 = valid)
    and, for valid rows only, the integers the later stages use (null or 0 otherwise)."""
    t = pl.col("_t")
    start_us, answer_us, end_us = (
        pl.col(c).dt.epoch("us") for c in ("start_time", "answer_time", "end_time")
    )
    answered = answer_us.is_not_null()
    hold = pl.col("hold_ms").fill_null(0)
    segments = pl.col("segments").cast(pl.Int64).fill_null(1)
    kind, direction = pl.col("kind"), pl.col("direction")
    kind_code = pl.when(kind == "call").then(_CALL).when(kind == "sms").then(_SMS)
    kind_code = kind_code.when(kind == "ring_through").then(_RING)
    direction_code = (
        pl.when(direction == "inbound")
        .then(DIRECTION_CODE["inbound"])
        .when(direction == "outbound")
        .then(DIRECTION_CODE["outbound"])
    )
    max_call_us = tariff.max_call_seconds * 1_000_000
    bad_times = (
        start_us.is_null()
        | end_us.is_null()
        | ~_in_range(start_us)
        | ~_in_range(end_us)
        | (answered & ~_in_range(answer_us))
        | (end_us < start_us)
        | (answered & ((answer_us < start_us) | (answer_us > end_us)))
        | (end_us - start_us > max_call_us)
    ).fill_null(True)
    # Only read where the times are good: then no difference can overflow.
    answered_ms = pl.when(answered).then((end_us - answer_us) // 1000).otherwise(0)
    bad_hold = (hold < 0) | (hold > answered_ms)
    most = max_sms_segments(tariff)
    bad_segments = (kind == "sms") & (
        (segments < 1) if most is None else ~segments.is_between(1, most)
    )
    number_ok, digit_count, value = _callee_digits()
    code = (
        pl.when(t.is_null())
        .then(Outcome.UNKNOWN_TENANT)
        .when(bad_times)
        .then(Outcome.BAD_TIMES)
        .when(bad_hold)
        .then(Outcome.BAD_HOLD)
        .when(bad_segments.fill_null(False))
        .then(Outcome.BAD_SEGMENTS)
        .when(~number_ok)
        .then(Outcome.BAD_NUMBER)
        .when(kind_code.is_null() | direction_code.is_null())
        .then(Outcome.BAD_KIND)
        .otherwise(Outcome.RATED)
        .cast(pl.Int8)
    )
    valid = pl.col("_invalid") == Outcome.RATED
    return (
        cdrs.lazy()
        .with_columns(pl.lit(t_of_row).alias("_t"))
        .select(
            pl.int_range(pl.len(), dtype=pl.Int64).alias("_i"),
            "_t",
            code.alias("_invalid"),
            kind_code.alias("_k"),
            direction_code.alias("_dir"),
            pl.coalesce(answer_us, start_us).alias("_rt_us"),
            (answered_ms - hold).alias("_billable"),
            segments.alias("_seg"),
            value.alias("_value"),
            digit_count.alias("_digits"),
            pl.col("cdr_id"),
        )
        .select(
            "_i",
            "_t",
            pl.lit(tenants["_plan"]).gather(t).alias("_p"),
            "_invalid",
            "_k",
            "_dir",
            pl.when(valid).then(pl.col("_rt_us")).alias("_rt_us"),
            pl.when(valid).then(pl.col("_billable")).otherwise(0).alias("_billable"),
            "_seg",
            # The first up to 15 digits as an integer, and their count.
            pl.col("_value").alias("_v15"),
            pl.col("_digits").clip(upper_bound=MAX_PREFIX_DIGITS).alias("_nd"),
            (pl.col("cdr_id").hash(0x5EED) ^ t.hash(0xC0DE)).alias("_h"),
        )
        .collect()
    )


def rate_batch(tariff: Tariff, cdrs: pl.DataFrame, state: RatingState) -> RatingResult:
    """Rate ``cdrs`` (CDR_SCHEMA dtypes, extra columns carried through) against ``state``.

    Nulls: hold_ms null = 0, segments null = 1. See the module docstring for the
    values of the output columns per status.
    """
    clash = set(cdrs.columns) & set(RATED_EXTRA_SCHEMA)
    if clash:
        raise ValueError(f"input already has output column(s) {sorted(clash)}")
    n = cdrs.height
    tenants = _tenant_columns(tariff, state)
    plans = [tariff.plans[p] for p in tariff.plan_ids]
    tenant_index = tariff.tenant_frame.select(
        "tenant_id", pl.int_range(pl.len(), dtype=pl.Int32).alias("_t")
    )
    t_of_row = cdrs.select("tenant_id").join(
        tenant_index, on="tenant_id", how="left", maintain_order="left"
    )["_t"]

    w = _validated(tariff, cdrs, t_of_row, tenants)
    valid = pl.col("_invalid") == 0
    w = w.with_columns(
        (valid & ~_duplicates(cdrs, w, state)).alias("_live"),
        (pl.col("_k") * len(DIRECTIONS) + pl.col("_dir")).alias("_kd"),
    )
    clock, position = _clock(tariff, w)
    w = w.with_columns(position.alias("_pos"))
    zero = pl.col("_live") & (pl.col("_k") == _CALL) & (pl.col("_billable") == 0)
    w = w.with_columns(zero.alias("_zero"))

    pending = w.filter(pl.col("_live") & ~pl.col("_zero")).select(
        "_i", "_p", "_kd", "_v15", "_nd", "_rt_us", "_pos"
    )
    r_of_row = _lookup(tariff, clock, pending, n)
    rates = tariff.rates
    r = pl.col("_r")
    rated = pl.col("_live") & (pl.col("_zero") | r.is_not_null())
    first_inc = pl.lit(rates["first_increment"]).gather(r)
    inc = pl.lit(rates["increment"]).gather(r)
    b = pl.col("_billable")
    billed = (
        pl.when(pl.col("_zero"))
        .then(0)
        .when(b <= first_inc * 1000)
        .then(first_inc)
        .otherwise(first_inc + (b - first_inc * 1000 + inc * 1000 - 1) // (inc * 1000) * inc)
    )
    w = (
        w.lazy()
        .with_columns(pl.lit(r_of_row).alias("_r"))
        .with_columns(
            rated.alias("_rated"),
            pl.when(rated & (pl.col("_k") == _CALL)).then(billed).alias("billed_seconds"),
        )
        .with_columns(
            pl.when(pl.col("_rated") & (pl.col("_k") == _CALL))
            .then(pl.col("billed_seconds"))
            .when(pl.col("_rated") & (pl.col("_k") == _SMS))
            .then(pl.col("_seg"))
            .otherwise(0)
            .alias("_qty"),
            pl.when(pl.col("_invalid") > 0)
            .then(pl.col("_invalid"))
            .when(~pl.col("_live"))
            .then(Outcome.DUPLICATE)
            .when(~pl.col("_rated"))
            .then(Outcome.NO_RATE)
            .otherwise(0)
            .cast(pl.Int8)
            .alias("_code"),
        )
        .collect()
    )
    is_rated = pl.col("_rated")
    covered, allowances_delta = _draw_allowances(tariff, clock, w, cdrs, state)
    w = w.with_columns(
        pl.when(is_rated).then(covered).alias("covered"),
        pl.when(is_rated).then(pl.col("_qty") - covered).otherwise(0).alias("_charged"),
    )
    w = w.with_columns(_charges(tariff, w).alias("charge_micros"))

    balance_after, events, balances_delta = _debit_prepaid(tariff, tenants, cdrs, w)

    plan_of_rate = rates.select(
        pl.col("plan_id").replace_strict(
            {p: i for i, p in enumerate(tariff.plan_ids)}, return_dtype=pl.Int32
        )
    ).to_series()
    p = pl.col("_p")
    extras = (
        w.lazy()
        .select(
            pl.lit(pl.Series(_STATUSES)).gather(pl.col("_code")).alias("status"),
            pl.lit(pl.Series(_REASONS, dtype=pl.String)).gather(pl.col("_code")).alias("reason"),
            pl.lit(pl.Series(tariff.plan_ids, dtype=pl.String))
            .gather(
                pl.when(pl.col("_zero")).then(p).when(is_rated).then(pl.lit(plan_of_rate).gather(r))
            )
            .alias("plan_id"),
            pl.lit(rates["prefix"]).gather(r).alias("rate_prefix"),
            pl.lit(rates["band"]).gather(r).alias("band"),
            "billed_seconds",
            "covered",
            "charge_micros",
            _charge_text(
                pl.col("charge_micros"), _gather([pl_.decimals for pl_ in plans], p, pl.Int64())
            ).alias("charge"),
            pl.lit(pl.Series([pl_.currency for pl_ in plans], dtype=pl.String))
            .gather(p)
            .alias("currency"),
            pl.lit(balance_after).alias("balance_after_micros"),
        )
        .collect()
        .cast(RATED_EXTRA_SCHEMA)  # type: ignore[arg-type]
    )
    rated_frame = cdrs.hstack(extras)

    seen_delta = (
        cdrs.lazy()
        .select("tenant_id", "cdr_id", pl.coalesce("answer_time", "start_time").alias("seen_time"))
        .filter(pl.lit(w["_live"]))
        .collect()
    )
    delta = RatingState.of(balances=balances_delta, allowances=allowances_delta, seen=None)
    delta = RatingState(balances=delta.balances, allowances=delta.allowances, seen=seen_delta)
    # The new dedupe keys are not in state.seen (they would be duplicates), so the
    # upsert of ``seen`` is a plain append.
    merged = state.merge(RatingState(delta.balances, delta.allowances, seen_delta.clear()))
    if seen_delta.height:
        seen = pl.concat([state.seen, seen_delta]) if state.seen.height else seen_delta
        merged = RatingState(balances=merged.balances, allowances=merged.allowances, seen=seen)
    return RatingResult(rated=rated_frame, events=events, state=merged, delta=delta)


def _duplicates(cdrs: pl.DataFrame, w: pl.DataFrame, state: RatingState) -> pl.Series:
    """Valid records whose (tenant_id, cdr_id) an earlier valid record or ``state.seen`` has.

    Within the batch, only the keys whose 64-bit hash occurs twice are compared
    exactly, which spares hashing a million string pairs into a table.
    """
    n = w.height
    valid = pl.col("_invalid") == 0
    flags = pl.repeat(False, n, dtype=pl.Boolean, eager=True).alias("_dup")
    hashes = w.select(pl.col("_h").filter(valid).sort())["_h"]
    repeated = hashes.filter(hashes == hashes.shift(1))
    if repeated.len():
        clash = (
            w.lazy()
            .select("_i", "_t", "_h", pl.lit(cdrs["cdr_id"]).alias("cdr_id"), valid.alias("_v"))
            .filter(pl.col("_v") & pl.col("_h").is_in(repeated.implode()))
            .collect()
        )
        later = clash.filter(~pl.struct("_t", "cdr_id").is_first_distinct())["_i"]
        if later.len():
            flags.scatter(later, True)
    if state.seen.height:
        again = (
            cdrs.lazy()
            .select("tenant_id", "cdr_id", pl.int_range(pl.len(), dtype=pl.Int64).alias("_i"))
            .filter(pl.lit(w["_invalid"]) == 0)
            .join(
                state.seen.lazy().select("tenant_id", "cdr_id"),
                on=["tenant_id", "cdr_id"],
                how="semi",
            )
            .collect()["_i"]
        )
        if again.len():
            flags.scatter(again, True)
    return flags


_MAX_PREFIX_LISTS = 10


def _allowance_mask(plans: list[Plan], positions: int) -> pl.Expr:
    """Bit j set when allowance position j of the record's plan applies to it.

    Applicability depends only on (plan, kind, direction) and on which of the deck's
    allowance prefix lists match the callee, so it is read from a small table built
    here instead of evaluating every plan's conditions on every record.
    """
    lists = list(dict.fromkeys(a.prefixes for p in plans for a in p.allowances if a.prefixes))
    if len(lists) > _MAX_PREFIX_LISTS:
        mask: pl.Expr = pl.lit(0, dtype=pl.Int64)
        for j in range(positions):
            cond: pl.Expr = pl.lit(False)
            for p_index, plan in enumerate(plans):
                if j >= len(plan.allowances):
                    continue
                allowance = plan.allowances[j]
                this = (pl.col("_p") == p_index) & (pl.col("_k") == KIND_CODE[allowance.kind])
                if allowance.prefixes:
                    this = this & _prefix_match(allowance.prefixes)
                if allowance.direction != "any":
                    this = this & (pl.col("_dir") == DIRECTION_CODE[allowance.direction])
                cond = cond | this
            mask = mask + pl.when(cond).then(1 << j).otherwise(0)
        return mask
    flags: pl.Expr = pl.lit(0, dtype=pl.Int64)
    for f, prefixes in enumerate(lists):
        flags = flags + pl.when(_prefix_match(prefixes)).then(1 << f).otherwise(0)
    table: list[int] = []
    for plan in plans:
        for kind in KINDS:
            for direction in DIRECTIONS:
                for matched in range(1 << len(lists)):
                    bits = 0
                    for j, allowance in enumerate(plan.allowances[:positions]):
                        if (
                            allowance.kind == kind
                            and allowance.direction in ("any", direction)
                            and (
                                not allowance.prefixes
                                or matched >> lists.index(allowance.prefixes) & 1
                            )
                        ):
                            bits |= 1 << j
                    table.append(bits)
    combo = (
        (pl.col("_p").cast(pl.Int64) * len(KINDS) + pl.col("_k")) * len(DIRECTIONS) + pl.col("_dir")
    ) * (1 << len(lists)) + flags
    return pl.lit(pl.Series(table, dtype=pl.Int64)).gather(combo)


def _draw_allowances(
    tariff: Tariff, clock: _Clock, w: pl.DataFrame, cdrs: pl.DataFrame, state: RatingState
) -> tuple[pl.Series, pl.DataFrame | None]:
    """Allowance draw-down -> (covered per row, allowance delta or None).

    Sequential cumulative clipping, one pass per allowance position, over the drawing
    records sorted by (tenant, period, input order): a running sum that restarts at
    each group gives what the earlier records of the group asked for. Per group,
    what was drawn telescopes to min(available, total demand).
    """
    n = w.height
    covered = pl.repeat(0, n, dtype=pl.Int64, eager=True).alias("covered")
    plans = [tariff.plans[p] for p in tariff.plan_ids]
    positions = max((len(p.allowances) for p in plans), default=0)
    if positions == 0:
        return covered, None
    mask = _allowance_mask(plans, positions)
    needs_callee = any(
        len(x) > MAX_PREFIX_DIGITS for p in plans for a in p.allowances for x in a.prefixes
    )
    source = w.lazy()
    if needs_callee:
        source = source.with_columns(pl.lit(cdrs["callee"]).alias("callee"))
    drawing = (
        source.filter(pl.col("_rated") & (pl.col("_qty") > 0) & (pl.col("_k") != _RING))
        .select(
            pl.col("_t").cast(pl.Int64),
            clock.month(tariff, pl.col("_p").cast(pl.Int64)).alias("_month"),
            "_i",
            mask.alias("_mask"),
            "_qty",
        )
        .filter(pl.col("_mask") != 0)
        .collect()
    )
    if drawing.height == 0:
        return covered, None
    # Months are numbered from the batch's first one, so that they pack in few bits.
    first_month = int(drawing["_month"].min())  # type: ignore[arg-type]
    drawing = drawing.with_columns(pl.col("_month") - first_month)
    step = _sorted_by(drawing, ["_t", "_month", "_i", "_mask", "_qty"]).rename({"_qty": "_left"})
    new_group = (pl.col("_t") != pl.col("_t").shift(1)) | (
        pl.col("_month") != pl.col("_month").shift(1)
    )
    step = step.with_columns(new_group.fill_null(True).alias("_start"))
    step = step.with_columns((pl.col("_start").cum_sum() - 1).cast(pl.Int64).alias("_g"))
    starts = step["_start"].arg_true()
    absolute = pl.col("_month") + first_month
    groups = step.select(pl.col("_t", "_month").gather(starts)).with_columns(
        pl.lit(tariff.tenant_frame["_plan"]).gather(pl.col("_t")).cast(pl.Int64).alias("_plan"),
        (absolute // 12 * 100 + absolute % 12 + 1).cast(pl.Int32).alias("_period"),
    )

    tenant_ids = tariff.tenant_frame["tenant_id"]
    used_state = None
    if state.allowances.height:
        used_state = state.allowances.join(
            tariff.tenant_frame.select("tenant_id").with_row_index("_t"),
            on="tenant_id",
            how="inner",
        ).select(
            pl.col("_t").cast(pl.Int64),
            _period_int(pl.col("period")).alias("_period"),
            "allowance_index",
            "used",
        )
    left = step["_left"].clone()
    groups_of_rows = step["_g"]
    drawn = pl.repeat(0, step.height, dtype=pl.Int64, eager=True)
    deltas: list[pl.DataFrame] = []
    for j in range(positions):
        caps = [p.allowances[j].quantity if j < len(p.allowances) else 0 for p in plans]
        used = pl.repeat(0, groups.height, dtype=pl.Int64, eager=True)
        if used_state is not None:
            prior = used_state.filter(pl.col("allowance_index") == j).select(
                "_t", "_period", "used"
            )
            if prior.height:
                used = (
                    groups.join(prior, on=["_t", "_period"], how="left", maintain_order="left")[
                        "used"
                    ]
                    .fill_null(0)
                    .cast(pl.Int64)
                )
        cap = pl.Series(caps, dtype=pl.Int64).gather(groups["_plan"])
        avail = (cap - used).clip(lower_bound=0)
        if avail.max() in (None, 0):
            continue
        # Only the records this allowance applies to draw on it, in group order.
        rows = step.select((pl.col("_mask") & (1 << j)) != 0).to_series().arg_true()
        if rows.len() == 0:
            continue
        group = pl.col("_g")
        stage = pl.DataFrame({"_g": groups_of_rows.gather(rows), "_d": left.gather(rows)})
        stage = stage.with_columns(
            _group_cum_sum(pl.col("_d"), (group != group.shift(1)).fill_null(True)).alias("_cum"),
            pl.lit(avail).gather(group).alias("_avail"),
        )
        cum, group_avail = pl.col("_cum"), pl.col("_avail")
        result = stage.select(
            (
                pl.min_horizontal(group_avail, cum)
                - pl.min_horizontal(group_avail, cum - pl.col("_d"))
            ).alias("_draw"),
            "_d",
            "_cum",
            "_g",
            "_avail",
            (group != group.shift(-1)).fill_null(True).alias("_last"),
        )
        draw = result["_draw"]
        if draw.max() in (None, 0):
            continue
        left.scatter(rows, result["_d"] - draw)
        drawn.scatter(rows, drawn.gather(rows) + draw)
        moved = (
            result.filter("_last")
            .select("_g", pl.min_horizontal(pl.col("_avail"), pl.col("_cum")).alias("_drawn"))
            .filter(pl.col("_drawn") > 0)
        )
        deltas.append(
            moved.select(
                pl.lit(groups["_t"]).gather(pl.col("_g")).alias("_t"),
                pl.lit(groups["_period"]).gather(pl.col("_g")).alias("_period"),
                pl.lit(j, dtype=pl.Int32).alias("allowance_index"),
                (pl.lit(used).gather(pl.col("_g")) + pl.col("_drawn")).alias("used"),
            )
        )
    if not deltas:
        return covered, None
    moved_rows = step.select("_i", drawn.alias("_drawn")).filter(pl.col("_drawn") > 0)
    covered.scatter(moved_rows["_i"], moved_rows["_drawn"])
    allowances_delta = pl.concat(deltas).select(
        pl.lit(tenant_ids).gather(pl.col("_t")).alias("tenant_id"),
        _period_text(pl.col("_period")).alias("period"),
        "allowance_index",
        "used",
    )
    return covered, allowances_delta


def _charges(tariff: Tariff, w: pl.DataFrame) -> pl.Series:
    """charge_micros: exact numerators over D = 60 * 10**scale, rounded once in integers.

    units = round(num * 10**decimals / D) for the tenant plan's decimals and rounding;
    the power of ten is cancelled against D first, so the numbers stay small enough
    for Int64 on ordinary decks (Int128, then Python integers, when they may not).
    """
    plans = [tariff.plans[p] for p in tariff.plan_ids]
    rates = tariff.rates
    scale = tariff.price_scale
    charged = pl.col("_charged")
    max_charged = w.select(charged.max()).item() or 0
    multiplier = [10 ** max(0, d - scale) for d in range(7)]
    divisor = [60 * 10 ** max(0, scale - d) for d in range(7)]
    bound = (tariff.max_price_num * 60 * (max_charged + 1) + 1) * 2 * max(multiplier) + 2 * max(
        divisor
    )
    big = pl.Int128()
    exact = bound < _INT128_SAFE
    dtype = pl.Int64() if bound < 2**62 else big
    r = pl.col("_r")
    cn, pn, mn = (
        pl.lit(rates[c].cast(dtype)).gather(r) for c in ("connect_num", "price_num", "min_num")
    )
    k = pl.col("_k")
    per_unit = pl.when(k == _CALL).then(charged).when(k == _SMS).then(charged * 60).otherwise(60)
    base = pn * per_unit.cast(dtype)
    zero = pl.lit(0, dtype=dtype)
    numerator = (
        pl.when(~pl.col("_rated") | pl.col("_zero"))
        .then(zero)
        .when(k == _CALL)
        .then(
            pl.when(charged == 0).then(zero).otherwise(pl.max_horizontal(mn * 60, cn * 60 + base))
        )
        .otherwise(base)
    )
    if not exact:
        num = w.select(numerator.alias("_num"), "_p")
        return _slow_micros(tariff, num, 60 * 10**scale)
    p = pl.col("_p")
    decimals = [pl_.decimals for pl_ in plans]
    mult = [multiplier[d] for d in decimals]
    div = [divisor[d] for d in decimals]
    add = [
        {"half_up": dv // 2, "up": dv - 1, "down": 0}[pl_.rounding]
        for dv, pl_ in zip(div, plans, strict=True)
    ]
    unit = [10 ** (6 - d) for d in decimals]
    units = (numerator * _gather(mult, p, dtype) + _gather(add, p, dtype)) // _gather(div, p, dtype)
    micros = (units * _gather(unit, p, dtype)).cast(pl.Int64).fill_null(0)
    return w.select(micros.alias("charge_micros")).to_series()


def _debit_prepaid(
    tariff: Tariff, tenants: dict[str, pl.Series], cdrs: pl.DataFrame, w: pl.DataFrame
) -> tuple[pl.Series, pl.DataFrame, pl.DataFrame]:
    """Prepaid balances -> (balance_after per row, events, balances delta).

    Running debits per tenant in input order, seeded from the batch's start balance;
    alarms compare the balance before and after each debit.
    """
    n = w.height
    prepaid = (
        w.lazy()
        .select(
            pl.col("_t").cast(pl.Int64),
            "_i",
            "charge_micros",
            pl.lit(tenants["_prepaid"]).gather(pl.col("_t")).fill_null(False).alias("_pre"),
        )
        .filter("_pre")
        .collect()
    )
    first = (pl.col("_t") != pl.col("_t").shift(1)).fill_null(True)
    t = pl.col("_t")
    rows = (
        _sorted_by(prepaid, ["_t", "_i", "charge_micros"])
        .rename({"charge_micros": "_debit"})
        .with_columns(
            _group_cum_sum(pl.col("_debit"), first).alias("_spent"),
            (t != t.shift(-1)).fill_null(True).alias("_last"),
        )
    )
    after = pl.lit(tenants["_start"]).gather(t) - pl.col("_spent")
    before = after + pl.col("_debit")
    threshold = pl.lit(tenants["_threshold"]).gather(t)
    rows = rows.with_columns(
        after.alias("balance_micros"),
        ((before >= threshold) & (after < threshold)).alias("_low"),
        ((before > 0) & (after <= 0)).alias("_exh"),
    )
    balance_after = _scatter(n, rows["_i"], rows["balance_micros"], pl.Int64())

    hits = rows.filter(pl.col("_low") | pl.col("_exh")).sort("_i")
    columns = [
        pl.lit(tenants["tenant_id"]).gather(t).alias("tenant_id"),
        pl.lit(cdrs["cdr_id"]).gather(pl.col("_i")).alias("cdr_id"),
        "balance_micros",
        pl.lit(tenants["_threshold"]).gather(t).alias("threshold_micros"),
        pl.lit(tenants["_recharge"]).gather(t).alias("recharge_amount_micros"),
        pl.lit(tenants["_auto"]).gather(t).alias("auto_recharge"),
    ]
    low = hits.filter("_low").select(
        "_i", pl.lit(0).alias("_o"), pl.lit("low_balance").alias("event"), *columns
    )
    exh = hits.filter("_exh").select(
        "_i", pl.lit(1).alias("_o"), pl.lit("exhausted").alias("event"), *columns
    )
    events = (
        pl.concat([low, exh]).sort(["_i", "_o"]).select(list(EVENT_SCHEMA)).cast(EVENT_SCHEMA)  # type: ignore[arg-type]
    )
    # Debits are never negative, so a tenant's balance moved iff it spent something.
    balances_delta = (
        rows.filter(pl.col("_last") & (pl.col("_spent") != 0))
        .select(pl.lit(tenants["tenant_id"]).gather(t).alias("tenant_id"), "balance_micros")
        .sort("tenant_id")
    )
    return balance_after, events, balances_delta


def _group_cum_sum(value: pl.Expr, start: pl.Expr) -> pl.Expr:
    """Running sum of ``value`` restarting where ``start`` is true (rows sorted by group)."""
    total = value.cum_sum()
    return total - pl.when(start).then(total - value).otherwise(None).forward_fill()


def _charge_text(micros: pl.Expr, decimals: pl.Expr) -> pl.Expr:
    """The charge as a decimal string with the tenant plan's decimals ("0" without a plan)."""
    whole = (micros // 1_000_000).cast(pl.String)
    frac = (micros % 1_000_000) // _gather([10 ** (6 - d) for d in range(7)], decimals, pl.Int64)
    frac_text = (
        (frac + _gather([10**d for d in range(7)], decimals, pl.Int64)).cast(pl.String).str.slice(1)
    )
    return (
        pl.when(decimals.is_null())
        .then(pl.lit("0"))
        .when(decimals == 0)
        .then(whole)
        .otherwise(pl.concat_str(whole, pl.lit("."), frac_text))
    )


def _slow_micros(tariff: Tariff, num: pl.DataFrame, denominator: int) -> pl.Series:
    """Exact charges with Python integers, for decks whose numbers could overflow Int128."""
    out: list[int] = []
    for value, plan in num.select("_num", "_p").iter_rows():
        if not value:
            out.append(0)
            continue
        p = tariff.plans[tariff.plan_ids[plan]]
        units = round_div(value * 10**p.decimals, denominator, p.rounding)
        out.append(units * 10 ** (6 - p.decimals))
    return pl.Series("charge_micros", out, dtype=pl.Int64)


def apply_topups(
    tariff: Tariff, topups: pl.DataFrame, state: RatingState
) -> tuple[RatingState, RatingState]:
    """Credit top-ups (TOPUP_SCHEMA, amounts in micros) -> (new state, delta).

    Top-ups of unknown or postpaid tenants are ignored (logged); deduplication by
    topup_id is the caller's job. A top-up re-arms the alarms by raising the balance.
    """
    prepaid = tariff.tenant_frame.filter("_prepaid").select("tenant_id", "_opening")
    credits = topups.join(prepaid, on="tenant_id", how="inner")
    ignored = topups.height - credits.height
    if ignored:
        log.warning("ignored %d top-up(s) of unknown or postpaid tenants", ignored)
    if credits.height == 0:
        return state, RatingState.empty()
    sums = credits.group_by("tenant_id").agg(
        pl.col("amount_micros").sum().alias("_credit"), pl.col("_opening").first()
    )
    delta_balances = (
        sums.join(state.balances, on="tenant_id", how="left")
        .select(
            "tenant_id",
            (pl.coalesce("balance_micros", "_opening") + pl.col("_credit")).alias("balance_micros"),
        )
        .sort("tenant_id")
    )
    delta = RatingState.of(balances=delta_balances)
    return state.merge(delta), delta


def balances_frame(tariff: Tariff, state: RatingState) -> pl.DataFrame:
    """BALANCE_SCHEMA for every prepaid tenant (opening balance when untouched), by tenant_id."""
    return (
        tariff.tenant_frame.filter("_prepaid")
        .select("tenant_id", "_opening")
        .join(state.balances, on="tenant_id", how="left")
        .select("tenant_id", pl.coalesce("balance_micros", "_opening").alias("balance_micros"))
        .sort("tenant_id")
        .cast(BALANCE_SCHEMA)  # type: ignore[arg-type]
    )
