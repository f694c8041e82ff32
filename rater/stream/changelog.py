"""How a partition's rating state is written to, and read back from, the changelog topic.

Each batch writes the *delta* of the state it changed (balances, allowance usage, new
dedupe keys, applied top-ups, the dedupe watermark) to changelog partition p, inside the
same Kafka transaction as its output and its input offsets; so the changelog always
matches the committed offsets. Every few batches a full *snapshot* is written and the
deltas before it are deleted with tombstones (the topic is compacted). Restoring a
partition replays the log in order: a snapshot replaces the state, a delta is merged into
it.

A snapshot is also where dedupe keys are forgotten (rule 2): the partition's keys older
than its watermark minus the horizon are pruned from the state the job goes on with and
from the snapshot it writes, so a restored partition dedupes exactly like one that
never stopped.

Every entry names the batch that wrote it (its token): the last entry of a partition
tells a new owner which batch committed last, hence which staged Parquet files of that
partition were committed and must be published (see sinks.parquet_dataset).

Values can be larger than a Kafka message, so each is cut into chunks with keys
``<kind>:<id>:<i>:<n>``; a piece of state is applied only once all its chunks are read.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from rater.core.state import RatingState
from rater.stream.ownership import of_partition, partition_state
from rater.stream.partitioner import TenantPartitioner

__all__ = [
    "CHUNK_BYTES",
    "ChangelogWrite",
    "PartitionMeta",
    "Replayer",
    "changelog_write",
    "decode_entry",
    "encode_entry",
    "entry_messages",
]

CHUNK_BYTES = 4 * 1024 * 1024
_VERSION = 3
_LENGTHS = struct.Struct(">II")  # header, state
_US_PER_DAY = 86_400_000_000


@dataclass
class PartitionMeta:
    """What the job remembers of a partition besides its state."""

    generation: int  # changelog end offset at restore: later owners have larger or equal ones
    live_keys: list[bytes] = field(default_factory=list)  # changelog keys since the snapshot
    batches_since_snapshot: int = 0


def encode_entry(state: RatingState, batch: str) -> bytes:
    header = json.dumps({"v": _VERSION, "batch": batch}).encode()
    body = state.to_bytes()
    return _LENGTHS.pack(len(header), len(body)) + header + body


def decode_entry(data: bytes) -> tuple[RatingState, str]:
    """(state, batch token) of an entry written by :func:`encode_entry`."""
    n_header, n_body = _LENGTHS.unpack_from(data)
    pos = _LENGTHS.size
    header = json.loads(data[pos : pos + n_header])
    if header.get("v") != _VERSION:
        raise ValueError(f"changelog entry version {header.get('v')!r}, expected {_VERSION}")
    pos += n_header
    if pos + n_body != len(data):
        raise ValueError("trailing bytes after a changelog entry")
    return RatingState.from_bytes(data[pos:]), str(header.get("batch", ""))


def entry_messages(kind: str, entry_id: str, value: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) messages of one snapshot or delta, cut into chunks."""
    chunks = [value[i : i + CHUNK_BYTES] for i in range(0, len(value), CHUNK_BYTES)] or [b""]
    n = len(chunks)
    for i, chunk in enumerate(chunks):
        yield f"{kind}:{entry_id}:{i}:{n}".encode(), chunk


@dataclass
class ChangelogWrite:
    """A batch's changelog messages (partition, key, value; a value None is a tombstone),
    the state the job goes on with, and what it must remember of each partition."""

    partitions: list[int] = field(default_factory=list)
    keys: list[bytes] = field(default_factory=list)
    values: list[bytes | None] = field(default_factory=list)
    held: RatingState = field(default_factory=RatingState.empty)
    live_keys: dict[int, list[bytes]] = field(default_factory=dict)
    snapshotted: set[int] = field(default_factory=set)


def changelog_write(
    *,
    held: RatingState,
    delta: RatingState,
    touched: dict[int, str],
    meta: dict[int, PartitionMeta],
    partitioner: TenantPartitioner,
    token: str,
    snapshot_every: int,
    horizon_days: float,
) -> ChangelogWrite:
    """The delta of each partition the batch ``touched`` (partition -> the entry id, unique
    per committed batch of the partition), or every ``snapshot_every`` batches a pruned
    snapshot; ``held`` is the state after the batch."""
    out = ChangelogWrite(held=held)
    delta_tenants = delta.tenant_ids()
    for p, entry_id in sorted(touched.items()):
        pm = meta.get(p)
        live = list(pm.live_keys) if pm else []
        if (pm.batches_since_snapshot if pm else 0) + 1 >= snapshot_every:
            out.held = _pruned(out.held, p, partitioner, horizon_days)
            state = partition_state(out.held, p, partitioner)
            msgs = list(entry_messages("snap", entry_id, encode_entry(state, token)))
            _add(out, p, live, [None] * len(live))  # tombstones: the snapshot supersedes them
            live = [k for k, _ in msgs]
            out.snapshotted.add(p)
        else:
            mine = of_partition(partitioner, delta_tenants, p)
            own = delta.filter_tenants(mine, []).with_watermarks(
                {p: held.watermarks[p]} if p in held.watermarks else {}
            )
            msgs = list(entry_messages("delta", entry_id, encode_entry(own, token)))
            live += [k for k, _ in msgs]
        _add(out, p, [k for k, _ in msgs], [v for _, v in msgs])
        out.live_keys[p] = live
    return out


def _add(out: ChangelogWrite, p: int, keys: list[bytes], values: list[bytes | None]) -> None:
    out.partitions += [p] * len(keys)
    out.keys += keys
    out.values += values


def _pruned(
    held: RatingState, p: int, partitioner: TenantPartitioner, horizon_days: float
) -> RatingState:
    """Rule 2: partition p's dedupe keys older than its watermark minus the horizon gone."""
    mark = held.watermarks.get(p)
    if mark is None:
        return held
    mine = of_partition(partitioner, held.tenant_ids(), p)
    return held.prune_seen(mark, int(horizon_days * _US_PER_DAY), mine)


class Replayer:
    """Folds changelog messages, in log order, into the state they describe.

    ``last_batch``: token of the batch that wrote the last complete entry ("" if none).
    ``end_offset``: the log end offset the restore read up to (the partition's generation:
    a later owner restores at a later, or the same, offset, never an earlier one).
    """

    def __init__(self) -> None:
        self.state = RatingState.empty()
        self.live_keys: list[bytes] = []  # keys to tombstone at the next snapshot
        self.last_batch = ""
        self.end_offset = 0
        self._pending: dict[tuple[str, str], dict[int, bytes]] = {}

    def feed(self, key: bytes, value: bytes | None) -> None:
        if value is None:  # a tombstone: the entry was superseded by a snapshot
            return
        kind, entry_id, i, n = key.decode().split(":")
        parts = self._pending.setdefault((kind, entry_id), {})
        parts[int(i)] = value
        self.live_keys.append(key)
        if len(parts) < int(n):
            return
        del self._pending[(kind, entry_id)]
        piece, self.last_batch = decode_entry(b"".join(parts[j] for j in range(int(n))))
        if kind == "snap":
            self.state = piece
            prefix = f"snap:{entry_id}:".encode()
            self.live_keys = [k for k in self.live_keys if k.startswith(prefix)]
        else:
            self.state = self.state.merge(piece)
