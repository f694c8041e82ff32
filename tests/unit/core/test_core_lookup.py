"""Rate selection corner cases of the prefix/band/date index and the callee check."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from coredeck import at, cdr, frame, write_tariff

from rater.core.rating import rate_batch
from rater.core.state import RatingState
from rater.core.tariff import Tariff, build_tariff
from rater.tariff_files import load_tariff

PLANS = """\
plans:
  - id: p
    currency: EUR
    timezone: Europe/Paris
    decimals: 2
    bands:
      - {name: peak, days: [mon, tue, wed, thu, fri], from: "08:00", to: "20:00"}
  - id: lmt
    currency: EUR
    timezone: Africa/Monrovia
    decimals: 2
    bands:
      - {name: day, days: [mon, tue, wed, thu, fri, sat, sun], from: "08:00", to: "20:00"}
"""
RATES = """\
plan_id,kind,direction,prefix,band,effective_from,effective_to,connect_fee,price,first_increment,increment,min_charge
p,sms,outbound,3,any,2025-01-01T00:00:00Z,,,0.01,,,
p,sms,outbound,330,any,2025-01-01T00:00:00Z,,,0.02,,,
p,sms,outbound,3301,peak,2025-01-01T00:00:00Z,,,0.03,,,
p,sms,outbound,3302,any,2025-03-05T00:00:00Z,,,0.04,,,
p,sms,outbound,123456789012345,any,2025-01-01T00:00:00Z,,,0.05,,,
lmt,sms,outbound,,any,1960-01-01T00:00:00Z,,,0.10,,,
lmt,sms,outbound,,day,1960-01-01T00:00:00Z,,,0.20,,,
"""
TENANTS = """\
tenant_id,plan_id,billing,opening_balance,low_balance_threshold,recharge_amount,auto_recharge
a,p,postpaid,,,,false
m,lmt,postpaid,,,,false
"""


@pytest.fixture(scope="module")
def deck(tmp_path_factory: pytest.TempPathFactory) -> Tariff:
    directory: Path = tmp_path_factory.mktemp("lookup")
    return load_tariff(write_tariff(directory, PLANS, RATES, TENANTS))


def _variants(tariff: Tariff) -> list[Tariff]:
    segmented = build_tariff(
        tariff.plans, tariff.tenants, tariff.rates, tariff.price_scale, dense_limit=0
    )
    assert segmented.rate_index.dense is None
    return [tariff, segmented]


def _sms(cdr_id: str, callee: str, when: datetime, tenant: str = "a") -> dict[str, object]:
    return cdr(cdr_id, tenant=tenant, kind="sms", callee=callee, start=when, segments=1)


@pytest.mark.parametrize(
    ("callee", "when", "prefix", "band"),
    [
        # "+33" padded with zeros falls in the interval of "330" but is not its prefix.
        ("+33", at(3, 9), "3", "any"),
        ("+330", at(3, 9), "330", "any"),
        ("+3300", at(3, 9), "330", "any"),
        # A named-band row applies in its band only; otherwise the shorter prefix.
        ("+33012", at(3, 9), "3301", "peak"),
        ("+33012", at(3, 21), "330", "any"),
        # A row not yet effective falls back to the shorter prefix, then applies.
        ("+33021", at(4, 9), "330", "any"),
        ("+33021", at(5, 9), "3302", "any"),
        # 15 digits, the most E.164 allows (more is bad_number, below).
        ("+123456789012345", at(3, 9), "123456789012345", "any"),
        ("+12345678901234", at(3, 9), None, None),
    ],
)
def test_longest_applicable_prefix(
    deck: Tariff, callee: str, when: datetime, prefix: str | None, band: str | None
) -> None:
    for variant in _variants(deck):
        rated = rate_batch(variant, frame([_sms("x", callee, when)]), RatingState.empty()).rated
        row = rated.row(0, named=True)
        assert (row["rate_prefix"], row["band"]) == (prefix, band), callee
        assert row["status"] == ("rated" if prefix is not None else "unrated")


@pytest.mark.parametrize(
    "callee",
    [
        *("-33", "+-33", "++33", "+", "", "3 3", "+33a", "+1234567890123456789x", "٣٣", "+0x1"),
        # More than 15 digits (rule 1), however many: never looked up, never a crash.
        *("1234567890123456", "+1234567890123456789012", "+" + "3" * 35, "9" * 60),
    ],
)
def test_callee_that_is_not_digits_is_bad_number(deck: Tariff, callee: str) -> None:
    rated = rate_batch(deck, frame([_sms("x", callee, at(3, 9))]), RatingState.empty()).rated
    assert rated.select("status", "reason").row(0) == ("invalid", "bad_number")


def test_times_before_2000_are_bad_times_not_rated(deck: Tariff) -> None:
    """Monrovia kept -0:44:30 until 1972; since the contract's range starts in 2000, no
    rating time the core sees has an offset that is not a whole number of minutes."""
    rows = [_sms("old", "+1", datetime(1965, 6, 1, 8, 44, 30, tzinfo=UTC), tenant="m")]
    rated = rate_batch(deck, frame(rows), RatingState.empty()).rated
    assert rated.select("status", "reason").row(0) == ("invalid", "bad_times")


def test_dense_and_segmented_tables_agree(deck: Tariff) -> None:
    rows = [
        _sms(f"c{i}", callee, at(day, hour))
        for i, (callee, day, hour) in enumerate(
            (c, d, h)
            for c in ("+3", "+33", "+330", "+3301", "+3302", "+34", "+9")
            for d in (3, 4, 5, 8)
            for h in (7, 9, 21)
        )
    ]
    expected = rate_batch(deck, frame(rows), RatingState.empty()).rated
    for variant in _variants(deck)[1:]:
        got = rate_batch(variant, frame(rows), RatingState.empty()).rated
        assert got.equals(expected)
    # Every callee but "+9" starts with a prefix of the deck.
    assert expected.filter(pl.col("status") == "rated").height == 72
