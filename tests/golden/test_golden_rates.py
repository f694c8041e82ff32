"""Rule 7: rate selection, dated changes and fallback plans, worked by hand."""

from __future__ import annotations

from pathlib import Path

from .helpers import call, cdr, rate, row, write_tariff

PEAK_ALL_DAY = """
plans:
  - id: p
    currency: EUR
    timezone: UTC
    decimals: 6
    bands:
      - {name: peak, days: [mon, tue, wed, thu, fri], from: "08:00", to: "20:00"}
"""
TENANT = "t1,p,postpaid,,,,false"
MONDAY_PEAK = "2026-03-02T10:00:00Z"
MONDAY_NIGHT = "2026-03-02T22:00:00Z"


def test_rate_change_at_the_exact_instant(tmp_path: Path) -> None:
    # Old price until 2026-06-01T00:00+02:00 (= 2026-05-31T22:00Z) exclusive, new from it.
    change = "2026-06-01T00:00:00+02:00"
    rates = [
        row("p", price="0.60", end=change),
        row("p", price="1.20", start=change),
    ]
    tariff = write_tariff(tmp_path, PEAK_ALL_DAY, rates, [TENANT])
    records = [
        call("2026-05-31T21:59:59.999999Z", 60_000_000),  # old: 60 s * 0.01 = 0.60
        call("2026-05-31T22:00:00Z", 60_000_000),  # new: 60 s * 0.02 = 1.20
        # set up before the change, answered at it: the answer time decides -> new
        call("2026-05-31T21:59:50Z", 60_000_000, ring_s=10),
    ]
    assert rate(tariff, records).rated["charge_micros"].to_list() == [600_000, 1_200_000, 1_200_000]


def test_latest_effective_from_wins(tmp_path: Path) -> None:
    rates = [
        row("p", prefix="33", price="0.60", start="2026-01-01T00:00:00Z"),
        row("p", prefix="33", price="1.20", start="2026-03-01T00:00:00Z"),
    ]
    tariff = write_tariff(tmp_path, PEAK_ALL_DAY, rates, [TENANT])
    records = [
        call("2026-02-02T10:00:00Z", 60_000_000),  # only the first row is in force -> 0.60
        call("2026-04-01T10:00:00Z", 60_000_000),  # both in force, latest start -> 1.20
        call("2025-12-31T23:59:59Z", 60_000_000),  # neither yet -> no_rate
    ]
    rated = rate(tariff, records).rated
    assert rated["status"].to_list() == ["rated", "rated", "unrated"]
    assert rated["reason"].to_list() == [None, None, "no_rate"]
    assert rated["charge_micros"].to_list() == [600_000, 1_200_000, 0]


def test_longest_prefix_beats_a_named_band(tmp_path: Path) -> None:
    rates = [
        row("p", prefix="33", band="peak", price="1.20"),
        row("p", prefix="336", band="any", price="0.60"),
    ]
    tariff = write_tariff(tmp_path, PEAK_ALL_DAY, rates, [TENANT])
    records = [
        call(MONDAY_PEAK, 60_000_000, callee="+33612345678"),  # '336' is longer -> 0.60
        call(MONDAY_PEAK, 60_000_000, callee="+33112345678"),  # only '33' peak -> 1.20
        call(MONDAY_NIGHT, 60_000_000, callee="+33112345678"),  # '33' peak not in band
    ]
    rated = rate(tariff, records).rated
    assert rated["rate_prefix"].to_list() == ["336", "33", None]
    assert rated["status"].to_list() == ["rated", "rated", "unrated"]
    assert rated["charge_micros"].to_list() == [600_000, 1_200_000, 0]


def test_named_band_beats_any_then_latest_start(tmp_path: Path) -> None:
    rates = [
        row("p", prefix="33", band="peak", price="1.20", start="2026-01-01T00:00:00Z"),
        # 'any' row starting later still loses to the named band at equal prefix
        row("p", prefix="33", band="any", price="0.60", start="2026-02-01T00:00:00Z"),
    ]
    tariff = write_tariff(tmp_path, PEAK_ALL_DAY, rates, [TENANT])
    records = [
        call(MONDAY_PEAK, 60_000_000),  # peak: named row -> 1.20
        call(MONDAY_NIGHT, 60_000_000),  # no band: only the 'any' row matches -> 0.60
    ]
    rated = rate(tariff, records).rated
    assert rated["charge_micros"].to_list() == [1_200_000, 600_000]
    assert rated["band"][0] == "peak"


def test_empty_prefix_matches_every_number(tmp_path: Path) -> None:
    rates = [row("p", prefix="", price="0.60"), row("p", prefix="44", price="1.20")]
    tariff = write_tariff(tmp_path, PEAK_ALL_DAY, rates, [TENANT])
    records = [
        call(MONDAY_PEAK, 60_000_000, callee="+81312345678"),
        call(MONDAY_PEAK, 60_000_000, callee="4420123456"),  # no '+' is fine
    ]
    rated = rate(tariff, records).rated
    assert rated["rate_prefix"].to_list() == ["", "44"]
    assert rated["charge_micros"].to_list() == [600_000, 1_200_000]


def test_kind_and_direction_must_match(tmp_path: Path) -> None:
    rates = [row("p", direction="inbound", price="0.60")]
    tariff = write_tariff(tmp_path, PEAK_ALL_DAY, rates, [TENANT])
    records = [
        call(MONDAY_PEAK, 60_000_000, direction="inbound"),
        call(MONDAY_PEAK, 60_000_000, direction="outbound"),
        cdr(kind="sms", direction="inbound", start=MONDAY_PEAK),
    ]
    rated = rate(tariff, records).rated
    assert rated["status"].to_list() == ["rated", "unrated", "unrated"]
    assert rated["reason"].to_list() == [None, "no_rate", "no_rate"]
    assert rated["charge_micros"].to_list() == [600_000, 0, 0]


# A (UTC, 2 decimals, rounding down) -> B (Paris, band night) -> C (New York, bands).
CHAIN = """
plans:
  - id: a
    currency: EUR
    timezone: UTC
    decimals: 2
    rounding: down
    fallback: b
  - id: b
    currency: EUR
    timezone: Europe/Paris
    decimals: 6
    fallback: c
    bands:
      - {name: night, days: [mon, tue, wed, thu, fri, sat, sun], from: "00:00", to: "06:00"}
  - id: c
    currency: EUR
    timezone: America/New_York
    decimals: 6
    rounding: up
    bands:
      - {name: morning, days: [mon, tue, wed, thu, fri, sat, sun], from: "06:00", to: "12:00"}
      - {name: rest, days: [mon, tue, wed, thu, fri, sat, sun], from: "00:00", to: "24:00"}
"""


def test_fallback_chain_uses_each_plans_own_bands_and_zone(tmp_path: Path) -> None:
    rates = [
        row("a", prefix="44", price="0.60"),
        row("b", prefix="33", band="night", price="0.30"),
        row("c", prefix="", band="morning", price="1.2345"),
        row("c", prefix="", band="rest", price="0.9999"),
    ]
    tariff = write_tariff(tmp_path, CHAIN, rates, ["t1,a,postpaid,,,,false"])
    records = [
        # own plan: 60 s at 0.60 -> 0.60
        call("2026-03-02T12:00:00Z", 60_000_000, callee="+442012345678"),
        # 04:30Z = 05:30 in Paris -> b's night band: 60 s at 0.30 -> 0.30
        call("2026-03-02T04:30:00Z", 60_000_000, callee="+33612345678"),
        # 12:00Z = 13:00 Paris (no b band) = 07:00 New York -> c morning: 1.2345 per minute,
        # rounded with a's rules (2 decimals, down) -> 1.23, not c's (6 decimals, up)
        call("2026-03-02T12:00:00Z", 60_000_000, callee="+33612345678"),
        # 20:00Z = 15:00 New York -> c rest: 0.9999 -> a's rounding -> 0.99
        call("2026-03-02T20:00:00Z", 60_000_000, callee="+33612345678"),
    ]
    rated = rate(tariff, records).rated
    assert rated["status"].to_list() == ["rated"] * 4
    assert rated["plan_id"].to_list() == ["a", "b", "c", "c"]
    assert rated["rate_prefix"].to_list() == ["44", "33", "", ""]
    assert rated["band"].to_list()[1:3] == ["night", "morning"]
    assert rated["charge_micros"].to_list() == [600_000, 300_000, 1_230_000, 990_000]
    assert rated["currency"].to_list() == ["EUR"] * 4


def test_no_rate_anywhere_in_the_chain(tmp_path: Path) -> None:
    rates = [row("a", prefix="44"), row("b", prefix="33", band="night"), row("c", band="rest")]
    tariff = write_tariff(tmp_path, CHAIN, rates, ["t1,a,postpaid,,,,false"])
    records = [cdr(kind="sms", start="2026-03-02T12:00:00Z")]
    got = rate(tariff, records).rated.row(0, named=True)
    assert (got["status"], got["reason"], got["charge_micros"]) == ("unrated", "no_rate", 0)
