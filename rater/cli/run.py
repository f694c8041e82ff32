"""``rater run``: the streaming job's command line."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

from rater import metrics, signals
from rater.cli.flags import settings_from
from rater.stream.job import RaterJob
from rater.tariff_files import load_tariff

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "run",
        help="rate CDRs from Kafka continuously, exactly once",
        description="Consume CDRs from Kafka as a consumer-group member, rate them and write "
        "rated records, balance events and dead letters to Kafka (one transaction per batch) "
        "and to the Parquet dataset. Every flag can also be set by its environment variable.",
    )
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
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    # A SIGTERM during start-up (see rater.signals) stops before anything is written.
    settings = settings_from(
        tariff_dir=args.config,
        metrics_port=args.metrics_port,
        kafka={"bootstrap_servers": args.bootstrap_servers},
        topics={"cdrs": args.input_topic},
        stream={
            "group_id": args.group,
            "instance_id": args.instance_id,
            "batch_max_records": args.batch_max_records,
            "batch_max_wait_ms": args.batch_max_wait_ms,
            "idle_exit_s": args.idle_exit,
            "input_format": args.input_format,
        },
        output={"dataset_dir": args.output_dir, "duckdb_path": args.duckdb},
    )
    tariff = load_tariff(settings.tariff_dir)
    if signals.requested():
        return 0
    metrics.serve(settings.metrics_port, settings.metrics_enabled)
    instance = settings.stream.instance_id or socket.gethostname()
    summary = RaterJob(settings, tariff, instance).run()  # finish the batch, then stop
    print("\n".join(summary.lines()))
    return 0
