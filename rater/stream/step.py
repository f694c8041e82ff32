"""Step 1 of the commit path: turn a batch of messages into everything it must output.

Pure apart from decoding and encoding: it takes the partitions' states and returns the
new ones, leaving the caller to adopt them only once the transaction has committed.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from rater.core.rating import apply_topups, rate_batch
from rater.core.tariff import Tariff
from rater.settings import Settings
from rater.stream import codec
from rater.stream.changelog import PartitionState, encode_state, entry_messages
from rater.stream.inputs import InputBatch
from sinks.base import SinkBatch

__all__ = ["BatchOutput", "OutBlock", "PartitionMeta", "rate_step"]

log = logging.getLogger(__name__)


@dataclass
class OutBlock:
    """Messages for one topic-partition, as parallel lists (cheap to build and produce)."""

    topic: str
    partition: int
    keys: Sequence[bytes | None]
    values: Sequence[bytes | None]
    headers: Sequence[list[tuple[str, bytes]]] | None = None


@dataclass
class PartitionMeta:
    """What the job remembers of a partition besides its state."""

    generation: int  # assignment time in microseconds: newer owners have larger values
    live_keys: list[bytes] = field(default_factory=list)  # changelog keys since the snapshot
    batches_since_snapshot: int = 0


@dataclass
class BatchOutput:
    blocks: list[OutBlock]
    rated_sinks: list[SinkBatch]
    event_sinks: list[SinkBatch]
    states: dict[int, PartitionState]
    live_keys: dict[int, list[bytes]]
    snapshotted: set[int]
    counts: Counter[str]
    charges: Counter[str]
    events: Counter[str]
    dead_reasons: Counter[str]


def rate_step(
    settings: Settings,
    tariff: Tariff,
    batch: InputBatch,
    states: dict[int, PartitionState],
    meta: dict[int, PartitionMeta],
) -> BatchOutput:
    topics = settings.topics
    out = BatchOutput([], [], [], {}, {}, set(), Counter(), Counter(), Counter(), Counter())
    now = datetime.now(UTC)
    by_partition: dict[int, tuple[list[Any], list[Any]]] = {}
    for msg in batch.cdrs:
        by_partition.setdefault(msg.partition(), ([], []))[0].append(msg)
    for msg in batch.topups:
        by_partition.setdefault(msg.partition(), ([], []))[1].append(msg)

    for p, (cdr_msgs, topup_msgs) in sorted(by_partition.items()):
        state = states.get(p, PartitionState.empty())
        dead: list[tuple[Any, str]] = []

        # Top-ups first: a credit that arrived with the batch applies before its debits.
        topup_delta_ids = pl.DataFrame(schema=state.topup_ids.schema)
        rating = state.rating
        rating_delta = None
        if topup_msgs:
            decoded = codec.decode_topups(settings, tariff, [m.value() for m in topup_msgs])
            for idx, reason in decoded.failures:
                dead.append((topup_msgs[idx], reason))
            fresh = decoded.frame.join(state.topup_ids, on=["tenant_id", "topup_id"], how="anti")
            fresh = fresh.unique(["tenant_id", "topup_id"], keep="first", maintain_order=True)
            out.counts["topup_duplicate"] += decoded.frame.height - fresh.height
            out.counts["topup_applied"] += fresh.height
            if fresh.height:
                rating, rating_delta = apply_topups(tariff, fresh, rating)
                topup_delta_ids = fresh.select("tenant_id", "topup_id")

        # CDRs: decode in bulk, rate with the partition's state.
        cdr_frame = codec.empty_cdr_frame()
        bodies = None
        if cdr_msgs:
            values = [m.value() for m in cdr_msgs]
            decoded = codec.decode_cdrs(settings, values)
            bodies = codec.cdr_bodies(settings, values, decoded.good)
            for idx, reason in decoded.failures:
                dead.append((cdr_msgs[idx], reason))
            out.counts["consumed"] += len(cdr_msgs)
            out.counts["dead_lettered"] += len(decoded.failures)
            offsets = [cdr_msgs[i].offset() for i in decoded.good]
            cdr_frame = decoded.frame.with_columns(
                pl.lit(cdr_msgs[0].topic()).alias("source_topic"),
                pl.lit(p, dtype=pl.Int32).alias("source_partition"),
                pl.Series("source_offset", offsets, dtype=pl.Int64),
            )
        result = rate_batch(tariff, cdr_frame, rating)
        rated = result.rated
        delta_rating = result.delta if rating_delta is None else rating_delta.merge(result.delta)
        delta = PartitionState(delta_rating, topup_delta_ids)
        new_state = PartitionState(result.state, state.topup_ids.vstack(topup_delta_ids))

        # Status counts and charges, for metrics and the summary.
        if rated.height:
            for status, n in rated.group_by("status").len().iter_rows():
                out.counts[status] += n
            sums = rated.group_by("currency").agg(pl.col("charge_micros").sum())
            for currency, micros in sums.iter_rows():
                if currency is not None and micros:
                    out.charges[currency] += micros
            invalid = rated.filter(pl.col("status") == "invalid")
            if invalid.height:
                by_offset = {m.offset(): m for m in cdr_msgs}
                for off, reason in invalid.select("source_offset", "reason").iter_rows():
                    dead.append((by_offset[off], reason))

        events = _events_with_source(result.events, rated)
        for event, n in events.group_by("event").len().iter_rows():
            out.events[event] += n

        generation = meta[p].generation if p in meta else 0
        if rated.height:
            first, last = batch.first[(topics.cdrs, p)], batch.last[(topics.cdrs, p)]
            rated_rows = rated.with_columns(_rating_time())
            out.rated_sinks.append(SinkBatch(topics.cdrs, p, first, last, generation, rated_rows))
            out.event_sinks.append(SinkBatch(topics.cdrs, p, first, last, generation, events))
            out.blocks.append(
                OutBlock(topics.rated, p, _keys(rated), codec.encode_rated(settings, rated, bodies))
            )
        if events.height:
            ekeys = _keys(events)
            out.blocks.append(
                OutBlock(topics.events, p, ekeys, list(codec.encode_events(settings, events)))
            )
        out.dead_reasons.update(reason for _, reason in dead)
        if dead:
            out.blocks.append(_dead_letter_block(topics.dead_letter, p, dead, now))

        # The changelog: this batch's delta, or every few batches a pruned snapshot.
        pm = meta.get(p) or PartitionMeta(generation=0)
        live = list(pm.live_keys)
        # Unique per committed batch of the partition: its first offset in each input topic.
        cdr_first = batch.first.get((topics.cdrs, p), -1)
        topup_first = batch.first.get((topics.topups, p), -1)
        entry_id = f"c{cdr_first}.t{topup_first}"
        if pm.batches_since_snapshot + 1 >= settings.stream.snapshot_every_batches:
            new_state = _prune(new_state, settings.stream.dedupe_horizon_days)
            msgs = list(entry_messages("snap", entry_id, encode_state(new_state)))
            keys_out: list[bytes | None] = [*live, *(k for k, _ in msgs)]
            values_out: list[bytes | None] = [*(None for _ in live), *(v for _, v in msgs)]
            live = [k for k, _ in msgs]
            out.snapshotted.add(p)
        else:
            msgs = list(entry_messages("delta", entry_id, encode_state(delta)))
            keys_out = [k for k, _ in msgs]
            values_out = [v for _, v in msgs]
            live.extend(keys_out)  # type: ignore[arg-type]
        out.blocks.append(OutBlock(topics.changelog, p, keys_out, values_out))
        out.live_keys[p] = live
        out.states[p] = new_state
    return out


def _keys(frame: pl.DataFrame) -> list[bytes | None]:
    """Message keys: the tenant ids, encoded once per distinct tenant."""
    tenants = frame.get_column("tenant_id")
    encoded = {t: t.encode() for t in tenants.unique().to_list() if t is not None}
    return [encoded.get(t) for t in tenants.to_list()]


def _rating_time() -> pl.Expr:
    return pl.coalesce("answer_time", "start_time").alias("rating_time")


def _events_with_source(events: pl.DataFrame, rated: pl.DataFrame) -> pl.DataFrame:
    """Events with the source offset and rating time of the CDR that raised them."""
    src = rated.filter(pl.col("status") == "rated").select(
        "tenant_id",
        "cdr_id",
        "source_topic",
        "source_partition",
        "source_offset",
        _rating_time(),
    )
    return events.join(src, on=["tenant_id", "cdr_id"], how="left", maintain_order="left")


def _dead_letter_block(
    topic: str, partition: int, dead: list[tuple[Any, str]], now: datetime
) -> OutBlock:
    stamp = now.isoformat().encode()
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
        topic, partition, [m.key() for m, _ in dead], [m.value() for m, _ in dead], headers
    )


def _prune(state: PartitionState, horizon_days: float) -> PartitionState:
    seen = state.rating.seen
    if seen.is_empty():
        return state
    newest = seen.get_column("seen_time").max()
    assert isinstance(newest, datetime)
    return PartitionState(
        state.rating.prune_seen(newest - timedelta(days=horizon_days)), state.topup_ids
    )
