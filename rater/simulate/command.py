"""``rater simulate``: generate CDRs for a tariff dir and publish them to Kafka or a file.

Every flag has an environment default (RATER_SIMULATE_<FLAG>); the Kafka and tariff settings
come from the settings root (RATER_ variables). Self-contained: it only uses the public
functions of the simulator modules, the settings and rater.topics.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path
from typing import Any

import polars as pl

from rater.errors import InputError, UsageError
from rater.settings import Settings, load_settings
from rater.simulate.generate import generate_cdrs, write_cdrs
from rater.simulate.publish import publish, register_schema
from rater.wire import load_schema

__all__ = ["register"]

# The simulator's records keep the logger name they had when it was a single module.
log = logging.getLogger("rater.simulate")


def _env_default(name: str, default: str | None) -> str | None:
    return os.environ.get(f"RATER_SIMULATE_{name}", default)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "simulate",
        help="publish realistic CDRs like a telephony switch (or write them to a file)",
        description="Generate CDRs for the tenants and destinations of a tariff dir and publish "
        "them to Kafka keyed by tenant_id, or write them to --output. Every flag can also be "
        "set by environment: RATER_SIMULATE_<FLAG> (e.g. RATER_SIMULATE_COUNT), and the "
        "Kafka/tariff settings by their RATER_ variables.",
    )
    p.add_argument("--count", type=int, default=int(_env_default("COUNT", "10000") or 0))
    p.add_argument(
        "--rate",
        type=float,
        default=float(_env_default("RATE", "0") or 0),
        help="records per second, 0 = as fast as possible",
    )
    p.add_argument("--config", type=Path, default=None, help="tariff dir (env RATER_TARIFF_DIR)")
    p.add_argument("--topic", default=None, help="CDR topic (env RATER_TOPICS__CDRS)")
    p.add_argument("--bootstrap-servers", default=None, help="env RATER_KAFKA__BOOTSTRAP_SERVERS")
    p.add_argument("--seed", type=int, default=int(_env_default("SEED", "1") or 1))
    p.add_argument(
        "--bad-fraction",
        type=float,
        default=float(_env_default("BAD_FRACTION", "0") or 0),
        help="share of broken records: half undecodable messages, half invalid fields",
    )
    p.add_argument(
        "--duplicate-fraction",
        type=float,
        default=float(_env_default("DUPLICATE_FRACTION", "0") or 0),
        help="share of records that resend an earlier CDR unchanged",
    )
    p.add_argument(
        "--format",
        choices=["avro", "json"],
        default=None,
        help="message format (env RATER_STREAM__INPUT_FORMAT, default avro)",
    )
    p.add_argument(
        "--schema-id",
        type=int,
        default=None,
        help="frame messages with this schema id (env RATER_SIMULATE_SCHEMA_ID; registered "
        "automatically when RATER_KAFKA__SCHEMA_REGISTRY_URL is set)",
    )
    p.add_argument(
        "--output",
        type=Path,
        default=_path_env("OUTPUT"),
        help="write a .csv, .parquet or .avro file instead of publishing",
    )
    p.set_defaults(func=_run)


def _path_env(name: str) -> Path | None:
    v = _env_default(name, None)
    return Path(v) if v else None


def _check_args(args: argparse.Namespace) -> None:
    if args.count < 0:
        raise UsageError("--count must be >= 0")
    for flag in ("bad_fraction", "duplicate_fraction"):
        if not 0.0 <= getattr(args, flag) <= 1.0:
            raise UsageError(f"--{flag.replace('_', '-')} must be within [0, 1]")
    if args.rate < 0:
        raise UsageError("--rate must be >= 0")


def _settings(args: argparse.Namespace) -> Settings:
    """The settings root with --config and --bootstrap-servers applied."""
    overrides: dict[str, Any] = {"tariff_dir": args.config}
    kafka: dict[str, Any] = {}
    if args.bootstrap_servers:
        kafka["bootstrap_servers"] = args.bootstrap_servers
    settings = load_settings(**overrides)
    if kafka:
        settings = load_settings(
            **overrides, kafka=settings.kafka.model_copy(update=kafka).model_dump()
        )
    if not settings.tariff_dir.is_dir():
        raise InputError(f"tariff dir {settings.tariff_dir} does not exist (--config)")
    return settings


def _schema_id(args: argparse.Namespace, settings: Settings, topic: str, fmt: str) -> int | None:
    """--schema-id, else RATER_SIMULATE_SCHEMA_ID, else one registered for Avro with a registry."""
    schema_id: int | None = args.schema_id
    if schema_id is None and _env_default("SCHEMA_ID", None):
        schema_id = int(_env_default("SCHEMA_ID", "0") or 0)
    if schema_id is None and fmt == "avro" and settings.kafka.schema_registry_url:
        schema_id = register_schema(
            settings.kafka.schema_registry_url, f"{topic}-value", load_schema("cdr")
        )
    return schema_id


def _publish(
    frame: pl.DataFrame, args: argparse.Namespace, settings: Settings, garbage: float
) -> None:
    """Publish ``frame`` to the CDR topic (created when missing) and print what was done."""
    from rater.topics import TopicSpec, ensure_topics

    topic = args.topic or settings.topics.cdrs
    fmt = args.format or settings.stream.input_format
    schema_id = _schema_id(args, settings, topic, fmt)
    client = settings.kafka.client_config()
    ensure_topics(
        client,
        [
            TopicSpec(
                topic,
                partitions=settings.topics.partitions,
                replication_factor=settings.topics.replication_factor,
            )
        ],
    )
    stats = publish(
        frame,
        client,
        topic,
        fmt=fmt,
        schema_id=schema_id,
        rate=args.rate,
        garbage_fraction=garbage,
        seed=args.seed,
        partitioner=settings.kafka.partitioner,
    )
    rate = stats.delivered / stats.seconds if stats.seconds else 0.0
    print(f"published {stats.delivered} CDRs to {topic} in {stats.seconds:.2f}s ({rate:,.0f}/s)")


def _run(args: argparse.Namespace) -> int:
    _check_args(args)
    settings = _settings(args)
    to_file = args.output is not None
    # A file holds records, not messages: all "bad" records there carry invalid fields.
    garbage = 0.0 if to_file else args.bad_fraction / 2
    invalid = args.bad_fraction - garbage
    started = time.monotonic()
    frame = generate_cdrs(
        settings.tariff_dir,
        args.count,
        args.seed,
        invalid_fraction=invalid,
        duplicate_fraction=args.duplicate_fraction,
    )
    log.info("generated %d CDRs in %.2fs", frame.height, time.monotonic() - started)
    if to_file:
        write_cdrs(frame, args.output)
        print(f"wrote {frame.height} CDRs to {args.output}")
        return 0
    _publish(frame, args, settings, garbage)
    return 0
