"""Step 1 of the commit path: turn a batch of messages into everything it must output.

Pure apart from decoding and encoding: it takes the held state and returns the new one,
leaving the caller to adopt it only once the transaction has committed. The whole batch,
all partitions together, normally goes through one bulk decode and one call of the rating
core: tenants never span partitions (messages that would make them are dead-lettered as
``misrouted``), so rating them together is the same as rating each partition alone.

No message can stop a batch: if rating a part of the batch raises anything but a
transient error, the part is split in two and each half rated on its own, down to the
one message that fails, which is dead-lettered (``rating_error``). Every other message
of the batch is rated exactly as it would have been.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import polars as pl

from rater.core.rating import apply_topups, rate_batch, rating_time
from rater.core.state import RatingState, advance_watermark
from rater.core.tariff import Tariff
from rater.errors import TransientError
from rater.settings import Settings
from rater.stream import codec
from rater.stream.changelog import TOPUP_IDS, PartitionState, encode_entry, entry_messages
from rater.stream.inputs import InputBatch
from rater.stream.partitioner import TenantPartitioner
from sinks.base import SinkBatch

__all__ = ["BatchOutput", "HeldState", "OutBlock", "PartitionMeta", "StepContext", "rate_step"]

log = logging.getLogger(__name__)

_US_PER_DAY = 86_400_000_000
Dead = tuple[Any, str]  # (message, reason)


@dataclass(frozen=True)
class StepContext:
    """What rating a batch needs besides the batch and the state."""

    settings: Settings
    tariff: Tariff
    partitioner: TenantPartitioner
    now_us: int  # wall clock: caps the dedupe watermark (rule 2)
    token: str  # names this attempt's staged files and changelog entries


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

    generation: int  # changelog end offset at restore: later owners have larger or equal ones
    live_keys: list[bytes] = field(default_factory=list)  # changelog keys since the snapshot
    batches_since_snapshot: int = 0


@dataclass(frozen=True)
class HeldState:
    """The state of every partition this process owns (tenants map to partitions by the
    partitioner, so no table of owners is needed)."""

    rating: RatingState
    topup_ids: pl.DataFrame  # tenant_id, topup_id: top-ups already credited
    watermarks: dict[int, int | None]

    @staticmethod
    def empty() -> HeldState:
        return HeldState(RatingState.empty(), pl.DataFrame(schema=TOPUP_IDS), {})

    def tenant_ids(self) -> list[str]:
        r = self.rating
        frames = (r.balances, r.allowances, r.seen, self.topup_ids)
        ids = pl.concat([f.get_column("tenant_id") for f in frames]).unique()
        return [t for t in ids.to_list() if t is not None]

    def partition_state(self, partition: int, partitioner: TenantPartitioner) -> PartitionState:
        whole = PartitionState(self.rating, self.topup_ids, self.watermarks.get(partition))
        return whole.keep_tenants(_of_partition(partitioner, self.tenant_ids(), partition))

    def add_partition(
        self, partition: int, restored: PartitionState, partitioner: TenantPartitioner
    ) -> HeldState:
        """Take a restored partition over, without rows of tenants that are not its own
        (a changelog written before tenants were checked against their partition)."""
        tenants = HeldState(restored.rating, restored.topup_ids, {}).tenant_ids()
        mine = _of_partition(partitioner, tenants, partition)
        strays = len([t for t in tenants if partitioner.of(t) != partition])
        if strays:
            log.warning(
                "dropped the restored state of %d tenant(s) that do not belong to partition %d",
                strays,
                partition,
            )
        own = restored.keep_tenants(mine)
        return HeldState(
            self.rating.merge(own.rating),
            pl.concat([self.topup_ids, own.topup_ids]),
            {**self.watermarks, partition: restored.watermark_us},
        )

    def drop_partition(self, partition: int, partitioner: TenantPartitioner) -> HeldState:
        gone = _of_partition(partitioner, self.tenant_ids(), partition)
        marks = {p: w for p, w in self.watermarks.items() if p != partition}
        return HeldState(self.rating.filter_tenants(~gone), self.topup_ids.filter(~gone), marks)


def _of_partition(partitioner: TenantPartitioner, tenants: list[str], partition: int) -> pl.Expr:
    """An expression on tenant_id: the tenant is one of ``tenants`` of ``partition``."""
    mine = [t for t in tenants if partitioner.of(t) == partition]
    return pl.col("tenant_id").is_in(pl.Series(mine, dtype=pl.String).implode())


@dataclass
class BatchOutput:
    token: str
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


@dataclass
class _RatedPart:
    """What one part of a batch's CDRs produced (a whole batch is usually one part)."""

    rated: pl.DataFrame | None = None  # CDR columns, RATED_EXTRA columns, source columns
    events: pl.DataFrame | None = None
    rated_values: list[bytes] = field(default_factory=list)
    event_values: list[bytes] = field(default_factory=list)
    dead: list[Dead] = field(default_factory=list)  # not rated: counted as dead-lettered
    invalid: list[Dead] = field(default_factory=list)  # rated invalid, copied to the DLQ
    delta: RatingState = field(default_factory=RatingState.empty)


def rate_step(
    ctx: StepContext, batch: InputBatch, held: HeldState, meta: dict[int, PartitionMeta]
) -> BatchOutput:
    counts: Counter[str] = Counter()
    dead: list[Dead] = []
    # Top-ups first: a credit that arrived with the batch applies before its debits.
    rating, topup_delta, new_ids = _credit_topups(ctx, batch.topups, held, dead, counts)
    parts, rating = _isolated(
        batch.cdrs,
        lambda msgs, st: _rate_part(ctx, msgs, st),
        rating,
        lambda msg: _RatedPart(dead=[(msg, "rating_error")]),
    )
    _refuse_systemic_failure(parts, len(batch.cdrs))
    rated = _concat([p.rated for p in parts])
    events = _concat([p.events for p in parts])
    cdr_dead = [d for p in parts for d in p.dead]
    counts["consumed"] += len(batch.cdrs)
    counts["dead_lettered"] += len(cdr_dead)
    dead += cdr_dead

    delta = RatingState.empty()
    for p in parts:
        delta = delta.merge(p.delta)
    marks = _watermarks(ctx, held.watermarks, rated)
    out = BatchOutput(
        token=ctx.token,
        blocks=[],
        rated_sinks=[],
        event_sinks=[],
        held=HeldState(rating, pl.concat([held.topup_ids, new_ids]), marks),
        live_keys={},
        snapshotted=set(),
        counts=counts,
    )
    if rated is not None:
        _count(out, rated)
    if events is not None:
        out.events.update(dict(events.group_by("event").len().iter_rows()))
    _sink_batches(ctx, batch, out, rated, events, meta)
    _output_blocks(ctx, out, parts, rated, events, dead)
    entry = PartitionState(topup_delta.merge(delta), new_ids)
    _changelog(ctx, batch, out, entry, meta)
    return out


# --------------------------------------------------------------------------- isolation

S = TypeVar("S")
P = TypeVar("P")


def _isolated(
    msgs: Sequence[Any],
    rate: Callable[[Sequence[Any], S], tuple[P, S]],
    state: S,
    failed: Callable[[Any], P],
) -> tuple[list[P], S]:
    """``rate(msgs, state)``, or, if it raises anything but a transient error, each half
    on its own (state threaded through), down to the single messages that fail, each of
    which becomes ``failed(message)``."""
    if not msgs:
        return [], state
    try:
        part, after = rate(msgs, state)
        return [part], after
    except TransientError:
        raise
    except BaseException as exc:  # Polars raises PanicException, a BaseException
        if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit):
            raise
        if len(msgs) == 1:
            log.warning("a message could not be rated (%s); dead-lettered", type(exc).__name__)
            log.debug("rating error", exc_info=True)
            return [failed(msgs[0])], state
    mid = len(msgs) // 2
    left, state = _isolated(msgs[:mid], rate, state, failed)
    right, state = _isolated(msgs[mid:], rate, state, failed)
    return left + right, state


# Isolation is for the odd poison message. When more than this share of a batch (and more
# than _SYSTEMIC_MIN messages) fails on its own, the fault is in the code or the machine,
# not in the input: the batch is not committed (the job backs off and retries) rather
# than moving good traffic to the dead-letter topic.
_SYSTEMIC_SHARE = 0.5
_SYSTEMIC_MIN = 10


def _refuse_systemic_failure(parts: list[_RatedPart], messages: int) -> None:
    failed = sum(1 for p in parts for _, reason in p.dead if reason == "rating_error")
    if failed > _SYSTEMIC_MIN and failed > _SYSTEMIC_SHARE * messages:
        raise TransientError(
            f"rating failed for {failed} of {messages} messages one by one: "
            "a fault of the rater, not of its input; the batch is retried"
        )


# --------------------------------------------------------------------------- top-ups


@dataclass
class _Credits:
    """What the batch's top-ups (or a part of them) produced."""

    delta: RatingState = field(default_factory=RatingState.empty)
    ids: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=TOPUP_IDS))
    dead: list[Dead] = field(default_factory=list)
    applied: int = 0
    duplicates: int = 0


def _credit_topups(
    ctx: StepContext,
    msgs: Sequence[Any],
    held: HeldState,
    dead: list[Dead],
    counts: Counter[str],
) -> tuple[RatingState, RatingState, pl.DataFrame]:
    """(state after the batch's top-ups, their delta, the newly credited top-up ids).

    Like CDRs, top-ups are isolated: one that makes crediting fail costs only itself.
    """
    parts, (rating, _) = _isolated(
        msgs,
        lambda part, st: _credit_part(ctx, part, st),
        (held.rating, held.topup_ids),
        lambda msg: _Credits(dead=[(msg, "rating_error")]),
    )
    delta, ids = RatingState.empty(), pl.DataFrame(schema=TOPUP_IDS)
    for part in parts:
        dead += part.dead
        counts["topup_applied"] += part.applied
        counts["topup_duplicate"] += part.duplicates
        delta, ids = delta.merge(part.delta), pl.concat([ids, part.ids])
    return rating, delta, ids


def _credit_part(
    ctx: StepContext, msgs: Sequence[Any], state: tuple[RatingState, pl.DataFrame]
) -> tuple[_Credits, tuple[RatingState, pl.DataFrame]]:
    rating, credited = state
    decoded = codec.decode_topups(ctx.settings, ctx.tariff, [m.value() for m in msgs])
    out = _Credits(dead=[(msgs[i], reason) for i, reason in decoded.failures])
    frame, rows = decoded.frame, list(decoded.good)
    wrong = _misrouted(ctx.partitioner, frame.get_column("tenant_id"), [msgs[i] for i in rows])
    if wrong.any():
        out.dead += [(msgs[rows[j]], "misrouted") for j in wrong.arg_true().to_list()]
        frame = frame.filter(~wrong)
    fresh = frame.join(credited, on=["tenant_id", "topup_id"], how="anti")
    fresh = fresh.unique(["tenant_id", "topup_id"], keep="first", maintain_order=True)
    out.duplicates, out.applied = frame.height - fresh.height, fresh.height
    if fresh.height:
        rating, out.delta = apply_topups(ctx.tariff, fresh, rating)
        out.ids = fresh.select("tenant_id", "topup_id")
        credited = pl.concat([credited, out.ids])
    return out, (rating, credited)


def _misrouted(partitioner: TenantPartitioner, tenants: pl.Series, msgs: list[Any]) -> pl.Series:
    """Rows whose message is not keyed by its tenant_id, or not on the tenant's partition."""
    if tenants.len() == 0:
        return pl.Series("misrouted", [], dtype=pl.Boolean)
    keys = pl.Series("key", [m.key() for m in msgs], dtype=pl.Binary)
    partitions = pl.Series("partition", [m.partition() for m in msgs], dtype=pl.Int32)
    right = (keys == tenants.cast(pl.Binary)) & (partitioner.column(tenants) == partitions)
    return (~right.fill_null(False)).alias("misrouted")


# --------------------------------------------------------------------------- CDRs


def _rate_part(
    ctx: StepContext, msgs: Sequence[Any], rating: RatingState
) -> tuple[_RatedPart, RatingState]:
    settings, topics = ctx.settings, ctx.settings.topics
    values = [m.value() for m in msgs]
    decoded = codec.decode_cdrs(settings, values)
    part = _RatedPart(dead=[(msgs[i], reason) for i, reason in decoded.failures])
    frame, rows = decoded.frame, list(decoded.good)
    wrong = _misrouted(ctx.partitioner, frame.get_column("tenant_id"), [msgs[i] for i in rows])
    if wrong.any():
        part.dead += [(msgs[rows[j]], "misrouted") for j in wrong.arg_true().to_list()]
        rows = [i for i, bad in zip(rows, wrong.to_list(), strict=True) if not bad]
        frame = frame.filter(~wrong)
    bodies = codec.cdr_bodies(settings, values, rows)
    frame = frame.with_columns(
        pl.lit(topics.cdrs).alias("source_topic"),
        pl.Series("source_partition", [msgs[i].partition() for i in rows], pl.Int32),
        pl.Series("source_offset", [msgs[i].offset() for i in rows], pl.Int64),
    )
    result = rate_batch(ctx.tariff, frame, rating)
    part.rated, part.delta = result.rated, result.delta
    part.events = _events_with_source(result.events, result.rated)
    part.rated_values = codec.encode_rated(settings, result.rated, bodies)
    part.event_values = codec.encode_events(settings, part.events)
    invalid = result.rated.select(pl.int_range(pl.len()).alias("row"), "status", "reason").filter(
        pl.col("status") == "invalid"
    )
    part.invalid = [(msgs[rows[r]], reason) for r, _, reason in invalid.iter_rows()]
    return part, result.state


def _events_with_source(events: pl.DataFrame, rated: pl.DataFrame) -> pl.DataFrame:
    """Events with the source offset and rating time of the CDR that raised them."""
    src = rated.filter(pl.col("status") == "rated").select(
        "tenant_id",
        "cdr_id",
        "source_topic",
        "source_partition",
        "source_offset",
        rating_time(),
    )
    return events.join(src, on=["tenant_id", "cdr_id"], how="left", maintain_order="left")


def _concat(frames: list[pl.DataFrame | None]) -> pl.DataFrame | None:
    present = [f for f in frames if f is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else pl.concat(present, how="vertical_relaxed")


def _watermarks(
    ctx: StepContext, marks: dict[int, int | None], rated: pl.DataFrame | None
) -> dict[int, int | None]:
    """Rule 2: each partition's watermark moves to the newest rating time of its records
    that passed validation, but never past the wall clock + 1 day."""
    if rated is None or rated.height == 0:
        return dict(marks)
    newest = (
        rated.filter(pl.col("status") != "invalid")
        .group_by("source_partition")
        .agg(rating_time().dt.epoch("us").max().alias("newest"))
    )
    out = dict(marks)
    for p, us in newest.iter_rows():
        out[p] = advance_watermark(out.get(p), us, ctx.now_us)
    return out


# --------------------------------------------------------------------------- outputs


def _count(out: BatchOutput, rated: pl.DataFrame) -> None:
    """Status counts and charges, for metrics and the summary."""
    for status, n in rated.group_by("status").len().iter_rows():
        out.counts[status] += n
    sums = rated.group_by("currency").agg(pl.col("charge_micros").sum())
    for currency, micros in sums.iter_rows():
        if currency is not None and micros:
            out.charges[currency] += micros


def _sink_batches(
    ctx: StepContext,
    batch: InputBatch,
    out: BatchOutput,
    rated: pl.DataFrame | None,
    events: pl.DataFrame | None,
    meta: dict[int, PartitionMeta],
) -> None:
    """Files, per partition, named by the partition's offset range in this batch."""
    cdrs = ctx.settings.topics.cdrs
    rated_rows = rated.with_columns(rating_time()) if rated is not None else None
    for (topic, p), first in batch.first.items():
        if topic != cdrs:
            continue
        last = batch.last[(topic, p)]
        generation = meta[p].generation if p in meta else 0
        for frame, sinks in ((rated_rows, out.rated_sinks), (events, out.event_sinks)):
            if frame is None:
                continue
            own = frame.filter(pl.col("source_partition") == p)
            if own.height:
                sinks.append(SinkBatch(topic, p, first, last, generation, own))


def _output_blocks(
    ctx: StepContext,
    out: BatchOutput,
    parts: list[_RatedPart],
    rated: pl.DataFrame | None,
    events: pl.DataFrame | None,
    dead: list[Dead],
) -> None:
    """Kafka: every output to the partition of the CDR it came from."""
    topics = ctx.settings.topics
    if rated is not None and rated.height:
        values = [v for p in parts for v in p.rated_values]
        partitions = rated.get_column("source_partition").to_list()
        out.blocks.append(OutBlock(topics.rated, partitions, _keys(rated), values))
    if events is not None and events.height:
        values = [v for p in parts for v in p.event_values]
        partitions = events.get_column("source_partition").to_list()
        out.blocks.append(OutBlock(topics.events, partitions, _keys(events), values))
    letters = dead + [d for p in parts for d in p.invalid]
    out.dead_reasons.update(reason for _, reason in letters)
    if letters:
        out.blocks.append(_dead_letter_block(topics.dead_letter, letters))


def _keys(frame: pl.DataFrame) -> list[bytes | None]:
    """Message keys: the tenant ids, encoded once per distinct tenant."""
    tenants = frame.get_column("tenant_id")
    encoded = {t: t.encode() for t in tenants.unique().to_list() if t is not None}
    return [encoded.get(t) for t in tenants.to_list()]


def _dead_letter_block(topic: str, dead: list[Dead]) -> OutBlock:
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


# --------------------------------------------------------------------------- changelog


def _changelog(
    ctx: StepContext,
    batch: InputBatch,
    out: BatchOutput,
    delta: PartitionState,
    meta: dict[int, PartitionMeta],
) -> None:
    """This batch's delta for each partition it touched, or every few batches a snapshot.

    A snapshot first prunes the dedupe keys of that partition's tenants older than the
    horizon before its watermark, so the state a new owner restores is exactly the state
    this process goes on with.
    """
    settings, topics = ctx.settings, ctx.settings.topics
    horizon_us = int(settings.stream.dedupe_horizon_days * _US_PER_DAY)
    every = settings.stream.snapshot_every_batches
    block = OutBlock(topics.changelog, [], [], [])
    assert isinstance(block.partitions, list) and isinstance(block.keys, list)
    assert isinstance(block.values, list)
    delta_tenants = HeldState(delta.rating, delta.topup_ids, {}).tenant_ids()
    for p in sorted({p for (_, p) in batch.first}):
        pm = meta.get(p)
        live = list(pm.live_keys) if pm else []
        # Unique per committed batch of the partition: its first offset in each input topic.
        entry_id = (
            f"c{batch.first.get((topics.cdrs, p), -1)}.t{batch.first.get((topics.topups, p), -1)}"
        )
        mark = out.held.watermarks.get(p)
        if (pm.batches_since_snapshot if pm else 0) + 1 >= every:
            if mark is not None:
                mine = _of_partition(ctx.partitioner, out.held.tenant_ids(), p)
                pruned = out.held.rating.prune_seen(mark, horizon_us, mine)
                out.held = HeldState(pruned, out.held.topup_ids, out.held.watermarks)
            state = out.held.partition_state(p, ctx.partitioner)
            msgs = list(entry_messages("snap", entry_id, encode_entry(state, ctx.token)))
            block.keys += live  # tombstones: the snapshot supersedes them
            block.values += [None] * len(live)
            live = [k for k, _ in msgs]
            out.snapshotted.add(p)
        else:
            mine = _of_partition(ctx.partitioner, delta_tenants, p)
            own = PartitionState(delta.rating, delta.topup_ids, mark).keep_tenants(mine)
            msgs = list(entry_messages("delta", entry_id, encode_entry(own, ctx.token)))
            live += [k for k, _ in msgs]
        block.keys += [k for k, _ in msgs]
        block.values += [v for _, v in msgs]
        block.partitions += [p] * (len(block.keys) - len(block.partitions))
        out.live_keys[p] = live
    out.blocks.append(block)
