"""Rule 8: monthly allowances, worked by hand. Calls cost 0.60/min = 10_000 micros/s."""

from __future__ import annotations

from pathlib import Path

from .helpers import call, cdr, rate, row, write_tariff


def _plan(allowances: str, tz: str = "UTC") -> str:
    return f"""
plans:
  - id: p
    currency: EUR
    timezone: {tz}
    decimals: 6
    allowances:
{allowances}
"""


TENANT = "t1,p,postpaid,,,,false"
RATES = [
    row("p", direction="outbound", first=60, inc=60, connect="0.10", min_charge="0.50"),
    row("p", direction="inbound", first=60, inc=60),
    row("p", kind="sms", direction="outbound", price="0.05"),
    row("p", kind="ring_through", direction="outbound", price="0.0015"),
]
AT = "2026-03-02T10:00:00Z"


def test_allowance_covers_part_of_a_call(tmp_path: Path) -> None:
    plans = _plan('      - {kind: call, direction: outbound, prefixes: ["33"], seconds: 100}')
    tariff = write_tariff(tmp_path, plans, RATES, [TENANT])
    records = [
        # 90 s talk on 60/60 -> 120 billed; 100 covered, 20 charged:
        # max(0.50, 0.10 + 0.60 * 20 / 60) = max(0.50, 0.30) = 0.50
        call(AT, 90_000_000),
        # allowance used up: 60 billed, 60 charged: 0.10 + 0.60 = 0.70
        call("2026-03-03T10:00:00Z", 30_000_000),
    ]
    rated = rate(tariff, records).rated
    assert rated["billed_seconds"].to_list() == [120, 60]
    assert rated["covered"].to_list() == [100, 0]
    assert rated["charge_micros"].to_list() == [500_000, 700_000]


def test_fully_covered_call_costs_nothing_despite_fees(tmp_path: Path) -> None:
    plans = _plan("      - {kind: call, direction: outbound, prefixes: [], seconds: 600}")
    tariff = write_tariff(tmp_path, plans, RATES, [TENANT])
    # 60 billed, 60 covered, 0 charged -> 0 (no connect fee, no minimum charge)
    got = rate(tariff, [call(AT, 45_000_000)]).rated.row(0, named=True)
    assert (got["status"], got["billed_seconds"], got["covered"]) == ("rated", 60, 60)
    assert got["charge_micros"] == 0


def test_two_allowances_are_drawn_in_listed_order(tmp_path: Path) -> None:
    plans = _plan(
        '      - {kind: call, direction: outbound, prefixes: ["336"], seconds: 30}\n'
        "      - {kind: call, direction: any, prefixes: [], seconds: 50}"
    )
    tariff = write_tariff(tmp_path, plans, RATES, [TENANT])
    records = [
        # 120 billed: 30 from the first, 50 from the second -> covered 80, charged 40:
        # 0.10 + 0.60 * 40 / 60 = 0.50 -> max(0.50, 0.50) = 0.50
        call(AT, 120_000_000, callee="+33612345678"),
        # both exhausted -> covered 0; 60 charged -> 0.70
        call(AT, 60_000_000, callee="+33112345678"),
    ]
    rated = rate(tariff, records).rated
    assert rated["covered"].to_list() == [80, 0]
    assert rated["charge_micros"].to_list() == [500_000, 700_000]


def test_listed_order_decides_which_allowance_is_drawn_first(tmp_path: Path) -> None:
    plans = _plan(
        "      - {kind: call, direction: any, prefixes: [], seconds: 50}\n"
        '      - {kind: call, direction: outbound, prefixes: ["336"], seconds: 30}'
    )
    tariff = write_tariff(tmp_path, plans, RATES, [TENANT])
    records = [
        # 60 billed to 336: 50 from the general one first, then 10 from the 336 one
        call(AT, 60_000_000, callee="+33612345678"),
        # 60 billed to 331: general one empty, the 336 one does not apply -> 0.70
        call(AT, 60_000_000, callee="+33112345678"),
    ]
    rated = rate(tariff, records).rated
    assert rated["covered"].to_list() == [60, 0]
    assert rated["charge_micros"].to_list() == [0, 700_000]


def test_direction_any_and_direction_filter(tmp_path: Path) -> None:
    plans = _plan(
        "      - {kind: call, direction: inbound, prefixes: [], seconds: 60}\n"
        "      - {kind: call, direction: any, prefixes: [], seconds: 60}"
    )
    tariff = write_tariff(tmp_path, plans, RATES, [TENANT])
    records = [
        call(AT, 60_000_000, direction="outbound"),  # only 'any' applies: covered 60
        call(AT, 60_000_000, direction="inbound"),  # inbound one: covered 60
        call(AT, 60_000_000, direction="outbound"),  # nothing left: 0.10 + 0.60 = 0.70
    ]
    rated = rate(tariff, records).rated
    assert rated["covered"].to_list() == [60, 60, 0]
    assert rated["charge_micros"].to_list() == [0, 0, 700_000]


def test_prefixes_filter(tmp_path: Path) -> None:
    plans = _plan('      - {kind: call, direction: any, prefixes: ["44", "4917"], seconds: 1000}')
    tariff = write_tariff(tmp_path, plans, RATES, [TENANT])
    records = [
        call(AT, 60_000_000, callee="+33612345678"),  # not covered: 0.70
        call(AT, 60_000_000, callee="+4917012345678"),  # covered
        call(AT, 60_000_000, callee="+4916012345678"),  # 4916 is not under 4917: 0.70
        call(AT, 60_000_000, callee="+442012345678"),  # covered
    ]
    rated = rate(tariff, records).rated
    assert rated["covered"].to_list() == [0, 60, 0, 60]
    assert rated["charge_micros"].to_list() == [700_000, 0, 700_000, 0]


def test_month_rollover_in_the_plan_time_zone(tmp_path: Path) -> None:
    plans = _plan(
        "      - {kind: call, direction: any, prefixes: [], seconds: 60}", tz="Europe/Paris"
    )
    tariff = write_tariff(tmp_path, plans, RATES, [TENANT])
    records = [
        call("2026-01-31T22:00:00Z", 60_000_000),  # 23:00 Paris, January: covered
        call("2026-01-31T23:30:00Z", 60_000_000),  # 00:30 Paris, 1 February: renewed, covered
        call("2026-02-01T10:00:00Z", 60_000_000),  # February used up: 0.70
        call("2026-01-31T22:30:00Z", 60_000_000),  # January again, used up: 0.70
    ]
    rated = rate(tariff, records).rated
    assert rated["covered"].to_list() == [60, 60, 0, 0]
    assert rated["charge_micros"].to_list() == [0, 0, 700_000, 700_000]


def test_ring_through_never_draws(tmp_path: Path) -> None:
    plans = _plan("      - {kind: call, direction: any, prefixes: [], seconds: 6000}")
    tariff = write_tariff(tmp_path, plans, RATES, [TENANT])
    records = [
        # answered or not, a ring-through costs its price: 0.0015 -> 1500 micros
        cdr(kind="ring_through", start=AT, end="2026-03-02T10:00:30Z"),
        cdr(kind="ring_through", start=AT, answer=AT, end="2026-03-02T10:00:30Z"),
    ]
    rated = rate(tariff, records).rated
    assert rated["status"].to_list() == ["rated", "rated"]
    assert rated["covered"].fill_null(0).to_list() == [0, 0]
    assert rated["charge_micros"].to_list() == [1_500, 1_500]


def test_sms_segments_draw_on_sms_allowance(tmp_path: Path) -> None:
    plans = _plan("      - {kind: sms, direction: outbound, prefixes: [], segments: 4}")
    tariff = write_tariff(tmp_path, plans, RATES, [TENANT])
    records = [
        cdr(kind="sms", start=AT, segments=3),  # covered 3, charged 0 -> 0
        cdr(kind="sms", start=AT, segments=3),  # covered 1, charged 2 * 0.05 = 0.10
        cdr(kind="sms", start=AT, segments=2),  # covered 0, charged 2 * 0.05 = 0.10
    ]
    rated = rate(tariff, records).rated
    assert rated["covered"].to_list() == [3, 1, 0]
    assert rated["charge_micros"].to_list() == [0, 100_000, 100_000]


def test_allowances_are_per_tenant(tmp_path: Path) -> None:
    plans = _plan("      - {kind: sms, direction: any, prefixes: [], segments: 1}")
    tariff = write_tariff(tmp_path, plans, RATES, [TENANT, "t2,p,postpaid,,,,false"])
    records = [
        cdr(kind="sms", start=AT, tenant="t1"),
        cdr(kind="sms", start=AT, tenant="t2"),
        cdr(kind="sms", start=AT, tenant="t1"),
    ]
    rated = rate(tariff, records).rated
    assert rated["covered"].to_list() == [1, 1, 0]
    assert rated["charge_micros"].to_list() == [0, 0, 50_000]
