"""Generate a large synthetic tariff directory and CDR frames for benchmarks.

    python bench/make_deck.py --out /tmp/deck --rates 50000 --tenants 10000

The deck has several plans in three time zones with peak/offpeak/weekend bands,
fallback chains, allowances, dated price changes and prefixes of 1..7 digits.
"""

from __future__ import annotations

import argparse
import random
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from rater.core.columns import CDR_SCHEMA

__all__ = ["make_cdrs", "write_deck"]

_ZONES = ("Europe/Paris", "America/New_York", "UTC")
_BANDS = (
    '      - {name: peak, days: [mon, tue, wed, thu, fri], from: "08:00", to: "20:00"}\n'
    '      - {name: weekend, days: [sat, sun], from: "00:00", to: "24:00"}\n'
    '      - {name: offpeak, days: [mon, tue, wed, thu, fri], from: "20:00", to: "08:00"}\n'
)
# Country codes the generated traffic dials; every prefix in the deck starts with one.
COUNTRIES = ("1", "33", "44", "49", "34", "39", "31", "41", "32", "353")
_MAIN_PLANS = 6


def _plans_yaml() -> str:
    out = ["plans:"]
    for zone_index, zone in enumerate(_ZONES):
        out.append(
            f"  - id: base-{zone_index}\n    currency: EUR\n    timezone: {zone}\n    decimals: 6"
        )
    for i in range(_MAIN_PLANS):
        zone = _ZONES[i % len(_ZONES)]
        out.append(
            f"  - id: plan-{i}\n    currency: EUR\n    timezone: {zone}\n    decimals: {2 + i % 5}\n"
            f"    rounding: {('half_up', 'up', 'down')[i % 3]}\n    fallback: base-{(i + 1) % len(_ZONES)}\n"
            f"    bands:\n{_BANDS}"
            "    allowances:\n"
            '      - {kind: call, direction: outbound, prefixes: ["33", "49"], seconds: 3600}\n'
            "      - {kind: sms, direction: any, prefixes: [], segments: 20}\n"
            "      - {kind: call, direction: any, prefixes: [], seconds: 600}"
        )
    return "\n".join(out) + "\n"


def write_deck(out: Path, *, rates: int = 50_000, tenants: int = 10_000, seed: int = 7) -> Path:
    """Write plans.yaml, rates.csv and tenants.csv into ``out``; return ``out``."""
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "plans.yaml").write_text(_plans_yaml(), encoding="utf-8")
    header = (
        "plan_id,kind,direction,prefix,band,effective_from,effective_to,"
        "connect_fee,price,first_increment,increment,min_charge\n"
    )
    lines = [header]
    change = "2025-03-01T00:00:00+00:00"
    plan_ids = [f"plan-{i}" for i in range(_MAIN_PLANS)] + [f"base-{z}" for z in range(len(_ZONES))]
    seen: set[tuple[str, ...]] = set()
    # Every base plan rates every kind/direction on the empty prefix: a final fallback.
    for z in range(len(_ZONES)):
        for kind in ("call", "sms", "ring_through"):
            for direction in ("inbound", "outbound"):
                lines.append(
                    f"base-{z},{kind},{direction},,any,2024-01-01T00:00:00Z,,0,0.5,60,60,\n"
                )
                seen.add((f"base-{z}", kind, direction, "", "any", "old"))
    while len(lines) - 1 < rates:
        plan = rng.choice(plan_ids)
        kind = rng.choices(("call", "sms", "ring_through"), weights=(8, 3, 1))[0]
        direction = rng.choice(("inbound", "outbound"))
        prefix = rng.choice(COUNTRIES) + "".join(
            rng.choice("0123456789") for _ in range(rng.randint(0, 4))
        )
        band = (
            "any"
            if plan.startswith("base")
            else rng.choice(("any", "any", "peak", "offpeak", "weekend"))
        )
        key = (plan, kind, direction, prefix, band)
        if (*key, "old") in seen:
            continue
        seen.add((*key, "old"))
        price = f"0.{rng.randint(1, 999_999):06d}{rng.randint(0, 99):02d}"
        fee = f"0.{rng.randint(0, 99):02d}" if kind == "call" else ""
        first, inc = rng.choice(((60, 60), (30, 6), (1, 1), (6, 6)))
        minimum = f"0.{rng.randint(0, 50):03d}" if kind == "call" and rng.random() < 0.3 else ""
        if rng.random() < 0.2:
            # A dated change: the old price until the change, a new one after.
            lines.append(
                f"{plan},{kind},{direction},{prefix},{band},2024-01-01T00:00:00+01:00,{change},{fee},{price},{first},{inc},{minimum}\n"
            )
            new_price = f"0.{rng.randint(1, 999_999):06d}"
            lines.append(
                f"{plan},{kind},{direction},{prefix},{band},{change},,{fee},{new_price},{first},{inc},{minimum}\n"
            )
        else:
            lines.append(
                f"{plan},{kind},{direction},{prefix},{band},2024-01-01T00:00:00+01:00,,{fee},{price},{first},{inc},{minimum}\n"
            )
    (out / "rates.csv").write_text("".join(lines[: rates + 1]), encoding="utf-8")
    tenant_lines = [
        "tenant_id,plan_id,billing,opening_balance,low_balance_threshold,recharge_amount,auto_recharge\n"
    ]
    for t in range(tenants):
        plan = f"plan-{t % _MAIN_PLANS}"
        if t % 2:
            tenant_lines.append(
                f"t{t:05d},{plan},prepaid,{rng.randint(1, 500)}.50,5,20,{'true' if t % 4 == 1 else 'false'}\n"
            )
        else:
            tenant_lines.append(f"t{t:05d},{plan},postpaid,,,,false\n")
    (out / "tenants.csv").write_text("".join(tenant_lines), encoding="utf-8")
    return out


def make_cdrs(records: int, *, tenants: int = 10_000, seed: int = 1) -> pl.DataFrame:
    """A CDR_SCHEMA frame of ``records`` synthetic records (about 1% invalid or duplicated)."""
    base = datetime(2025, 2, 20, tzinfo=UTC)
    i = pl.int_range(records, dtype=pl.Int64)

    def rnd(salt: int, modulo: int) -> pl.Expr:
        return (i.hash(seed * 1_000_003 + salt) % modulo).cast(pl.Int64)

    countries = pl.lit(pl.Series(COUNTRIES))
    frame = pl.select(
        pl.format("c{}", i % max(1, records - records // 200)).alias("cdr_id"),
        pl.format("t{}", (rnd(1, tenants) + 100_000).cast(pl.String).str.slice(1)).alias(
            "tenant_id"
        ),
        pl.lit(None, dtype=pl.String).alias("user_id"),
        pl.lit(None, dtype=pl.String).alias("team_id"),
        pl.lit(pl.Series(["call"] * 8 + ["sms"] * 3 + ["ring_through"]))
        .gather(rnd(2, 12))
        .alias("kind"),
        pl.when(rnd(3, 2) == 0)
        .then(pl.lit("inbound"))
        .otherwise(pl.lit("outbound"))
        .alias("direction"),
        pl.lit("+33100000000").alias("caller"),
        pl.concat_str(
            pl.lit("+"),
            countries.gather(rnd(4, len(COUNTRIES))),
            (rnd(5, 10**9) + 10**9).cast(pl.String).str.slice(1),
            pl.when(rnd(9, 500) == 0).then(pl.lit("x")).otherwise(pl.lit("")),
        ).alias("callee"),
        (pl.lit(base) + pl.duration(seconds=rnd(6, 20 * 86_400))).alias("start_time"),
        rnd(7, 600_000).alias("_dur_ms"),
        rnd(8, 10).alias("_ring_s"),
    )
    start = pl.col("start_time")
    answer = start + pl.duration(seconds=pl.col("_ring_s"))
    unanswered = pl.col("_ring_s") == 0
    return frame.select(
        "cdr_id",
        "tenant_id",
        "user_id",
        "team_id",
        "kind",
        "direction",
        "caller",
        "callee",
        "start_time",
        pl.when(unanswered | (pl.col("kind") != "call"))
        .then(None)
        .otherwise(answer)
        .alias("answer_time"),
        pl.when(pl.col("kind") != "call")
        .then(start)
        .otherwise(answer + pl.duration(milliseconds=pl.col("_dur_ms")))
        .alias("end_time"),
        pl.when((pl.col("kind") == "call") & ~unanswered)
        .then(pl.col("_dur_ms") // 20)
        .otherwise(0)
        .alias("hold_ms"),
        pl.when(pl.col("kind") == "sms")
        .then(1 + pl.col("_ring_s") // 4)
        .otherwise(None)
        .alias("segments"),
    ).cast(CDR_SCHEMA)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rates", type=int, default=50_000)
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument(
        "--cdrs", type=int, default=0, help="also write cdrs.parquet with this many records"
    )
    args = parser.parse_args()
    write_deck(args.out, rates=args.rates, tenants=args.tenants)
    if args.cdrs:
        make_cdrs(args.cdrs, tenants=args.tenants).write_parquet(args.out / "cdrs.parquet")
    print(args.out)


if __name__ == "__main__":
    main()
