"""Step 1 of the commit path: turn a batch of messages into everything it must output.

Pure apart from decoding and encoding: it takes the held state and returns the new one,
leaving the caller to adopt it only once the transaction has committed. The whole batch,
all partitions together, goes through one bulk decode and one call of the rating core:
tenants never span partitions, so rating them together is the same as rating each
partition alone, and the core's fixed cost per call is paid once.
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
from rater.core.state import RatingState
from rater.core.tariff import Tariff
from rater.settings import Settings
from rater.stream import codec
from rater.stream.changelog import PartitionState, encode_state, entry_messages
from rater.stream.inputs import InputBatch
from sinks.base import SinkBatch

__all__ = ["BatchOutput", "HeldState", "OutBlock", "PartitionMeta", "rate_step"]

log = logging.getLogger(__name__)

_OWNERS = pl.Schema({"tenant_id": pl.String(), "partition": pl.Int32()})


@dataclass
class OutBlock:
    """Messages for one topic, as parallel lists (cheap to build and produce)."""

    topic: str
    partitions: Sequence[int]
    keys: Sequence[bytes | None]
    values: Sequence[bytes | None]
    headers: Sequence[list[tuple[str, bytes]]] | None = None


@dataclass
class PartitionMeta:
    """What the job remembers of a partition besides its state."""

    generation: int  # assignment time in microseconds: newer owners have larger values
    live_keys: list[bytes] = field(default_factory=list)  # changelog keys since the snapshot
    batches_since_snapshot: int = 0


@dataclass(frozen=True)
class HeldState:
    """The state of every partition this process owns, and which partition owns a tenant."""

    rating: RatingState
    topup_ids: pl.DataFrame  # tenant_id, topup_id: top-ups already credited
    owners: pl.DataFrame  # tenant_id, partition

    @staticmethod
    def empty() -> HeldState:
        return HeldState(
            RatingState.empty(),
            PartitionState.empty().topup_ids,
            pl.DataFrame(schema=_OWNERS),
        )

    def tenants_of(self, partition: int) -> pl.Series:
        return self.owners.filter(pl.col("partition") == partition).get_column("tenant_id")

    def partition_state(self, partition: int) -> PartitionState:
        whole = PartitionState(self.rating, self.topup_ids)
        return whole.select_tenants(self.tenants_of(partition))

    def add_partition(self, partition: int, restored: PartitionState) -> HeldState:
        r = restored.rating
        tenants = pl.concat(
            [f.get_column("tenant_id") for f in (r.balances, r.allowances, r.seen)]
            + [restored.topup_ids.get_column("tenant_id")]
        ).unique()
        owners = pl.DataFrame(
            {"tenant_id": tenants, "partition": pl.repeat(partition, tenants.len(), eager=True)},
            schema=_OWNERS,
        )
        return HeldState(
            self.rating.merge(r),
            pl.concat([self.topup_ids, restored.topup_ids]),
            pl.concat([self.owners, owners]).unique(maintain_order=True),
        )

    def drop_partition(self, partition: int) -> HeldState:
        tenants = self.tenants_of(partition)
        return HeldState(
            self.rating.drop_tenants(tenants),
            self.topup_ids.filter(~pl.col("tenant_id").is_in(tenants.implode())),
            self.owners.filter(pl.col("partition") != partition),
        )


@dataclass
class BatchOutput:
    blocks: list[OutBlock]
    rated_sinks: list[SinkBatch]
    event_sinks: list[SinkBatch]
    held: HeldState
    live_keys: dict[int, list[bytes]]
    snapshotted: set[int]
    counts: Counter[str] = field(default_factory=Counter)
    charges: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    dead_reasons: Counter[str] = field(default_factory=Counter)


def rate_step(
    settings: Settings,
    tariff: Tariff,
    batch: InputBatch,
    held: HeldState,
    meta: dict[int, PartitionMeta],
) -> BatchOutput:
    topics = settings.topics
    dead: list[tuple[Any, str]] = []
    counts: Counter[str] = Counter()

    # Top-ups first: a credit that arrived with the batch applies before its debits.
    rating, topup_delta, new_ids = held.rating, RatingState.empty(), held.topup_ids.clear()
    topup_owners = pl.DataFrame(schema=_OWNERS)
    if batch.topups:
        decoded = codec.decode_topups(settings, tariff, [m.value() for m in batch.topups])
        dead += [(batch.topups[i], reason) for i, reason in decoded.failures]
        parts = [batch.topups[i].partition() for i in decoded.good]
        topups = decoded.frame.with_columns(pl.Series("partition", parts, pl.Int32))
        fresh = topups.join(held.topup_ids, on=["tenant_id", "topup_id"], how="anti")
        fresh = fresh.unique(["tenant_id", "topup_id"], keep="first", maintain_order=True)
        counts["topup_duplicate"] += topups.height - fresh.height
        counts["topup_applied"] += fresh.height
        if fresh.height:
            rating, topup_delta = apply_topups(tariff, fresh.drop("partition"), rating)
            new_ids = fresh.select("tenant_id", "topup_id")
            topup_owners = fresh.select("tenant_id", "partition")

    # CDRs: one bulk decode and one rating call for the whole batch.
    cdr_frame, bodies = codec.empty_cdr_frame(), None
    msgs = batch.cdrs
    if msgs:
        values = [m.value() for m in msgs]
        decoded = codec.decode_cdrs(settings, values)
        bodies = codec.cdr_bodies(settings, values, decoded.good)
        dead += [(msgs[i], reason) for i, reason in decoded.failures]
        counts["consumed"] += len(msgs)
        counts["dead_lettered"] += len(decoded.failures)
        cdr_frame = decoded.frame.with_columns(
            pl.lit(topics.cdrs).alias("source_topic"),
            pl.Series("source_partition", [msgs[i].partition() for i in decoded.good], pl.Int32),
            pl.Series("source_offset", [msgs[i].offset() for i in decoded.good], pl.Int64),
        )
    result = rate_batch(tariff, cdr_frame, rating)
    rated = result.rated
    delta = PartitionState(topup_delta.merge(result.delta), new_ids)

    owners = _owners(held.owners, rated, topup_owners)
    out = BatchOutput(
        [],
        [],
        [],
        HeldState(result.state, pl.concat([held.topup_ids, new_ids]), owners),
        {},
        set(),
        counts,
    )
    _count(out, rated)
    invalid = rated.filter(pl.col("status") == "invalid")
    if invalid.height:
        by_offset = {(m.partition(), m.offset()): m for m in msgs}
        dead += [
            (by_offset[(p, o)], reason)
            for p, o, reason in invalid.select(
                "source_partition", "source_offset", "reason"
            ).iter_rows()
        ]
    events = _events_with_source(result.events, rated)
    out.events.update(dict(events.group_by("event").len().iter_rows()))

    # Files, per partition, named by the partition's offset range in this batch.
    # Every partition of the batch gets a sink batch, even an empty one: writing it removes
    # what an uncommitted attempt at the same offsets may have left.
    rated_rows = rated.with_columns(_rating_time())
    for (topic, p), first in batch.first.items():
        if topic != topics.cdrs:
            continue
        last = batch.last[(topic, p)]
        generation = meta[p].generation if p in meta else 0
        own_rated = rated_rows.filter(pl.col("source_partition") == p)
        own_events = events.filter(pl.col("source_partition") == p)
        out.rated_sinks.append(SinkBatch(topic, p, first, last, generation, own_rated))
        out.event_sinks.append(SinkBatch(topic, p, first, last, generation, own_events))

    # Kafka: every output to the partition of the CDR it came from.
    if rated.height:
        parts = rated.get_column("source_partition").to_list()
        encoded = codec.encode_rated(settings, rated, bodies)
        out.blocks.append(OutBlock(topics.rated, parts, _keys(rated), encoded))
    if events.height:
        parts = events.get_column("source_partition").to_list()
        encoded = codec.encode_events(settings, events)
        out.blocks.append(OutBlock(topics.events, parts, _keys(events), encoded))
    out.dead_reasons.update(reason for _, reason in dead)
    if dead:
        out.blocks.append(_dead_letter_block(topics.dead_letter, dead))

    _changelog(settings, batch, out, delta, meta)
    return out


def _owners(owners: pl.DataFrame, rated: pl.DataFrame, topups: pl.DataFrame) -> pl.DataFrame:
    """Owners after the batch: every tenant seen in a partition belongs to it."""
    seen = pl.concat(
        [
            rated.select("tenant_id", pl.col("source_partition").alias("partition")).cast(_OWNERS),
            topups.cast(_OWNERS),
        ]
    )
    new = seen.unique().join(owners, on=["tenant_id", "partition"], how="anti")
    return owners if new.is_empty() else pl.concat([owners, new])


def _changelog(
    settings: Settings,
    batch: InputBatch,
    out: BatchOutput,
    delta: PartitionState,
    meta: dict[int, PartitionMeta],
) -> None:
    """This batch's delta for each partition it touched, or every few batches a snapshot."""
    topics = settings.topics
    touched = sorted({p for (_, p) in batch.first})
    snapshot_due = [
        p
        for p in touched
        if (meta[p].batches_since_snapshot if p in meta else 0) + 1
        >= settings.stream.snapshot_every_batches
    ]
    if snapshot_due:
        out.held = _prune(out.held, settings.stream.dedupe_horizon_days)
    parts: list[int] = []
    keys: list[bytes | None] = []
    values: list[bytes | None] = []
    for p in touched:
        live = list(meta[p].live_keys) if p in meta else []
        # Unique per committed batch of the partition: its first offset in each input topic.
        entry_id = (
            f"c{batch.first.get((topics.cdrs, p), -1)}.t{batch.first.get((topics.topups, p), -1)}"
        )
        if p in snapshot_due:
            msgs = list(entry_messages("snap", entry_id, encode_state(out.held.partition_state(p))))
            keys += live  # tombstones: the snapshot supersedes them
            values += [None] * len(live)
            live = [k for k, _ in msgs]
            out.snapshotted.add(p)
        else:
            mine = delta.select_tenants(out.held.tenants_of(p))
            msgs = list(entry_messages("delta", entry_id, encode_state(mine)))
            live += [k for k, _ in msgs]
        keys += [k for k, _ in msgs]
        values += [v for _, v in msgs]
        parts += [p] * (len(keys) - len(parts))
        out.live_keys[p] = live
    out.blocks.append(OutBlock(topics.changelog, parts, keys, values))


def _count(out: BatchOutput, rated: pl.DataFrame) -> None:
    """Status counts and charges, for metrics and the summary."""
    if not rated.height:
        return
    for status, n in rated.group_by("status").len().iter_rows():
        out.counts[status] += n
    sums = rated.group_by("currency").agg(pl.col("charge_micros").sum())
    for currency, micros in sums.iter_rows():
        if currency is not None and micros:
            out.charges[currency] += micros


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


def _dead_letter_block(topic: str, dead: list[tuple[Any, str]]) -> OutBlock:
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


def _prune(held: HeldState, horizon_days: float) -> HeldState:
    """Forget dedupe keys older than the horizon, counted back from the newest one."""
    seen = held.rating.seen
    if seen.is_empty():
        return held
    newest = seen.get_column("seen_time").max()
    assert isinstance(newest, datetime)
    cutoff = newest - timedelta(days=horizon_days)
    return HeldState(held.rating.prune_seen(cutoff), held.topup_ids, held.owners)
