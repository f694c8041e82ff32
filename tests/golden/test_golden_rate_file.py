"""End to end through ``rate_file``: a hand-worked CSV day for a prepaid tenant."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from rater.batch import rate_file
from rater.core.columns import CDR_SCHEMA, RATED_EXTRA_SCHEMA

from .helpers import row, write_tariff

PLANS = """
plans:
  - id: p
    currency: EUR
    timezone: Europe/Paris
    decimals: 4
    rounding: half_up
    bands:
      - {name: peak, days: [mon, tue, wed, thu, fri], from: "08:00", to: "20:00"}
    allowances:
      - {kind: sms, direction: any, prefixes: [], segments: 1}
"""
CSV = """\
cdr_id,tenant_id,user_id,team_id,kind,direction,caller,callee,start_time,answer_time,end_time,hold_ms,segments
c1,t1,u1,,call,outbound,+33100000000,+33612345678,2026-03-02T09:00:00+01:00,2026-03-02T09:00:10+01:00,2026-03-02T09:01:40+01:00,30000,
c2,t1,u1,,call,outbound,+33100000000,+33612345678,2026-03-02T20:00:00Z,2026-03-02T20:00:00Z,2026-03-02T20:00:31Z,,
c3,t1,,,sms,outbound,+33100000000,+447700900123,2026-03-02T10:00:00Z,,2026-03-02T10:00:00Z,,3
c1,t1,,,sms,outbound,+33100000000,+447700900123,2026-03-02T10:00:00Z,,2026-03-02T10:00:00Z,,1
c4,ghost,,,sms,outbound,+33100000000,+447700900123,2026-03-02T10:00:00Z,,2026-03-02T10:00:00Z,,1
c5,t1,,,ring_through,inbound,+447700900123,+33100000000,2026-03-02T10:00:00Z,,2026-03-02T10:00:20Z,,
"""


def test_rate_file_writes_its_outputs(tmp_path: Path) -> None:
    rates = [
        row("p", prefix="33", band="peak", price="0.12", first=30, inc=6, connect="0.05"),
        row("p", prefix="33", band="any", price="0.06", first=30, inc=6),
        row("p", kind="sms", prefix="44", price="0.0750"),
        row("p", kind="ring_through", direction="inbound", price="0.00125"),
    ]
    tariff = write_tariff(tmp_path, PLANS, rates, ["t1,p,prepaid,1.00,0.80,5.00,false"])
    source = tmp_path / "cdrs.csv"
    source.write_text(CSV, encoding="utf-8")
    out = tmp_path / "out"

    summary = rate_file(tariff, source, out, batch_size=2)

    rated = pl.read_parquet(out / "rated.parquet")
    assert rated.columns == [*CDR_SCHEMA, *RATED_EXTRA_SCHEMA]
    assert rated["cdr_id"].to_list() == ["c1", "c2", "c3", "c1", "c4", "c5"]
    assert rated["status"].to_list() == [
        "rated",
        "rated",
        "rated",
        "duplicate",
        "invalid",
        "rated",
    ]
    assert rated["reason"].to_list() == [None, None, None, "duplicate", "unknown_tenant", None]
    # c1: 09:00:10 Paris (peak), 90 s answered - 30 s hold = 60 s -> 30 + ceil(30/6)*6 = 60 s;
    #     0.05 + 0.12 * 60/60 = 0.17
    # c2: 21:00 Paris (no band -> 'any'): 31 s -> 30 + 6 = 36 s; 0.06 * 36/60 = 0.036
    # c3: 3 segments, 1 covered, 2 * 0.075 = 0.15
    # c5: inbound ring-through 0.00125 -> 4 decimals half_up -> 0.0013
    assert rated["billed_seconds"].to_list()[:2] == [60, 36]
    assert rated["covered"].to_list()[2] == 1
    assert rated["charge_micros"].to_list() == [170_000, 36_000, 150_000, 0, 0, 1_300]
    # 1.00 - 0.17 = 0.83; - 0.036 = 0.794 (below 0.80: low_balance at c2); - 0.15 = 0.644;
    # - 0.0013 = 0.6427
    assert [rated["balance_after_micros"][i] for i in (0, 1, 2, 5)] == [
        830_000,
        794_000,
        644_000,
        642_700,
    ]
    assert rated["hold_ms"].to_list() == [30_000, 0, 0, 0, 0, 0]
    assert rated["segments"].to_list() == [1, 1, 3, 1, 1, 1]

    events = pl.read_parquet(out / "events.parquet")
    assert events.rows() == [("t1", "low_balance", "c2", 794_000, 800_000, 5_000_000, False)]
    balances = pl.read_parquet(out / "balances.parquet")
    assert balances.rows() == [("t1", 642_700)]

    assert summary.records == 6
    assert summary.by_status == {"rated": 4, "duplicate": 1, "invalid": 1}
    assert summary.charges_by_currency == {"EUR": 357_300}
    assert summary.events == 1
    assert sorted(p.name for p in out.iterdir()) == [
        "adjustments.parquet",  # empty: no --adjustments
        "balances.parquet",
        "events.parquet",
        "rated.parquet",
    ]
    assert pl.read_parquet(out / "adjustments.parquet").height == 0
