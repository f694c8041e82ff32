"""Prepaid debits on a real broker: ``rater invoice --publish-debits`` run twice debits
each seat charge once, and the streaming job raises balance events for them as for calls.
The whole demo, end to end, on its own broker."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from rater import wire
from rater.cli import main
from rater.core.columns import EVENT_SCHEMA
from rater.devbroker import LocalBroker
from rater.simulate import generate_cdrs
from rater.stream.job import RaterJob
from rater.tariff_files import load_tariff
from tests.integration.streamkit import (
    EXAMPLE_CONFIG,
    REPO,
    StreamEnv,
    create_topics,
    read_topic,
)

pytestmark = pytest.mark.kafka

PERIOD = "2026-11"


@pytest.fixture
def stream_env(kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StreamEnv:
    env = StreamEnv(kafka_bootstrap, f"b{uuid.uuid4().hex[:8]}", tmp_path / "out")
    create_topics(env)
    for key, value in env.env().items():
        monkeypatch.setenv(key, value)
    return env


def _rated_dir(tmp_path: Path) -> Path:
    cdrs = generate_cdrs(EXAMPLE_CONFIG, 400, seed=3, now=datetime(2026, 11, 12, tzinfo=UTC))
    source = tmp_path / "cdrs.parquet"
    cdrs.write_parquet(source)
    rated = tmp_path / "rated"
    argv = ["rate-file", "--config", str(EXAMPLE_CONFIG), "--input", str(source)]
    assert main([*argv, "--output", str(rated)]) == 0
    return rated


def _invoice(env: StreamEnv, rated: Path, output: Path) -> None:
    argv = ["invoice", "--config", str(EXAMPLE_CONFIG), "--rated", str(rated)]
    argv += ["--period", PERIOD, "--output", str(output), "--documents", "none"]
    argv += ["--publish-debits", "--bootstrap-servers", env.bootstrap]
    assert main(argv) == 0


def test_debits_published_twice_are_applied_once(stream_env: StreamEnv, tmp_path: Path) -> None:
    rated = _rated_dir(tmp_path)
    _invoice(stream_env, rated, tmp_path / "first")
    _invoice(stream_env, rated, tmp_path / "second")
    tariff = load_tariff(EXAMPLE_CONFIG)
    prepaid = [t for t, tenant in tariff.tenants.items() if tenant.billing == "prepaid"]
    expected = pl.read_parquet(tmp_path / "first" / "invoice_lines.parquet").filter(
        pl.col("tenant_id").is_in(prepaid),
        pl.col("type").is_in(["fee", "recurring", "prorated", "one_time"]),
        pl.col("amount_micros") > 0,
    )
    assert expected.height > 0
    published = read_topic(stream_env.bootstrap, stream_env.topic("adjustments"))
    assert len(published) == 2 * expected.height

    settings = stream_env.settings(RATER_STREAM__IDLE_EXIT_S="3")
    summary = RaterJob(settings, tariff, "a").run(handle_signals=False)

    assert summary.counts["adjustment_applied"] == expected.height
    assert summary.counts["adjustment_duplicate"] == expected.height
    files = sorted((stream_env.out / "adjustments").glob("month=*/*.parquet"))
    applied = pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")
    applied = applied.filter(pl.col("status") == "applied")
    assert applied["adjustment_id"].n_unique() == applied.height == expected.height
    debited = applied.group_by("tenant_id").agg(pl.col("amount_micros").sum())
    lines = expected.group_by("tenant_id").agg(pl.col("amount_micros").sum())
    assert debited.sort("tenant_id").equals(lines.sort("tenant_id"))
    # Each tenant's lowest balance = opening balance - all its debits (charges only lower it).
    for (tenant,), rows in applied.group_by("tenant_id"):
        opening = tariff.tenants[str(tenant)].opening_balance_micros
        assert rows["balance_after_micros"].min() == opening - rows["amount_micros"].sum()
    # tinyco (0.50 EUR of credit, low-balance threshold 0.40) is exhausted by its licenses.
    messages = read_topic(stream_env.bootstrap, stream_env.topic("events"))
    events = pl.DataFrame(
        [wire.decode_balance_event(m.value()) for m in messages], schema_overrides=EVENT_SCHEMA
    )
    tinyco = events.filter(pl.col("tenant_id") == "tinyco")
    assert set(tinyco["event"]) == {"low_balance", "exhausted"}
    assert set(tinyco["cdr_id"]) <= set(applied["adjustment_id"])


def test_make_demo_invoices_and_reports(kafka_broker: LocalBroker | None, tmp_path: Path) -> None:
    """The quick start's demo, on its own local broker: rating, invoices, debits, reports."""
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "rater", "demo", "--count", "3000", "--output", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout
    consumed = next(line for line in text.splitlines() if line.startswith("consumed "))
    total, parts = consumed.removeprefix("consumed ").split(" = ")
    assert int(total) == 3000 == sum(int(p.split()[0]) for p in parts.split(" + "))
    invoices = pl.read_parquet(out / "invoices" / "invoices.parquet")
    assert invoices.height == len(load_tariff(EXAMPLE_CONFIG).tenants)
    for name in invoices["document"]:
        assert (out / "invoices" / f"{name}.html").is_file()
        assert (out / "invoices" / f"{name}.pdf").read_bytes().startswith(b"%PDF")
    assert f"-> {out / 'invoices'}" in text
    reports = sorted(p.name for p in (out / "reports").iterdir())
    assert reports == ["activity-globex.html", "consumption-globex.html", "usage-globex.html"]
    for name in reports:
        assert str(out / "reports" / name) in text
    assert "debits applied: " in text
