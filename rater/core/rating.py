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

import polars as pl

from rater.core.bands import MINUTES_PER_WEEK, local_naive_us, period_of, week_minute
from rater.core.columns import BALANCE_SCHEMA, EVENT_SCHEMA, RATED_EXTRA_SCHEMA
from rater.core.money import round_div
from rater.core.state import RatingState
from rater.core.tariff import (
    DIRECTION_CODE,
    DIRECTIONS,
    GROUPS_PER_PLAN,
    KIND_CODE,
    KINDS,
    MAX_PREFIX_DIGITS,
    Tariff,
)

__all__ = ["RatingResult", "apply_topups", "balances_frame", "rate_batch"]

log = logging.getLogger(__name__)

_ROUNDING_CODE = {"half_up": 0, "up": 1, "down": 2}
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


def _plan_table(tariff: Tariff) -> pl.DataFrame:
    plans = [tariff.plans[p] for p in tariff.plan_ids]
    return pl.DataFrame(
        {
            "_plan": pl.Series(range(len(plans)), dtype=pl.Int32),
            "_plan_id": [p.id for p in plans],
            "_decimals": pl.Series([p.decimals for p in plans], dtype=pl.Int64),
            "_rounding": pl.Series([_ROUNDING_CODE[p.rounding] for p in plans], dtype=pl.Int8),
            "_currency": [p.currency for p in plans],
            "_tz": pl.Series(tariff.plan_timezone_index, dtype=pl.Int32),
        }
    )


def _tenant_table(tariff: Tariff, state: RatingState) -> pl.DataFrame:
    """Per known tenant: plan attributes and the balance the batch starts from."""
    frame = tariff.tenant_frame.with_row_index("_t").join(
        _plan_table(tariff), on="_plan", how="left"
    )
    if state.balances.height:
        frame = frame.join(state.balances, on="tenant_id", how="left").with_columns(
            pl.coalesce("balance_micros", "_opening").alias("_start")
        )
    else:
        frame = frame.with_columns(pl.col("_opening").alias("_start"))
    return frame.drop("balance_micros", strict=False)


def _gather(values: list[int], index: pl.Expr, dtype: pl.DataType | type[pl.DataType]) -> pl.Expr:
    """values[index] as an expression (small lookup tables indexed per row)."""
    return pl.lit(pl.Series(values, dtype=dtype)).gather(index)


def _with_local_us(
    tariff: Tariff, frame: pl.DataFrame, utc_us: str, tz_index: pl.Expr, name: str
) -> pl.DataFrame:
    """Add ``name``: local wall-clock microseconds of the UTC column ``utc_us``.

    Zone offsets change only on whole UTC minutes (every transition since 1972), so
    the offset is computed once per minute and zone, then looked up per row,
    instead of converting a million timestamps per zone. A batch spans few minutes
    compared with its rows, so the table usually covers every minute of its range
    and the lookup is a plain gather; a sparse batch falls back to a binary search
    over its distinct minutes.
    """
    minute = pl.col(utc_us) // _US_PER_MINUTE
    low, high = frame.select(minute.min().alias("lo"), minute.max().alias("hi")).row(0)
    if low is None:
        return frame.with_columns(pl.lit(None, dtype=pl.Int64).alias(name))
    dense = high - low + 1 <= max(frame.height, 1 << 16)
    if dense:
        minutes = pl.int_range(low, high + 1, dtype=pl.Int64, eager=True)
        position = minute - low
    else:
        minutes = frame.select(minute.unique().sort().alias("m"))["m"].drop_nulls()
        position = pl.lit(minutes).search_sorted(minute).cast(pl.Int64)
    zones = tariff.timezones
    table = pl.DataFrame({"m": minutes}).select(
        [
            (
                local_naive_us((pl.col("m") * _US_PER_MINUTE).cast(pl.Datetime("us", "UTC")), zone)
                - pl.col("m") * _US_PER_MINUTE
            ).alias(str(i))
            for i, zone in enumerate(zones)
        ]
    )
    offsets = pl.concat([table[str(i)] for i in range(len(zones))])
    return frame.with_columns(
        (
            pl.col(utc_us)
            + pl.lit(offsets).gather(tz_index.cast(pl.Int64) * minutes.len() + position)
        ).alias(name)
    )


_US_PER_MINUTE = 60_000_000
_US_PER_DAY = 86_400_000_000


def _with_period(frame: pl.DataFrame, local_us: str, name: str) -> pl.DataFrame:
    """Add ``name``: the YYYYMM period of a local time, computed once per day of the range."""
    day = pl.col(local_us) // _US_PER_DAY
    low, high = frame.select(day.min().alias("lo"), day.max().alias("hi")).row(0)
    if low is None or high - low + 1 > max(frame.height, 1 << 12):
        return frame.with_columns(period_of(pl.col(local_us)).alias(name))
    days = pl.select(
        period_of(pl.int_range(low, high + 1, dtype=pl.Int64) * _US_PER_DAY).alias("p")
    )["p"]
    return frame.with_columns(pl.lit(days).gather(day - low).alias(name))


def _lookup(tariff: Tariff, pending: pl.DataFrame, n: int) -> pl.Series:
    """Longest-prefix rate selection with fallback chains -> r_idx per input row (Int32).

    ``pending`` holds _i, _p (plan index), _kd (kind*2+direction), _v15 (first up to 15
    callee digits as an integer), _nd (their count), _rt_us (rating time) and _local
    (its wall-clock time in the tenant plan's zone). Per plan of the fallback chain,
    one join per prefix length of the deck; the longest matching prefix wins. Rate tables are
    sorted by preference within a key, so the first applicable row of a record is its
    rate at that length. Records still unmatched go on to their fallback plan.
    """
    pow10 = [10**i for i in range(MAX_PREFIX_DIGITS + 1)]
    lengths = sorted(tariff.rate_tables)
    found = (
        pl.Series("_r", [None], dtype=pl.Int32).extend_constant(None, n - 1)
        if n
        else (pl.Series("_r", [], dtype=pl.Int32))
    )
    fallback = list(tariff.fallback_index)
    current = pending
    while current.height:
        if "_local" not in current.columns:
            current = _with_local_us(
                tariff,
                current,
                "_rt_us",
                _gather(list(tariff.plan_timezone_index), pl.col("_p"), pl.Int32()),
                "_local",
            )
        probe = current.select(
            pl.col("_i").cast(pl.Int64),
            pl.lit(tariff.band_table)
            .gather(pl.col("_p").cast(pl.Int64) * MINUTES_PER_WEEK + week_minute(pl.col("_local")))
            .alias("_band"),
            "_rt_us",
            (pl.col("_p").cast(pl.Int64) * GROUPS_PER_PLAN + pl.col("_kd")).alias("_g"),
            "_v15",
            "_nd",
        )
        slots = tariff.band_slots
        if slots:
            band = pl.col("_band")
            slot = pl.when(band < 0).then(0).otherwise(band.cast(pl.Int64) + 1)
            applies = (pl.col("r_from") <= pl.col("_rt_us")) & (pl.col("_rt_us") < pl.col("r_to"))
        else:
            slot = pl.lit(0, dtype=pl.Int64)
            applies = (
                ((pl.col("r_band") == -1) | (pl.col("r_band") == pl.col("_band")))
                & (pl.col("r_from") <= pl.col("_rt_us"))
                & (pl.col("_rt_us") < pl.col("r_to"))
            )
        scale = max(slots, 1)
        hits: list[pl.DataFrame] = []
        for length in lengths:
            key = pl.when(pl.col("_nd") >= length).then(
                (
                    pl.col("_g") * pow10[length]
                    + pl.col("_v15")
                    // _gather(pow10, (pl.col("_nd") - length).clip(lower_bound=0), pl.Int64)
                )
                * scale
                + slot
            )
            best = (
                probe.lazy()
                .select("_i", key.alias("key"), "_band", "_rt_us")
                .join(
                    tariff.rate_tables[length].lazy(),
                    on="key",
                    how="inner",
                    maintain_order="left_right",
                )
                .filter(applies)
                .filter((pl.col("_i") != pl.col("_i").shift(1)).fill_null(True))
                .select(
                    "_i",
                    "r_idx",
                    pl.lit(MAX_PREFIX_DIGITS - length, dtype=pl.Int64).alias("_short"),
                )
                .collect()
            )
            if best.height:
                hits.append(best)
        if hits:
            # Longest prefix per record: order by (record, length descending).
            every = pl.concat(hits)
            every = (
                every.sort(pl.col("_i") * 16 + pl.col("_short"))
                if n < 2**58
                else every.sort(["_i", "_short"])
            )
            every = every.filter((pl.col("_i") != pl.col("_i").shift(1)).fill_null(True))
            found.scatter(every["_i"], every["r_idx"])
        current = current.filter(pl.lit(found).gather(pl.col("_i")).is_null())
        current = (
            current.with_columns(_gather(fallback, pl.col("_p"), pl.Int32()).alias("_p"))
            .filter(pl.col("_p") >= 0)
            .drop("_local")
        )
    return found


def _scatter(n: int, index: pl.Series, values: pl.Series, dtype: pl.DataType) -> pl.Series:
    """A length-n null Series with ``values`` placed at ``index``."""
    out = (
        pl.Series(values.name, [None], dtype=dtype).extend_constant(None, n - 1)
        if n
        else pl.Series(values.name, [], dtype=dtype)
    )
    if index.len():
        out.scatter(index, values.cast(dtype))
    return out


def _sorted_by(frame: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """``frame`` sorted by the non-negative integer ``columns``, then by row order.

    When they fit, the columns and the row number are packed into one Int64 whose
    sorted values carry the permutation in their low bits: sorting one integer
    column is much cheaper than sorting a frame by several.
    """
    rows = frame.height
    highs = frame.select(pl.col(c).max() for c in columns).row(0)
    bits = [max(1, int(h or 0).bit_length()) for h in highs]
    row_bits = max(1, rows.bit_length())
    if sum(bits) + row_bits > 62:
        return frame.with_row_index("_row").sort([*columns, "_row"]).drop("_row")
    packed: pl.Expr = pl.lit(0, dtype=pl.Int64)
    for column, width in zip(columns, bits, strict=True):
        packed = packed * (1 << width) + pl.col(column).cast(pl.Int64)
    packed = packed * (1 << row_bits) + pl.int_range(rows, dtype=pl.Int64)
    order = frame.select(packed.sort() % (1 << row_bits))
    return frame[order.to_series()]


def _group_cum_sum(value: pl.Expr, start: pl.Expr) -> pl.Expr:
    """Running sum of ``value`` restarting where ``start`` is true (rows sorted by group)."""
    total = value.cum_sum()
    return total - pl.when(start).then(total - value).otherwise(None).forward_fill()


def _period_text(period: pl.Expr) -> pl.Expr:
    return pl.format(
        "{}-{}",
        (period // 100).cast(pl.String),
        (period % 100 + 100).cast(pl.String).str.slice(1),
    )


def _period_int(text: pl.Expr) -> pl.Expr:
    return text.str.slice(0, 4).cast(pl.Int32) * 100 + text.str.slice(5, 2).cast(pl.Int32)


def _digits_prefix_match(prefixes: tuple[str, ...]) -> pl.Expr:
    if not prefixes:
        return pl.lit(True)
    digits = pl.col("_digits")
    expr = digits.str.starts_with(prefixes[0])
    for prefix in prefixes[1:]:
        expr = expr | digits.str.starts_with(prefix)
    return expr


def rate_batch(tariff: Tariff, cdrs: pl.DataFrame, state: RatingState) -> RatingResult:
    """Rate ``cdrs`` (CDR_SCHEMA dtypes, extra columns carried through) against ``state``.

    Nulls: hold_ms null = 0, segments null = 1. See the module docstring for the
    values of the output columns per status.
    """
    clash = set(cdrs.columns) & set(RATED_EXTRA_SCHEMA)
    if clash:
        raise ValueError(f"input already has output column(s) {sorted(clash)}")
    n = cdrs.height
    tenants = _tenant_table(tariff, state)

    w = (
        cdrs.select(
            "tenant_id",
            "cdr_id",
            "kind",
            "direction",
            "callee",
            "start_time",
            "answer_time",
            "end_time",
            pl.col("hold_ms").fill_null(0).alias("_hold"),
            pl.col("segments").cast(pl.Int64).fill_null(1).alias("_seg"),
        )
        .with_row_index("_i")
        .join(tenants, on="tenant_id", how="left", maintain_order="left")
    )
    start, answer, end = pl.col("start_time"), pl.col("answer_time"), pl.col("end_time")
    answered_ms = (
        pl.when(answer.is_not_null())
        .then((end.dt.epoch("us") - answer.dt.epoch("us")) // 1000)
        .otherwise(0)
    )
    kind, direction = pl.col("kind"), pl.col("direction")
    w = w.with_columns(
        pl.when(pl.col("_plan").is_null())
        .then(pl.lit("unknown_tenant"))
        .when(
            start.is_null()
            | end.is_null()
            | (end < start)
            | (answer.is_not_null() & ((answer < start) | (answer > end)))
        )
        .then(pl.lit("bad_times"))
        .when((pl.col("_hold") < 0) | (pl.col("_hold") > answered_ms))
        .then(pl.lit("bad_hold"))
        .when((kind == "sms") & (pl.col("_seg") < 1))
        .then(pl.lit("bad_segments"))
        .when(pl.col("callee").is_null() | ~pl.col("callee").str.contains(r"^\+?[0-9]+$"))
        .then(pl.lit("bad_number"))
        .when(
            kind.is_null()
            | direction.is_null()
            | ~kind.is_in(pl.Series(KINDS).implode())
            | ~direction.is_in(pl.Series(DIRECTIONS).implode())
        )
        .then(pl.lit("bad_kind"))
        .alias("_invalid"),
        pl.coalesce(answer, start).alias("_rt"),
        pl.when(answer.is_not_null())
        .then(answered_ms - pl.col("_hold"))
        .otherwise(0)
        .alias("_billable"),
        kind.replace_strict(KIND_CODE, default=None, return_dtype=pl.Int64).alias("_k"),
        direction.replace_strict(DIRECTION_CODE, default=None, return_dtype=pl.Int64).alias("_dir"),
    )
    valid = pl.col("_invalid").is_null()
    w = w.with_columns(
        _duplicates(w, state).alias("_dup"),
        pl.col("_rt").dt.epoch("us").alias("_rt_us"),
        pl.col("callee").str.strip_prefix("+").alias("_digits"),
        (pl.col("_k") * len(DIRECTIONS) + pl.col("_dir")).alias("_kd"),
    )
    w = w.with_columns((valid & ~pl.col("_dup")).alias("_live"))
    w = _with_local_us(tariff, w, "_rt_us", pl.col("_tz"), "_local")
    w = w.with_columns(
        (pl.col("_live") & (pl.col("_k") == _CALL) & (pl.col("_billable") == 0)).alias("_zero"),
    )

    # Rate lookup for the live records that need one.
    pending = (
        w.lazy()
        .filter(pl.col("_live") & ~pl.col("_zero"))
        .select(
            "_i",
            pl.col("_plan").alias("_p"),
            "_kd",
            pl.col("_digits").str.slice(0, MAX_PREFIX_DIGITS).cast(pl.Int64).alias("_v15"),
            pl.col("_digits")
            .str.len_bytes()
            .clip(upper_bound=MAX_PREFIX_DIGITS)
            .cast(pl.Int64)
            .alias("_nd"),
            "_rt_us",
            "_local",
        )
        .collect()
    )
    w = w.with_columns(_lookup(tariff, pending, n).alias("_r"))
    rates = tariff.rates
    r = pl.col("_r")
    rated = pl.col("_zero") | r.is_not_null()
    big = pl.Int128()
    narrow = tariff.max_price_num < 2**62
    num_type = pl.Int64() if narrow else big
    w = w.with_columns(
        pl.lit(rates["first_increment"]).gather(r).alias("_F"),
        pl.lit(rates["increment"]).gather(r).alias("_I"),
        *(
            pl.lit(rates[source].cast(num_type)).gather(r).alias(target)
            for source, target in (
                ("connect_num", "_cn"),
                ("price_num", "_pn"),
                ("min_num", "_mn"),
            )
        ),
    )
    b, first_inc, inc = pl.col("_billable"), pl.col("_F"), pl.col("_I")
    billed = (
        pl.when(pl.col("_zero"))
        .then(0)
        .when(b <= first_inc * 1000)
        .then(first_inc)
        .otherwise(first_inc + (b - first_inc * 1000 + inc * 1000 - 1) // (inc * 1000) * inc)
    )
    w = w.with_columns(
        (pl.col("_live") & rated).alias("_rated"),
        pl.when(pl.col("_live") & rated & (pl.col("_k") == _CALL))
        .then(billed)
        .otherwise(None)
        .alias("billed_seconds"),
    )
    is_rated = pl.col("_rated")
    w = w.with_columns(
        pl.when(is_rated & (pl.col("_k") == _CALL))
        .then(pl.col("billed_seconds"))
        .when(is_rated & (pl.col("_k") == _SMS))
        .then(pl.col("_seg"))
        .otherwise(0)
        .alias("_qty")
    )

    covered, remaining, allowances_delta = _draw_allowances(tariff, w, state)
    w = w.with_columns(
        pl.when(is_rated).then(covered).otherwise(None).alias("covered"),
        pl.when(is_rated).then(remaining).otherwise(0).alias("_charged"),
    )

    # Charges: exact numerators over D = 60 * 10**scale, rounded once in integers.
    # units = round(num * 10**decimals / D); the power of ten is cancelled against D
    # first, so the numbers stay small enough for Int64 on ordinary decks.
    scale = tariff.price_scale
    charged = pl.col("_charged")
    max_charged = w.select(charged.max()).item() or 0
    multiplier = [10 ** max(0, d - scale) for d in range(7)]
    divisor = [60 * 10 ** max(0, scale - d) for d in range(7)]
    bound = (tariff.max_price_num * 60 * (max_charged + 1) + 1) * 2 * max(multiplier) + 2 * max(
        divisor
    )
    if bound < _INT128_SAFE:
        wide = bound >= 2**62
        dtype = big if wide else pl.Int64()
        cn, pn, mn = (pl.col(c).cast(dtype) for c in ("_cn", "_pn", "_mn"))
        zero = pl.lit(0, dtype=dtype)
        numerator = (
            pl.when(~is_rated | pl.col("_zero"))
            .then(zero)
            .when(pl.col("_k") == _CALL)
            .then(
                pl.when(charged == 0)
                .then(zero)
                .otherwise(pl.max_horizontal(mn * 60, cn * 60 + pn * charged.cast(dtype)))
            )
            .when(pl.col("_k") == _SMS)
            .then(pn * charged.cast(dtype) * 60)
            .otherwise(pn * 60)
        )
        scaled = numerator * _gather(multiplier, pl.col("_decimals"), dtype)
        dd = _gather(divisor, pl.col("_decimals"), dtype)
        units = (
            pl.when(pl.col("_rounding") == 0)
            .then((scaled * 2 + dd) // (dd * 2))
            .when(pl.col("_rounding") == 1)
            .then((scaled + dd - 1) // dd)
            .otherwise(scaled // dd)
        )
        micros = (
            units * _gather([10 ** (6 - d) for d in range(7)], pl.col("_decimals"), dtype)
        ).cast(pl.Int64)
        w = w.with_columns(micros.fill_null(0).alias("charge_micros"))
    else:
        numerator = (
            pl.when(~is_rated | pl.col("_zero"))
            .then(pl.lit(0, dtype=big))
            .when(pl.col("_k") == _CALL)
            .then(
                pl.when(charged == 0)
                .then(pl.lit(0, dtype=big))
                .otherwise(
                    pl.max_horizontal(
                        pl.col("_mn").cast(big) * 60,
                        pl.col("_cn").cast(big) * 60 + pl.col("_pn").cast(big) * charged.cast(big),
                    )
                )
            )
            .when(pl.col("_k") == _SMS)
            .then(pl.col("_pn").cast(big) * charged.cast(big) * 60)
            .otherwise(pl.col("_pn").cast(big) * 60)
        )
        w = w.with_columns(numerator.alias("_num"))
        w = w.with_columns(_slow_micros(w, 60 * 10**scale).alias("charge_micros"))

    debit = pl.col("charge_micros")
    balance_after, events, balances_delta = _debit_prepaid(w, n)
    w = w.with_columns(balance_after.alias("balance_after_micros"))

    extras = w.select(
        pl.when(~pl.col("_live"))
        .then(pl.when(valid).then(pl.lit("duplicate")).otherwise(pl.lit("invalid")))
        .when(is_rated)
        .then(pl.lit("rated"))
        .otherwise(pl.lit("unrated"))
        .alias("status"),
        pl.when(~pl.col("_live"))
        .then(pl.when(valid).then(pl.lit("duplicate")).otherwise(pl.col("_invalid")))
        .when(~is_rated)
        .then(pl.lit("no_rate"))
        .otherwise(None)
        .alias("reason"),
        pl.when(pl.col("_zero"))
        .then(pl.col("_plan_id"))
        .when(is_rated)
        .then(pl.lit(rates["plan_id"]).gather(r))
        .alias("plan_id"),
        pl.when(is_rated).then(pl.lit(rates["prefix"]).gather(r)).alias("rate_prefix"),
        pl.when(is_rated).then(pl.lit(rates["band"]).gather(r)).alias("band"),
        "billed_seconds",
        "covered",
        "charge_micros",
        _charge_text(debit, pl.col("_decimals")).alias("charge"),
        pl.col("_currency").alias("currency"),
        "balance_after_micros",
    ).cast(RATED_EXTRA_SCHEMA)  # type: ignore[arg-type]
    rated_frame = cdrs.hstack(extras)

    seen_delta = (
        w.lazy()
        .filter(pl.col("_live"))
        .select("tenant_id", "cdr_id", pl.col("_rt").alias("seen_time"))
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


def _duplicates(w: pl.DataFrame, state: RatingState) -> pl.Series:
    """Valid records whose (tenant_id, cdr_id) an earlier valid record or ``state.seen`` has.

    Within the batch, only the keys whose 64-bit hash occurs twice are compared
    exactly, which spares hashing a million string pairs into a table.
    """
    n = w.height
    keys = (
        w.lazy()
        .filter(pl.col("_invalid").is_null())
        .select(
            "_i",
            "tenant_id",
            "cdr_id",
            (pl.col("cdr_id").hash(0x5EED) ^ pl.col("tenant_id").hash(0xC0DE)).alias("_h"),
        )
        .collect()
    )
    flags = pl.repeat(False, n, dtype=pl.Boolean, eager=True).alias("_dup")
    hashes = keys["_h"].sort()
    repeated = hashes.filter(hashes == hashes.shift(1))
    if repeated.len():
        clash = keys.filter(pl.col("_h").is_in(repeated.implode()))
        later = clash.filter(~pl.struct("tenant_id", "cdr_id").is_first_distinct())["_i"]
        if later.len():
            flags.scatter(later, True)
    if state.seen.height:
        again = keys.join(
            state.seen.select("tenant_id", "cdr_id"), on=["tenant_id", "cdr_id"], how="semi"
        )["_i"]
        if again.len():
            flags.scatter(again, True)
    return flags


def _draw_allowances(
    tariff: Tariff, w: pl.DataFrame, state: RatingState
) -> tuple[pl.Series, pl.Series, pl.DataFrame | None]:
    """Allowance draw-down -> (covered, remaining quantity, allowance delta or None).

    Sequential cumulative clipping, one pass per allowance position, over the drawing
    records sorted by (tenant, period, input order): a running sum that restarts at
    each group gives what the earlier records of the group asked for.
    """
    n = w.height
    covered = pl.repeat(0, n, dtype=pl.Int64, eager=True).alias("covered")
    remaining = w["_qty"].alias("_remaining")
    plans = [tariff.plans[p] for p in tariff.plan_ids]
    positions = max((len(p.allowances) for p in plans), default=0)
    if positions == 0:
        return covered, remaining, None
    flags: dict[tuple[str, ...], str] = {}
    for plan in plans:
        for allowance in plan.allowances:
            if allowance.prefixes and allowance.prefixes not in flags:
                flags[allowance.prefixes] = f"_pf{len(flags)}"
    drawing = (
        w.lazy()
        .filter(pl.col("_rated") & (pl.col("_qty") > 0) & (pl.col("_k") != _RING))
        .select(
            pl.col("_i").cast(pl.Int64),
            pl.col("_t").cast(pl.Int64),
            "_local",
            "_plan",
            "_k",
            "_dir",
            "_qty",
            *(_digits_prefix_match(prefixes).alias(name) for prefixes, name in flags.items()),
        )
        .collect()
    )
    if drawing.height == 0:
        return covered, remaining, None
    drawing = _with_period(drawing, "_local", "_period")
    month = pl.col("_period") // 100 * 12 + pl.col("_period") % 100
    first_month = drawing.select(month.min()).item()
    drawing = drawing.with_columns((month - first_month).alias("_month"))
    drawing = _sorted_by(drawing, ["_t", "_month"])
    tp = pl.col("_t") * (1 << 32) + pl.col("_month")
    drawing = drawing.with_columns((tp != tp.shift(1)).fill_null(True).alias("_start"))

    tenant_index = tariff.tenant_frame.select("tenant_id").with_row_index("_t")
    used_state = state.allowances.join(tenant_index, on="tenant_id", how="inner").select(
        pl.col("_t").cast(pl.Int64),
        _period_int(pl.col("period")).alias("_period"),
        "allowance_index",
        "used",
    )
    left = drawing["_qty"]
    drawn_total = pl.repeat(0, drawing.height, dtype=pl.Int64, eager=True)
    deltas: list[pl.DataFrame] = []
    for j in range(positions):
        cond: pl.Expr = pl.lit(False)
        caps = [0] * len(plans)
        for p_index, plan in enumerate(plans):
            if j >= len(plan.allowances):
                continue
            allowance = plan.allowances[j]
            caps[p_index] = allowance.quantity
            this = (pl.col("_plan") == p_index) & (pl.col("_k") == KIND_CODE[allowance.kind])
            if allowance.prefixes:
                this = this & pl.col(flags[allowance.prefixes])
            if allowance.direction != "any":
                this = this & (pl.col("_dir") == DIRECTION_CODE[allowance.direction])
            cond = cond | this
        demand = pl.when(cond).then(pl.lit(left)).otherwise(0)
        prior = used_state.filter(pl.col("allowance_index") == j).select("_t", "_period", "used")
        step = drawing.select("_t", "_period", "_plan", "_start", demand.alias("_demand"))
        if prior.height:
            step = step.join(prior, on=["_t", "_period"], how="left", maintain_order="left")
        else:
            step = step.with_columns(pl.lit(None, dtype=pl.Int64).alias("used"))
        avail = pl.max_horizontal(
            _gather(caps, pl.col("_plan"), pl.Int64()) - pl.col("used").fill_null(0), pl.lit(0)
        )
        cum = _group_cum_sum(pl.col("_demand"), pl.col("_start"))
        step = step.with_columns(cum.alias("_cum"), avail.alias("_avail"))
        cum, avail = pl.col("_cum"), pl.col("_avail")
        draw = step.select(
            (pl.min_horizontal(avail, cum) - pl.min_horizontal(avail, cum - pl.col("_demand")))
            .fill_null(0)
            .alias("_draw")
        )["_draw"]
        if draw.max() in (None, 0):
            continue
        drawn = step.with_columns(draw).filter(pl.col("_draw") > 0)
        left = left - draw
        drawn_total = drawn_total + draw
        deltas.append(
            drawn.group_by(["_t", "_period"])
            .agg((pl.col("used").first().fill_null(0) + pl.col("_draw").sum()).alias("used"))
            .with_columns(pl.lit(j, dtype=pl.Int32).alias("allowance_index"))
        )
    if not deltas:
        return covered, remaining, None
    moved = drawing.select("_i", drawn_total.alias("_drawn")).filter(pl.col("_drawn") > 0)
    covered.scatter(moved["_i"], moved["_drawn"])
    remaining = w.select(pl.col("_qty") - covered)["_qty"]
    allowances_delta = (
        pl.concat(deltas)
        .group_by(["_t", "_period", "allowance_index"])
        .agg(pl.col("used").max())
        .join(tenant_index.with_columns(pl.col("_t").cast(pl.Int64)), on="_t", how="left")
        .select(
            "tenant_id",
            _period_text(pl.col("_period")).alias("period"),
            "allowance_index",
            "used",
        )
    )
    return covered, remaining, allowances_delta


def _debit_prepaid(w: pl.DataFrame, n: int) -> tuple[pl.Series, pl.DataFrame, pl.DataFrame]:
    """Prepaid balances -> (balance_after per row, events, balances delta).

    Running debits per tenant in input order, seeded from the batch's start balance;
    alarms compare the balance before and after each debit.
    """
    prepaid = (
        w.lazy()
        .filter(pl.col("_prepaid").fill_null(False))
        .select(
            "_i",
            "_t",
            "_start",
            "_threshold",
            pl.col("charge_micros").alias("_debit"),
        )
        .collect()
    )
    prepaid = _sorted_by(prepaid, ["_t"])
    first = (pl.col("_t") != pl.col("_t").shift(1)).fill_null(True)
    prepaid = prepaid.with_columns(
        _group_cum_sum(pl.col("_debit"), first).alias("_spent"),
        (pl.col("_t") != pl.col("_t").shift(-1)).fill_null(True).alias("_last"),
    )
    after = pl.col("_start") - pl.col("_spent")
    before = after + pl.col("_debit")
    threshold = pl.col("_threshold")
    prepaid = prepaid.with_columns(
        after.alias("balance_micros"),
        ((before >= threshold) & (after < threshold)).alias("_low"),
        ((before > 0) & (after <= 0)).alias("_exh"),
    )
    balance_after = _scatter(n, prepaid["_i"], prepaid["balance_micros"], pl.Int64())

    hits = (
        prepaid.filter(pl.col("_low") | pl.col("_exh"))
        .select("_i", "balance_micros", "_low", "_exh")
        .sort("_i")
    )
    hits = hits.hstack(
        w.select(
            pl.col(c).gather(hits["_i"])
            for c in ("tenant_id", "cdr_id", "_threshold", "_recharge", "_auto")
        )
    )
    columns = [
        "tenant_id",
        "cdr_id",
        "balance_micros",
        pl.col("_threshold").alias("threshold_micros"),
        pl.col("_recharge").alias("recharge_amount_micros"),
        pl.col("_auto").alias("auto_recharge"),
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
    moved = prepaid.filter(pl.col("_last") & (pl.col("_spent") != 0))
    balances_delta = (
        moved.select(pl.col("_i"), "balance_micros")
        .with_columns(w["tenant_id"].gather(moved["_i"]).alias("tenant_id"))
        .select("tenant_id", "balance_micros")
        .sort("tenant_id")
    )
    return balance_after, events, balances_delta


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


def _slow_micros(w: pl.DataFrame, denominator: int) -> pl.Series:
    """Exact charges with Python integers, for decks whose numbers could overflow Int128."""
    rounding_names = {v: k for k, v in _ROUNDING_CODE.items()}
    out: list[int] = []
    for num, decimals, rounding in w.select("_num", "_decimals", "_rounding").iter_rows():
        if not num:
            out.append(0)
            continue
        units = round_div(num * 10**decimals, denominator, rounding_names[rounding])
        out.append(units * 10 ** (6 - decimals))
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
