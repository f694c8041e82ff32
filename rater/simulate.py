"""A telephony switch simulator: realistic CDRs for a tariff deck, to Kafka or to a file.

Generation is vectorized with Polars and deterministic for a seed: every random draw is a
hash of (seed, draw number, row number), so the same seed gives the same records.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from rater.core.columns import CDR_SCHEMA, TIME
from rater.errors import ConfigError, InputError, TransientError, UsageError
from rater.logs import kafka_logger
from rater.settings import load_settings
from rater.wire import encode_cdrs, load_schema, write_avro_file

__all__ = [
    "PublishStats",
    "corrupt_messages",
    "encode_cdrs_json",
    "generate_cdrs",
    "publish",
    "register",
    "register_schema",
    "write_cdrs",
]

log = logging.getLogger(__name__)

_U53 = float(1 << 53)
_USERS_PER_TENANT = 40
_TEAMS_PER_TENANT = 5
_NUMBER_DIGITS = 11  # digits after "+", like most E.164 mobile numbers


# --------------------------------------------------------------------------- tariff deck


def _deck(tariff_dir: Path) -> tuple[list[str], list[str]]:
    """Tenant ids and number prefixes (longest first, non-empty digits) of a tariff dir."""
    tenants_csv, rates_csv = tariff_dir / "tenants.csv", tariff_dir / "rates.csv"
    for f in (tenants_csv, rates_csv):
        if not f.is_file():
            raise ConfigError(str(f), None, "file not found", "point --config at a tariff dir")
    try:
        tenants = pl.read_csv(tenants_csv, columns=["tenant_id"], infer_schema=False)
        rates = pl.read_csv(rates_csv, columns=["prefix"], infer_schema=False)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise ConfigError(str(tariff_dir), None, f"unreadable deck: {exc}", "fix the CSV") from None
    ids = tenants.get_column("tenant_id").drop_nulls().unique(maintain_order=True).to_list()
    if not ids:
        raise ConfigError(str(tenants_csv), None, "no tenants", "add at least one tenant row")
    prefixes = [
        p
        for p in rates.get_column("prefix").drop_nulls().unique(maintain_order=True).to_list()
        if p.isdigit() and len(p) < _NUMBER_DIGITS - 3
    ]
    return ids, sorted(prefixes) or ["33"]


# --------------------------------------------------------------------------- generation


def _uniform(seed: int, draw: int) -> pl.Expr:
    """A uniform [0, 1) per row, reproducible for (seed, draw)."""
    h = pl.int_range(pl.len(), dtype=pl.UInt64).hash(seed * 1_000_003 + draw)
    return (h // (1 << 11)).cast(pl.Float64) / _U53


def _digits(seed: int, draw: int, width: int) -> pl.Expr:
    h = pl.int_range(pl.len(), dtype=pl.UInt64).hash(seed * 1_000_003 + draw)
    digits: pl.Expr = (h % (10**width)).cast(pl.String).str.zfill(width)
    return digits


def _pick(options: Sequence[str], u: pl.Expr, skew: float = 1.0) -> pl.Expr:
    """One of ``options`` per row; skew > 1 favours the first ones (a few big tenants)."""
    idx = (u.pow(skew) * len(options)).floor().cast(pl.Int64).clip(0, len(options) - 1)
    return idx.replace_strict(dict(enumerate(options)), return_dtype=pl.String)


def _number(prefix: pl.Expr, seed: int, draw: int) -> pl.Expr:
    rest = (pl.lit(_NUMBER_DIGITS) - prefix.str.len_chars()).clip(lower_bound=4)
    return pl.concat_str(
        pl.lit("+"), prefix, _digits(seed, draw, _NUMBER_DIGITS).str.slice(0, rest)
    )


def generate_cdrs(
    tariff_dir: Path,
    count: int,
    seed: int,
    now: datetime | None = None,
    *,
    span: timedelta = timedelta(hours=2),
    invalid_fraction: float = 0.0,
    duplicate_fraction: float = 0.0,
) -> pl.DataFrame:
    """``count`` CDRs (CDR_SCHEMA) for the tenants and prefixes of ``tariff_dir``.

    ~75% calls (a quarter unanswered, some with hold, log-normal talk time up to 4 h), ~20%
    SMS (some multi-segment), ~5% ring-through attempts; start times spread over ``span``
    before ``now``; records ordered by end time, as a switch emits them. ``invalid_fraction``
    of the records get an end before their start or a malformed callee;
    ``duplicate_fraction`` are resends of an earlier record, unchanged.
    """
    if count < 0:
        raise UsageError("count must be >= 0")
    for name, frac in (("invalid", invalid_fraction), ("duplicate", duplicate_fraction)):
        if not 0.0 <= frac <= 1.0:
            raise UsageError(f"{name} fraction must be within [0, 1], not {frac}")
    tenants, prefixes = _deck(tariff_dir)
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise UsageError("now must be timezone-aware")
    now_us = int((now - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))
    span_us = int(span / timedelta(microseconds=1))
    home = prefixes[0]

    def u(draw: int) -> pl.Expr:
        return _uniform(seed, draw)

    kind_u, dir_u, ans_u, hold_u = u(2), u(3), u(4), u(5)
    kind = (
        pl.when(kind_u < 0.75)
        .then(pl.lit("call"))
        .when(kind_u < 0.95)
        .then(pl.lit("sms"))
        .otherwise(pl.lit("ring_through"))
    )
    # Talk time: log-normal (median ~70 s), Box-Muller from two uniforms, capped at 4 h.
    normal = (-2.0 * (1.0 - u(6)).log()).sqrt() * (2.0 * math.pi * u(7)).cos()
    talk_ms = (normal * 1.1 + math.log(70_000)).exp().clip(1_000, 4 * 3600 * 1000).cast(pl.Int64)
    ring_ms = (u(8) * 25_000 + 2_000).cast(pl.Int64)
    seg_u = u(9)
    segments = (
        pl.when(pl.col("kind") != "sms")
        .then(1)
        .when(seg_u < 0.8)
        .then(1)
        .when(seg_u < 0.95)
        .then(2)
        .otherwise((seg_u * 1000).cast(pl.Int64) % 3 + 3)
        .cast(pl.Int32)
    )
    user_n = (u(10) * _USERS_PER_TENANT).floor().cast(pl.Int64)

    base = pl.DataFrame({"row": pl.int_range(count, eager=True, dtype=pl.Int64)}).with_columns(
        tenant_id=_pick(tenants, u(1), skew=1.6),
        kind=kind,
        direction=pl.when(dir_u < 0.6).then(pl.lit("outbound")).otherwise(pl.lit("inbound")),
        user_n=user_n,
        has_user=u(11) >= 0.1,
        remote_prefix=_pick(prefixes, u(12)),
        answered=ans_u >= 0.25,
        held=hold_u < 0.12,
        talk_ms=talk_ms,
        ring_ms=ring_ms,
        hold_frac=u(13) * 0.4,
        # An hour of margin so that even long calls have ended by ``now``.
        start_us=pl.lit(now_us) - (u(14) * span_us).cast(pl.Int64) - 3600 * 1_000_000,
    )
    local = _number(pl.lit(home), seed, 20)
    remote = _number(pl.col("remote_prefix"), seed, 21)
    frame = base.with_columns(
        cdr_id=pl.format("cdr-{}-{}", pl.lit(seed), pl.col("row")),
        user_id=pl.when(pl.col("has_user"))
        .then(pl.format("{}-u{}", pl.col("tenant_id"), pl.col("user_n")))
        .otherwise(None),
        team_id=pl.when(pl.col("has_user"))
        .then(pl.format("{}-team{}", pl.col("tenant_id"), pl.col("user_n") % _TEAMS_PER_TENANT))
        .otherwise(None),
        caller=pl.when(pl.col("direction") == "outbound").then(local).otherwise(remote),
        callee=pl.when(pl.col("direction") == "outbound").then(remote).otherwise(local),
        segments=segments,
        is_call_answered=(pl.col("kind") == "call") & pl.col("answered"),
    ).with_columns(
        hold_ms=pl.when(pl.col("is_call_answered") & pl.col("held"))
        .then((pl.col("talk_ms").cast(pl.Float64) * pl.col("hold_frac")).cast(pl.Int64))
        .otherwise(0),
    )
    answer_us = pl.col("start_us") + pl.col("ring_ms") * 1000
    end_us = (
        pl.when(pl.col("is_call_answered"))
        .then(answer_us + (pl.col("talk_ms") + pl.col("hold_ms")) * 1000)
        .when(pl.col("kind") == "sms")
        .then(pl.col("start_us"))
        .otherwise(answer_us)
    )
    frame = frame.with_columns(
        answer_us=pl.when(pl.col("is_call_answered")).then(answer_us).otherwise(None),
        end_us=end_us,
    )
    if invalid_fraction > 0:
        bad_u = u(30)
        chosen = bad_u < invalid_fraction
        frame = frame.with_columns(
            end_us=pl.when(chosen & (bad_u < invalid_fraction / 2))
            .then(pl.col("start_us") - 1_000_000)
            .otherwise(pl.col("end_us")),
            answer_us=pl.when(chosen & (bad_u < invalid_fraction / 2))
            .then(None)
            .otherwise(pl.col("answer_us")),
            callee=pl.when(chosen & (bad_u >= invalid_fraction / 2))
            .then(pl.concat_str(pl.lit("+"), pl.col("remote_prefix"), pl.lit("12AB34")))
            .otherwise(pl.col("callee")),
        )
    out = frame.sort("end_us", "row").select(
        pl.col("cdr_id"),
        pl.col("tenant_id"),
        pl.col("user_id"),
        pl.col("team_id"),
        pl.col("kind"),
        pl.col("direction"),
        pl.col("caller"),
        pl.col("callee"),
        pl.col("start_us").cast(TIME).alias("start_time"),
        pl.col("answer_us").cast(TIME).alias("answer_time"),
        pl.col("end_us").cast(TIME).alias("end_time"),
        pl.col("hold_ms").cast(pl.Int64),
        pl.col("segments").cast(pl.Int32),
    )
    if duplicate_fraction > 0 and count > 1:
        # Resend an earlier record: row i becomes a copy of a row j < i.
        pick = out.select(
            pl.when((u(40) < duplicate_fraction) & (pl.int_range(pl.len()) > 0))
            .then((u(41) * pl.int_range(pl.len())).floor().cast(pl.Int64))
            .otherwise(pl.int_range(pl.len(), dtype=pl.Int64))
            .alias("src")
        )
        out = out[pick.get_column("src")]
    return out.cast(CDR_SCHEMA)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- encoding


def encode_cdrs_json(frame: pl.DataFrame) -> list[bytes]:
    """One JSON object per row; timestamps as integer micros since the epoch (exact)."""
    if frame.height == 0:
        return []
    ints = frame.with_columns(
        pl.col(c).dt.epoch("us") for c in frame.columns if frame[c].dtype == TIME
    )
    return ints.write_ndjson().encode().splitlines()


def corrupt_messages(values: list[bytes], fraction: float, seed: int, *, framed: bool) -> list[int]:
    """Replace ``fraction`` of ``values`` in place with broken messages; their positions.

    Cycles through garbage bytes, a truncated body and (framed) a wrong magic byte or
    (unframed) a body with trailing garbage.
    """
    rng = random.Random(seed ^ 0x5EED)
    hit = [i for i in range(len(values)) if rng.random() < fraction]
    for n, i in enumerate(hit):
        v = values[i]
        mode = n % 3
        if mode == 0:
            values[i] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        elif mode == 1:
            cut = max(1, len(v) // 2)
            values[i] = v[:cut] if v[cut - 1] < 0x80 else v[: cut - 1]
        elif framed:
            values[i] = b"\x01" + v[1:]
        else:
            values[i] = v + b"\xde\xad\xbe\xef"
    return hit


def write_cdrs(frame: pl.DataFrame, path: Path) -> None:
    """Write CDRs to ``path``: .parquet, .csv (ISO-8601 UTC timestamps) or .avro (container)."""
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet":
        frame.write_parquet(path)
    elif suffix == ".csv":
        frame.write_csv(path, datetime_format="%Y-%m-%dT%H:%M:%S%.6fZ")
    elif suffix == ".avro":
        write_avro_file(path, "cdr", encode_cdrs(frame))
    else:
        raise UsageError(f"--output must end in .csv, .parquet or .avro, not {path.name!r}")


# --------------------------------------------------------------------------- Kafka


@dataclass
class PublishStats:
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    seconds: float = 0.0


def register_schema(registry_url: str, subject: str, schema: Mapping[str, Any]) -> int:
    """Register ``schema`` under ``subject`` in a Confluent-compatible registry; its id."""
    body = json.dumps({"schema": json.dumps(schema)}).encode()
    req = urllib.request.Request(
        f"{registry_url.rstrip('/')}/subjects/{subject}/versions",
        data=body,
        headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            schema_id: int = json.loads(resp.read())["id"]
            return schema_id
    except OSError as exc:
        raise TransientError(f"schema registry {registry_url}: {exc}") from exc


def publish(
    frame: pl.DataFrame,
    producer_conf: Mapping[str, Any],
    topic: str,
    *,
    fmt: str = "avro",
    schema_id: int | None = None,
    rate: float = 0.0,
    garbage_fraction: float = 0.0,
    seed: int = 0,
    flush_timeout_s: float = 120.0,
    partitioner: str = "murmur2_random",
) -> PublishStats:
    """Produce every row of ``frame`` to ``topic`` keyed by tenant_id, in row order.

    ``fmt`` avro (Confluent-framed when ``schema_id`` is given) or json; ``rate`` caps
    records per second (0 = unthrottled); ``garbage_fraction`` of the messages are replaced
    by undecodable bytes (see :func:`corrupt_messages`).
    """
    from confluent_kafka import KafkaException, Producer

    if fmt == "avro":
        values = encode_cdrs(frame, schema_id)
    elif fmt == "json":
        values = encode_cdrs_json(frame)
    else:
        raise UsageError(f"format must be avro or json, not {fmt!r}")
    if garbage_fraction > 0:
        corrupt_messages(values, garbage_fraction, seed, framed=schema_id is not None)
    keys = [t.encode() for t in frame.get_column("tenant_id").to_list()]
    conf = {
        # The rater dead-letters a tenant's message found on another partition than this
        # partitioner's (its setting RATER_KAFKA__PARTITIONER, default murmur2_random).
        "partitioner": partitioner,
        "logger": kafka_logger(),
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "compression.type": "lz4",
        "enable.idempotence": True,
        "queue.buffering.max.messages": 500_000,
        "queue.buffering.max.kbytes": 512 * 1024,
        **producer_conf,
    }
    producer = Producer(conf)
    stats = PublishStats()

    def delivered(err: Any, _msg: Any) -> None:
        if err is None:
            stats.delivered += 1
        else:
            stats.failed += 1
            log.error("delivery failed: %s", err)

    started = time.monotonic()
    for i, (key, value) in enumerate(zip(keys, values, strict=True)):
        if rate > 0:
            ahead = i / rate - (time.monotonic() - started)
            if ahead > 0:
                producer.poll(ahead)
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
            except KafkaException as exc:
                raise TransientError(f"producing to {topic}: {exc}") from exc
        stats.sent += 1
        if i % 10_000 == 0:
            producer.poll(0)
    remaining = producer.flush(flush_timeout_s)
    stats.seconds = time.monotonic() - started
    if remaining:
        raise TransientError(f"{remaining} messages not delivered to {topic} in time")
    if stats.failed:
        raise TransientError(f"{stats.failed} messages to {topic} failed delivery")
    return stats


# --------------------------------------------------------------------------- CLI


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


def _run(args: argparse.Namespace) -> int:
    from rater.topics import TopicSpec, ensure_topics

    if args.count < 0:
        raise UsageError("--count must be >= 0")
    for flag in ("bad_fraction", "duplicate_fraction"):
        if not 0.0 <= getattr(args, flag) <= 1.0:
            raise UsageError(f"--{flag.replace('_', '-')} must be within [0, 1]")
    if args.rate < 0:
        raise UsageError("--rate must be >= 0")
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
    topic = args.topic or settings.topics.cdrs
    fmt = args.format or settings.stream.input_format
    schema_id = args.schema_id
    if schema_id is None and _env_default("SCHEMA_ID", None):
        schema_id = int(_env_default("SCHEMA_ID", "0") or 0)
    if schema_id is None and fmt == "avro" and settings.kafka.schema_registry_url:
        schema_id = register_schema(
            settings.kafka.schema_registry_url, f"{topic}-value", load_schema("cdr")
        )
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
    return 0
