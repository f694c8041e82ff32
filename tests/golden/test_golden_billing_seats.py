"""Billing rules 1 to 5 and 9: periods, seat counts, billing in advance, the high-water
mark, one-time charges, invoice identity. Amounts worked by hand in the comments."""

from __future__ import annotations

from pathlib import Path

import pytest

from .billing import bill, invoice, lines, pro_eu, write_billing_tariff

WORKED_EXAMPLE = [
    "c1,acme,license-advanced,commit,10,2026-03-20T09:00:00+01:00",
    "c2,acme,license-advanced,add,8,2026-03-20T09:00:00+01:00",
    "c3,acme,license-advanced,add,3,2026-04-08T10:00:00+02:00",
    "c4,acme,license-advanced,remove,2,2026-04-20T09:00:00+02:00",
    "c5,acme,license-advanced,add,1,2026-04-25T09:00:00+02:00",
    "c6,acme,extension,add,7,2026-03-20T09:00:00+01:00",
]


def test_the_worked_example(tmp_path: Path) -> None:
    result = bill(write_billing_tariff(tmp_path, pro_eu(), WORKED_EXAMPLE), "2026-04")
    assert lines(result) == [
        ("fee", "pro-fee", "1", 49_000_000, None, "49.00"),
        ("recurring", "license-advanced", "10", 64_000_000, None, "640.00"),  # max(8, 10)
        ("recurring", "extension", "2", 4_000_000, None, "8.00"),  # 7 held, 5 included
        # held 11 > H 10 on 04-08: 64 x 23 / 30 = 49.0666... -> 49.07; nothing on 04-25
        ("prorated", "license-advanced", "1", 49_070_000, 23, "49.07"),
        ("tax", None, "1", None, None, "149.21"),  # 0.20 x 746.07 = 149.214
    ]
    inv = invoice(result)
    assert inv["invoice_id"] == "acme-2026-04"
    assert (inv["subtotal_micros"], inv["tax_micros"], inv["total_micros"]) == (
        746_070_000,
        149_210_000,
        895_280_000,
    )
    assert inv["paid_from_balance_micros"] == 0 and inv["amount_due_micros"] == 895_280_000
    assert str(inv["period_start"]) == "2026-04-01" and str(inv["period_end"]) == "2026-04-30"
    may = bill(write_billing_tariff(tmp_path, pro_eu(), WORKED_EXAMPLE), "2026-05")
    assert lines(may)[1] == ("recurring", "license-advanced", "10", 64_000_000, None, "640.00")


def test_a_seat_removed_and_added_again_is_not_charged_twice(tmp_path: Path) -> None:
    changes = [
        "a,acme,did,add,3,2026-03-01T00:00:00+01:00",
        "b,acme,did,remove,1,2026-04-10T12:00:00+02:00",  # 2 held, H stays 3
        "c,acme,did,add,1,2026-04-12T12:00:00+02:00",  # 3 again: not above H
        "d,acme,did,add,1,2026-04-21T12:00:00+02:00",  # 4 > 3: 10 days of one number
    ]
    result = bill(write_billing_tariff(tmp_path, pro_eu(), changes), "2026-04")
    assert [line for line in lines(result) if line[1] == "did"] == [
        ("recurring", "did", "3", 5_000_000, None, "15.00"),
        ("prorated", "did", "1", 1_670_000, 10, "1.67"),  # 5 x 10 / 30 = 1.666...
    ]


def test_a_commitment_above_the_active_count_is_billed(tmp_path: Path) -> None:
    changes = [
        "a,acme,license-advanced,add,8,2026-03-01T00:00:00+01:00",
        "b,acme,license-advanced,commit,10,2026-03-01T00:00:00+01:00",
        "c,acme,license-advanced,add,1,2026-04-10T00:00:00+02:00",  # 9 active: held 10 = H
    ]
    result = bill(write_billing_tariff(tmp_path, pro_eu(), changes), "2026-04")
    seats = [line for line in lines(result) if line[1] == "license-advanced"]
    assert seats == [("recurring", "license-advanced", "10", 64_000_000, None, "640.00")]


def test_a_commitment_raised_mid_period_is_prorated_and_lowered_waits(tmp_path: Path) -> None:
    changes = [
        "a,acme,license-advanced,add,4,2026-03-01T00:00:00+01:00",
        "b,acme,license-advanced,commit,5,2026-03-01T00:00:00+01:00",
        "c,acme,license-advanced,commit,8,2026-04-16T00:00:00+02:00",  # +3 for 15 days
        "d,acme,license-advanced,commit,6,2026-04-20T00:00:00+02:00",  # lowered: no refund
    ]
    tariff = write_billing_tariff(tmp_path, pro_eu(), changes)
    april = [line for line in lines(bill(tariff, "2026-04")) if line[1] == "license-advanced"]
    assert april == [
        ("recurring", "license-advanced", "5", 64_000_000, None, "320.00"),
        ("prorated", "license-advanced", "3", 32_000_000, 15, "96.00"),  # 64 x 15 / 30
    ]
    may = [line for line in lines(bill(tariff, "2026-05")) if line[1] == "license-advanced"]
    assert may == [("recurring", "license-advanced", "6", 64_000_000, None, "384.00")]


def test_changes_at_one_instant_apply_together(tmp_path: Path) -> None:
    changes = [
        "a,acme,did,add,2,2026-03-01T00:00:00+01:00",
        "b,acme,did,add,3,2026-04-16T00:00:00+02:00",
        "c,acme,did,remove,2,2026-04-16T00:00:00+02:00",  # net +1 at this instant
    ]
    result = bill(write_billing_tariff(tmp_path, pro_eu(), changes), "2026-04")
    assert [line for line in lines(result) if line[0] == "prorated"] == [
        ("prorated", "did", "1", 2_500_000, 15, "2.50")
    ]


@pytest.mark.parametrize(
    ("at", "period", "expected"),
    [
        # At the local midnight that starts the period: in held(s), billed in advance.
        (
            "2026-04-01T00:00:00+02:00",
            "2026-04",
            [("recurring", "did", "1", 5_000_000, None, "5.00")],
        ),
        # One microsecond before: the previous period; April bills it in advance too.
        (
            "2026-03-31T23:59:59.999999+02:00",
            "2026-04",
            [("recurring", "did", "1", 5_000_000, None, "5.00")],
        ),
        # Local midnight starting the 2nd: 29 of 30 days.
        ("2026-04-02T00:00:00+02:00", "2026-04", [("prorated", "did", "1", 4_830_000, 29, "4.83")]),
        # The last day of the month: 1 day. 5 x 1 / 30 = 0.1666 -> 0.17
        ("2026-04-30T23:00:00+02:00", "2026-04", [("prorated", "did", "1", 170_000, 1, "0.17")]),
        # 22:30 UTC on the 30th is 00:30 on May 1st in Paris: after May's start, all of it.
        ("2026-04-30T22:30:00Z", "2026-04", []),
        ("2026-04-30T22:30:00Z", "2026-05", [("prorated", "did", "1", 5_000_000, 31, "5.00")]),
    ],
)
def test_changes_at_local_midnight_and_on_the_last_day(
    tmp_path: Path, at: str, period: str, expected: list[tuple[object, ...]]
) -> None:
    result = bill(write_billing_tariff(tmp_path, pro_eu(), [f"a,acme,did,add,1,{at}"]), period)
    assert [line for line in lines(result) if line[1] == "did"] == expected


@pytest.mark.parametrize(
    ("at", "days"),
    [
        # Paris, March 2026 (31 days; clocks go forward on the 29th at 02:00).
        ("2026-03-29T01:30:00+01:00", 3),  # the 29th, before the change
        ("2026-03-29T03:30:00+02:00", 3),  # the 29th, after it
        ("2026-03-28T23:30:00Z", 3),  # 00:30 on the 29th in Paris
        # October 2026 (clocks go back on the 25th at 03:00): the repeated hour is the 25th.
        ("2026-10-25T02:30:00+02:00", 7),
        ("2026-10-25T02:30:00+01:00", 7),
    ],
)
def test_dst_months_count_local_days(tmp_path: Path, at: str, days: int) -> None:
    period = at[:7] if not at.endswith("Z") else "2026-03"
    result = bill(write_billing_tariff(tmp_path, pro_eu(), [f"a,acme,did,add,1,{at}"]), period)
    prorated = [line for line in lines(result) if line[0] == "prorated"]
    assert [line[4] for line in prorated] == [days]


def test_dst_month_boundaries_are_local_midnights(tmp_path: Path) -> None:
    # America/Santiago skips midnight on 2026-09-06 (00:00 -> 01:00): not a month start;
    # New York's months start at 04:00Z in summer and 05:00Z in winter.
    plans = pro_eu().replace("Europe/Paris", "America/New_York")
    changes = [
        "a,acme,did,add,1,2026-11-01T04:30:00Z",  # 00:30 EDT on Nov 1: in November
        "b,acme,did,add,1,2026-12-01T04:30:00Z",  # 23:30 EST on Nov 30: the last day
    ]
    result = bill(write_billing_tariff(tmp_path, plans, changes), "2026-11")
    assert [line for line in lines(result) if line[1] == "did"] == [
        ("prorated", "did", "1", 5_000_000, 30, "5.00"),
        ("prorated", "did", "1", 170_000, 1, "0.17"),
    ]


@pytest.mark.parametrize(
    ("rounding", "decimals", "unit_price", "amount", "tax"),
    [
        # 64 x 23 / 30 = 49.0666...; subtotal 49 + 640 + 8 + prorated
        ("half_up", 2, 49_070_000, "49.07", "149.21"),  # 746.07 x 0.2 = 149.214
        ("up", 2, 49_070_000, "49.07", "149.22"),
        ("down", 2, 49_060_000, "49.06", "149.21"),  # 746.06 x 0.2 = 149.212
        ("half_up", 0, 49_000_000, "49", "149"),  # 746 x 0.2 = 149.2
        ("up", 0, 50_000_000, "50", "150"),  # 747 x 0.2 = 149.4 -> 150
        ("down", 3, 49_066_000, "49.066", "149.213"),  # 746.066 x 0.2 = 149.2132
        ("half_up", 3, 49_067_000, "49.067", "149.213"),  # 746.067 x 0.2 = 149.2134
    ],
)
def test_every_rounding_method_and_invoice_decimals(
    tmp_path: Path, rounding: str, decimals: int, unit_price: int, amount: str, tax: str
) -> None:
    result = bill(
        write_billing_tariff(tmp_path, pro_eu(rounding, decimals), WORKED_EXAMPLE), "2026-04"
    )
    prorated = [line for line in lines(result) if line[0] == "prorated"]
    assert prorated == [("prorated", "license-advanced", "1", unit_price, 23, amount)]
    assert lines(result)[-1][-1] == tax
    assert lines(result)[0][-1] == ("49" if decimals == 0 else "49." + "0" * decimals)


def test_one_time_charges_and_their_period(tmp_path: Path) -> None:
    changes = [
        "a,acme,did-setup,charge,3,2026-04-01T00:00:00+02:00",  # at the start: April
        "b,acme,did-setup,charge,1,2026-04-15T12:00:00+02:00",
        "c,acme,did-setup,charge,2,2026-05-01T00:00:00+02:00",  # the next period's start
    ]
    result = bill(write_billing_tariff(tmp_path, pro_eu(), changes), "2026-04")
    assert [line for line in lines(result) if line[0] == "one_time"] == [
        ("one_time", "did-setup", "3", 1_500_000, None, "4.50"),
        ("one_time", "did-setup", "1", 1_500_000, None, "1.50"),
    ]


def test_line_order_and_numbers(tmp_path: Path) -> None:
    changes = [
        "z,acme,did,add,1,2026-04-10T00:00:00+02:00",
        "y,acme,did-setup,charge,1,2026-04-10T00:00:00+02:00",
        "x,acme,extension,add,6,2026-04-05T00:00:00+02:00",
        "w,acme,license-advanced,add,1,2026-04-20T00:00:00+02:00",
        "v,acme,did-setup,charge,1,2026-04-02T00:00:00+02:00",
    ]
    result = bill(write_billing_tariff(tmp_path, pro_eu(), changes), "2026-04")
    acme = result.lines.filter(result.lines["tenant_id"] == "acme")
    assert acme.select("line_no", "type", "product_id").rows() == [
        (1, "fee", "pro-fee"),
        (2, "prorated", "license-advanced"),  # products in catalogue order
        (3, "prorated", "extension"),
        (4, "prorated", "did"),
        (5, "one_time", "did-setup"),  # by time: the 2nd, then the 10th
        (6, "one_time", "did-setup"),
        (7, "tax", None),
    ]
    assert acme["quantity"][4:6].to_list() == ["1", "1"]


def test_an_invoice_needs_a_line_besides_tax(tmp_path: Path) -> None:
    plans = """
    plans:
      - id: payg
        currency: EUR
        timezone: UTC
        tax_rate: "0.2"
        products:
          - {id: did, name: "Phone number", type: seat, price: "1.00"}
      - id: flat
        currency: USD
        timezone: America/New_York
        products:
          - {id: fee, name: "Flat fee", type: fee, price: "10.00"}
    """
    tenants = ["quiet,payg,postpaid,,,,false", "flat1,flat,postpaid,,,,false"]
    result = bill(write_billing_tariff(tmp_path, plans, [], tenants=tenants), "2026-04")
    assert result.invoices["invoice_id"].to_list() == ["flat1-2026-04"]  # quiet: nothing
    assert lines(result, "flat1") == [("fee", "fee", "1", 10_000_000, None, "10.00")]
    assert invoice(result, "flat1")["tax_micros"] == 0  # no tax_rate: no tax line


def test_the_same_inputs_give_the_same_frames(tmp_path: Path) -> None:
    tariff = write_billing_tariff(tmp_path, pro_eu(), WORKED_EXAMPLE)
    first, second = bill(tariff, "2026-04"), bill(tariff, "2026-04")
    assert first.lines.equals(second.lines) and first.invoices.equals(second.invoices)
