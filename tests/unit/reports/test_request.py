"""Report requests: dates read in the tenant plan's zone (``--to`` inclusive), the current
month by default, every value checked."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from reportdeck import NOW_US, Deck

from rater.errors import UsageError
from rater.reports import build_request
from rater.reports.request import epoch_us


def _us(text: str, zone: str) -> int:
    return epoch_us(dt.datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)))


def _request(deck: Deck, tenant: str = "acme", **kw: object):  # type: ignore[no-untyped-def]
    given: dict[str, object] = {"output": Path("r.html"), "format": None, "now_us": NOW_US}
    given.update(kw)
    return build_request(
        deck.tariff, str(given.pop("report", "consumption")), tenant_id=tenant, **given
    )  # type: ignore[arg-type]


def test_dates_are_local_days_of_the_plan_zone_and_to_is_inclusive(deck: Deck) -> None:
    paris = _request(deck, "acme", start="2026-10-01", end="2026-10-31")
    assert paris.start_us == _us("2026-10-01T00:00", "Europe/Paris")
    assert paris.end_us == _us("2026-11-01T00:00", "Europe/Paris")  # the whole 31st, DST ended
    assert (paris.first_day, paris.last_day) == (dt.date(2026, 10, 1), dt.date(2026, 10, 31))
    assert paris.range_text == "2026-10-01 to 2026-10-31 (Europe/Paris)"
    york = _request(deck, "hooli", start="2026-11-01", end="2026-11-01")
    assert york.end_us - york.start_us == 25 * 3600 * 1_000_000  # the day the clocks go back
    assert york.start_us == _us("2026-11-01T00:00", "America/New_York")


def test_the_default_is_the_current_month_and_usage_is_seen_now(deck: Deck) -> None:
    request = _request(deck, "acme", report="usage")
    assert (request.first_day, request.last_day) == (dt.date(2026, 11, 1), dt.date(2026, 11, 30))
    assert request.as_of_us == NOW_US
    given = _request(deck, "acme", report="usage", end="2026-10-15")
    assert given.as_of_us == _us("2026-10-16T00:00", "Europe/Paris") - 1


def test_instants_and_offsets(deck: Deck) -> None:
    request = _request(deck, "acme", start="2026-11-02T08:30", end="2026-11-02T09:00:00+00:00")
    assert request.start_us == _us("2026-11-02T08:30", "Europe/Paris")
    assert request.end_us == _us("2026-11-02T09:00", "UTC")


def test_formats_come_from_the_flag_or_the_file_name(deck: Deck) -> None:
    assert _request(deck, output=Path("x.PDF")).format == "pdf"
    assert _request(deck, output=Path("x.htm")).format == "html"
    assert _request(deck, output=Path("x.pdf"), format="csv").format == "csv"
    with pytest.raises(UsageError, match="--format: missing"):
        _request(deck, output=Path("report"))


def test_filters_are_kept_once_each_in_order(deck: Deck) -> None:
    request = _request(
        deck, teams=["b", "a", "b"], users=["x"], kinds=["sms", "call", "sms"], direction="inbound"
    )
    assert request.teams == ("b", "a") and request.kinds == ("sms", "call")
    assert request.filters == (
        ("Teams", "b, a"),
        ("Users", "x"),
        ("Kinds", "sms, call"),
        ("Direction", "inbound"),
    )
    with pytest.raises(UsageError, match="1001 values given"):
        _request(deck, teams=[f"t{i}" for i in range(1001)])


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"start": "2026-02-30"}, "--from '2026-02-30': not a date"),
        ({"end": "2100-01-01"}, "--to '2100-01-01': not a date"),
        ({"start": "  "}, "not a date"),
        ({"start": "2026-11-05", "end": "2026-11-04"}, "is not before --to"),
        ({"show": "both"}, "--show 'both'"),
        ({"report": "activity"}, "is postpaid"),
        ({"output": None}, "--output is required"),
    ],
)
def test_bad_values_say_which_flag_and_the_fix(
    deck: Deck, kw: dict[str, object], message: str
) -> None:
    with pytest.raises(UsageError, match=message) as err:
        _request(deck, **kw)
    assert "Fix:" in str(err.value) and "\n" not in str(err.value)
