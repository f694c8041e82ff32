"""What one batch makes visible: messages per output topic, files per input partition,
and the counts reported by the summary and the metrics."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl

from rater.core.rating import rating_time
from rater.core.state import RatingState
from sinks.base import SinkBatch

__all__ = [
    "BatchOutput",
    "Dead",
    "OutBlock",
    "count_statuses",
    "dead_letter_block",
    "keys_of",
    "sink_batches",
]

Dead = tuple[Any, str]  # (message, reason)


@dataclass
class OutBlock:
    """Messages for one topic, as parallel lists (cheap to build and produce)."""

    topic: str
    partitions: Sequence[int]
    keys: Sequence[bytes | None]
    values: Sequence[bytes | None]
    headers: Sequence[list[tuple[str, bytes]]] | None = None


@dataclass
class BatchOutput:
    """Everything a batch must output, and the state to adopt once it has committed."""

    token: str
    blocks: list[OutBlock]
    rated_sinks: list[SinkBatch]
    event_sinks: list[SinkBatch]
    adjustment_sinks: list[SinkBatch]
    held: RatingState
    live_keys: dict[int, list[bytes]]
    snapshotted: set[int]
    counts: Counter[str] = field(default_factory=Counter)
    charges: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    dead_reasons: Counter[str] = field(default_factory=Counter)


def count_statuses(out: BatchOutput, rated: pl.DataFrame) -> None:
    """Status counts and charges, for metrics and the summary."""
    for status, n in rated.group_by("status").len().iter_rows():
        out.counts[status] += n
    sums = rated.group_by("currency").agg(pl.col("charge_micros").sum())
    for currency, micros in sums.iter_rows():
        if currency is not None and micros:
            out.charges[currency] += micros


def sink_batches(
    offsets: dict[tuple[str, int], tuple[int, int]],
    frame: pl.DataFrame | None,
    generations: dict[int, int],
) -> list[SinkBatch]:
    """A frame's rows cut by the topic-partition they were read from (``source_topic``,
    ``source_partition``), each named by that input's offset range (first, last) in the
    batch. Rated rows get their rating time (null when undatable)."""
    if frame is None or frame.height == 0:
        return []
    if "rating_time" not in frame.columns and "cdr_id" in frame.columns:
        frame = frame.with_columns(rating_time())
    out = []
    for (topic, p), (first, last) in offsets.items():
        own = frame.filter((pl.col("source_topic") == topic) & (pl.col("source_partition") == p))
        if own.height:
            out.append(SinkBatch(topic, p, first, last, generations.get(p, 0), own))
    return out


def keys_of(frame: pl.DataFrame) -> list[bytes | None]:
    """Message keys: the tenant ids, encoded once per distinct tenant."""
    tenants = frame.get_column("tenant_id")
    encoded = {t: t.encode() for t in tenants.unique().to_list() if t is not None}
    return [encoded.get(t) for t in tenants.to_list()]


def dead_letter_block(topic: str, dead: list[Dead]) -> OutBlock:
    """The messages as they came (key, value, headers), with the rater's reason headers."""
    stamp = datetime.now(UTC).isoformat().encode()
    headers = []
    for msg, reason in dead:
        h = list(msg.headers() or [])
        h += [
            ("rater.reason", reason.encode()),
            ("rater.source.topic", msg.topic().encode()),
            ("rater.source.partition", str(msg.partition()).encode()),
            ("rater.source.offset", str(msg.offset()).encode()),
            ("rater.time", stamp),
        ]
        headers.append(h)
    return OutBlock(
        topic,
        [m.partition() for m, _ in dead],
        [m.key() for m, _ in dead],
        [m.value() for m, _ in dead],
        headers,
    )
