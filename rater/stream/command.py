"""``rater run``: the streaming job's command line."""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from pathlib import Path
from typing import Any

from rater import metrics, signals
from rater.core.money import format_micros
from rater.settings import Settings, load_settings
from rater.stream.job import RaterJob, RunSummary
from rater.tariff_files import load_tariff

__all__ = ["print_summary", "register", "settings_from_args"]

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "run",
        help="rate CDRs from Kafka continuously, exactly once",
        description="Consume CDRs from Kafka as a consumer-group member, rate them and write "
        "rated records, balance events and dead letters to Kafka (one transaction per batch) "
        "and to the Parquet dataset. Every flag can also be set by its environment variable.",
    )
    add_stream_flags(p)
    p.set_defaults(func=_run)


def add_stream_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="tariff directory (RATER_TARIFF_DIR)")
    p.add_argument(
        "--bootstrap-servers", help="Kafka bootstrap servers (RATER_KAFKA__BOOTSTRAP_SERVERS)"
    )
    p.add_argument("--group", help="consumer group id (RATER_STREAM__GROUP_ID)")
    p.add_argument("--instance-id", help="stable id of this process (RATER_STREAM__INSTANCE_ID)")
    p.add_argument("--input-topic", help="CDR topic (RATER_TOPICS__CDRS)")
    p.add_argument(
        "--output-dir", type=Path, help="Parquet dataset root (RATER_OUTPUT__DATASET_DIR)"
    )
    p.add_argument("--duckdb", type=Path, help="DuckDB views file (RATER_OUTPUT__DUCKDB_PATH)")
    p.add_argument(
        "--batch-max-records", type=int, help="records per batch (RATER_STREAM__BATCH_MAX_RECORDS)"
    )
    p.add_argument(
        "--batch-max-wait-ms", type=int, help="max wait per batch (RATER_STREAM__BATCH_MAX_WAIT_MS)"
    )
    p.add_argument(
        "--idle-exit",
        type=float,
        help="stop after the input is idle this many seconds, 0 = never (RATER_STREAM__IDLE_EXIT_S)",
    )
    p.add_argument(
        "--input-format", choices=["avro", "json"], help="CDR encoding (RATER_STREAM__INPUT_FORMAT)"
    )
    p.add_argument(
        "--metrics-port", type=int, help="Prometheus port, 0 = any free port (RATER_METRICS_PORT)"
    )


def settings_from_args(args: argparse.Namespace) -> Settings:
    base = load_settings()
    overrides: dict[str, Any] = {}
    if args.config is not None:
        overrides["tariff_dir"] = args.config
    if args.metrics_port is not None:
        overrides["metrics_port"] = args.metrics_port
    nested = {
        "kafka": {"bootstrap_servers": args.bootstrap_servers},
        "topics": {"cdrs": args.input_topic},
        "stream": {
            "group_id": args.group,
            "instance_id": args.instance_id,
            "batch_max_records": args.batch_max_records,
            "batch_max_wait_ms": args.batch_max_wait_ms,
            "idle_exit_s": args.idle_exit,
            "input_format": args.input_format,
        },
        "output": {"dataset_dir": args.output_dir, "duckdb_path": args.duckdb},
    }
    for section, values in nested.items():
        given = {k: v for k, v in values.items() if v is not None}
        if given:
            current = getattr(base, section).model_dump()
            overrides[section] = {**current, **given}
    if not overrides:
        return base
    merged = base.model_dump()
    merged.update(overrides)
    return load_settings(**merged)


def _run(args: argparse.Namespace) -> int:
    # A SIGTERM during start-up (see rater.signals) stops before anything is written.
    settings = settings_from_args(args)
    tariff = load_tariff(settings.tariff_dir)
    if signals.requested():
        return 0
    metrics.serve(settings.metrics_port, settings.metrics_enabled)
    instance = settings.stream.instance_id or socket.gethostname()
    summary = RaterJob(settings, tariff, instance).run()  # finish the batch, then stop
    print_summary(summary)
    return 0


def print_summary(summary: RunSummary, out: Any = None) -> None:
    out = out or sys.stdout
    c = summary.counts
    parts = " + ".join(
        f"{c[k]} {k}" for k in ("rated", "unrated", "duplicate", "invalid", "dead_lettered")
    )
    print(f"consumed {c['consumed']} = {parts}", file=out)
    print(f"batches committed {summary.batches}, aborted {summary.aborted}", file=out)
    if summary.busy_s > 0:
        rate = c["consumed"] / summary.busy_s
        print(
            f"busy {summary.busy_s:.3f}s from first message to last commit: {rate:,.0f} CDRs/s",
            file=out,
        )
    for currency, micros in sorted(summary.charges.items()):
        print(f"charged {currency} {format_micros(micros)}", file=out)
    for event, n in sorted(summary.events.items()):
        print(f"events {event}: {n}", file=out)
