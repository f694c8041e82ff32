"""Invoicing one month: 10M rated records over 10k tenants, with subscriptions.

    .venv/bin/python bench/bench_invoice.py --records 10000000 --tenants 10000 --runs 3

The records' destinations are skewed as real traffic is (most calls to a few prefixes,
a tail of 60), inbound calls, SMS and ring-through on one rate row each: about 100 lines
per invoice. Writes a synthetic tariff (3 plans in 3 time zones with fees, seats with included units,
one-time products and tax; 10k tenants, half prepaid; 5 subscription changes per tenant)
and a rate-file output directory (``rated.parquet``) once, under ``--data`` (default a
directory in /tmp, reused by later runs). Then each run is a fresh process calling
``rater.billing.run.invoice_period`` (files only: ``--documents none``), which reports its
wall time and peak RSS; the median is printed. ``--documents N`` also times the HTML and
the PDF of N invoices.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PERIOD = "2026-04"
_PLANS = """plans:
  - id: flat-eu
    currency: EUR
    timezone: Europe/Paris
    decimals: 4
    invoice_decimals: 2
    tax_rate: "0.20"
    tax_name: VAT
    allowances:
      - {kind: call, direction: outbound, prefixes: ["33"], seconds: 60000}
    products:
      - {id: fee, name: "Flat plan", type: fee, price: "49.00"}
      - {id: extension, name: "Extension", type: seat, price: "4.00", included: 10}
      - {id: did, name: "Phone number", type: seat, price: "5.00", included: 2}
      - {id: did-setup, name: "Number setup", type: one_time, price: "1.50"}
  - id: payg-us
    currency: USD
    timezone: America/New_York
    decimals: 4
    rounding: up
    invoice_decimals: 2
    tax_rate: "0.0875"
    products:
      - {id: license, name: "License", type: seat, price: "19.50"}
      - {id: did, name: "Phone number", type: seat, price: "1.25"}
      - {id: did-setup, name: "Number setup", type: one_time, price: "1.00"}
  - id: intl
    currency: EUR
    timezone: UTC
    decimals: 6
    invoice_decimals: 3
    products:
      - {id: did, name: "Phone number", type: seat, price: "2.00"}
"""
_SEATS = {"flat-eu": ["extension", "did"], "payg-us": ["license", "did"], "intl": ["did"]}
_ONE_TIME = {"flat-eu": "did-setup", "payg-us": "did-setup"}


def write_tariff(out: Path, tenants: int, seed: int = 7) -> list[tuple[str, str]]:
    """The tariff directory; returns (tenant_id, plan_id) of every tenant."""
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "plans.yaml").write_text(_PLANS)
    (out / "rates.csv").write_text(
        "plan_id,kind,direction,prefix,band,effective_from,effective_to,"
        "connect_fee,price,first_increment,increment,min_charge\n"
        "intl,call,outbound,,any,2024-01-01T00:00:00Z,,0,0.5,60,60,\n"
    )
    plans = list(_SEATS)
    who = [(f"t{i:05d}", plans[i % len(plans)]) for i in range(tenants)]
    rows = [
        "tenant_id,plan_id,billing,opening_balance,low_balance_threshold,recharge_amount,"
        "auto_recharge"
    ]
    for i, (tenant, plan) in enumerate(who):
        rows.append(
            f"{tenant},{plan},prepaid,500,50,100,true"
            if i % 2
            else f"{tenant},{plan},postpaid,,,,false"
        )
    (out / "tenants.csv").write_text("\n".join(rows) + "\n")
    changes = ["change_id,tenant_id,product_id,change,quantity,at"]
    start = datetime(2026, 3, 1, tzinfo=UTC)
    for tenant, plan in who:
        for n in range(5):
            at = (start + timedelta(minutes=rng.randint(0, 60 * 24 * 60))).isoformat()
            if n == 4 and plan in _ONE_TIME:
                changes.append(f"{tenant}-{n},{tenant},{_ONE_TIME[plan]},charge,1,{at}")
            else:
                product = rng.choice(_SEATS[plan])
                changes.append(f"{tenant}-{n},{tenant},{product},add,{rng.randint(1, 20)},{at}")
    (out / "subscriptions.csv").write_text("\n".join(changes) + "\n")
    return who


def write_rated(out: Path, records: int, tenants: int, seed: int = 11) -> None:
    """``rated.parquet`` of a rate-file run: records of April 2026, mostly rated."""
    n = pl.int_range(records, eager=True, dtype=pl.Int64)

    def u(k: int) -> pl.Expr:
        return (pl.col("i").hash(seed * 31 + k) % 1_000_000).cast(pl.Int64)

    start = int(datetime(2026, 4, 1, tzinfo=UTC).timestamp() * 1_000_000)
    month = 29 * 86_400 * 1_000_000
    kinds = pl.Series(["call", "call", "call", "sms", "ring_through"])
    frame = (
        n.alias("i")
        .to_frame()
        .with_columns(
            pl.format("t{}", (u(1) % tenants).cast(pl.String).str.zfill(5)).alias("tenant_id"),
            pl.lit(kinds).gather(u(2) % 5).alias("kind"),
            pl.when(u(3) % 3 == 0)
            .then(pl.lit("inbound"))
            .otherwise(pl.lit("outbound"))
            .alias("direction"),
            # Destinations as telephony traffic has them: most to a few, a long tail of 60.
            pl.format(
                "{}", (u(4).cast(pl.Float64) / 1e6).pow(4).mul(60).floor().cast(pl.Int64) + 1
            ).alias("rate_prefix"),
            pl.when(u(5) % 2 == 0).then(pl.lit("peak")).otherwise(pl.lit("offpeak")).alias("band"),
            (pl.lit(start) + u(6) * (month // 1_000_000))
            .cast(pl.Datetime("us", "UTC"))
            .alias("start_time"),
            (u(7) % 3600).alias("billed_seconds"),
            (u(8) % 3).cast(pl.Int32).add(1).alias("segments"),
            (u(9) % 2_000_000).alias("charge_micros"),
        )
    )
    plan_of = ["flat-eu", "payg-us", "intl"]
    # Inbound traffic, SMS and ring-through rate on one row each (no prefix, no band).
    flat = (pl.col("direction") == "inbound") | (pl.col("kind") != "call")
    frame = frame.with_columns(
        pl.when(flat).then(pl.lit("")).otherwise(pl.col("rate_prefix")).alias("rate_prefix"),
        pl.when(flat).then(pl.lit("any")).otherwise(pl.col("band")).alias("band"),
    )
    frame = frame.with_columns(
        pl.format("cdr-{}", pl.col("i")).alias("cdr_id"),
        pl.lit("rated").alias("status"),
        pl.lit(pl.Series(plan_of))
        .gather(pl.col("tenant_id").str.slice(1).cast(pl.Int64) % 3)
        .alias("plan_id"),
        pl.col("start_time").alias("answer_time"),
        pl.when(pl.col("kind") == "call")
        .then(pl.col("billed_seconds") // 4)
        .otherwise(0)
        .alias("covered"),
        pl.format("+{}5550100", pl.col("rate_prefix")).alias("callee"),
    ).drop("i")
    out.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(out / "rated.parquet", row_group_size=1_000_000)


def one_run(data: Path, documents: int) -> None:
    """In a fresh process: invoice the month; print time and peak RSS as JSON."""
    import resource
    import shutil
    import time

    from rater.billing.run import invoice_period
    from rater.settings import InvoiceSettings
    from rater.tariff_files import load_tariff

    tariff = load_tariff(data / "tariff")
    out = data / "invoices"
    shutil.rmtree(out, ignore_errors=True)
    terms = InvoiceSettings(rated=data / "rated", output=out, period=PERIOD, documents="none")
    started = time.perf_counter()
    run = invoice_period(tariff, terms)
    seconds = time.perf_counter() - started
    result = {
        "seconds": seconds,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "invoices": run.bill.invoices.height,
        "lines": run.bill.lines.height,
    }
    if documents:
        result.update(_documents(run.bill, documents))
    print(json.dumps(result))


def _documents(bill: object, count: int) -> dict[str, float]:
    import time

    from rater.billing.documents import invoice_documents
    from rater.settings import InvoiceSettings

    small = type(bill)(  # type: ignore[call-arg]
        bill.period,  # type: ignore[attr-defined]
        bill.invoices.head(count),  # type: ignore[attr-defined]
        bill.lines.filter(
            pl.col("invoice_id").is_in(bill.invoices.head(count)["invoice_id"].implode())
        ),  # type: ignore[attr-defined]
        bill.debits,  # type: ignore[attr-defined]
    )
    started = time.perf_counter()
    list(invoice_documents(small, InvoiceSettings(), pdf=False))
    html = time.perf_counter() - started
    started = time.perf_counter()
    list(invoice_documents(small, InvoiceSettings(), pdf=True))
    both = time.perf_counter() - started
    return {"html_per_s": count / html, "html_and_pdf_per_s": count / both}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--documents", type=int, default=0)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--one-run", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_run is not None:
        one_run(args.one_run, args.documents)
        return
    data = args.data or Path(f"/tmp/rater-bench-invoice-{args.records}-{args.tenants}")
    if not (data / "rated" / "rated.parquet").is_file():
        write_tariff(data / "tariff", args.tenants)
        write_rated(data / "rated", args.records, args.tenants)
    results = []
    for i in range(args.runs):
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one-run",
                str(data),
                "--documents",
                str(args.documents if i == 0 else 0),
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    times = [r["seconds"] for r in results]
    print(f"{args.records:,} rated records, {args.tenants:,} tenants, period {PERIOD}")
    print(f"invoices {results[0]['invoices']:,}, lines {results[0]['lines']:,}")
    print(
        f"median {statistics.median(times):.2f}s over {len(times)} runs "
        f"(min {min(times):.2f}s, max {max(times):.2f}s); target < 60 s"
    )
    print(f"peak RSS (largest run) {max(r['rss_mb'] for r in results):,.0f} MB; target < 4096 MB")
    if args.documents:
        first = results[0]
        print(
            f"documents for {args.documents} invoices: HTML {first['html_per_s']:.1f}/s, "
            f"HTML + PDF {first['html_and_pdf_per_s']:.2f}/s"
        )


if __name__ == "__main__":
    main()
