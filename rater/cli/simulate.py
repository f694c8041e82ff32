"""``rater simulate``: generate CDRs for a tariff dir and publish them to Kafka or a file.

Every flag is a setting of the root (``RATER_SIMULATE__<FLAG>``), as are the Kafka and
tariff settings (their RATER_ variables).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import polars as pl

from rater.cli.flags import settings_from
from rater.errors import InputError
from rater.settings import Settings
from rater.simulate.generate import generate_cdrs, write_cdrs
from rater.simulate.publish import publish, register_schema
from rater.wire import load_schema

__all__ = ["register"]

# The simulator's records keep the logger name they had when it was a single module.
log = logging.getLogger("rater.simulate")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "simulate",
        help="publish realistic CDRs like a telephony switch (or write them to a file)",
        description="Generate CDRs for the tenants and destinations of a tariff dir and publish "
        "them to Kafka keyed by tenant_id, or write them to --output. Every flag can also be "
        "set by environment: RATER_SIMULATE__<FLAG> (e.g. RATER_SIMULATE__COUNT), and the "
        "Kafka/tariff settings by their RATER_ variables.",
    )
    p.add_argument("--count", type=int, help="CDRs to generate (default 10000)")
    p.add_argument("--rate", type=float, help="records per second, 0 = as fast as possible")
    p.add_argument("--config", type=Path, default=None, help="tariff dir (env RATER_TARIFF_DIR)")
    p.add_argument("--topic", default=None, help="CDR topic (env RATER_TOPICS__CDRS)")
    p.add_argument("--bootstrap-servers", default=None, help="env RATER_KAFKA__BOOTSTRAP_SERVERS")
    p.add_argument("--seed", type=int, help="the same seed gives the same records (default 1)")
    p.add_argument(
        "--bad-fraction",
        type=float,
        help="share of broken records: half undecodable messages, half invalid fields",
    )
    p.add_argument(
        "--duplicate-fraction",
        type=float,
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
        help="frame messages with this schema id (env RATER_SIMULATE__SCHEMA_ID; registered "
        "automatically when RATER_KAFKA__SCHEMA_REGISTRY_URL is set)",
    )
    p.add_argument(
        "--output", type=Path, help="write a .csv, .parquet or .avro file instead of publishing"
    )
    p.set_defaults(func=_run)


def _settings(args: argparse.Namespace) -> Settings:
    """The settings root with the flags applied (a bad value: one line, exit 2)."""
    settings = settings_from(
        tariff_dir=args.config,
        kafka={"bootstrap_servers": args.bootstrap_servers},
        topics={"cdrs": args.topic},
        stream={"input_format": args.format},
        simulate={
            "count": args.count,
            "rate": args.rate,
            "seed": args.seed,
            "bad_fraction": args.bad_fraction,
            "duplicate_fraction": args.duplicate_fraction,
            "schema_id": args.schema_id,
            "output": args.output,
        },
    )
    if not settings.tariff_dir.is_dir():
        raise InputError(f"tariff dir {settings.tariff_dir} does not exist (--config)")
    return settings


def _schema_id(settings: Settings, topic: str, fmt: str) -> int | None:
    """--schema-id, else one registered for Avro when a schema registry is configured."""
    schema_id = settings.simulate.schema_id
    if schema_id is None and fmt == "avro" and settings.kafka.schema_registry_url:
        schema_id = register_schema(
            settings.kafka.schema_registry_url, f"{topic}-value", load_schema("cdr")
        )
    return schema_id


def _publish(frame: pl.DataFrame, settings: Settings, garbage: float) -> None:
    """Publish ``frame`` to the CDR topic (created when missing) and print what was done."""
    from rater.stream.topics import ensure_topic

    topic, fmt = settings.topics.cdrs, settings.stream.input_format
    client = settings.kafka.client_config()
    ensure_topic(client, settings.topics, topic)
    stats = publish(
        frame,
        client,
        topic,
        fmt=fmt,
        schema_id=_schema_id(settings, topic, fmt),
        rate=settings.simulate.rate,
        garbage_fraction=garbage,
        seed=settings.simulate.seed,
        partitioner=settings.kafka.partitioner,
    )
    rate = stats.delivered / stats.seconds if stats.seconds else 0.0
    print(f"published {stats.delivered} CDRs to {topic} in {stats.seconds:.2f}s ({rate:,.0f}/s)")


def _run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    sim = settings.simulate
    # A file holds records, not messages: all "bad" records there carry invalid fields.
    garbage = 0.0 if sim.output is not None else sim.bad_fraction / 2
    started = time.monotonic()
    frame = generate_cdrs(
        settings.tariff_dir,
        sim.count,
        sim.seed,
        invalid_fraction=sim.bad_fraction - garbage,
        duplicate_fraction=sim.duplicate_fraction,
    )
    log.info("generated %d CDRs in %.2fs", frame.height, time.monotonic() - started)
    if sim.output is not None:
        write_cdrs(frame, sim.output)
        print(f"wrote {frame.height} CDRs to {sim.output}")
        return 0
    _publish(frame, settings, garbage)
    return 0
