"""Balance adjustments among CDR debits: placement, waiting for a place, idempotence.

The rule (billing rules, "Balance adjustments"): an adjustment at time t goes just before
the first CDR of its tenant, in input order, whose rating time is >= t, among the CDRs not
yet rated when it is consumed; after all of them if there is none.
"""

from __future__ import annotations

import itertools
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
from coredeck import at, cdr, frame, write_tariff
from hypothesis import given, settings
from hypothesis import strategies as st

from rater.core.rating import RatingResult, rate_batch
from rater.core.state import RatingState
from rater.core.tariff import Tariff
from rater.tariff_files import load_tariff
from tests.builders import adjustment, adjustment_frame

# tenant b: base plan, 1.00 per second outbound to +1 rounded up to 2 decimals, opening
# 0.05, threshold 0.02.
_call = {"tenant": "b", "callee": "+1"}


def _rate(
    tariff: Tariff,
    rows: list[dict[str, Any]],
    adjustments: list[dict[str, Any]],
    state: RatingState | None = None,
    *,
    settle: bool = True,
) -> RatingResult:
    return rate_batch(
        tariff,
        frame(rows),
        state or RatingState.empty(),
        adjustments=adjustment_frame(adjustments),
        settle=settle,
    )


def test_an_adjustment_goes_before_the_first_cdr_at_or_after_its_time(tariff: Tariff) -> None:
    rows = [
        cdr("c1", seconds=0.01, start=at(3, 9), **_call),  # 1 s, 1/60 rounded up: 0.02 each
        cdr("c2", seconds=0.01, start=at(3, 11), **_call),
        cdr("c3", seconds=0.01, start=at(3, 10), **_call),  # later in input, earlier in time
    ]
    top = adjustment("u", tenant="b", amount_micros=1_000_000, time=at(3, 10, 30))
    result = _rate(tariff, rows, [top])
    # c2 (11:00) is the first in input order at or after 10:30: the top-up goes before it.
    assert result.rated["balance_after_micros"].to_list() == [30_000, 1_010_000, 990_000]
    assert result.adjustments.select("status", "balance_after_micros").rows() == [
        ("applied", 1_030_000)
    ]


def test_same_place_by_time_then_id_and_a_charge_raises_events(tariff: Tariff) -> None:
    moves = [
        adjustment("z", tenant="b", kind="charge", amount_micros=40_000, time=at(3, 8)),
        adjustment("a", tenant="b", kind="charge", amount_micros=1_000, time=at(3, 8)),
        adjustment("r", tenant="b", kind="refund", amount_micros=7, time=at(3, 7), reason="x"),
    ]
    result = _rate(tariff, [cdr("c1", seconds=0.01, start=at(3, 9), **_call)], moves)
    assert result.adjustments["adjustment_id"].to_list() == ["z", "a", "r"]
    # r (07:00) then a then z (08:00, by id): 50_000 + 7 - 1_000 - 40_000 = 9_007
    assert result.adjustments["balance_after_micros"].to_list() == [9_007, 49_007, 50_007]
    assert result.events.select("event", "cdr_id").rows() == [
        ("low_balance", "z"),
        ("exhausted", "c1"),
    ]
    assert result.rated["balance_after_micros"].to_list() == [-10_993]


def test_without_a_place_it_waits_then_applies_in_the_batch_that_has_one(
    tariff: Tariff,
) -> None:
    top = adjustment("u", tenant="b", amount_micros=1_000_000, time=at(3, 12))
    first = _rate(tariff, [cdr("c1", seconds=0.01, **_call)], [top], settle=False)
    assert first.adjustments["status"].to_list() == ["pending"]
    assert first.state.balances.rows() == [("b", 30_000)]
    assert first.state.pending_adjustments()["adjustment_id"].to_list() == ["u"]
    restored = RatingState.from_bytes(first.state.to_bytes())
    assert restored.equals(first.state)
    resent = _rate(tariff, [], [top], restored, settle=False)
    assert resent.adjustments["status"].to_list() == ["duplicate"]
    later = [
        cdr("c2", seconds=0.01, start=at(3, 11), **_call),
        cdr("c3", seconds=0.01, start=at(3, 13), **_call),
    ]
    second = _rate(tariff, later, [], resent.state, settle=False)
    assert second.adjustments.select("adjustment_id", "status").rows() == [("u", "applied")]
    assert second.rated["balance_after_micros"].to_list() == [10_000, 990_000]
    assert second.state.pending_adjustments().height == 0
    assert _rate(tariff, [], [top], second.state).adjustments["status"].to_list() == ["duplicate"]


def test_settling_applies_what_waits_after_the_batch(tariff: Tariff) -> None:
    top = adjustment("u", tenant="b", amount_micros=1_000_000, time=at(3, 12))
    first = _rate(tariff, [], [top], settle=False)
    assert first.adjustments["status"].to_list() == ["pending"]
    settled = _rate(tariff, [cdr("c1", seconds=0.01, **_call)], [], first.state, settle=True)
    assert settled.rated["balance_after_micros"].to_list() == [30_000]
    assert settled.adjustments.select("status", "balance_after_micros").rows() == [
        ("applied", 1_030_000)
    ]


def test_postpaid_refunds_are_recorded_at_once_and_top_ups_ignored(tariff: Tariff) -> None:
    moves = [
        adjustment("r", tenant="post", kind="refund", amount_micros=5, time=at(9, 0)),
        adjustment("t", tenant="post", amount_micros=5, time=at(9, 0)),
        adjustment("g", tenant="ghost", amount_micros=5, time=at(9, 0)),
    ]
    result = _rate(tariff, [], moves, settle=False)
    assert result.adjustments["status"].to_list() == ["applied", "ignored", "ignored"]
    assert result.adjustments["balance_after_micros"].to_list() == [None, None, None]


_TENANTS = ("b", "pre", "post")


@st.composite
def _traffic(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[int]]:
    n = draw(st.integers(0, 30))
    rows = [
        cdr(
            f"c{i % 25}",  # some ids repeat: duplicates
            tenant=draw(st.sampled_from(_TENANTS)),
            callee=draw(st.sampled_from(["+1", "+33123", "+33612"])),
            start=at(3, 9) + timedelta(minutes=draw(st.integers(0, 600))),
            seconds=draw(st.integers(0, 90)),
        )
        for i in range(n)
    ]
    moves = [
        adjustment(
            f"a{draw(st.integers(0, 6))}",
            tenant=draw(st.sampled_from((*_TENANTS, "ghost"))),
            kind=(kind := draw(st.sampled_from(["topup", "refund", "charge"]))),
            amount_micros=draw(st.integers(1, 2_000_000)),
            time=at(3, 9) + timedelta(minutes=draw(st.integers(-60, 660))),
            reason="r" if kind == "refund" else None,
        )
        for _ in range(draw(st.integers(0, 8)))
    ]
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=4)))
    return rows, moves, cuts


_TARIFF = load_tariff(write_tariff(Path(tempfile.mkdtemp(prefix="rater-test-")) / "tariff"))


@settings(max_examples=120, deadline=None)
@given(_traffic())
def test_a_backlog_rated_in_batches_equals_one_batch(
    case: tuple[list[dict[str, Any]], list[dict[str, Any]], list[int]],
) -> None:
    """Adjustments consumed with the first batch, the CDRs cut into batches that do not
    settle until the last: the same sequence as one batch."""
    rows, moves, cuts = case
    whole = _rate(_TARIFF, rows, moves)
    state, rated, events, applied = RatingState.empty(), [], [], []
    bounds = [0, *cuts, len(rows)]
    for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        result = _rate(
            _TARIFF,
            rows[lo:hi],
            moves if i == 0 else [],
            state,
            settle=i == len(bounds) - 2,
        )
        state = result.state
        rated.append(result.rated)
        events.append(result.events)
        applied.append(result.adjustments.filter(pl.col("status") != "pending"))
    assert pl.concat(rated).equals(whole.rated)
    assert pl.concat(events).equals(whole.events)
    assert state.equals(whole.state)
    keys = ["tenant_id", "adjustment_id", "status", "time", "amount_micros"]
    got = pl.concat(applied, how="diagonal_relaxed").select(*keys, "balance_after_micros")
    want = whole.adjustments.select(*keys, "balance_after_micros")
    assert got.sort(keys).equals(want.sort(keys))
