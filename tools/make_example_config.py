"""Regenerate the example tariff directory ``config/`` deterministically.

Run from the repository root::

    .venv/bin/python tools/make_example_config.py [--out config]

The deck is fictitious but shaped like a real wholesale deck: country codes with
their mobile ranges, peak/off-peak prices on the premium plan, dated price changes
(one already in force, one scheduled), connect fees, minimum charges and a
catch-all row on the base plan so that nothing it is asked for goes unrated.
"""

from __future__ import annotations

import argparse
import csv
from decimal import Decimal
from pathlib import Path

from rater.tariff_files import RATE_COLUMNS, TENANT_COLUMNS

__all__ = ["main"]

PLANS_YAML = """\
# Example tariff: three plans. See docs/configuration.md and docs/billing.md for every key.
plans:
  # A flat-rate plan: a monthly fee with extensions, numbers and minutes included.
  - id: pro-eu
    currency: EUR
    timezone: Europe/Paris
    decimals: 4
    rounding: half_up
    fallback: base-eu
    bands:
      - {name: peak, days: [mon, tue, wed, thu, fri], from: "08:00", to: "20:00"}
      - {name: offpeak, days: [mon, tue, wed, thu, fri, sat, sun], from: "00:00", to: "24:00"}
    allowances:
      - {kind: call, direction: outbound, prefixes: ["33"], seconds: 60000}
      - {kind: call, direction: any, prefixes: ["44", "49"], seconds: 3600}
      - {kind: sms, direction: any, prefixes: [], segments: 500}
    invoice_decimals: 2
    tax_rate: "0.20"
    tax_name: VAT
    products:
      - {id: pro-fee, name: "Professional plan", type: fee, price: "49.00"}
      - {id: extension, name: "Extension", type: seat, price: "4.00", included: 10}
      - {id: did, name: "Phone number", type: seat, price: "5.00", included: 2}
      - {id: did-setup, name: "Phone number setup", type: one_time, price: "1.50"}

  # Pay as you go: no fee; numbers and usage only.
  - id: base-eu
    currency: EUR
    timezone: Europe/Paris
    decimals: 6
    rounding: half_up
    invoice_decimals: 2
    tax_rate: "0.20"
    tax_name: VAT
    products:
      - {id: did, name: "Phone number", type: seat, price: "3.00"}
      - {id: did-setup, name: "Phone number setup", type: one_time, price: "2.00"}

  - id: us-standard
    currency: USD
    timezone: America/New_York
    decimals: 4
    rounding: up
    bands:
      - {name: peak, days: [mon, tue, wed, thu, fri], from: "07:00", to: "19:00"}
      - {name: offpeak, days: [mon, tue, wed, thu, fri, sat, sun], from: "00:00", to: "24:00"}
    allowances:
      - {kind: sms, direction: outbound, prefixes: ["1"], segments: 1000}
    # Licenses with a contracted minimum ("billed for 10 even with 8 created").
    invoice_decimals: 2
    tax_rate: "0.0875"
    tax_name: Sales tax
    products:
      - {id: platform, name: "Platform fee", type: fee, price: "15.00"}
      - {id: license-basic, name: "BASIC license", type: seat, price: "19.50"}
      - {id: license-advanced, name: "ADVANCED license", type: seat, price: "32.00"}
      - {id: did, name: "Phone number", type: seat, price: "1.25"}
      - {id: did-setup, name: "Phone number setup", type: one_time, price: "1.00"}
"""

# (country code, fixed price per minute EUR, mobile prefixes, mobile price per minute EUR)
COUNTRIES: list[tuple[str, str, list[str], str]] = [
    ("33", "0.0120", ["336", "337"], "0.0450"),
    ("44", "0.0150", ["447"], "0.0600"),
    ("49", "0.0140", ["4915", "4916", "4917"], "0.0700"),
    ("34", "0.0130", ["346", "347"], "0.0500"),
    ("39", "0.0160", ["393"], "0.0550"),
    ("32", "0.0180", ["324"], "0.0800"),
    ("31", "0.0150", ["316"], "0.0650"),
    ("41", "0.0300", ["417"], "0.2000"),
    ("43", "0.0200", ["4366", "4367", "4368", "4369"], "0.0900"),
    ("45", "0.0170", ["452", "453"], "0.0600"),
    ("46", "0.0160", ["467"], "0.0550"),
    ("47", "0.0190", ["474", "479"], "0.0600"),
    ("48", "0.0210", ["485", "486", "487", "488"], "0.0500"),
    ("30", "0.0250", ["3069"], "0.0900"),
    ("351", "0.0220", ["3519"], "0.0700"),
    ("352", "0.0300", ["3526"], "0.1500"),
    ("353", "0.0200", ["3538"], "0.0800"),
    ("358", "0.0250", ["3584", "35850"], "0.1000"),
    ("36", "0.0300", ["3620", "3630", "3670"], "0.1100"),
    ("420", "0.0250", ["4206", "4207"], "0.0900"),
    ("40", "0.0300", ["407"], "0.0900"),
    ("1", "0.0100", [], "0.0100"),
    ("61", "0.0400", ["614"], "0.1200"),
    ("64", "0.0450", ["642"], "0.1500"),
    ("81", "0.0500", ["8170", "8180", "8190"], "0.1400"),
    ("82", "0.0400", ["8210"], "0.0900"),
    ("86", "0.0300", ["8613", "8615", "8618"], "0.0400"),
    ("852", "0.0300", ["8525", "8526", "8529"], "0.0500"),
    ("65", "0.0250", ["658", "659"], "0.0400"),
    ("91", "0.0600", ["917", "918", "919"], "0.0700"),
    ("971", "0.1500", ["9715"], "0.2500"),
    ("972", "0.0400", ["9725"], "0.1000"),
    ("90", "0.0500", ["905"], "0.1500"),
    ("212", "0.2000", ["2126", "2127"], "0.4000"),
    ("213", "0.1500", ["2135", "2136", "2137"], "0.5000"),
    ("216", "0.1800", ["2162", "2165", "2169"], "0.4500"),
    ("221", "0.2500", ["2217"], "0.3500"),
    ("225", "0.2500", ["22501", "22505", "22507"], "0.3500"),
    ("237", "0.3000", ["2376"], "0.4000"),
    ("27", "0.0500", ["276", "277", "278"], "0.1500"),
    ("234", "0.1000", ["23470", "23480", "23481"], "0.1200"),
    ("20", "0.1000", ["2010", "2011", "2012"], "0.1500"),
    ("7", "0.0600", ["79"], "0.1000"),
    ("380", "0.1200", ["38050", "38067"], "0.2000"),
    ("55", "0.0300", ["5511", "5521"], "0.0800"),
    ("52", "0.0200", ["521"], "0.0500"),
    ("54", "0.0400", ["549"], "0.1200"),
    ("56", "0.0300", ["569"], "0.0700"),
    ("57", "0.0300", ["573"], "0.0500"),
]

# North American numbering plan: area codes rated individually on us-standard.
NANP_AREAS: list[tuple[str, str]] = [
    ("1212", "0.0080"),
    ("1213", "0.0080"),
    ("1305", "0.0085"),
    ("1310", "0.0080"),
    ("1312", "0.0085"),
    ("1404", "0.0085"),
    ("1415", "0.0080"),
    ("1416", "0.0120"),
    ("1512", "0.0085"),
    ("1514", "0.0120"),
    ("1604", "0.0120"),
    ("1617", "0.0080"),
    ("1646", "0.0080"),
    ("1702", "0.0090"),
    ("1713", "0.0085"),
    ("1808", "0.0250"),
    ("1907", "0.0300"),
    ("1917", "0.0080"),
    ("1876", "0.1800"),
    ("1809", "0.1500"),
]

DECK_START = "2026-01-01T00:00:00+01:00"
# A change already in force (UK mobile) and one scheduled (French mobile).
UK_MOBILE_CHANGE = "2026-10-01T00:00:00+02:00"
FR_MOBILE_CHANGE = "2027-01-01T00:00:00+01:00"
US_START = "2026-01-01T00:00:00-05:00"


Row = dict[str, str]


def _q(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.0001")))


def _call(
    plan: str,
    direction: str,
    prefix: str,
    band: str,
    price: Decimal,
    *,
    first: int,
    inc: int,
    connect: str = "0",
    min_charge: str = "",
    start: str = DECK_START,
    end: str = "",
) -> Row:
    return {
        "plan_id": plan,
        "kind": "call",
        "direction": direction,
        "prefix": prefix,
        "band": band,
        "effective_from": start,
        "effective_to": end,
        "connect_fee": connect,
        "price": _q(price),
        "first_increment": str(first),
        "increment": str(inc),
        "min_charge": min_charge,
    }


def _flat(plan: str, kind: str, direction: str, prefix: str, price: str, start: str) -> Row:
    return {
        "plan_id": plan,
        "kind": kind,
        "direction": direction,
        "prefix": prefix,
        "band": "any",
        "effective_from": start,
        "effective_to": "",
        "connect_fee": "",
        "price": price,
        "first_increment": "",
        "increment": "",
        "min_charge": "",
    }


def pro_eu_rows() -> list[Row]:
    rows: list[Row] = []
    offpeak_factor = Decimal("0.6")
    for cc, fixed, mobiles, mobile in COUNTRIES:
        fixed_p = Decimal(fixed)
        national = cc == "33"
        first, inc = (30, 6) if national else (60, 60)
        rows.append(_call("pro-eu", "outbound", cc, "peak", fixed_p, first=first, inc=inc))
        rows.append(
            _call(
                "pro-eu", "outbound", cc, "offpeak", fixed_p * offpeak_factor, first=first, inc=inc
            )
        )
        for m in mobiles:
            mob = Decimal(mobile)
            if m in ("336", "337"):
                # Scheduled change: French mobile termination drops on 1 January.
                for start, end, price in (
                    (DECK_START, FR_MOBILE_CHANGE, mob),
                    (FR_MOBILE_CHANGE, "", mob - Decimal("0.0050")),
                ):
                    rows.append(
                        _call(
                            "pro-eu",
                            "outbound",
                            m,
                            "any",
                            price,
                            first=30,
                            inc=6,
                            start=start,
                            end=end,
                        )
                    )
            elif m == "447":
                # Change in force since 1 October.
                for start, end, price in (
                    (DECK_START, UK_MOBILE_CHANGE, mob),
                    (UK_MOBILE_CHANGE, "", mob + Decimal("0.0100")),
                ):
                    rows.append(
                        _call(
                            "pro-eu",
                            "outbound",
                            m,
                            "any",
                            price,
                            first=60,
                            inc=60,
                            start=start,
                            end=end,
                        )
                    )
            else:
                rows.append(_call("pro-eu", "outbound", m, "any", mob, first=60, inc=60))
        rows.append(
            _flat(
                "pro-eu", "sms", "outbound", cc, "0.0500" if not national else "0.0350", DECK_START
            )
        )
    # Premium and special ranges: per-second billing, connect fee and minimum charge.
    rows.append(
        _call(
            "pro-eu",
            "outbound",
            "3389",
            "any",
            Decimal("0.8000"),
            first=1,
            inc=1,
            connect="0.1500",
            min_charge="0.5000",
        )
    )
    rows.append(
        _call(
            "pro-eu", "outbound", "3308", "any", Decimal("0.1200"), first=6, inc=6, connect="0.0500"
        )
    )
    rows.append(_call("pro-eu", "inbound", "", "any", Decimal("0"), first=60, inc=60))
    rows.append(_call("pro-eu", "inbound", "800", "any", Decimal("0.0200"), first=60, inc=60))
    rows.append(_flat("pro-eu", "sms", "inbound", "", "0", DECK_START))
    rows.append(_flat("pro-eu", "ring_through", "outbound", "", "0.0010", DECK_START))
    rows.append(_flat("pro-eu", "ring_through", "inbound", "", "0.0005", DECK_START))
    return rows


def base_eu_rows() -> list[Row]:
    rows: list[Row] = []
    for cc, fixed, mobiles, mobile in COUNTRIES:
        price = Decimal(fixed) * Decimal("1.25")
        rows.append(
            _call("base-eu", "outbound", cc, "any", price, first=60, inc=60, connect="0.0200")
        )
        for m in mobiles:
            rows.append(
                _call(
                    "base-eu",
                    "outbound",
                    m,
                    "any",
                    Decimal(mobile) * Decimal("1.25"),
                    first=60,
                    inc=60,
                    connect="0.0200",
                )
            )
    # Catch-all rows: anything not in the deck still gets a price.
    rows.append(
        _call(
            "base-eu",
            "outbound",
            "",
            "any",
            Decimal("0.9000"),
            first=60,
            inc=60,
            connect="0.0500",
            min_charge="0.1000",
        )
    )
    rows.append(_call("base-eu", "inbound", "", "any", Decimal("0"), first=60, inc=60))
    rows.append(_flat("base-eu", "sms", "outbound", "", "0.0800", DECK_START))
    rows.append(_flat("base-eu", "sms", "inbound", "", "0", DECK_START))
    rows.append(_flat("base-eu", "ring_through", "outbound", "", "0.0020", DECK_START))
    rows.append(_flat("base-eu", "ring_through", "inbound", "", "0.0010", DECK_START))
    return rows


def us_standard_rows() -> list[Row]:
    usd = Decimal("1.08")  # fixed conversion used to build the deck, not at rating time
    rows: list[Row] = []
    for area, price in NANP_AREAS:
        p = Decimal(price)
        rows.append(
            _call("us-standard", "outbound", area, "peak", p, first=6, inc=6, start=US_START)
        )
        rows.append(
            _call(
                "us-standard",
                "outbound",
                area,
                "offpeak",
                p * Decimal("0.5"),
                first=6,
                inc=6,
                start=US_START,
            )
        )
    rows.append(
        _call(
            "us-standard", "outbound", "1", "any", Decimal("0.0120"), first=6, inc=6, start=US_START
        )
    )
    rows.append(
        _call(
            "us-standard",
            "outbound",
            "1900",
            "any",
            Decimal("1.9900"),
            first=60,
            inc=60,
            connect="0.5000",
            min_charge="1.9900",
            start=US_START,
        )
    )
    for cc, fixed, mobiles, mobile in COUNTRIES:
        if cc == "1":
            continue
        rows.append(
            _call(
                "us-standard",
                "outbound",
                cc,
                "any",
                Decimal(fixed) * usd,
                first=60,
                inc=60,
                start=US_START,
            )
        )
        for m in mobiles:
            rows.append(
                _call(
                    "us-standard",
                    "outbound",
                    m,
                    "any",
                    Decimal(mobile) * usd,
                    first=60,
                    inc=60,
                    start=US_START,
                )
            )
    rows.append(
        _call(
            "us-standard", "inbound", "", "any", Decimal("0.0050"), first=6, inc=6, start=US_START
        )
    )
    rows.append(
        _call(
            "us-standard",
            "inbound",
            "1800",
            "any",
            Decimal("0.0200"),
            first=6,
            inc=6,
            start=US_START,
        )
    )
    rows.append(_flat("us-standard", "sms", "outbound", "1", "0.0075", US_START))
    rows.append(_flat("us-standard", "sms", "outbound", "", "0.0500", US_START))
    rows.append(_flat("us-standard", "sms", "inbound", "", "0", US_START))
    rows.append(_flat("us-standard", "ring_through", "outbound", "", "0.0010", US_START))
    rows.append(_flat("us-standard", "ring_through", "inbound", "", "0", US_START))
    return rows


TENANTS: list[Row] = [
    # A postpaid enterprise on the premium plan.
    {"tenant_id": "acme", "plan_id": "pro-eu", "billing": "postpaid"},
    {
        "tenant_id": "globex",
        "plan_id": "pro-eu",
        "billing": "prepaid",
        "opening_balance": "500.00",
        "low_balance_threshold": "50.00",
        "recharge_amount": "200.00",
        "auto_recharge": "true",
    },
    # Tiny balance: the demo shows low_balance then exhausted.
    {
        "tenant_id": "tinyco",
        "plan_id": "pro-eu",
        "billing": "prepaid",
        "opening_balance": "0.50",
        "low_balance_threshold": "0.40",
        "recharge_amount": "10.00",
        "auto_recharge": "false",
    },
    {"tenant_id": "initech", "plan_id": "base-eu", "billing": "postpaid"},
    {
        "tenant_id": "wayne",
        "plan_id": "base-eu",
        "billing": "prepaid",
        "opening_balance": "150.00",
        "low_balance_threshold": "20.00",
        "recharge_amount": "100.00",
        "auto_recharge": "true",
    },
    {
        "tenant_id": "umbrella",
        "plan_id": "us-standard",
        "billing": "prepaid",
        "opening_balance": "1000.00",
        "low_balance_threshold": "100.00",
        "recharge_amount": "250.00",
        "auto_recharge": "false",
    },
    {"tenant_id": "hooli", "plan_id": "us-standard", "billing": "postpaid"},
    {
        "tenant_id": "stark",
        "plan_id": "us-standard",
        "billing": "prepaid",
        "opening_balance": "25.00",
        "low_balance_threshold": "10.00",
        "recharge_amount": "50.00",
        "auto_recharge": "true",
    },
]


def _write_csv(path: Path, columns: list[str], rows: list[Row]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in columns})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=Path("config"))
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "plans.yaml").write_text(PLANS_YAML, encoding="utf-8")
    rates = pro_eu_rows() + base_eu_rows() + us_standard_rows()
    tenants = [{**t, "auto_recharge": t.get("auto_recharge", "false")} for t in TENANTS]
    _write_csv(out / "rates.csv", list(RATE_COLUMNS), rates)
    _write_csv(out / "tenants.csv", list(TENANT_COLUMNS), tenants)
    print(
        f"wrote {out}/plans.yaml, {out}/rates.csv ({len(rates)} rates), {out}/tenants.csv "
        "(subscriptions.csv and users.csv are kept as they are)"
    )


if __name__ == "__main__":
    main()
