"""Properties: splitting a stream into batches changes nothing; prepaid money is conserved."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
from coredeck import at, cdr, frame, write_tariff
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rater.core.rating import balances_frame, rate_batch
from rater.core.state import RatingState
from rater.core.tariff import Tariff, build_tariff
from rater.tariff_files import load_tariff

_TARIFF: dict[str, Tariff] = {}


def _tariff(tmp: Path) -> Tariff:
    if "t" not in _TARIFF:
        _TARIFF["t"] = load_tariff(write_tariff(tmp / "prop-tariff"))
    return _TARIFF["t"]


records = st.lists(
    st.builds(
        lambda cid, tenant, kind, direction, callee, day, minute, seconds, hold, segments: cdr(
            f"c{cid}",
            tenant=tenant,
            kind=kind,
            direction=direction,
            callee=callee,
            start=at(day, 0) + timedelta(minutes=minute),
            answer=None if seconds is None else at(day, 0) + timedelta(minutes=minute, seconds=1),
            end=at(day, 0) + timedelta(minutes=minute, seconds=1 + (seconds or 0)),
            hold_ms=hold,
            segments=segments,
        ),
        st.integers(0, 25),
        st.sampled_from(["pre", "post", "b", "nobody"]),
        st.sampled_from(["call", "call", "sms", "ring_through"]),
        st.sampled_from(["inbound", "outbound", "outbound"]),
        st.sampled_from(["+33123", "+33612", "+44123", "+1", "+", "+336"]),
        st.integers(1, 31),
        st.integers(0, 1439),
        st.one_of(st.none(), st.integers(0, 400)),
        st.one_of(st.none(), st.integers(0, 3000)),
        st.one_of(st.none(), st.integers(0, 4)),
    ),
    max_size=40,
)


def _run(
    tariff: Tariff, rows: list[dict[str, Any]], cuts: list[int]
) -> tuple[pl.DataFrame, pl.DataFrame, RatingState]:
    cdrs = frame(rows)
    state = RatingState.empty()
    rated, events = [], []
    bounds = [0, *sorted(set(c % (len(rows) + 1) for c in cuts)), len(rows)]
    for lo, hi in itertools.pairwise(bounds):
        result = rate_batch(tariff, cdrs.slice(lo, hi - lo), state)
        assert result.state.equals(state.merge(result.delta))
        state = result.state
        rated.append(result.rated)
        events.append(result.events)
    return pl.concat(rated), pl.concat(events), state


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=records, cuts=st.lists(st.integers(0, 40), max_size=4))
def test_splitting_into_batches_changes_nothing(
    tmp_path: Path, rows: list[dict[str, Any]], cuts: list[int]
) -> None:
    tariff = _tariff(tmp_path)
    whole_rated, whole_events, whole_state = _run(tariff, rows, [])
    split_rated, split_events, split_state = _run(tariff, rows, cuts)
    assert split_rated.equals(whole_rated)
    assert split_events.equals(whole_events)
    assert split_state.equals(whole_state)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=records)
def test_prepaid_debits_equal_balance_change(tmp_path: Path, rows: list[dict[str, Any]]) -> None:
    tariff = _tariff(tmp_path)
    rated, _, state = _run(tariff, rows, [7, 19])
    closing = dict(balances_frame(tariff, state).rows())
    for tenant in ("pre", "b"):
        debits = rated.filter(pl.col("tenant_id") == tenant)["charge_micros"].sum()
        assert tariff.tenants[tenant].opening_balance_micros - closing[tenant] == debits
    charged = rated.filter(pl.col("status") != "rated")["charge_micros"]
    assert charged.eq(0).all()


def _variants(tariff: Tariff) -> list[Tariff]:
    """The same tariff driving the engine's other code paths (same results expected)."""
    segmented = build_tariff(
        tariff.plans, tariff.tenants, tariff.rates, tariff.price_scale, dense_limit=0
    )
    assert segmented.rate_index.dense is None and tariff.rate_index.dense is not None
    return [
        segmented,
        dataclasses.replace(tariff, max_price_num=2**70),  # Int128 charges
        dataclasses.replace(tariff, max_price_num=2**130),  # Python-integer charges
    ]


far_apart = st.lists(
    st.builds(
        lambda cid, tenant, kind, callee, day, seconds: cdr(
            f"c{cid}",
            tenant=tenant,
            kind=kind,
            callee=callee,
            start=at(1, 0) + timedelta(days=day),
            answer=at(1, 0) + timedelta(days=day, seconds=1),
            end=at(1, 0) + timedelta(days=day, seconds=1 + seconds),
        ),
        st.integers(0, 5),
        st.sampled_from(["pre", "post", "b"]),
        st.sampled_from(["call", "sms"]),
        st.sampled_from(["+33123", "+44123", "+336"]),
        st.integers(0, 900),
        st.integers(0, 400),
    ),
    max_size=20,
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=records, spread=far_apart)
def test_engine_paths_agree(
    tmp_path: Path, rows: list[dict[str, Any]], spread: list[dict[str, Any]]
) -> None:
    """Dense/segmented rate tables, Int64/Int128/Python charges, dense/sparse time tables."""
    tariff = _tariff(tmp_path)
    for batch in (rows, spread, rows + spread):
        if not batch:
            continue
        expected = rate_batch(tariff, frame(batch), RatingState.empty())
        for variant in _variants(tariff):
            got = rate_batch(variant, frame(batch), RatingState.empty())
            assert got.rated.equals(expected.rated)
            assert got.events.equals(expected.events)
            assert got.state.equals(expected.state)
