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
    the offset is computed once per distinct minute and zone, then looked up per
    row with a binary search, instead of converting a million timestamps per zone.
    """
    minute = pl.col(utc_us) // _US_PER_MINUTE
    minutes = frame.select(minute.unique().sort().alias("m"))["m"].drop_nulls()
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
    position = pl.lit(minutes).search_sorted(minute).cast(pl.Int64)
    return frame.with_columns(
        (
            pl.col(utc_us)
            + pl.lit(offsets).gather(tz_index.cast(pl.Int64) * minutes.len() + position)
        ).alias(name)
    )


_US_PER_MINUTE = 60_000_000


def _length_masks(tariff: Tariff) -> list[int]:
    return [sum(1 << n for n in lengths) for lengths in tariff.plan_prefix_lengths]


def _lookup(tariff: Tariff, pending: pl.DataFrame) -> pl.DataFrame:
    """Longest-prefix rate selection with fallback chains -> frame(_i, r_idx).

    ``pending`` holds _i, _p (plan index), _kd (kind*2+direction), _v15 (first up to 15
    callee digits as an integer), _nd (their count), _rt (rating time) and _rt_us.
    One join per prefix length present in the deck, longest first, over the records
    still unmatched; then the fallback plans for what is left.
    """
    pow10 = [10**i for i in range(MAX_PREFIX_DIGITS + 1)]
    masks = _length_masks(tariff)
    lengths = sorted(tariff.rate_tables, reverse=True)
    matched: list[pl.DataFrame] = []
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
        current = current.with_columns(
            pl.lit(tariff.band_table)
            .gather(pl.col("_p").cast(pl.Int64) * MINUTES_PER_WEEK + week_minute(pl.col("_local")))
            .alias("_band"),
            _gather(masks, pl.col("_p"), pl.Int64).alias("_mask"),
        )
        for length in lengths:
            eligible = current.filter(
                (pl.col("_nd") >= length) & ((pl.col("_mask") // (1 << length)) % 2 == 1)
            )
            if eligible.height == 0:
                continue
            probe = eligible.select(
                "_i",
                (
                    (pl.col("_p").cast(pl.Int64) * GROUPS_PER_PLAN + pl.col("_kd")) * pow10[length]
                    + pl.col("_v15") // _gather(pow10, pl.col("_nd") - length, pl.Int64)
                ).alias("key"),
                "_band",
                "_rt_us",
            )
            candidates = probe.join(tariff.rate_tables[length], on="key", how="inner").filter(
                ((pl.col("r_band") == -1) | (pl.col("r_band") == pl.col("_band")))
                & (pl.col("r_from") <= pl.col("_rt_us"))
                & (pl.col("_rt_us") < pl.col("r_to"))
            )
            if candidates.height == 0:
                continue
            # Tie-breaks within one prefix length: a named band over `any`, then the
            # latest effective_from.
            best = (
                candidates.sort(
                    ["_i", "r_band", "r_from"], descending=[False, True, True], maintain_order=False
                )
                .unique(subset="_i", keep="first", maintain_order=False)
                .select("_i", "r_idx")
            )
            matched.append(best)
            current = current.join(best.select("_i"), on="_i", how="anti")
            if current.height == 0:
                break
        fallback = list(tariff.fallback_index)
        current = (
            current.with_columns(_gather(fallback, pl.col("_p"), pl.Int32()).alias("_p"))
            .filter(pl.col("_p") >= 0)
            .drop("_local", "_band", "_mask")
        )
    if not matched:
        return pl.DataFrame(schema={"_i": pl.UInt32, "r_idx": pl.Int32})
    return pl.concat(matched)


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
            | ~kind.is_in(list(KINDS))
            | ~direction.is_in(list(DIRECTIONS))
        )
        .then(pl.lit("bad_kind"))
        .alias("_invalid"),
        pl.coalesce(answer, start).alias("_rt"),
    )
    valid = pl.col("_invalid").is_null()
    first = pl.struct(valid, "tenant_id", "cdr_id").is_first_distinct()
    if state.seen.height:
        w = w.join(
            state.seen.select("tenant_id", "cdr_id", pl.lit(True).alias("_seen")),
            on=["tenant_id", "cdr_id"],
            how="left",
            maintain_order="left",
        )
        dup = valid & (~first | pl.col("_seen").fill_null(False))
    else:
        dup = valid & ~first
    kind_code = kind.replace_strict(KIND_CODE, default=None, return_dtype=pl.Int64)
    w = w.with_columns(
        dup.alias("_dup"),
        kind_code.alias("_k"),
        pl.when(answer.is_not_null())
        .then(answered_ms - pl.col("_hold"))
        .otherwise(0)
        .alias("_billable"),
        pl.col("_rt").dt.epoch("us").alias("_rt_us"),
        pl.col("callee").str.strip_prefix("+").alias("_digits"),
    )
    w = w.with_columns(
        (
            pl.col("_k") * len(DIRECTIONS)
            + direction.replace_strict(DIRECTION_CODE, default=None, return_dtype=pl.Int64)
        ).alias("_kd"),
        (valid & ~pl.col("_dup")).alias("_live"),
    )
    w = _with_local_us(tariff, w, "_rt_us", pl.col("_tz"), "_local")
    w = w.with_columns(period_of(pl.col("_local")).alias("_period"))
    w = w.with_columns(
        (pl.col("_live") & (pl.col("_k") == _CALL) & (pl.col("_billable") == 0)).alias("_zero"),
    )

    # Rate lookup for the live records that need one.
    pending = w.filter(pl.col("_live") & ~pl.col("_zero")).select(
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
    found = _lookup(tariff, pending)
    rates = tariff.rates
    idx = found["r_idx"]
    row_index = found["_i"]
    w = w.with_columns(_scatter(n, row_index, idx, pl.Int32()).alias("_r"))
    r = pl.col("_r")
    w = w.with_columns(
        pl.lit(rates[source]).gather(r).alias(target)
        for source, target in (
            ("plan_id", "_r_plan"),
            ("prefix", "_r_prefix"),
            ("band", "_r_band"),
            ("first_increment", "_F"),
            ("increment", "_I"),
            ("connect_num", "_cn"),
            ("price_num", "_pn"),
            ("min_num", "_mn"),
        )
    )
    rated = pl.col("_zero") | pl.col("_r").is_not_null()
    b, first_inc, inc = pl.col("_billable"), pl.col("_F"), pl.col("_I")
    billed = (
        pl.when(pl.col("_zero"))
        .then(0)
        .when(b <= first_inc * 1000)
        .then(first_inc)
        .otherwise(first_inc + (b - first_inc * 1000 + inc * 1000 - 1) // (inc * 1000) * inc)
    )
    w = w.with_columns(
        pl.when(~pl.col("_live"))
        .then(pl.when(valid).then(pl.lit("duplicate")).otherwise(pl.lit("invalid")))
        .when(rated)
        .then(pl.lit("rated"))
        .otherwise(pl.lit("unrated"))
        .alias("status"),
        pl.when(rated & (pl.col("_k") == _CALL))
        .then(billed)
        .otherwise(None)
        .alias("billed_seconds"),
    )
    is_rated = pl.col("status") == "rated"
    w = w.with_columns(
        pl.when(is_rated & (pl.col("_k") == _CALL))
        .then(pl.col("billed_seconds"))
        .when(is_rated & (pl.col("_k") == _SMS))
        .then(pl.col("_seg"))
        .otherwise(0)
        .alias("_qty")
    )

    # Allowances: sequential cumulative clipping, one pass per allowance position.
    remaining = w["_qty"]
    covered = pl.repeat(0, n, dtype=pl.Int64, eager=True)
    allowance_deltas: list[pl.DataFrame] = []
    plans = [tariff.plans[p] for p in tariff.plan_ids]
    positions = max((len(p.allowances) for p in plans), default=0)
    used_state = state.allowances.with_columns(_period_int(pl.col("period")).alias("_period"))
    drawing = w.filter(is_rated & (pl.col("_qty") > 0) & (pl.col("_k") != _RING)).select(
        "_i",
        "tenant_id",
        "_period",
        (pl.col("_t").cast(pl.Int64) * 1_000_000 + pl.col("_period")).alias("_tp"),
        "_plan",
        "_k",
        "direction",
        "_digits",
    )
    flags: dict[tuple[str, ...], str] = {}
    for plan in plans:
        for allowance in plan.allowances:
            if allowance.prefixes and allowance.prefixes not in flags:
                flags[allowance.prefixes] = f"_pf{len(flags)}"
    if flags:
        drawing = drawing.with_columns(
            _digits_prefix_match(prefixes).alias(name) for prefixes, name in flags.items()
        )
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
                this = this & (pl.col("direction") == allowance.direction)
            cond = cond | this
        demand = pl.lit(remaining).gather(pl.col("_i"))
        sub = drawing.filter(cond & (demand > 0)).select(
            "_i",
            "tenant_id",
            "_period",
            "_tp",
            demand.alias("_demand"),
            _gather(caps, pl.col("_plan"), pl.Int64()).alias("_cap"),
        )
        if sub.height == 0:
            continue
        prior = used_state.filter(pl.col("allowance_index") == j).select(
            "tenant_id", "_period", "used"
        )
        if prior.height:
            sub = sub.join(prior, on=["tenant_id", "_period"], how="left", maintain_order="left")
        else:
            sub = sub.with_columns(pl.lit(None, dtype=pl.Int64).alias("used"))
        avail = pl.max_horizontal(pl.col("_cap") - pl.col("used").fill_null(0), pl.lit(0))
        cum = pl.col("_demand").cum_sum().over("_tp")
        sub = sub.with_columns(
            (
                pl.min_horizontal(avail, cum) - pl.min_horizontal(avail, cum - pl.col("_demand"))
            ).alias("_draw")
        )
        drawn = sub.filter(pl.col("_draw") > 0)
        if drawn.height == 0:
            continue
        draw = _scatter(n, drawn["_i"], drawn["_draw"], pl.Int64()).fill_null(0)
        remaining = remaining - draw
        covered = covered + draw
        allowance_deltas.append(
            drawn.group_by(["tenant_id", "_period"])
            .agg((pl.col("used").first().fill_null(0) + pl.col("_draw").sum()).alias("used"))
            .with_columns(pl.lit(j, dtype=pl.Int32).alias("allowance_index"))
        )

    w = w.with_columns(
        pl.when(is_rated).then(covered).otherwise(None).alias("covered"),
        pl.when(is_rated).then(remaining).otherwise(0).alias("_charged"),
    )

    # Charges: exact numerators over D = 60 * 10**scale, rounded once in integers.
    denominator = 60 * 10**tariff.price_scale
    charged = pl.col("_charged")
    big = pl.Int128()
    numerator = (
        pl.when(~is_rated | pl.col("_zero"))
        .then(pl.lit(0, dtype=big))
        .when(pl.col("_k") == _CALL)
        .then(
            pl.when(charged == 0)
            .then(pl.lit(0, dtype=big))
            .otherwise(
                pl.max_horizontal(
                    pl.col("_mn") * 60,
                    pl.col("_cn") * 60 + pl.col("_pn") * charged.cast(big),
                )
            )
        )
        .when(pl.col("_k") == _SMS)
        .then(pl.col("_pn") * charged.cast(big) * 60)
        .otherwise(pl.col("_pn") * 60)
    )
    max_charged = w.select(pl.col("_charged").max()).item() or 0
    bound = (tariff.max_price_num * 60 * (max_charged + 1) + 1) * 2 * 10**6 + 2 * denominator
    w = w.with_columns(numerator.alias("_num"))
    if bound < _INT128_SAFE:
        scaled = pl.col("_num") * _gather([10**d for d in range(7)], pl.col("_decimals"), big)
        dd = pl.lit(denominator, dtype=big)
        units = (
            pl.when(pl.col("_rounding") == 0)
            .then((scaled * 2 + dd) // (dd * 2))
            .when(pl.col("_rounding") == 1)
            .then((scaled + dd - 1) // dd)
            .otherwise(scaled // dd)
        )
        micros = (
            units * _gather([10 ** (6 - d) for d in range(7)], pl.col("_decimals"), big)
        ).cast(pl.Int64)
        w = w.with_columns(micros.fill_null(0).alias("charge_micros"))
    else:
        w = w.with_columns(_slow_micros(w, denominator).alias("charge_micros"))

    # Prepaid balances: per-tenant running debits seeded from the state.
    debit = pl.col("charge_micros")
    prepaid = pl.col("_prepaid").fill_null(False)
    w = w.with_columns(
        pl.when(prepaid)
        .then(pl.col("_start") - debit.cum_sum().over("_t"))
        .otherwise(None)
        .alias("balance_after_micros")
    )
    after = pl.col("balance_after_micros")
    before = after + debit
    w = w.with_columns(
        (prepaid & (before >= pl.col("_threshold")) & (after < pl.col("_threshold"))).alias("_low"),
        (prepaid & (before > 0) & (after <= 0)).alias("_exh"),
    )

    decimals = pl.col("_decimals")
    whole = (debit // 1_000_000).cast(pl.String)
    frac = (debit % 1_000_000) // _gather([10 ** (6 - d) for d in range(7)], decimals, pl.Int64)
    frac_text = (
        (frac + _gather([10**d for d in range(7)], decimals, pl.Int64)).cast(pl.String).str.slice(1)
    )
    extras = w.select(
        "status",
        pl.when(pl.col("status") == "invalid")
        .then(pl.col("_invalid"))
        .when(pl.col("status") == "duplicate")
        .then(pl.lit("duplicate"))
        .when(pl.col("status") == "unrated")
        .then(pl.lit("no_rate"))
        .otherwise(None)
        .alias("reason"),
        pl.when(pl.col("_zero"))
        .then(pl.col("_plan_id"))
        .when(is_rated)
        .then(pl.col("_r_plan"))
        .alias("plan_id"),
        pl.when(is_rated).then(pl.col("_r_prefix")).alias("rate_prefix"),
        pl.when(is_rated).then(pl.col("_r_band")).alias("band"),
        "billed_seconds",
        "covered",
        "charge_micros",
        pl.when(decimals.is_null())
        .then(pl.lit("0"))
        .when(decimals == 0)
        .then(whole)
        .otherwise(pl.concat_str(whole, pl.lit("."), frac_text))
        .alias("charge"),
        pl.col("_currency").alias("currency"),
        "balance_after_micros",
    ).cast(RATED_EXTRA_SCHEMA)  # type: ignore[arg-type]
    rated_frame = cdrs.hstack(extras)

    events = _events(w)

    balances_delta = (
        w.filter(prepaid & (debit != 0))
        .group_by("tenant_id")
        .agg(pl.col("balance_after_micros").last().alias("balance_micros"))
        .sort("tenant_id")
    )
    if allowance_deltas:
        allowances_delta = (
            pl.concat(allowance_deltas)
            .group_by(["tenant_id", "_period", "allowance_index"])
            .agg(pl.col("used").max())
            .select(
                "tenant_id",
                _period_text(pl.col("_period")).alias("period"),
                "allowance_index",
                "used",
            )
        )
    else:
        allowances_delta = None
    seen_delta = w.filter(pl.col("_live")).select(
        "tenant_id", "cdr_id", pl.col("_rt").alias("seen_time")
    )
    delta = RatingState.of(balances=balances_delta, allowances=allowances_delta, seen=None)
    delta = RatingState(balances=delta.balances, allowances=delta.allowances, seen=seen_delta)
    return RatingResult(rated=rated_frame, events=events, state=state.merge(delta), delta=delta)


def _events(w: pl.DataFrame) -> pl.DataFrame:
    hits = w.filter(pl.col("_low") | pl.col("_exh"))
    columns = [
        "tenant_id",
        "cdr_id",
        pl.col("balance_after_micros").alias("balance_micros"),
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
    return (
        pl.concat([low, exh]).sort(["_i", "_o"]).select(list(EVENT_SCHEMA)).cast(EVENT_SCHEMA)  # type: ignore[arg-type]
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
