from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from coredeck import at, cdr, frame

from rater.core.columns import CDR_SCHEMA, EVENT_SCHEMA, RATED_EXTRA_SCHEMA
from rater.core.rating import RatingResult, apply_adjustments, balances_frame, rate_batch
from rater.core.state import RatingState
from rater.core.tariff import Tariff
from tests.builders import adjustment, adjustment_frame


def rate(
    tariff: Tariff, rows: list[dict[str, Any]], state: RatingState | None = None
) -> RatingResult:
    return rate_batch(tariff, frame(rows), state or RatingState.empty())


def col(result: RatingResult, name: str) -> list[Any]:
    return result.rated[name].to_list()


def test_output_shape_and_carry_through(tariff: Tariff) -> None:
    cdrs = frame([cdr("a", seconds=10), cdr("b", tenant="nobody")]).with_columns(
        pl.Series("_offset", [7, 8])
    )
    result = rate_batch(tariff, cdrs, RatingState.empty())
    assert result.rated.columns == [*CDR_SCHEMA, "_offset", *RATED_EXTRA_SCHEMA]
    assert result.rated.schema == {**CDR_SCHEMA, "_offset": pl.Int64(), **RATED_EXTRA_SCHEMA}
    assert result.rated.select([*list(CDR_SCHEMA), "_offset"]).equals(cdrs)
    assert result.events.schema == EVENT_SCHEMA


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (cdr("x", tenant="nobody", start=at(3, 9), end=at(3, 8), callee="bad"), "unknown_tenant"),
        (cdr("x", start=at(3, 9), end=at(3, 8), hold_ms=-1), "bad_times"),
        (cdr("x", start=at(3, 9), answer=at(3, 8, 59), end=at(3, 10)), "bad_times"),
        (cdr("x", start=at(3, 9), answer=at(3, 11), end=at(3, 10)), "bad_times"),
        (cdr("x", seconds=1, hold_ms=1001, callee="abc"), "bad_hold"),
        (cdr("x", seconds=1, hold_ms=-5), "bad_hold"),
        (cdr("x", hold_ms=1), "bad_hold"),  # not answered: nothing to hold
        (cdr("x", kind="sms", segments=0, callee=""), "bad_segments"),
        (cdr("x", callee="+"), "bad_number"),
        (cdr("x", callee="++33"), "bad_number"),
        (cdr("x", callee="+33 12"), "bad_number"),
        (cdr("x", kind="fax"), "bad_kind"),
    ],
)
def test_validation_reason_order(tariff: Tariff, row: dict[str, Any], reason: str) -> None:
    result = rate(tariff, [row])
    assert col(result, "status") == ["invalid"]
    assert col(result, "reason") == [reason]
    assert col(result, "charge_micros") == [0]
    assert col(result, "covered") == [None]


def test_hold_equal_to_answered_time_is_billable_zero(tariff: Tariff) -> None:
    result = rate(tariff, [cdr("x", seconds=2, hold_ms=2000)])
    assert col(result, "status") == ["rated"]
    assert col(result, "billed_seconds") == [0]
    assert col(result, "plan_id") == ["pro"]
    assert col(result, "rate_prefix") == [None]
    assert col(result, "charge") == ["0.0000"]


def test_duplicates_in_batch_and_against_state(tariff: Tariff) -> None:
    first = rate(
        tariff, [cdr("a", kind="sms", callee="+"), cdr("a", kind="sms"), cdr("a", kind="sms")]
    )
    # The invalid record does not count as seen; the second valid one is the duplicate.
    assert col(first, "status") == ["invalid", "rated", "duplicate"]
    assert col(first, "reason")[2] == "duplicate"
    again = rate(tariff, [cdr("a", kind="sms"), cdr("a", tenant="post", kind="sms")], first.state)
    assert col(again, "status") == ["duplicate", "rated"]
    everyone = pl.lit(True)
    kept = first.state.prune_seen(_us(at(4, 0)), 86_400_000_000, everyone)
    assert kept.seen.height == 1, "the key is within a day of the watermark"
    pruned = first.state.prune_seen(_us(at(4, 0)), 1, everyone)
    assert pruned.seen.height == 0
    others = first.state.prune_seen(_us(at(4, 0)), 1, pl.col("tenant_id") == "someone else")
    assert others.seen.height == 1, "only the given tenants' keys are pruned"
    assert col(rate(tariff, [cdr("a", kind="sms")], pruned), "status") == ["rated"]


def _us(when: datetime) -> int:
    return (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def test_billable_time_floors_sub_millisecond_and_increments(tariff: Tariff) -> None:
    # 336 rate: first increment 1 s, increment 1 s, 0.30/min; post tenant has used no allowance
    # but 336 is under the "33" allowance, so use inbound... calls draw; use a fresh tenant month.
    start = at(3, 9)
    rows = [
        cdr("fill", tenant="post", callee="+336", seconds=120),  # uses the 120 s allowance
        cdr(
            "a",
            tenant="post",
            callee="+336",
            start=start,
            answer=start,
            end=start + timedelta(microseconds=1_999_999),
        ),
        cdr(
            "b",
            tenant="post",
            callee="+336",
            start=start,
            answer=start,
            end=start + timedelta(microseconds=1_999_999),
            hold_ms=999,
        ),
    ]
    result = rate(tariff, rows)
    assert col(result, "billed_seconds") == [120, 2, 1]
    assert col(result, "covered") == [120, 0, 0]
    assert col(result, "charge_micros") == [0, 10_000, 5_000]  # 0.30 * 2/60, 0.30 * 1/60
    assert col(result, "charge") == ["0.0000", "0.0100", "0.0050"]


def test_increment_rounding_first_and_next(tariff: Tariff) -> None:
    # peak 33 rate: F=30, I=6
    rows = [cdr(str(s), tenant="post", callee="+33123", seconds=s) for s in (1, 30, 31, 36, 37)]
    assert col(rate(tariff, rows), "billed_seconds") == [30, 30, 36, 36, 42]


def test_band_named_over_any_and_min_charge_offpeak(tariff: Tariff) -> None:
    rows = [
        cdr("fill", tenant="post", callee="+33123", seconds=120),
        cdr("peak", tenant="post", callee="+33123", seconds=60),  # Monday 10:00 Paris
        cdr("sat", tenant="post", callee="+33123", start=at(8, 9), seconds=1),  # Saturday
    ]
    result = rate(tariff, rows)
    assert col(result, "band") == ["peak", "peak", "any"]
    # peak: 0.01 + 0.0123456789 * 60/60 = 0.0223456789 -> 0.0223; offpeak: 60 s at 0.01 < min 0.02
    assert col(result, "charge_micros") == [0, 22_300, 20_000]
    # charged seconds 0 means charge 0 even with a connect fee
    assert col(result, "covered") == [120, 0, 0]


def test_longest_prefix_and_dated_rates(tariff: Tariff) -> None:
    rows = [
        cdr("fill", tenant="post", callee="+33123", seconds=120),
        cdr("old", tenant="post", callee="+33612", start=at(9, 22), seconds=60),
        cdr("new", tenant="post", callee="+33612", start=at(9, 23), seconds=60),  # 00:00 Paris 10th
    ]
    result = rate(tariff, rows)
    assert col(result, "rate_prefix") == ["33", "336", "336"]
    assert col(result, "charge_micros")[1:] == [300_000, 600_000]


def test_fallback_uses_its_own_bands_and_time_zone(tariff: Tariff) -> None:
    rows = [
        cdr("night", callee="+44123", start=at(3, 9), seconds=10),  # 04:00 New York
        cdr("day", callee="+44123", start=at(3, 15), seconds=10),  # 10:00 New York
        cdr("pre-dst", callee="+44123", start=at(7, 11, 30), seconds=10),  # 06:30 EST
        cdr("post-dst", callee="+44123", start=at(10, 11, 30), seconds=10),  # 07:30 EDT
    ]
    result = rate(tariff, rows)
    assert col(result, "plan_id") == ["base"] * 4
    assert col(result, "band") == ["any", "day", "any", "day"]
    assert col(result, "rate_prefix") == ["", "44", "", "44"]
    # Rounded with the tenant's plan (4 decimals, half_up), not the fallback's.
    assert col(result, "charge") == ["0.1667", "0.3333", "0.1667", "0.3333"]
    assert col(result, "currency") == ["EUR"] * 4


def test_unrated_and_ring_through(tariff: Tariff) -> None:
    rows = [
        cdr("sms-in", kind="sms", direction="inbound"),
        cdr("ring", kind="ring_through", direction="inbound", answer=None),
    ]
    result = rate(tariff, rows)
    assert col(result, "status") == ["unrated", "rated"]
    assert col(result, "reason") == ["no_rate", None]
    assert col(result, "plan_id") == [None, "pro"]
    assert col(result, "charge_micros") == [0, 1_000]
    assert col(result, "covered") == [None, 0]
    assert col(result, "billed_seconds") == [None, None]


def test_allowances_draw_in_order_and_per_month(tariff: Tariff) -> None:
    rows = [
        cdr("s1", kind="sms", segments=3),  # 2 covered of the 2-segment allowance
        cdr("s2", kind="sms"),
        cdr("s3", kind="sms", start=at(31, 23)),  # 1 April in Paris: a new period
        cdr("c1", callee="+33612", seconds=100),
        cdr("c2", callee="+33612", seconds=50),  # 20 left
        cdr("c3", callee="+44612", seconds=50),  # prefix not in the allowance
    ]
    result = rate(tariff, rows, RatingState.empty())
    assert col(result, "covered") == [2, 0, 1, 100, 20, 0]
    allowances = result.state.allowances.sort("period", "allowance_index")
    assert allowances.rows() == [
        ("pre", "2025-03", 0, 120),
        ("pre", "2025-03", 1, 2),
        ("pre", "2025-04", 1, 1),
    ]
    later = rate(tariff, [cdr("s4", kind="sms", start=at(31, 23, 30))], result.state)
    assert col(later, "covered") == [1]


def test_prepaid_events_and_balances(tariff: Tariff) -> None:
    # base plan: 2 decimals rounding up; 1 s = 1/60 -> 0.02
    rows = [cdr(f"c{i}", tenant="b", callee="+1", seconds=1) for i in range(4)]
    result = rate(tariff, rows)
    assert col(result, "charge_micros") == [20_000] * 4
    assert col(result, "balance_after_micros") == [30_000, 10_000, -10_000, -30_000]
    assert result.events.select("event", "cdr_id", "balance_micros").rows() == [
        ("low_balance", "c1", 10_000),
        ("exhausted", "c2", -10_000),
    ]
    assert result.events["threshold_micros"].to_list() == [20_000, 20_000]
    assert result.events["recharge_amount_micros"].to_list() == [5_000_000] * 2
    assert balances_frame(tariff, result.state).rows() == [("b", -30_000), ("pre", 1_000_000)]


def test_one_debit_crossing_both_low_first(tariff: Tariff) -> None:
    result = rate(tariff, [cdr("big", tenant="b", callee="+1", seconds=3)])  # 0.05
    assert result.events.select("event", "balance_micros").rows() == [
        ("low_balance", 0),
        ("exhausted", 0),
    ]


def test_topup_rearms_alarms(tariff: Tariff) -> None:
    first = rate(tariff, [cdr("big", tenant="b", callee="+1", seconds=3)])
    topups = adjustment_frame(
        [
            adjustment("u1", tenant="b", amount_micros=100_000, time=at(4, 0)),
            adjustment("u2", tenant="post", amount_micros=5, time=at(4, 0)),  # postpaid
        ]
    )
    result = apply_adjustments(tariff, topups, first.state)
    assert result.delta.balances.rows() == [("b", 100_000)]
    assert result.adjustments.get_column("status").to_list() == ["applied", "ignored"]
    assert result.adjustments.get_column("balance_after_micros").to_list() == [100_000, None]
    again = rate(tariff, [cdr("next", tenant="b", callee="+1", seconds=6)], result.state)  # 0.10
    assert [e for e in again.events["event"]] == ["low_balance", "exhausted"]
    resent = apply_adjustments(tariff, topups.head(1), result.state)
    assert resent.adjustments.get_column("status").to_list() == ["duplicate"]
    assert resent.delta.balances.height == 0


def test_postpaid_has_no_balance_or_events(tariff: Tariff) -> None:
    result = rate(tariff, [cdr("p", tenant="post", kind="ring_through", direction="inbound")])
    assert col(result, "balance_after_micros") == [None]
    assert result.events.height == 0
    assert result.state.balances.height == 0


def test_delta_contains_only_changes(tariff: Tariff) -> None:
    first = rate(tariff, [cdr("a", kind="sms")])
    second = rate(tariff, [cdr("b", tenant="post", kind="sms", segments=5)], first.state)
    assert second.delta.balances.height == 0
    assert second.delta.seen["cdr_id"].to_list() == ["b"]
    assert second.delta.allowances["tenant_id"].to_list() == ["post"]
    assert second.state.equals(first.state.merge(second.delta))


def test_state_round_trips_bytes(tariff: Tariff) -> None:
    state = rate(
        tariff, [cdr("a", kind="sms", segments=3), cdr("b", tenant="b", callee="+1", seconds=1)]
    ).state
    assert RatingState.from_bytes(state.to_bytes()).equals(state)
    only_b = state.filter_tenants(pl.col("tenant_id") == "b")
    assert set(only_b.seen["tenant_id"]) == {"b"}
    assert state.filter_tenants(pl.col("tenant_id") != "b").balances["tenant_id"].to_list() == [
        "pre"
    ]
