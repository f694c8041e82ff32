"""Rule 8: calls and sms draw on their plan's allowances, in listed order, per calendar
month of the rating time (plan zone), per tenant in input order.

Sequential cumulative clipping, one pass per allowance position, over the drawing
records sorted by (tenant, period, input order): a running sum that restarts at each
group gives what the earlier records of the group asked for; each record gets
min(available, sum so far) - min(available, sum before it). Per group, what was drawn
telescopes to min(available, total demand).
"""

from __future__ import annotations

import polars as pl

from rater.core.rating.clock import BatchClock
from rater.core.rating.kernels import (
    POW10,
    RING,
    gather,
    group_cum_sum,
    period_int,
    period_text,
    sorted_by,
)
from rater.core.state import RatingState
from rater.core.tariff import (
    DIRECTION_CODE,
    DIRECTIONS,
    KIND_CODE,
    KINDS,
    MAX_PREFIX_DIGITS,
    Plan,
    Tariff,
)

__all__ = ["draw_allowances"]

# Up to this many distinct prefix lists, which allowances apply is read from a table of
# (plan, kind, direction, lists matched); beyond, each plan's conditions are evaluated.
_MAX_PREFIX_LISTS = 10


def draw_allowances(
    tariff: Tariff, clock: BatchClock, w: pl.DataFrame, state: RatingState
) -> tuple[pl.Series, pl.DataFrame | None]:
    """(covered per row, allowance use delta or None) of the working frame ``w`` (rated
    rows with their ``_quantity``)."""
    covered = pl.repeat(0, w.height, dtype=pl.Int64, eager=True).alias("covered")
    plans = [tariff.plans[p] for p in tariff.plan_ids]
    positions = max((len(p.allowances) for p in plans), default=0)
    if positions == 0:
        return covered, None
    step, groups = _drawing(tariff, clock, w, plans, positions)
    if step is None or groups is None:
        return covered, None
    used_before = _used_before(tariff, state)
    left = step["_left"].clone()
    drawn = pl.repeat(0, step.height, dtype=pl.Int64, eager=True)
    deltas: list[pl.DataFrame] = []
    for j in range(positions):
        delta = _draw_position(j, plans, step, groups, used_before, left, drawn)
        if delta is not None:
            deltas.append(delta)
    if not deltas:
        return covered, None
    moved_rows = step.select("_row", drawn.alias("_drawn")).filter(pl.col("_drawn") > 0)
    covered.scatter(moved_rows["_row"], moved_rows["_drawn"])
    delta = pl.concat(deltas).select(
        pl.lit(tariff.tenant_frame["tenant_id"]).gather(pl.col("_tenant")).alias("tenant_id"),
        period_text(pl.col("_period")).alias("period"),
        "allowance_index",
        "used",
    )
    return covered, delta


def _drawing(
    tariff: Tariff, clock: BatchClock, w: pl.DataFrame, plans: list[Plan], positions: int
) -> tuple[pl.DataFrame | None, pl.DataFrame | None]:
    """The records that draw, sorted by (tenant, month, input order), each with the bit
    mask of the allowance positions that apply to it and its demand (``_left``), and the
    groups (tenant, month) with their plan and period (YYYYMM)."""
    drawing = (
        w.lazy()
        .filter(pl.col("_rated") & (pl.col("_quantity") > 0) & (pl.col("_kind") != RING))
        .select(
            pl.col("_tenant").cast(pl.Int64),
            clock.month(tariff, pl.col("_plan").cast(pl.Int64)).alias("_month"),
            "_row",
            _allowance_mask(plans, positions).alias("_mask"),
            "_quantity",
        )
        .filter(pl.col("_mask") != 0)
        .collect()
    )
    if drawing.height == 0:
        return None, None
    # Months are numbered from the batch's first one, so that they pack in few bits.
    first_month = int(drawing["_month"].min())  # type: ignore[arg-type]
    drawing = drawing.with_columns(pl.col("_month") - first_month)
    columns = ["_tenant", "_month", "_row", "_mask", "_quantity"]
    step = sorted_by(drawing, columns).rename({"_quantity": "_left"})
    tenant, month = pl.col("_tenant"), pl.col("_month")
    new_group = ((tenant != tenant.shift(1)) | (month != month.shift(1))).fill_null(True)
    step = step.with_columns(new_group.alias("_start"))
    step = step.with_columns((pl.col("_start").cum_sum() - 1).cast(pl.Int64).alias("_group"))
    absolute = month + first_month
    groups = step.select(pl.col("_tenant", "_month").gather(step["_start"].arg_true()))
    groups = groups.with_columns(
        pl.lit(tariff.tenant_frame["_plan"]).gather(tenant).cast(pl.Int64).alias("_plan"),
        (absolute // 12 * 100 + absolute % 12 + 1).cast(pl.Int32).alias("_period"),
    )
    return step, groups


def _used_before(tariff: Tariff, state: RatingState) -> pl.DataFrame | None:
    """The state's allowance use by (tenant index, period YYYYMM, allowance_index)."""
    if state.allowances.height == 0:
        return None
    return state.allowances.join(
        tariff.tenant_frame.select("tenant_id").with_row_index("_tenant"),
        on="tenant_id",
        how="inner",
    ).select(
        pl.col("_tenant").cast(pl.Int64),
        period_int(pl.col("period")).alias("_period"),
        "allowance_index",
        "used",
    )


def _draw_position(
    j: int,
    plans: list[Plan],
    step: pl.DataFrame,
    groups: pl.DataFrame,
    used_before: pl.DataFrame | None,
    left: pl.Series,
    drawn: pl.Series,
) -> pl.DataFrame | None:
    """Draw on allowance position j: updates ``left`` and ``drawn`` (per drawing record)
    in place; returns the new use of the groups that drew (or None)."""
    caps = [p.allowances[j].quantity if j < len(p.allowances) else 0 for p in plans]
    used = pl.repeat(0, groups.height, dtype=pl.Int64, eager=True)
    if used_before is not None:
        prior = used_before.filter(pl.col("allowance_index") == j)
        if prior.height:
            used = groups.join(
                prior.select("_tenant", "_period", "used"),
                on=["_tenant", "_period"],
                how="left",
                maintain_order="left",
            )["used"]
            used = used.fill_null(0).cast(pl.Int64)
    available = (pl.Series(caps, dtype=pl.Int64).gather(groups["_plan"]) - used).clip(lower_bound=0)
    # Only the records this allowance applies to draw on it, in group order.
    rows = step.select((pl.col("_mask") & (1 << j)) != 0).to_series().arg_true()
    if available.max() in (None, 0) or rows.len() == 0:
        return None
    result = _clipped_draws(step["_group"].gather(rows), left.gather(rows), available)
    draw = result["_draw"]
    if draw.max() in (None, 0):
        return None
    left.scatter(rows, result["_demand"] - draw)
    drawn.scatter(rows, drawn.gather(rows) + draw)
    group = pl.col("_group")
    moved = result.filter("_last").select(
        "_group", pl.min_horizontal(pl.col("_available"), pl.col("_cumulative")).alias("_drawn")
    )
    return moved.filter(pl.col("_drawn") > 0).select(
        pl.lit(groups["_tenant"]).gather(group).alias("_tenant"),
        pl.lit(groups["_period"]).gather(group).alias("_period"),
        pl.lit(j, dtype=pl.Int32).alias("allowance_index"),
        (pl.lit(used).gather(group) + pl.col("_drawn")).alias("used"),
    )


def _clipped_draws(groups: pl.Series, demand: pl.Series, available: pl.Series) -> pl.DataFrame:
    """Per record (in group order): what it draws, min(avail, sum so far) - min(avail, sum
    before it); and per group's last record, the group's cumulative demand."""
    group = pl.col("_group")
    stage = pl.DataFrame({"_group": groups, "_demand": demand}).with_columns(
        group_cum_sum(pl.col("_demand"), (group != group.shift(1)).fill_null(True)).alias(
            "_cumulative"
        ),
        pl.lit(available).gather(group).alias("_available"),
    )
    cum, avail = pl.col("_cumulative"), pl.col("_available")
    return stage.select(
        (pl.min_horizontal(avail, cum) - pl.min_horizontal(avail, cum - pl.col("_demand"))).alias(
            "_draw"
        ),
        "_demand",
        "_cumulative",
        "_group",
        "_available",
        (group != group.shift(-1)).fill_null(True).alias("_last"),
    )


def _prefix_match(prefixes: tuple[str, ...]) -> pl.Expr:
    """The callee (``_callee_digits``, ``_callee_length``) starts with one of them. A prefix
    longer than 15 digits matches no valid callee (rule 1: at most 15 digits)."""
    if not prefixes:
        return pl.lit(True)
    terms: list[pl.Expr] = [pl.lit(False)]
    for prefix in prefixes:
        if len(prefix) > MAX_PREFIX_DIGITS:
            continue
        head = pl.col("_callee_digits") // gather(
            POW10, (pl.col("_callee_length") - len(prefix)).clip(lower_bound=0), pl.Int64()
        )
        terms.append((pl.col("_callee_length") >= len(prefix)) & (head == int(prefix)))
    return pl.any_horizontal(terms)


def _allowance_mask(plans: list[Plan], positions: int) -> pl.Expr:
    """Bit j set when allowance position j of the record's plan applies to it.

    Applicability depends only on (plan, kind, direction) and on which of the deck's
    allowance prefix lists match the callee, so it is read from a small table built
    here instead of evaluating every plan's conditions on every record.
    """
    lists = list(dict.fromkeys(a.prefixes for p in plans for a in p.allowances if a.prefixes))
    # Size-dependent: a table of 2**lists entries per (plan, kind, direction) while small,
    # each plan's conditions evaluated per record when the deck has many prefix lists.
    if len(lists) > _MAX_PREFIX_LISTS:
        return _evaluated_mask(plans, positions)
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
        (pl.col("_plan").cast(pl.Int64) * len(KINDS) + pl.col("_kind")) * len(DIRECTIONS)
        + pl.col("_direction")
    ) * (1 << len(lists)) + flags
    return pl.lit(pl.Series(table, dtype=pl.Int64)).gather(combo)


def _evaluated_mask(plans: list[Plan], positions: int) -> pl.Expr:
    """The mask of :func:`_allowance_mask` from each plan's conditions (many prefix lists)."""
    mask: pl.Expr = pl.lit(0, dtype=pl.Int64)
    for j in range(positions):
        cond: pl.Expr = pl.lit(False)
        for p_index, plan in enumerate(plans):
            if j >= len(plan.allowances):
                continue
            allowance = plan.allowances[j]
            this = (pl.col("_plan") == p_index) & (pl.col("_kind") == KIND_CODE[allowance.kind])
            if allowance.prefixes:
                this = this & _prefix_match(allowance.prefixes)
            if allowance.direction != "any":
                this = this & (pl.col("_direction") == DIRECTION_CODE[allowance.direction])
            cond = cond | this
        mask = mask + pl.when(cond).then(1 << j).otherwise(0)
    return mask
