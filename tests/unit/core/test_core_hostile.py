"""No value a CDR field can carry stops the core: each record gets a status, never an
exception, and nothing absurd is ever charged (rule 1 of the amended contract)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
from coredeck import write_tariff
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rater.core.columns import CDR_SCHEMA, TIME
from rater.core.money import MAX_CHARGE_MICROS
from rater.core.rating import VALID_FROM_US, VALID_UNTIL_US, rate_batch
from rater.core.state import RatingState
from rater.core.tariff import Tariff
from rater.tariff_files import load_tariff

_TARIFF: dict[str, Tariff] = {}
INT64 = (-(2**63), 2**63 - 1)
INT32 = (-(2**31), 2**31 - 1)
STATUSES = {"rated", "unrated", "invalid", "duplicate"}


def _tariff(tmp: Path) -> Tariff:
    if "t" not in _TARIFF:
        _TARIFF["t"] = load_tariff(write_tariff(tmp / "hostile-tariff"))
    return _TARIFF["t"]


near = datetime(2026, 3, 2, 9, tzinfo=UTC)
_US = timedelta(microseconds=1)
plausible_us = st.integers(
    (near - datetime(1970, 1, 1, tzinfo=UTC)) // _US - 10**10,
    (near - datetime(1970, 1, 1, tzinfo=UTC)) // _US + 10**10,
)
any_us = st.one_of(
    st.integers(*INT64),
    plausible_us,
    st.sampled_from([VALID_FROM_US - 1, VALID_FROM_US, VALID_UNTIL_US - 1, VALID_UNTIL_US]),
)
text = st.one_of(
    st.text(max_size=70),
    st.sampled_from(["", "+", "++33", "-33", "+" + "3" * 35, "9" * 60, "+33612345678", "٣٣", "+1"]),
    st.from_regex(r"\+?[0-9]{1,20}", fullmatch=True),
)
row = st.fixed_dictionaries(
    {
        "cdr_id": st.one_of(st.text(max_size=60), st.sampled_from(["a", "b"])),
        "tenant_id": st.sampled_from(["pre", "post", "b", "nobody", "", "\x00"]),
        "user_id": st.one_of(st.none(), st.text(max_size=10)),
        "team_id": st.one_of(st.none(), st.text(max_size=10)),
        "kind": st.sampled_from(["call", "sms", "ring_through", "fax", ""]),
        "direction": st.sampled_from(["inbound", "outbound", "sideways"]),
        "caller": text,
        "callee": text,
        "start_time": any_us,
        "answer_time": st.one_of(st.none(), any_us),
        "end_time": any_us,
        "hold_ms": st.one_of(st.none(), st.integers(*INT64)),
        "segments": st.one_of(st.none(), st.integers(*INT32)),
    }
)


def _frame(rows: list[dict[str, object]]) -> pl.DataFrame:
    plain = {k: (pl.Int64() if v == TIME else v) for k, v in CDR_SCHEMA.items()}
    frame = pl.DataFrame(rows, schema=plain)
    return frame.with_columns(pl.col(c).cast(TIME) for c, t in CDR_SCHEMA.items() if t == TIME)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(rows=st.lists(row, max_size=30))
def test_any_field_values_give_a_status_and_never_raise(
    tmp_path_factory: object, rows: list[dict[str, object]]
) -> None:
    tariff = _tariff(tmp_path_factory.mktemp("t"))  # type: ignore[attr-defined]
    result = rate_batch(tariff, _frame(rows), RatingState.empty())
    rated = result.rated
    assert rated.height == len(rows)
    assert set(rated.get_column("status").to_list()) <= STATUSES
    charges = rated.get_column("charge_micros")
    assert charges.min() is None or 0 <= charges.min() <= charges.max() <= MAX_CHARGE_MICROS  # type: ignore[operator]
    ok = rated.filter(pl.col("status") != "invalid")
    for column in ("start_time", "end_time"):
        us = ok.get_column(column).dt.epoch("us")
        assert us.is_between(VALID_FROM_US, VALID_UNTIL_US - 1).all()
    digits = ok.get_column("callee").str.strip_prefix("+")
    assert digits.str.contains(r"^[0-9]{1,15}$").all()
    # The state it returns can be used again.
    rate_batch(tariff, _frame(rows), result.state)


def test_the_amended_rule_1_in_order(tmp_path: Path) -> None:
    tariff = load_tariff(write_tariff(tmp_path / "t"))
    start = datetime(2026, 3, 2, 9, tzinfo=UTC)

    def one(**fields: object) -> dict[str, object]:
        base: dict[str, object] = {
            "cdr_id": f"x{len(cases)}",
            "tenant_id": "post",
            "user_id": None,
            "team_id": None,
            "kind": "call",
            "direction": "outbound",
            "caller": "+331",
            "callee": "+33612345678",
            "start_time": start,
            "answer_time": start + timedelta(seconds=5),
            "end_time": start + timedelta(seconds=65),
            "hold_ms": 0,
            "segments": 1,
        }
        return {**base, **fields}

    cases: list[tuple[dict[str, object], str | None]] = []
    add = cases.append
    add((one(), None))
    add((one(start_time=datetime(1999, 12, 31, 23, 59, tzinfo=UTC), answer_time=None), "bad_times"))
    add((one(end_time=datetime(2100, 1, 1, tzinfo=UTC)), "bad_times"))
    add((one(end_time=datetime(9999, 12, 31, tzinfo=UTC)), "bad_times"))
    add((one(end_time=start + timedelta(seconds=86_400)), None))  # exactly max_call_seconds
    add((one(end_time=start + timedelta(seconds=86_400, microseconds=1)), "bad_times"))
    add((one(kind="sms", answer_time=None, end_time=start + timedelta(days=2)), "bad_times"))
    add((one(callee="+" + "1" * 15), None))
    add((one(callee="+" + "1" * 16), "bad_number"))
    add((one(callee="1" * 16), "bad_number"))
    add((one(callee="+" + "3" * 40), "bad_number"))
    # The first reason that applies, in the contract's order.
    add((one(tenant_id="nobody", end_time=start - timedelta(1), callee="x"), "unknown_tenant"))
    add((one(end_time=datetime(2200, 1, 1, tzinfo=UTC), hold_ms=-1, callee="x"), "bad_times"))
    add((one(hold_ms=-1, callee="+" + "1" * 16), "bad_hold"))
    add((one(kind="sms", segments=0, callee="+" + "1" * 16), "bad_segments"))
    frame = pl.DataFrame([c for c, _ in cases], schema=CDR_SCHEMA)
    rated = rate_batch(tariff, frame, RatingState.empty()).rated
    got = rated.get_column("reason").to_list()
    assert got == [reason for _, reason in cases]


def test_an_sms_too_large_to_charge_exactly_is_bad_segments(tmp_path: Path) -> None:
    tariff = load_tariff(write_tariff(tmp_path / "t"))
    start = datetime(2026, 3, 2, 9, tzinfo=UTC)
    rows = [
        {
            "cdr_id": f"s{n}",
            "tenant_id": "pre",
            "kind": "sms",
            "direction": "outbound",
            "caller": "+331",
            "callee": "+33612345678",
            "user_id": None,
            "team_id": None,
            "start_time": start,
            "answer_time": None,
            "end_time": start,
            "hold_ms": 0,
            "segments": n,
        }
        for n in (3, 2**31 - 1)
    ]
    rated = rate_batch(tariff, pl.DataFrame(rows, schema=CDR_SCHEMA), RatingState.empty())
    assert rated.rated.get_column("reason").to_list() == [None, "bad_segments"]
    assert rated.rated.get_column("balance_after_micros").to_list()[1] > -MAX_CHARGE_MICROS
