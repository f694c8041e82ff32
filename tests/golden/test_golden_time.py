"""Rules 3-6: rating time, billable time, billed seconds and bands, worked by hand.

Every case prices calls at 0.60 per minute, i.e. 0.01 = 10_000 micros per billed
second, so the expected charge is billed_seconds * 10_000 micros.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from .helpers import call, cdr, rate, row, write_tariff

FLAT = """
plans:
  - id: flat
    currency: EUR
    timezone: UTC
    decimals: 6
    rounding: half_up
"""
TENANT = "t1,flat,postpaid,,,,false"
PER_SECOND = 10_000  # 0.60 / 60 s = 0.01 EUR


@pytest.fixture
def increments(tmp_path: Path) -> Path:
    # One prefix per increment pair: +31 60/60, +32 30/6, +34 6/6, +36 1/1.
    rates = [
        row("flat", prefix="31", first=60, inc=60),
        row("flat", prefix="32", first=30, inc=6),
        row("flat", prefix="34", first=6, inc=6),
        row("flat", prefix="36", first=1, inc=1),
    ]
    return write_tariff(tmp_path, FLAT, rates, [TENANT])


# billed = 0 if b == 0; F if b <= F*1000; else F + ceil((b - F*1000) / (I*1000)) * I
@pytest.mark.parametrize(
    ("prefix", "billable_ms", "billed"),
    [
        ("31", 0, 0),
        ("31", 1, 60),  # b <= 60_000 -> F
        ("31", 60_000, 60),  # exactly F
        ("31", 60_001, 120),  # 60 + ceil(1 / 60_000) * 60
        ("31", 150_000, 180),  # 60 + ceil(90_000 / 60_000) * 60 = 60 + 2*60
        ("32", 0, 0),
        ("32", 1, 30),
        ("32", 30_000, 30),
        ("32", 30_001, 36),  # 30 + ceil(1 / 6000) * 6
        ("32", 61_000, 66),  # 30 + ceil(31_000 / 6000) * 6 = 30 + 6*6
        ("34", 0, 0),
        ("34", 1, 6),
        ("34", 6_000, 6),
        ("34", 6_001, 12),  # 6 + ceil(1 / 6000) * 6
        ("36", 0, 0),
        ("36", 1, 1),
        ("36", 1_000, 1),
        ("36", 1_001, 2),  # 1 + ceil(1 / 1000) * 1
        ("36", 59_500, 60),  # 1 + ceil(58_500 / 1000) = 1 + 59
    ],
)
def test_billed_seconds_per_increment(
    increments: Path, prefix: str, billable_ms: int, billed: int
) -> None:
    result = rate(
        increments, [call("2026-03-02T10:00:00Z", billable_ms * 1000, callee=f"+{prefix}123456")]
    )
    got = result.rated.row(0, named=True)
    assert got["status"] == "rated"
    assert got["reason"] is None
    assert got["billed_seconds"] == billed
    assert got["charge_micros"] == billed * PER_SECOND
    assert got["currency"] == "EUR"


@pytest.mark.parametrize(
    ("billable_us", "billed"),
    [
        (6_000_999, 6),  # 6000.999 ms -> 6000 ms: the sub-millisecond part is dropped
        (6_001_000, 12),  # 6001 ms -> 6 + 6
        (999, 0),  # 0.999 ms -> 0 ms -> nothing billed
        (1_000, 6),  # 1 ms -> first increment
    ],
)
def test_sub_millisecond_parts_are_dropped(increments: Path, billable_us: int, billed: int) -> None:
    result = rate(increments, [call("2026-03-02T10:00:00Z", billable_us, callee="+34123456")])
    got = result.rated.row(0, named=True)
    assert (got["status"], got["billed_seconds"]) == ("rated", billed)
    assert got["charge_micros"] == billed * PER_SECOND


def test_hold_and_ring_time_are_not_billed(increments: Path) -> None:
    records = [
        # answered 20 s after setup, 60 s talk: ring time not billed -> 60 s (6/6)
        call("2026-03-02T10:00:00Z", 60_000_000, ring_s=20, callee="+34123456"),
        # 120 s answered, 30 s on hold: b = 90_000 ms -> 6/6: 90 s
        call("2026-03-02T10:00:00Z", 120_000_000, hold_ms=30_000, callee="+34123456"),
        # same on 60/60: 60 + ceil(30_000 / 60_000) * 60 = 120 s
        call("2026-03-02T10:00:00Z", 120_000_000, hold_ms=30_000, callee="+31123456"),
        # 60_000.5 ms answered, 500 ms hold: floor(60_000.5) - 500 = 59_500 ms -> 1/1: 60 s
        call("2026-03-02T10:00:00Z", 60_000_500, hold_ms=500, callee="+36123456"),
        # hold equal to the answered time is valid: billable 0 -> rated at 0
        call("2026-03-02T10:00:00Z", 10_000_000, hold_ms=10_000, callee="+34123456"),
    ]
    rated = rate(increments, records).rated
    assert rated["status"].to_list() == ["rated"] * 5
    assert rated["billed_seconds"].to_list() == [60, 90, 120, 60, 0]
    assert rated["charge_micros"].to_list() == [
        60 * PER_SECOND,
        90 * PER_SECOND,
        120 * PER_SECOND,
        60 * PER_SECOND,
        0,
    ]


def test_unanswered_call_is_rated_at_zero(increments: Path) -> None:
    record = cdr(start="2026-03-02T10:00:00Z", end="2026-03-02T10:00:45Z", callee="+31123456")
    got = rate(increments, [record]).rated.row(0, named=True)
    assert got["status"] == "rated"
    assert got["billed_seconds"] == 0
    assert got["charge_micros"] == 0
    assert Decimal(got["charge"]) == 0


def test_billable_zero_call_needs_no_rate(tmp_path: Path) -> None:
    # The plan has no call rows at all: a call with billable time 0 is still rated at 0,
    # while an answered call with talk time has no rate.
    tariff = write_tariff(tmp_path, FLAT, [row("flat", kind="sms", price="0.05")], [TENANT])
    records = [
        cdr(start="2026-03-02T10:00:00Z", end="2026-03-02T10:00:30Z"),
        call("2026-03-02T10:00:00Z", 5_000_000),
    ]
    rated = rate(tariff, records).rated
    assert rated["status"].to_list() == ["rated", "unrated"]
    assert rated["reason"].to_list() == [None, "no_rate"]
    assert rated["charge_micros"].to_list() == [0, 0]


# ----- bands ---------------------------------------------------------------------------------

EDGES = """
plans:
  - id: edges
    currency: EUR
    timezone: UTC
    decimals: 6
    bands:
      - {name: peak, days: [mon, tue, wed, thu, fri], from: "08:00", to: "20:00"}
      - {name: weekend, days: [sat, sun], from: "00:00", to: "24:00"}
      - {name: evening, days: [mon, tue, wed, thu, fri], from: "20:00", to: "24:00"}
      - {name: night, days: [mon, tue, wed, thu, fri, sat, sun], from: "00:00", to: "08:00"}
"""
# Each band its own price per minute, so the charge of a 60 s call names the band.
EDGE_PRICES = {"peak": "1.20", "weekend": "0.30", "evening": "0.60", "night": "0.90"}


@pytest.mark.parametrize(
    ("at", "band"),
    [
        ("2026-03-06T07:59:59.999999Z", "night"),  # Friday, just before 08:00
        ("2026-03-06T08:00:00Z", "peak"),  # "from" is inclusive
        ("2026-03-06T19:59:59.999999Z", "peak"),
        ("2026-03-06T20:00:00Z", "evening"),  # "to" is exclusive
        ("2026-03-06T23:59:59.999999Z", "evening"),  # "24:00" covers the last instant
        ("2026-03-07T00:00:00Z", "weekend"),  # Saturday midnight
        ("2026-03-07T10:00:00Z", "weekend"),  # Saturday is not a peak day
        ("2026-03-09T00:00:00Z", "night"),  # Monday midnight: weekend ended
    ],
)
def test_band_edges(tmp_path: Path, at: str, band: str) -> None:
    rates = [row("edges", band=b, price=p) for b, p in EDGE_PRICES.items()]
    tariff = write_tariff(tmp_path, EDGES, rates, ["t1,edges,postpaid,,,,false"])
    got = rate(tariff, [call(at, 60_000_000)]).rated.row(0, named=True)
    assert got["status"] == "rated"
    assert got["band"] == band
    # 60 s at the band's price per minute
    assert got["charge_micros"] == int(EDGE_PRICES[band].replace(".", "")) * 10_000


def _one_band_plan(plan_id: str, tz: str, name: str, start: str, stop: str) -> str:
    return f"""
plans:
  - id: {plan_id}
    currency: EUR
    timezone: {tz}
    decimals: 6
    bands:
      - {{name: {name}, days: [mon, tue, wed, thu, fri, sat, sun], from: "{start}", to: "{stop}"}}
      - {{name: other, days: [mon, tue, wed, thu, fri, sat, sun], from: "00:00", to: "24:00"}}
"""


@pytest.mark.parametrize(
    ("tz", "name", "start", "stop", "at", "band"),
    [
        # Europe/Paris springs forward 2026-03-29 01:00Z (02:00 CET -> 03:00 CEST).
        ("Europe/Paris", "late", "01:00", "02:00", "2026-03-29T00:59:59Z", "late"),  # 01:59:59 CET
        ("Europe/Paris", "late", "01:00", "02:00", "2026-03-29T01:00:00Z", "other"),  # 03:00 CEST
        ("Europe/Paris", "late", "01:00", "02:00", "2026-03-28T00:30:00Z", "late"),  # 01:30 CET
        ("Europe/Paris", "late", "01:00", "02:00", "2026-03-30T00:30:00Z", "other"),  # 02:30 CEST
        ("Europe/Paris", "late", "01:00", "02:00", "2026-03-29T23:30:00Z", "late"),  # 01:30 CEST
        # Europe/Paris falls back 2026-10-25 01:00Z (03:00 CEST -> 02:00 CET).
        ("Europe/Paris", "two", "02:00", "03:00", "2026-10-25T00:59:59Z", "two"),  # 02:59:59 CEST
        ("Europe/Paris", "two", "02:00", "03:00", "2026-10-25T01:00:00Z", "two"),  # 02:00 CET again
        ("Europe/Paris", "two", "02:00", "03:00", "2026-10-25T02:00:00Z", "other"),  # 03:00 CET
        ("Europe/Paris", "two", "02:00", "03:00", "2026-10-25T00:00:00Z", "two"),  # 02:00 CEST
        ("Europe/Paris", "two", "02:00", "03:00", "2026-10-24T23:59:59Z", "other"),  # 01:59:59 CEST
        # America/New_York springs forward 2026-03-08 07:00Z (02:00 EST -> 03:00 EDT).
        (
            "America/New_York",
            "late",
            "01:00",
            "02:00",
            "2026-03-08T06:59:59Z",
            "late",
        ),  # 01:59:59 EST
        (
            "America/New_York",
            "late",
            "01:00",
            "02:00",
            "2026-03-08T07:00:00Z",
            "other",
        ),  # 03:00 EDT
        ("America/New_York", "late", "01:00", "02:00", "2026-03-09T05:30:00Z", "late"),  # 01:30 EDT
        # America/New_York falls back 2026-11-01 06:00Z (02:00 EDT -> 01:00 EST).
        (
            "America/New_York",
            "late",
            "01:00",
            "02:00",
            "2026-11-01T05:59:59Z",
            "late",
        ),  # 01:59:59 EDT
        ("America/New_York", "late", "01:00", "02:00", "2026-11-01T06:00:00Z", "late"),  # 01:00 EST
        (
            "America/New_York",
            "late",
            "01:00",
            "02:00",
            "2026-11-01T06:59:59Z",
            "late",
        ),  # 01:59:59 EST
        (
            "America/New_York",
            "late",
            "01:00",
            "02:00",
            "2026-11-01T07:00:00Z",
            "other",
        ),  # 02:00 EST
        # Asia/Kolkata is UTC+05:30 all year.
        ("Asia/Kolkata", "day", "09:00", "18:00", "2026-03-02T03:29:59Z", "other"),  # 08:59:59
        ("Asia/Kolkata", "day", "09:00", "18:00", "2026-03-02T03:30:00Z", "day"),  # 09:00
        ("Asia/Kolkata", "day", "09:00", "18:00", "2026-03-02T12:29:59Z", "day"),  # 17:59:59
        ("Asia/Kolkata", "day", "09:00", "18:00", "2026-03-02T12:30:00Z", "other"),  # 18:00
        # America/St_Johns is UTC-03:30 in winter.
        ("America/St_Johns", "day", "09:00", "18:00", "2026-01-05T12:29:59Z", "other"),  # 08:59:59
        ("America/St_Johns", "day", "09:00", "18:00", "2026-01-05T12:30:00Z", "day"),  # 09:00
    ],
)
def test_band_in_plan_time_zone(
    tmp_path: Path, tz: str, name: str, start: str, stop: str, at: str, band: str
) -> None:
    plans = _one_band_plan("local", tz, name, start, stop)
    # named band 1.20/min, other 0.60/min -> a 60 s call costs 1_200_000 or 600_000 micros
    rates = [row("local", band=name, price="1.20"), row("local", band="other", price="0.60")]
    tariff = write_tariff(tmp_path, plans, rates, ["t1,local,postpaid,,,,false"])
    got = rate(tariff, [call(at, 60_000_000)]).rated.row(0, named=True)
    assert got["band"] == band
    assert got["charge_micros"] == (1_200_000 if band == name else 600_000)


def test_rating_time_is_answer_time_else_start_time(tmp_path: Path) -> None:
    # Band 'early' is [08:00, 09:00) UTC. Set up at 07:59:50, answered 08:00:00 -> early.
    plans = _one_band_plan("local", "UTC", "early", "08:00", "09:00")
    rates = [
        row("local", band="early", price="1.20"),
        row("local", band="other", price="0.60"),
        row("local", kind="ring_through", band="early", price="0.002"),
        row("local", kind="ring_through", band="other", price="0.001"),
    ]
    tariff = write_tariff(tmp_path, plans, rates, ["t1,local,postpaid,,,,false"])
    records = [
        call("2026-03-02T07:59:50Z", 60_000_000, ring_s=10),
        # unanswered ring-through set up at 07:59:59 -> start time -> other
        cdr(kind="ring_through", start="2026-03-02T07:59:59Z", end="2026-03-02T08:00:20Z"),
    ]
    rated = rate(tariff, records).rated
    assert rated["band"].to_list() == ["early", "other"]
    assert rated["charge_micros"].to_list() == [1_200_000, 1_000]
