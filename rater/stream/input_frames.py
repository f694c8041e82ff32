"""A batch's messages as the frames the rating core takes: CDRs and adjustments decoded,
checked against their tenant's partition, with the source columns that say where each row
was read from. What cannot be decoded, or sits on the wrong partition (``misrouted``), is
left out and handed back as a dead letter with its reason.

CDRs are read from the columns the batch gathered while consuming (value, key, partition,
offset: :class:`rater.stream.inputs.InputBatch`), never from the messages one by one;
adjustments are few and read from their messages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

from rater.core.tariff import Tariff
from rater.settings import Settings
from rater.stream import messages
from rater.stream.inputs import InputBatch
from rater.stream.outputs import Dead
from rater.stream.ownership import misrouted
from rater.stream.partitioner import TenantPartitioner

__all__ = ["CdrInput", "adjustment_input", "cdr_input"]


@dataclass
class CdrInput:
    """The decoded CDRs of a range of the batch, row for row: the frame (with its source
    columns), the position in the range of each row's CDR, its Avro body (None for JSON
    input), its message key and partition."""

    frame: pl.DataFrame
    first: int  # the range's first position in the batch's CDRs
    rows: list[int]
    bodies: list[bytes] | None
    keys: list[bytes | None]
    partitions: list[int]

    def position(self, row: int) -> int:
        """Where the CDR of frame row ``row`` is in the batch's CDRs."""
        return self.first + self.rows[row]


def cdr_input(
    settings: Settings,
    partitioner: TenantPartitioner,
    batch: InputBatch,
    span: range,
    dead: list[Dead],
) -> CdrInput:
    """The CDRs at positions ``span`` of ``batch``; refused messages go to ``dead``."""
    lo, hi = span.start, span.stop
    values = batch.cdr_values[lo:hi]
    decoded = messages.decode_cdrs(settings, values)
    dead += [(batch.cdrs[lo + i], reason) for i, reason in decoded.failures]
    frame, rows = decoded.frame, decoded.good
    keys = _pick(batch.cdr_keys[lo:hi], rows)
    partitions = _pick(batch.cdr_partitions[lo:hi], rows)
    offsets = _pick(batch.cdr_offsets[lo:hi], rows)
    bodies = messages.cdr_bodies(settings, values, rows)
    keep = _routed(partitioner, frame, keys, partitions, lambda j: batch.cdrs[lo + rows[j]], dead)
    if keep is not None:
        frame = frame.filter(pl.Series(keep, dtype=pl.Boolean))
        rows, keys, partitions, offsets = (
            _kept(c, keep) for c in (rows, keys, partitions, offsets)
        )
        bodies = None if bodies is None else _kept(bodies, keep)
    source = _with_source(frame, settings.topics.cdrs, partitions, offsets)
    return CdrInput(source, lo, rows, bodies, keys, partitions)


def adjustment_input(
    settings: Settings,
    tariff: Tariff,
    partitioner: TenantPartitioner,
    msgs: list[Any],
    dead: list[Dead],
) -> pl.DataFrame:
    """The top-ups and adjustments ``msgs`` with their source columns; refused messages
    go to ``dead``."""
    decoded = messages.decode_adjustments(settings, tariff, msgs)
    dead += [(msgs[i], reason) for i, reason in decoded.failures]
    frame = decoded.frame
    given = [msgs[i] for i in decoded.good]
    keys = [m.key() for m in given]
    partitions = [m.partition() for m in given]
    keep = _routed(partitioner, frame, keys, partitions, given.__getitem__, dead)
    if keep is not None:
        frame = frame.filter(pl.Series(keep, dtype=pl.Boolean))
        given, partitions = _kept(given, keep), _kept(partitions, keep)
    topics = [m.topic() for m in given]
    return _with_source(frame, topics, partitions, [m.offset() for m in given])


def _routed(
    partitioner: TenantPartitioner,
    frame: pl.DataFrame,
    keys: list[bytes | None],
    partitions: list[int],
    message_of: Callable[[int], Any],
    dead: list[Dead],
) -> list[bool] | None:
    """Which rows of ``frame`` (row j from the message ``message_of(j)``, keyed
    ``keys[j]`` on ``partitions[j]``) are on their tenant's partition: None when all
    are; the others' messages go to ``dead`` as ``misrouted``."""
    wrong = misrouted(partitioner, frame.get_column("tenant_id"), keys, partitions)
    if not wrong.any():
        return None
    dead += [(message_of(j), "misrouted") for j in wrong.arg_true().to_list()]
    return (~wrong).to_list()


def _pick(column: list[Any], rows: list[int]) -> list[Any]:
    """``column``'s items at ``rows`` (ascending); all of them in one slice when ``rows``
    is every position, as it is unless some messages could not be decoded."""
    if not rows or rows[-1] == len(rows) - 1:
        return column[: len(rows)]
    return [column[i] for i in rows]


def _kept(column: list[Any], keep: list[bool]) -> list[Any]:
    return [x for x, k in zip(column, keep, strict=True) if k]


def _with_source(
    frame: pl.DataFrame, topic: str | list[str], partitions: list[int], offsets: list[int]
) -> pl.DataFrame:
    """``frame`` with where each row was read from (one topic for all, or one per row)."""
    topics = (
        pl.lit(topic, pl.String) if isinstance(topic, str) else pl.Series(topic, dtype=pl.String)
    )
    return frame.with_columns(
        topics.alias("source_topic"),
        pl.Series("source_partition", partitions, pl.Int32),
        pl.Series("source_offset", offsets, pl.Int64),
    )
