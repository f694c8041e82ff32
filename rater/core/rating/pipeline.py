"""``rate_batch``: a batch of CDRs and a state in; rated records, events and the new
state out. A pipeline of named stages over one working frame, one row per CDR:

1. **validate** (rule 1): the outcome of the checks, and the integers the others use;
2. **dedupe** (rule 2): which valid records are ``live`` (not duplicates);
3. **clock** (rules 3, 6, 8): band slots and months of the rating times, per minute;
4. **lookup** (rule 7): the rate row of each live record, through fallback plans;
5. **increments** (rules 4, 5): billed seconds, the quantity charged, the outcome;
6. **allowances** (rule 8): what each record draws from its plan's allowances;
7. **charges** (rule 9): exact charges, rounded once;
8. **prepaid** (rule 10): running balances and their events;
9. **output**: the contract's columns, and the state delta.

Every stage works on the whole batch at once, and the stateful ones (dedupe, allowances,
prepaid) are cumulative sums per tenant seeded from the state: rating a stream in one
batch or in many gives the same result. ``timings``, when given, receives each stage's
seconds (the benchmark reports them).

Output columns of records that are not rated:

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

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import polars as pl

from rater.core.columns import (
    ADJUSTMENT_EXTRA_SCHEMA,
    ADJUSTMENT_SCHEMA,
    CDR_SCHEMA,
    RATED_EXTRA_SCHEMA,
)
from rater.core.rating.adjustments import (
    adjustments_delta,
    first_row_at_or_after,
    place_adjustments,
)
from rater.core.rating.allowances import draw_allowances
from rater.core.rating.charges import charge_text, charges
from rater.core.rating.clock import BatchClock, batch_clock
from rater.core.rating.dedupe import duplicates
from rater.core.rating.increments import billed_seconds, quantity
from rater.core.rating.kernels import CALL, gather
from rater.core.rating.lookup import lookup
from rater.core.rating.outcome import REASONS, STATUSES, Outcome
from rater.core.rating.prepaid import debit_prepaid, tenant_columns
from rater.core.rating.validate import validate
from rater.core.seen_index import SeenIndex
from rater.core.state import RatingState
from rater.core.tariff import DIRECTIONS, Tariff

__all__ = [
    "STAGES",
    "RatingResult",
    "adjustment_positions",
    "apply_adjustments",
    "rate_batch",
]

STAGES = (
    "validate",
    "dedupe",
    "clock",
    "lookup",
    "increments",
    "allowances",
    "charges",
    "prepaid",
    "output",
)


@dataclass(frozen=True)
class RatingResult:
    """What one batch produced.

    ``rated``: every input row in input order, input columns unchanged, then the
    RATED_EXTRA_SCHEMA columns. ``events``: EVENT_SCHEMA rows in emission order.
    ``state``: the state after the batch. ``delta``: only the state rows this batch
    added or changed (balances that moved, allowance use that grew, new dedupe keys,
    adjustments applied). ``adjustments``: every adjustment given, in the order given,
    its columns unchanged, then ``status`` and ``balance_after_micros``, preceded by the
    adjustments that were pending in the state and applied in this batch.
    """

    rated: pl.DataFrame
    events: pl.DataFrame
    state: RatingState
    delta: RatingState
    adjustments: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(
            schema={**ADJUSTMENT_SCHEMA, **ADJUSTMENT_EXTRA_SCHEMA}
        )
    )


def rate_batch(
    tariff: Tariff,
    cdrs: pl.DataFrame,
    state: RatingState,
    *,
    adjustments: pl.DataFrame | None = None,
    settle: bool = True,
    timings: dict[str, float] | None = None,
) -> RatingResult:
    """Rate ``cdrs`` (CDR_SCHEMA dtypes, extra columns carried through) against ``state``,
    with the balance ``adjustments`` (ADJUSTMENT_SCHEMA, extra columns carried through)
    consumed with them placed among their debits (see rater.core.rating.adjustments):
    ``settle`` when no CDR is to come after the batch's (the end of a file, a drained
    stream), else an adjustment with no place in the batch waits in the state.

    Nulls: hold_ms null = 0, segments null = 1. See the module docstring for the
    values of the output columns per status.
    """
    given = pl.DataFrame(schema=ADJUSTMENT_SCHEMA) if adjustments is None else adjustments
    clash = set(cdrs.columns) & set(RATED_EXTRA_SCHEMA)
    if clash:
        raise ValueError(f"input already has output column(s) {sorted(clash)}")
    stage = _Stages(timings)
    tenants = tenant_columns(tariff, state)
    with stage("validate"):
        w = validate(tariff, cdrs, _tenant_of_rows(tariff, cdrs), tenants["_plan"])
    with stage("dedupe"):
        index = state.seen_lookup()
        w = _live(w, cdrs, state, index)
    with stage("clock"):
        clock, position = batch_clock(tariff, w)
        w = w.with_columns(position.alias("_minute"))
    with stage("lookup"):
        rate_rows = _look_up(tariff, clock, w)
    with stage("increments"):
        w = _priced(tariff, w, rate_rows)
    with stage("allowances"):
        covered, allowances_delta = draw_allowances(tariff, clock, w, state)
        w = w.with_columns(
            pl.when(pl.col("_rated")).then(covered).alias("covered"),
            pl.when(pl.col("_rated"))
            .then(pl.col("_quantity") - covered)
            .otherwise(0)
            .alias("_charged_units"),
        )
    with stage("charges"):
        w = w.with_columns(charges(tariff, w).alias("charge_micros"))
    with stage("prepaid"):
        placement = place_adjustments(tariff, given, state, w, settle=settle)
        moved = debit_prepaid(tariff, tenants, cdrs, w, placement.placed)
        balance_after, events, balances_delta, adjusted = moved
    with stage("output"):
        rated = cdrs.hstack(_output_columns(tariff, w, balance_after))
        applied = _adjustments_out(placement.candidates, adjusted)
        changed = RatingState.of(
            balances=balances_delta,
            allowances=allowances_delta,
            adjustments=adjustments_delta(placement.candidates),
        )
        delta, after = _new_state(state.with_seen_index(index), cdrs, w, changed)
    return RatingResult(rated, events, after, delta, applied)


def apply_adjustments(
    tariff: Tariff, adjustments: pl.DataFrame, state: RatingState
) -> RatingResult:
    """Balance adjustments alone (no CDR in the batch): each applies in time order."""
    return rate_batch(tariff, pl.DataFrame(schema=CDR_SCHEMA), state, adjustments=adjustments)


def adjustment_positions(
    tariff: Tariff, cdrs: pl.DataFrame, adjustments: pl.DataFrame
) -> pl.Series:
    """Where each adjustment falls among ``cdrs`` rated as one batch: the input position
    of the first CDR of its tenant whose rating time is >= its time (``cdrs.height`` when
    there is none, or its tenant is unknown). A file rated in slices hands each
    adjustment to the slice holding that position, so slicing cannot move it."""
    tenants = tenant_columns(tariff, RatingState.empty())
    w = validate(tariff, cdrs, _tenant_of_rows(tariff, cdrs), tenants["_plan"])
    moments = adjustments.select(
        _tenant_of_rows(tariff, adjustments).cast(pl.Int64).alias("_tenant"),
        pl.col("time").dt.epoch("us").alias("_time_us"),
    )
    return first_row_at_or_after(moments, w)


def _adjustments_out(candidates: pl.DataFrame, adjusted: pl.DataFrame) -> pl.DataFrame:
    """The adjustments given (in the order given; pending ones included) and the pending
    ones of the state applied now (first), with their status and the balance after each."""
    after = adjusted.select(pl.col("_adj").cast(pl.UInt32), "balance_micros")
    out = candidates.join(after, on="_adj", how="left", maintain_order="left")
    return out.filter(~pl.col("_held") | (pl.col("status") == "applied")).select(
        pl.exclude("_adj", "_held", "balance_micros"),
        pl.col("balance_micros").cast(pl.Int64).alias("balance_after_micros"),
    )


class _Stages:
    """Times each stage into ``timings`` (when given)."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            if self.timings is not None:
                spent = time.perf_counter() - started
                self.timings[name] = self.timings.get(name, 0.0) + spent


def _tenant_of_rows(tariff: Tariff, cdrs: pl.DataFrame) -> pl.Series:
    """Each row's tenant as its index in the tariff's tenant frame (null: unknown)."""
    index = tariff.tenant_frame.select(
        "tenant_id", pl.int_range(pl.len(), dtype=pl.Int32).alias("_tenant")
    )
    return cdrs.select("tenant_id").join(index, on="tenant_id", how="left", maintain_order="left")[
        "_tenant"
    ]


def _live(
    w: pl.DataFrame, cdrs: pl.DataFrame, state: RatingState, index: SeenIndex
) -> pl.DataFrame:
    """Rule 2: ``_live`` = valid and not a duplicate; ``_zero_call`` = a live call with
    billable time 0 (rated at 0 without a rate); ``_kind_direction`` for the lookup."""
    valid = pl.col("_rule1") == Outcome.RATED
    w = w.with_columns(
        (valid & ~duplicates(cdrs, w, state, index)).alias("_live"),
        (pl.col("_kind") * len(DIRECTIONS) + pl.col("_direction")).alias("_kind_direction"),
    )
    zero = pl.col("_live") & (pl.col("_kind") == CALL) & (pl.col("_billable_ms") == 0)
    return w.with_columns(zero.alias("_zero_call"))


def _look_up(tariff: Tariff, clock: BatchClock, w: pl.DataFrame) -> pl.Series:
    """Rule 7 for the live records that need a rate."""
    pending = w.filter(pl.col("_live") & ~pl.col("_zero_call")).select(
        "_row",
        "_plan",
        "_kind_direction",
        "_callee_digits",
        "_callee_length",
        "_rating_us",
        "_minute",
    )
    return lookup(tariff, clock, pending, w.height)


def _priced(tariff: Tariff, w: pl.DataFrame, rate_rows: pl.Series) -> pl.DataFrame:
    """``_rated``, billed seconds (rules 4, 5), the ``_quantity`` charged and each row's
    ``_outcome``."""
    rated = pl.col("_live") & (pl.col("_zero_call") | pl.col("_rate_row").is_not_null())
    return (
        w.lazy()
        .with_columns(pl.lit(rate_rows).alias("_rate_row"))
        .with_columns(
            rated.alias("_rated"),
            pl.when(rated & (pl.col("_kind") == CALL))
            .then(billed_seconds(tariff.rates))
            .alias("billed_seconds"),
        )
        .with_columns(
            quantity().alias("_quantity"),
            pl.when(pl.col("_rule1") != Outcome.RATED)
            .then(pl.col("_rule1"))
            .when(~pl.col("_live"))
            .then(Outcome.DUPLICATE)
            .when(~pl.col("_rated"))
            .then(Outcome.NO_RATE)
            .otherwise(Outcome.RATED)
            .cast(pl.Int8)
            .alias("_outcome"),
        )
        .collect()
    )


def _output_columns(tariff: Tariff, w: pl.DataFrame, balance_after: pl.Series) -> pl.DataFrame:
    """RATED_EXTRA_SCHEMA columns of every row (see the module docstring)."""
    plans = [tariff.plans[p] for p in tariff.plan_ids]
    rates = tariff.rates
    r, p, is_rated = pl.col("_rate_row"), pl.col("_plan"), pl.col("_rated")
    plan_of_rate = rates.select(
        pl.col("plan_id").replace_strict(
            {p: i for i, p in enumerate(tariff.plan_ids)}, return_dtype=pl.Int32
        )
    ).to_series()
    decimals = gather([plan.decimals for plan in plans], p, pl.Int64())
    return (
        w.lazy()
        .select(
            pl.lit(pl.Series(STATUSES)).gather(pl.col("_outcome")).alias("status"),
            pl.lit(pl.Series(REASONS, dtype=pl.String)).gather(pl.col("_outcome")).alias("reason"),
            pl.lit(pl.Series(tariff.plan_ids, dtype=pl.String))
            .gather(
                pl.when(pl.col("_zero_call"))
                .then(p)
                .when(is_rated)
                .then(pl.lit(plan_of_rate).gather(r))
            )
            .alias("plan_id"),
            pl.lit(rates["prefix"]).gather(r).alias("rate_prefix"),
            pl.lit(rates["band"]).gather(r).alias("band"),
            "billed_seconds",
            "covered",
            "charge_micros",
            charge_text(pl.col("charge_micros"), decimals).alias("charge"),
            pl.lit(pl.Series([plan.currency for plan in plans], dtype=pl.String))
            .gather(p)
            .alias("currency"),
            pl.lit(balance_after).alias("balance_after_micros"),
        )
        .collect()
        .cast(RATED_EXTRA_SCHEMA)  # type: ignore[arg-type]
    )


def _new_state(
    state: RatingState, cdrs: pl.DataFrame, w: pl.DataFrame, changed: RatingState
) -> tuple[RatingState, RatingState]:
    """(delta, state after the batch). The new dedupe keys are not in ``state.seen`` (they
    would be duplicates), so the upsert of ``seen`` is a plain append (and the index of
    the keys before them is kept: they are added to it by the next batch that uses it)."""
    seen_delta = (
        cdrs.lazy()
        .select("tenant_id", "cdr_id", pl.coalesce("answer_time", "start_time").alias("seen_time"))
        .filter(pl.lit(w["_live"]))
        .collect()
    )
    after = state.merge(changed).with_seen(seen_delta)
    return dataclasses.replace(changed, seen=seen_delta), after
