"""Invoicing the streaming job's dataset gives the invoices of `rate-file` over the same
records and adjustments: batch and streaming cannot disagree on a bill either."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from streamworld import CONFIG, World

from rater import wire
from rater.batch import rate_file
from rater.billing.run import invoice_period
from rater.core.columns import CDR_SCHEMA
from rater.settings import InvoiceSettings
from rater.tariff_files import load_tariff


def _adjustments(world: World) -> list[dict[str, object]]:
    now = datetime.fromtimestamp(world.clock.now, UTC)
    return [
        {
            "tenant_id": "acme",
            "adjustment_id": "r1",
            "kind": "refund",
            "amount": "4.20",
            "time": now,
            "reason": "Dropped calls",
        },
        {
            "tenant_id": "globex",
            "adjustment_id": "t1",
            "kind": "topup",
            "amount": "50",
            "time": now,
            "source": "manual",
        },
    ]


def test_invoices_of_the_dataset_equal_those_of_rate_file(world: World, tmp_path: Path) -> None:
    cdrs = world.cdrs(1_500, seed=31, duplicate_fraction=0.02)
    records = _adjustments(world)
    for rec in records:
        tenant = str(rec["tenant_id"]).encode()
        world.cluster.publish("adjustments", wire.encode_adjustment(rec), tenant)
    world.publish_cdrs(cdrs)
    world.run()

    src = tmp_path / "cdrs.parquet"
    cdrs.select(list(CDR_SCHEMA)).write_parquet(src)
    adj = tmp_path / "adj.csv"
    pl.DataFrame([{**r, "time": r["time"].isoformat()} for r in records]).write_csv(adj)  # type: ignore[union-attr]
    rate_file(CONFIG, src, tmp_path / "batch", adjustments_path=adj)

    tariff = load_tariff(CONFIG)
    period = datetime.fromtimestamp(world.clock.now, UTC).strftime("%Y-%m")
    runs = {}
    for name, rated in (("stream", world.root), ("batch", tmp_path / "batch")):
        terms = InvoiceSettings(
            rated=rated, output=tmp_path / f"inv-{name}", period=period, documents="none"
        )
        runs[name] = invoice_period(tariff, terms)
    stream, batch = runs["stream"].bill, runs["batch"].bill
    assert stream.invoices.height == 8
    assert stream.lines.equals(batch.lines)
    assert stream.invoices.equals(batch.invoices)
    assert stream.lines.filter(pl.col("type") == "credit")["amount"].to_list() == ["-4.20"]
    for name in ("invoice_lines.csv", "invoices.csv"):
        assert (tmp_path / "inv-stream" / name).read_bytes() == (
            tmp_path / "inv-batch" / name
        ).read_bytes()
