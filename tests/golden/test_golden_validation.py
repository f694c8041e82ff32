"""Rules 1 and 2: validation reasons in their order, and duplicates."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import call, cdr, rate, row, write_tariff

PLANS = """
plans:
  - {id: p, currency: EUR, timezone: UTC, decimals: 6}
"""
AT = "2026-03-02T10:00:00Z"
LATER = "2026-03-02T10:01:00Z"


@pytest.fixture
def tariff(tmp_path: Path) -> Path:
    rates = [
        row("p"),
        row("p", kind="sms", price="0.05"),
        row("p", kind="ring_through", price="0.01"),
    ]
    tenants = ["t1,p,postpaid,,,,false", "t2,p,prepaid,10,1,5,false"]
    return write_tariff(tmp_path, PLANS, rates, tenants)


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        # unknown tenant wins over every other problem
        (cdr(tenant="nobody", start=LATER, end=AT, callee="x"), "unknown_tenant"),
        (cdr(tenant="nobody", start=AT, end=LATER), "unknown_tenant"),
        # end before start; answer before start; answer after end
        (cdr(start=LATER, end=AT, hold_ms=-1, callee=""), "bad_times"),
        (cdr(start=LATER, answer=AT, end=LATER), "bad_times"),
        (cdr(start=AT, answer="2026-03-02T10:01:00.000001Z", end=LATER), "bad_times"),
        (cdr(kind="sms", start=LATER, end=AT, segments=0), "bad_times"),
        # hold < 0; hold above the answered time (60_000 ms answered)
        (cdr(start=AT, answer=AT, end=LATER, hold_ms=-1, callee="+"), "bad_hold"),
        (cdr(start=AT, answer=AT, end=LATER, hold_ms=60_001), "bad_hold"),
        # an unanswered call has no answered time, so any hold exceeds it
        (cdr(start=AT, end=LATER, hold_ms=1), "bad_hold"),
        # sms with segments < 1
        (cdr(kind="sms", start=AT, segments=0, callee="abc"), "bad_segments"),
        (cdr(kind="sms", start=AT, segments=-2), "bad_segments"),
        # callee after removing one leading '+' is empty or not all digits
        (cdr(start=AT, end=LATER, callee=""), "bad_number"),
        (cdr(start=AT, end=LATER, callee="+"), "bad_number"),
        (cdr(start=AT, end=LATER, callee="++33612345678"), "bad_number"),
        (cdr(start=AT, end=LATER, callee="+33 612345678"), "bad_number"),
        (cdr(start=AT, end=LATER, callee="+3361234567a"), "bad_number"),
        (cdr(kind="sms", start=AT, callee="33612345678+"), "bad_number"),
    ],
)
def test_reason_is_the_first_that_applies(
    tariff: Path, record: dict[str, object], reason: str
) -> None:
    got = rate(tariff, [record]).rated.row(0, named=True)
    assert (got["status"], got["reason"]) == ("invalid", reason)
    assert got["charge_micros"] == 0


@pytest.mark.parametrize(
    "record",
    [
        cdr(start=AT, answer=AT, end=LATER, hold_ms=60_000),  # hold == answered time
        cdr(start=AT, answer=LATER, end=LATER),  # answered at the very end
        cdr(start=AT, end=AT),  # zero-length unanswered
        cdr(start=AT, end=LATER, callee="33612345678"),  # no '+' at all
        cdr(kind="call", start=AT, end=LATER, segments=0),  # segments only matter for sms
    ],
)
def test_boundary_records_are_valid(tariff: Path, record: dict[str, object]) -> None:
    got = rate(tariff, [record]).rated.row(0, named=True)
    assert (got["status"], got["reason"], got["charge_micros"]) == ("rated", None, 0)


def test_invalid_records_are_not_charged_nor_debited(tariff: Path) -> None:
    records = [
        cdr(tenant="t2", kind="sms", start=AT, segments=0),
        cdr(tenant="t2", kind="sms", start=AT),  # 0.05 -> balance 10 - 0.05 = 9.95
    ]
    result = rate(tariff, records)
    assert result.rated["status"].to_list() == ["invalid", "rated"]
    assert result.rated["charge_micros"].to_list() == [0, 50_000]
    assert result.rated["balance_after_micros"][1] == 9_950_000


def test_duplicates_within_a_batch(tariff: Path) -> None:
    records = [
        cdr(cdr_id="a", kind="sms", start=AT),
        cdr(cdr_id="a", kind="sms", start=AT),  # same tenant and id -> duplicate
        cdr(cdr_id="a", kind="sms", start=AT, tenant="t2"),  # other tenant: not a duplicate
        cdr(cdr_id="a", kind="sms", start=AT, segments=0),  # invalid first, never duplicate
    ]
    rated = rate(tariff, records).rated
    assert rated["status"].to_list() == ["rated", "duplicate", "rated", "invalid"]
    assert rated["reason"].to_list()[3] == "bad_segments"
    assert rated["charge_micros"].to_list() == [50_000, 0, 50_000, 0]


def test_duplicates_across_batches_through_the_state(tariff: Path) -> None:
    first = rate(tariff, [cdr(cdr_id="a", kind="sms", start=AT)])
    second = rate(tariff, [cdr(cdr_id="a", kind="sms", start=AT)], first.state)
    assert second.rated["status"].to_list() == ["duplicate"]
    assert second.rated["charge_micros"].to_list() == [0]


def test_an_invalid_records_id_is_not_seen(tariff: Path) -> None:
    first = rate(tariff, [cdr(cdr_id="b", start=AT, end=LATER, callee="")])
    assert first.rated["status"].to_list() == ["invalid"]
    records = [
        cdr(cdr_id="b", kind="sms", start=AT, callee=""),  # invalid again
        cdr(cdr_id="b", kind="sms", start=AT),  # first valid one: rated
        cdr(cdr_id="b", kind="sms", start=AT),  # now a duplicate
    ]
    rated = rate(tariff, records, first.state).rated
    assert rated["status"].to_list() == ["invalid", "rated", "duplicate"]


def test_unrated_record_still_counts_as_seen(tmp_path: Path) -> None:
    # A valid record without a rate is 'unrated'; its id is seen all the same.
    tariff = write_tariff(tmp_path, PLANS, [row("p", prefix="44")], ["t1,p,postpaid,,,,false"])
    records = [call(AT, 60_000_000, cdr_id="u"), call(AT, 60_000_000, cdr_id="u")]
    rated = rate(tariff, records).rated
    assert rated["status"].to_list() == ["unrated", "duplicate"]
