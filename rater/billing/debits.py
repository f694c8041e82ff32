"""``rater invoice --publish-debits``: a prepaid tenant's product lines debited from its
balance by the streaming job.

Each fee, recurring, prorated and one-time line of a prepaid tenant (amount > 0) is sent
to the adjustments topic as a ``charge`` at the line's instant (the period start, or the
change's time), keyed and partitioned by tenant as the rater expects, with the id
``<invoice_id>:<line type>:<product_id>:<change_id or "start">``. The rater applies an
adjustment id once, so running the command again debits nothing more.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import polars as pl

from rater import wire
from rater.core.money import format_micros
from rater.settings import Settings
from rater.simulate import PublishStats, publish_values, register_schema

__all__ = ["publish_debits"]


def publish_debits(settings: Settings, debits: pl.DataFrame) -> PublishStats:
    """Send ``debits`` (ADJUSTMENT_SCHEMA charges) to the adjustments topic."""
    from rater.stream.topics import ensure_topic

    topic = settings.topics.adjustments
    client = settings.kafka.client_config()
    ensure_topic(client, settings.topics, topic)
    encode = _encoder(settings)
    values = [encode(row) for row in debits.iter_rows(named=True)]
    keys = [t.encode() for t in debits.get_column("tenant_id").to_list()]
    return publish_values(keys, values, client, topic, partitioner=settings.kafka.partitioner)


def _encoder(settings: Settings) -> Callable[[dict[str, Any]], bytes]:
    """How the rater reads the adjustments topic: JSON, or Avro framed as the settings
    say (a registry's id, registered once; a fixed id; or no framing)."""
    if settings.stream.input_format == "json":
        return lambda row: json.dumps(
            {**_record(row), "time": row["time"].isoformat()}, sort_keys=True
        ).encode()
    schema_id: int | None = None
    if settings.kafka.schema_registry_url:
        subject = f"{settings.topics.adjustments}-value"
        schema_id = register_schema(
            settings.kafka.schema_registry_url, subject, wire.load_schema("adjustment")
        )
    elif settings.kafka.confluent_framing:
        schema_id = settings.kafka.schema_ids.get("adjustment")
    return lambda row: wire.encode_adjustment(_record(row), schema_id)


def _record(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k != "amount_micros"}
    return {**out, "amount": _decimal_text(row["amount_micros"])}


def _decimal_text(micros: int) -> str:
    """Exact decimal text of a positive amount, without trailing zeros."""
    text = format_micros(micros, 6)
    return text.rstrip("0").rstrip(".") if "." in text else text
