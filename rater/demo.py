"""``rater demo``: the whole product on an embedded default, in one command.

A local Kafka broker, the example tariff (config/), a simulated switch publishing
CDRs (with some resent duplicates, invalid records and undecodable messages), the
streaming job rating them exactly once into Kafka, Parquet and DuckDB, and a summary.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import duckdb

from rater import metrics
from rater.billing.debits import publish_debits
from rater.billing.run import InvoiceRun, invoice_period
from rater.core.money import format_micros
from rater.core.tariff import Tariff
from rater.devbroker import LocalBroker
from rater.errors import UsageError
from rater.reports import write_demo_reports
from rater.settings import Settings, load_settings
from rater.simulate import generate_cdrs, publish
from rater.stream.job import RaterJob
from rater.stream.topics import TopicSpec, ensure_topics
from rater.tariff_files import load_tariff

__all__ = ["MARKER", "check_output", "prepare_output", "run_demo"]

log = logging.getLogger(__name__)

# Left in the output directory by the demo: only a directory holding it is ever cleared.
MARKER = ".rater-demo"
# The prepaid tenant whose reports the demo writes (account activity needs a credit).
DEMO_TENANT = "globex"


def run_demo(config: Path, count: int, seed: int, output: Path, out: TextIO) -> None:
    # A bad output directory or tariff stops here, before any broker starts.
    check_output(output)
    tariff = load_tariff(config)
    prepare_output(output)
    with tempfile.TemporaryDirectory(prefix="rater-demo-kafka-") as tmp:
        broker = LocalBroker(Path(tmp), heap="512m")
        print("starting a local Kafka broker ...", file=out, flush=True)
        broker.start()
        try:
            settings = load_settings(
                tariff_dir=config,
                metrics_enabled=False,
                kafka={"bootstrap_servers": broker.bootstrap},
                topics={"partitions": 3},
                stream={"idle_exit_s": 3.0, "instance_id": "demo", "batch_max_records": 10_000},
                output={"dataset_dir": output, "duckdb_path": output / "rater.duckdb"},
            )
            topics = settings.topics
            admin = {"bootstrap.servers": broker.bootstrap}
            ensure_topics(
                admin, [TopicSpec(t, 3) for t in (topics.cdrs, topics.topups, topics.adjustments)]
            )
            cdrs = generate_cdrs(
                config, count, seed, invalid_fraction=0.01, duplicate_fraction=0.01
            )
            stats = publish(cdrs, admin, topics.cdrs, garbage_fraction=0.005, seed=seed)
            print(
                f"switch simulator: published {stats.sent} CDRs to '{topics.cdrs}' "
                f"(about 1% resent duplicates, 1% invalid, 0.5% undecodable)",
                file=out,
            )
            port = metrics.serve(0)
            print(
                f"metrics: http://127.0.0.1:{port}/metrics, probes /healthz and /readyz "
                "(while the demo runs)",
                file=out,
            )
            print("rating (rater run) until the input is drained ...", file=out, flush=True)
            summary = RaterJob(settings, tariff, "demo").run(handle_signals=False)
            print("", file=out)
            print("\n".join(summary.lines()), file=out)
            run = _invoice(settings, tariff, output, out)
            _apply_debits(settings, tariff, run, out)
        finally:
            broker.stop()
    _report(output, out)
    _reports(config, output, out)


def _invoice(settings: Settings, tariff: Tariff, output: Path, out: TextIO) -> InvoiceRun:
    """Invoice the demo month (the traffic's month, in UTC) from the dataset just written."""
    period = datetime.now(UTC).strftime("%Y-%m")
    terms = settings.invoice.model_copy(
        update={"rated": output, "output": output / "invoices", "period": period}
    )
    print(f"\ninvoicing {period} (rater invoice) ...", file=out, flush=True)
    run = invoice_period(tariff, terms)
    print("\n".join(run.lines()), file=out)
    return run


def _apply_debits(settings: Settings, tariff: Tariff, run: InvoiceRun, out: TextIO) -> None:
    """Publish the prepaid tenants' seat charges (rater invoice --publish-debits) and let
    the streaming job debit them from the credit, as it debits calls."""
    if run.bill.debits.is_empty():
        return
    stats = publish_debits(settings, run.bill.debits)
    print(
        f"published {stats.delivered} prepaid debits (licenses, numbers) to "
        f"'{settings.topics.adjustments}'; rating them ...",
        file=out,
        flush=True,
    )
    summary = RaterJob(settings, tariff, "demo").run(handle_signals=False)
    applied = summary.counts["adjustment_applied"]
    events = ", ".join(f"{n} {event}" for event, n in sorted(summary.events.items()))
    print(f"  debits applied: {applied}; balance events: {events or 'none'}", file=out)


def _reports(config: Path, output: Path, out: TextIO) -> None:
    paths = write_demo_reports(config, output, output / "reports", DEMO_TENANT)
    print(f"\nreports of tenant {DEMO_TENANT} (rater report):", file=out)
    for path in paths:
        print(f"  {path}", file=out)


def check_output(output: Path) -> None:
    """Refuse (UsageError) an output that is a file, or a non-empty directory not ours."""
    if (output.exists() or output.is_symlink()) and not output.is_dir():
        raise UsageError(
            f"--output {output} exists and is not a directory. Fix: choose a new or empty directory"
        )
    if output.is_dir() and not (output / MARKER).is_file() and any(output.iterdir()):
        raise UsageError(
            f"--output {output} is not empty and was not created by rater demo. "
            "Fix: choose a new or empty directory"
        )


def prepare_output(output: Path) -> None:
    """Make ``output`` an empty directory holding the demo's marker.

    A new or empty directory is used as is; one holding the marker (an earlier demo's
    output) is emptied first; anything else is refused by :func:`check_output`, and
    nothing of the user's is ever deleted.
    """
    check_output(output)
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"--output {output}: cannot create it ({exc.strerror}). "
            "Fix: choose a new or empty directory"
        ) from None
    for child in output.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    (output / MARKER).write_text(
        "Written by `rater demo`; a later demo run may empty this directory.\n",
        encoding="utf-8",
    )


def _report(output: Path, out: TextIO) -> None:
    db = output / "rater.duckdb"
    with duckdb.connect(str(db), read_only=True) as con:
        print("\nrevenue by tenant (rated records, from the DuckDB view rated_usage):", file=out)
        rows = con.execute(
            """
            SELECT tenant_id, currency, count(*) AS records, sum(charge_micros) AS micros
            FROM rated_usage WHERE status = 'rated'
            GROUP BY ALL ORDER BY currency, micros DESC
            """
        ).fetchall()
        for tenant, currency, records, micros in rows:
            print(
                f"  {tenant:<10} {currency} {format_micros(int(micros)):>16}  {records:>6} records",
                file=out,
            )
        events: list[Any] = []
        with contextlib.suppress(duckdb.CatalogException):  # no event yet: no view
            events = con.execute(
                "SELECT event, tenant_id, cdr_id FROM balance_events "
                "ORDER BY source_partition, source_offset, event = 'exhausted'"
            ).fetchall()
        print(f"\nbalance events emitted: {len(events)}", file=out)
        for event, tenant, cdr_id in events:
            print(f"  {event:<12} {tenant:<10} crossed by {cdr_id}", file=out)
    files = sorted(p.relative_to(output).as_posix() for p in output.rglob("*.parquet"))
    print(f"\noutput: {len(files)} Parquet files under {output}/, views in {db}", file=out)
    print("topics: rated-usage, balance-events, cdrs-dlq, rater-state-changelog", file=out)
    print(
        "dashboard: config/grafana/dashboards/rater.json; alert rules: config/prometheus/rules/;"
        "\nthe whole stack in containers (Kafka, registry, rater, Prometheus, Grafana): "
        "docker compose up; see docs/operations.md",
        file=out,
    )
