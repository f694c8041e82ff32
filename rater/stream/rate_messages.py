"""Step 1 of the commit path: a batch of messages in, everything it must output out.

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import polars as pl

from rater.core.rating import rate_batch, rating_time
from rater.core.state import RatingState, advance_watermark
from rater.core.tariff import Tariff
from rater.errors import TransientError
from rater.settings import Settings
from rater.stream import messages
from rater.stream.changelog import PartitionMeta, changelog_write
from rater.stream.input_frames import adjustment_input, cdr_input
from rater.stream.inputs import InputBatch
from rater.stream.outputs import (
    BatchOutput,
    Dead,
    OutBlock,
    count_statuses,
    dead_letter_block,
    keys_of,
    sink_batches,
)
from rater.stream.partitioner import TenantPartitioner

__all__ = ["RatingContext", "rate_messages"]

log = logging.getLogger(__name__)

S = TypeVar("S")
P = TypeVar("P")
T = TypeVar("T")
# Isolation is for the odd poison message. When more than this share of a batch (and more
# than _SYSTEMIC_MIN messages) fails on its own, the fault is in the code or the machine,
# not in the input: the batch is not committed (the job backs off and retries) rather
# than moving good traffic to the dead-letter topic.
_SYSTEMIC_SHARE = 0.5
_SYSTEMIC_MIN = 10


@dataclass(frozen=True)
class RatingContext:
    """What rating a batch needs besides the batch and the state."""

    settings: Settings
    tariff: Tariff
    partitioner: TenantPartitioner
    now_us: int  # wall clock: caps the dedupe watermark (rule 2)
    token: str  # names this attempt's staged files and changelog entries


@dataclass
class _Part:
    """What one part of a batch's messages produced (a whole batch is usually one part)."""

    rated: pl.DataFrame | None = None  # CDR columns, RATED_EXTRA columns, source columns
    events: pl.DataFrame | None = None
    rated_values: list[bytes] = field(default_factory=list)
    rated_keys: list[bytes | None] = field(default_factory=list)
    rated_partitions: list[int] = field(default_factory=list)
    event_values: list[bytes] = field(default_factory=list)
    dead: list[Dead] = field(default_factory=list)  # not rated: counted as dead-lettered
    invalid: list[Dead] = field(default_factory=list)  # rated invalid, copied to the DLQ
    delta: RatingState = field(default_factory=RatingState.empty)
    adjustments: pl.DataFrame | None = None  # as given, with status, balance after, source


def rate_messages(
    ctx: RatingContext, batch: InputBatch, held: RatingState, meta: dict[int, PartitionMeta]
) -> BatchOutput:
    # Adjustments and CDRs together: each adjustment is placed among the batch's CDR
    # debits by its time (rater.core.rating.adjustments).
    # An adjustment with no place among the batch's CDRs waits in the state for a later
    # CDR of its tenant at or after its time, unless the input is complete (``settle``):
    # then it applies after them. Only the batch's last part settles, so a batch cut in
    # parts places everything as a whole one would.
    # Messages are named by position: the adjustments, then the CDRs (a part is a range).
    items = range(len(batch.adjustments) + len(batch.cdrs))

    def rate(span: range, st: RatingState) -> tuple[_Part, RatingState]:
        settle = batch.settle and span.stop == items.stop
        return _rate_part(ctx, batch, span, st, settle=settle)

    def failed(position: int) -> _Part:
        return _Part(dead=[(_message(batch, position), "rating_error")])

    if items:
        parts, state = _isolated(items, rate, held, failed)
    else:  # nothing consumed: the input is complete, what waits in the state applies
        part, state = rate(items, held)
        parts = [part]
    _refuse_systemic_failure(parts, len(items))
    rated = _concat([p.rated for p in parts])
    events = _concat([p.events for p in parts])
    adjustments = _concat([p.adjustments for p in parts])
    state = state.with_watermarks(_watermarks(ctx, held.watermarks, rated))
    delta = RatingState.empty()
    for part in parts:
        delta = delta.merge(part.delta)
    log_write = changelog_write(
        held=state,
        delta=delta,
        touched=_entry_ids(ctx, batch, adjustments),
        meta=meta,
        partitioner=ctx.partitioner,
        token=ctx.token,
        snapshot_every=ctx.settings.stream.snapshot_every_batches,
        horizon_days=ctx.settings.stream.dedupe_horizon_days,
    )
    generations = {p: m.generation for p, m in meta.items()}
    offsets = {tp: (first, batch.last[tp]) for tp, first in batch.first.items()}
    applied = adjustments.filter(pl.col("status") == "applied") if adjustments is not None else None
    out = BatchOutput(
        token=ctx.token,
        blocks=[],
        rated_sinks=sink_batches(offsets, rated, generations),
        event_sinks=sink_batches(offsets, events, generations),
        adjustment_sinks=sink_batches(_own_offsets(applied), applied, generations),
        held=log_write.held,
        live_keys=log_write.live_keys,
        snapshotted=log_write.snapshotted,
    )
    _tally(out, batch, parts, rated, events, adjustments, ctx.settings.topics.cdrs)
    _output_blocks(ctx, out, parts, rated, events)
    changelog = ctx.settings.topics.changelog
    out.blocks.append(OutBlock(changelog, log_write.partitions, log_write.keys, log_write.values))
    return out


# --------------------------------------------------------------------------- isolation


def _isolated(
    msgs: range,
    rate: Callable[[range, S], tuple[P, S]],
    state: S,
    failed: Callable[[int], P],
) -> tuple[list[P], S]:
    """``rate(msgs, state)`` (``msgs``: message positions), or, if it raises anything but
    a transient error, each half on its own (state threaded through), down to the single
    messages that fail, each of which becomes ``failed(position)``."""
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


def _message(batch: InputBatch, position: int) -> Any:
    adjustments = len(batch.adjustments)
    if position < adjustments:
        return batch.adjustments[position]
    return batch.cdrs[position - adjustments]


def _refuse_systemic_failure(parts: list[_Part], messages: int) -> None:
    failed = sum(1 for p in parts for _, reason in p.dead if reason == "rating_error")
    if failed > _SYSTEMIC_MIN and failed > _SYSTEMIC_SHARE * messages:
        raise TransientError(
            f"rating failed for {failed} of {messages} messages one by one: "
            "a fault of the rater, not of its input; the batch is retried"
        )


# --------------------------------------------------------------------------- rating


def _rate_part(
    ctx: RatingContext, batch: InputBatch, span: range, state: RatingState, *, settle: bool
) -> tuple[_Part, RatingState]:
    """The messages at ``span``'s positions (adjustments first, then CDRs): decoded,
    checked against their partition, rated together."""
    split = len(batch.adjustments)
    cdrs = range(max(span.start, split) - split, max(span.stop, split) - split)
    part = _Part()
    given = cdr_input(ctx.settings, ctx.partitioner, batch, cdrs, part.dead)
    adjustments = adjustment_input(
        ctx.settings,
        ctx.tariff,
        ctx.partitioner,
        batch.adjustments[span.start : min(span.stop, split)],
        part.dead,
    )
    result = rate_batch(ctx.tariff, given.frame, state, adjustments=adjustments, settle=settle)
    part.rated, part.delta, part.adjustments = result.rated, result.delta, result.adjustments
    part.events = _events_with_source(result.events, result.rated, result.adjustments)
    # Rated rows are the CDR frame's rows, in order: each goes out with its CDR's key
    # (its tenant_id, as routing checked) to its CDR's partition.
    part.rated_keys, part.rated_partitions = given.keys, given.partitions
    part.rated_values = messages.encode_rated(ctx.settings, result.rated, given.bodies)
    part.event_values = messages.encode_events(ctx.settings, part.events)
    invalid = result.rated.select(pl.int_range(pl.len()).alias("row"), "status", "reason").filter(
        pl.col("status") == "invalid"
    )
    part.invalid = [(batch.cdrs[given.position(r)], reason) for r, _, reason in invalid.iter_rows()]
    return part, result.state


def _events_with_source(
    events: pl.DataFrame, rated: pl.DataFrame, adjustments: pl.DataFrame
) -> pl.DataFrame:
    """Events with the source offset and rating time of the CDR, or the adjustment (its
    id is the event's cdr_id), whose debit raised them."""
    source = ["source_topic", "source_partition", "source_offset"]
    raised = pl.col("cdr_id").is_in(events.get_column("cdr_id").unique().implode())
    by_cdr = rated.filter(raised & (pl.col("status") == "rated")).select(
        "tenant_id", "cdr_id", *source, rating_time()
    )
    by_adjustment = adjustments.filter(pl.col("status") == "applied").select(
        "tenant_id",
        pl.col("adjustment_id").alias("cdr_id"),
        *source,
        pl.col("time").alias("rating_time"),
    )
    origins = pl.concat([by_cdr, by_adjustment], how="vertical_relaxed").unique(
        ["tenant_id", "cdr_id"], keep="first", maintain_order=True
    )
    return events.join(origins, on=["tenant_id", "cdr_id"], how="left", maintain_order="left")


def _concat(frames: list[pl.DataFrame | None]) -> pl.DataFrame | None:
    present = [f for f in frames if f is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else pl.concat(present, how="vertical_relaxed")


def _watermarks(
    ctx: RatingContext, marks: Mapping[int, int], rated: pl.DataFrame | None
) -> dict[int, int]:
    """Rule 2: each partition's watermark moves to the newest rating time of its records
    that passed validation, but never past the wall clock + 1 day."""
    out = dict(marks)
    if rated is None or rated.height == 0:
        return out
    newest = (
        rated.filter(pl.col("status") != "invalid")
        .group_by("source_partition")
        .agg(rating_time().dt.epoch("us").max().alias("newest"))
    )
    for p, us in newest.iter_rows():
        mark = advance_watermark(out.get(p), us, ctx.now_us)
        if mark is not None:
            out[p] = mark
    return out


def _entry_ids(
    ctx: RatingContext, batch: InputBatch, adjustments: pl.DataFrame | None
) -> dict[int, str]:
    """Per partition whose state the batch changed: the id of its changelog entry, unique
    per committed batch of the partition. A partition with input in the batch: its first
    offset in each input topic. One whose waiting adjustments alone were applied: the
    attempt's token."""
    topics = ctx.settings.topics
    inputs = ((topics.cdrs, "c"), (topics.topups, "t"), (topics.adjustments, "a"))
    ids = {
        p: ".".join(f"{tag}{batch.first.get((topic, p), -1)}" for topic, tag in inputs)
        for (_, p) in batch.first
    }
    if adjustments is not None:
        settled = adjustments.filter(pl.col("status") == "applied")
        for p in settled.get_column("source_partition").unique().to_list():
            ids.setdefault(p, "x" + ctx.token.rsplit("-", 1)[-1])
    return ids


def _own_offsets(frame: pl.DataFrame | None) -> dict[tuple[str, int], tuple[int, int]]:
    """(topic, partition) -> (first, last) offsets of the rows themselves: the adjustments
    applied in a batch can have been read in an earlier one."""
    if frame is None or frame.height == 0:
        return {}
    spans = frame.group_by("source_topic", "source_partition").agg(
        pl.col("source_offset").min().alias("first"), pl.col("source_offset").max().alias("last")
    )
    return {(t, p): (first, last) for t, p, first, last in spans.iter_rows()}


# --------------------------------------------------------------------------- outputs


def _tally(
    out: BatchOutput,
    batch: InputBatch,
    parts: list[_Part],
    rated: pl.DataFrame | None,
    events: pl.DataFrame | None,
    adjustments: pl.DataFrame | None,
    cdr_topic: str,
) -> None:
    counts: Counter[str] = out.counts
    counts["consumed"] += len(batch.cdrs)  # the batch's messages of the CDR topic
    counts["dead_lettered"] += sum(1 for p in parts for m, _ in p.dead if m.topic() == cdr_topic)
    if adjustments is not None:  # outcomes once final; waiting ones are counted when applied
        for status, n in adjustments.group_by("status").len().iter_rows():
            if status != "pending":
                counts[f"adjustment_{status}"] += n
    if rated is not None:
        count_statuses(out, rated)
    if events is not None:
        out.events.update(dict(events.group_by("event").len().iter_rows()))


def _output_blocks(
    ctx: RatingContext,
    out: BatchOutput,
    parts: list[_Part],
    rated: pl.DataFrame | None,
    events: pl.DataFrame | None,
) -> None:
    """Kafka: every output to the partition of the CDR it came from."""
    topics = ctx.settings.topics
    if rated is not None and rated.height:
        values = _joined([p.rated_values for p in parts])
        partitions = _joined([p.rated_partitions for p in parts])
        keys = _joined([p.rated_keys for p in parts])
        out.blocks.append(OutBlock(topics.rated, partitions, keys, values))
    if events is not None and events.height:
        values = _joined([p.event_values for p in parts])
        partitions = events.get_column("source_partition").to_list()
        out.blocks.append(OutBlock(topics.events, partitions, keys_of(events), values))
    letters = [d for p in parts for d in p.dead]
    letters += [d for p in parts for d in p.invalid]
    out.dead_reasons.update(reason for _, reason in letters)
    if letters:
        out.blocks.append(dead_letter_block(topics.dead_letter, letters))


def _joined(lists: list[list[T]]) -> list[T]:
    return lists[0] if len(lists) == 1 else [x for xs in lists for x in xs]
