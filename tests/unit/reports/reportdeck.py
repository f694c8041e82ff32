"""A tariff, simulated traffic and adjustments for the reports' tests.

The tariff is the example's rate deck (config/rates.csv) with plans, tenants, users and
subscriptions of its own: the usual tenants plus tenants, teams and users whose ids are
hostile (quotes, ``%``, ``_``, markup, unicode), so that every report test also runs over
them. Traffic spans two months in the plans' zones (October and November 2026).
"""

from __future__ import annotations

import csv
import datetime as dt
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from rater.batch import rate_file
from rater.core.columns import CDR_SCHEMA
from rater.core.tariff import Tariff
from rater.simulate import generate_cdrs
from rater.tariff_files.tenants import TENANT_COLUMNS

REPO = Path(__file__).resolve().parents[3]
NOW = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)
NOW_US = (NOW - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
SPAN = dt.timedelta(days=46)
MONTHS = ("2026-10", "2026-11")

HOSTILE_TENANTS = (
    "o'brien",
    "100%",
    "%",
    "_",
    "<script>alert(1)</script>",
    "Zoë-東京",
    'a"b,c',
)
HOSTILE_TEAMS = ("o'neil's team", "<b>ops</b>", "50%_off", "%", "équipe-東")
HOSTILE_USERS = ('"quoted"', "x%", "_", "<img src=x onerror=alert(1)>", "ü-user")

_BANDS = """    bands:
      - {name: peak, days: [mon, tue, wed, thu, fri], from: "08:00", to: "20:00"}
      - {name: offpeak, days: [mon, tue, wed, thu, fri, sat, sun], from: "00:00", to: "24:00"}
"""
PLANS_YAML = f"""plans:
  - id: pro-eu
    currency: EUR
    timezone: Europe/Paris
    decimals: 4
    rounding: half_up
    fallback: base-eu
{_BANDS}    allowances:
      - {{kind: call, direction: outbound, prefixes: ["33"], seconds: 60000}}
      - {{kind: call, direction: any, prefixes: ["44", "49"], seconds: 3600}}
      - {{kind: sms, direction: any, prefixes: [], segments: 500}}
    invoice_decimals: 2
    tax_rate: "0.20"
    tax_name: VAT
    products:
      - {{id: pro-fee, name: "Professional plan", type: fee, price: "49.00"}}
      - {{id: extension, name: "Extension", type: seat, price: "4.00", included: 10}}
      - {{id: did, name: "Phone number", type: seat, price: "5.00", included: 2}}
      - {{id: did-setup, name: "Phone number setup", type: one_time, price: "1.50"}}
  - id: base-eu
    currency: EUR
    timezone: Europe/Paris
    decimals: 6
    rounding: half_up
    invoice_decimals: 2
    products:
      - {{id: did, name: "Phone number", type: seat, price: "3.00"}}
  - id: us-standard
    currency: USD
    timezone: America/New_York
    decimals: 4
    rounding: up
{_BANDS}    allowances:
      - {{kind: sms, direction: outbound, prefixes: ["1"], segments: 1000}}
    invoice_decimals: 2
    tax_rate: "0.0875"
    tax_name: Sales tax
    products:
      - {{id: platform, name: "Platform fee", type: fee, price: "15.00"}}
      - {{id: license-basic, name: "BASIC license", type: seat, price: "19.50"}}
      - {{id: did, name: "Phone number", type: seat, price: "1.25"}}
"""
# (tenant, plan, billing, opening balance)
TENANTS = (
    ("acme", "pro-eu", "postpaid", ""),
    ("globex", "pro-eu", "prepaid", "500.00"),
    ("initech", "base-eu", "postpaid", ""),
    ("wayne", "base-eu", "prepaid", "150.00"),
    ("umbrella", "us-standard", "prepaid", "1000.00"),
    ("hooli", "us-standard", "postpaid", ""),
    ("o'brien", "pro-eu", "prepaid", "80.00"),
    ("100%", "base-eu", "prepaid", "20.00"),
    ("%", "us-standard", "postpaid", ""),
    ("_", "pro-eu", "postpaid", ""),
    ("<script>alert(1)</script>", "us-standard", "prepaid", "60.00"),
    ("Zoë-東京", "pro-eu", "prepaid", "45.50"),
    ('a"b,c', "base-eu", "postpaid", ""),
)
PREPAID = tuple(t for t, _, billing, _ in TENANTS if billing == "prepaid")
ADJUSTMENT_HEADER = (
    "tenant_id",
    "adjustment_id",
    "kind",
    "amount",
    "time",
    "source",
    "reason",
    "product_id",
    "line_type",
)


def write_tariff(root: Path) -> Path:
    """The test tariff directory under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "config" / "rates.csv", root / "rates.csv")
    (root / "plans.yaml").write_text(PLANS_YAML, encoding="utf-8")
    with (root / "tenants.csv").open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(TENANT_COLUMNS)
        for tenant, plan, billing, opening in TENANTS:
            extra = ["5.00", "50.00", "false"] if billing == "prepaid" else ["", "", "false"]
            writer.writerow([tenant, plan, billing, opening, *extra])
    with (root / "users.csv").open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["tenant_id", "user_id", "team_id"])
        for tenant, *_ in TENANTS:
            for i in range(6):
                hostile = tenant in ("globex", *HOSTILE_TENANTS)
                user = HOSTILE_USERS[i % 5] + f"-{i}" if hostile and i < 5 else f"u{i}.{tenant}"
                team = HOSTILE_TEAMS[i % 5] if hostile else ("sales", "support")[i % 2]
                writer.writerow([tenant, user, team])
    (root / "subscriptions.csv").write_text(
        "change_id,tenant_id,product_id,change,quantity,at\n"
        "acme-1,acme,extension,add,12,2026-09-03T09:00:00+02:00\n"
        "acme-2,acme,did,add,3,2026-09-03T09:00:00+02:00\n"
        "acme-3,acme,extension,add,2,2026-11-10T09:00:00+01:00\n"
        "globex-1,globex,did,add,4,2026-09-01T00:00:00+02:00\n"
        "hooli-1,hooli,license-basic,add,5,2026-09-01T00:00:00-04:00\n",
        encoding="utf-8",
    )
    return root


def traffic(tariff_dir: Path, count: int, seed: int) -> pl.DataFrame:
    """Simulated CDRs of every tenant over the two months, as a switch emits them."""
    return generate_cdrs(tariff_dir, count, seed, now=NOW, span=SPAN, duplicate_fraction=0.01)


def adjustments(cdrs: pl.DataFrame, count: int, seed: int) -> list[dict[str, Any]]:
    """Top-ups (manual, auto-recharge), refunds and product charges of the prepaid tenants
    (and a few postpaid refunds and an unknown tenant), at times among the records'."""
    rng = random.Random(seed)
    first = NOW - SPAN
    rows = []
    for i in range(count):
        tenant = rng.choice([*PREPAID, *PREPAID, "acme", "ghost"])
        kind = rng.choice(["topup", "topup", "refund", "charge", "charge"])
        when = first + dt.timedelta(seconds=rng.randint(0, int(SPAN.total_seconds())))
        row = {k: "" for k in ADJUSTMENT_HEADER}
        row.update(tenant_id=tenant, adjustment_id=f"adj-{i}", kind=kind, time=when.isoformat())
        row["amount"] = f"{rng.randint(1, 60)}.{rng.randint(0, 99):02d}"
        if kind == "topup":
            row["source"] = rng.choice(["manual", "auto_recharge"])
        elif kind == "refund":
            row["reason"] = rng.choice(["dropped call", "goodwill <b>credit</b>"])
        else:
            row["product_id"] = rng.choice(["did", "license-basic", "extension", "nope"])
            row["line_type"] = rng.choice(["recurring", "prorated", "one_time"])
        rows.append(row)
    rows.append({**rows[0]})  # a resent adjustment: a duplicate, applied once
    return rows


def write_adjustments(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=list(ADJUSTMENT_HEADER))
        writer.writeheader()
        writer.writerows(rows)
    return path


def rated_output(tariff_dir: Path, cdrs: pl.DataFrame, adjustments_csv: Path, out: Path) -> Path:
    """``rate-file`` over ``cdrs`` (in their order) and the adjustments: its output dir."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "cdrs.parquet"
    cdrs.select(list(CDR_SCHEMA)).write_parquet(path)
    rate_file(tariff_dir, path, out, adjustments_path=adjustments_csv)
    return out


def in_rating_order(cdrs: pl.DataFrame) -> pl.DataFrame:
    """The records sorted by rating time (then id): the order activity lists them in."""
    return cdrs.sort(pl.coalesce("answer_time", "start_time"), "cdr_id", maintain_order=True)


@dataclass(frozen=True)
class Deck:
    tariff_dir: Path
    tariff: Tariff
    cdrs: pl.DataFrame
    rated_dir: Path  # rate-file output, records as emitted (by end time)
    ordered_dir: Path  # rate-file output, records in rating-time order
    adjustments_csv: Path

    def rated(self, directory: Path | None = None) -> pl.DataFrame:
        return pl.read_parquet((directory or self.rated_dir) / "rated.parquet")

    def applied(self, directory: Path | None = None) -> pl.DataFrame:
        frame = pl.read_parquet((directory or self.rated_dir) / "adjustments.parquet")
        return frame.filter(pl.col("status") == "applied")
