"""How a partition's rating state is written to, and read back from, the changelog topic.

Each batch writes the *delta* of the state it changed (balances, allowance usage, new
dedupe keys, top-up ids, the dedupe watermark) to changelog partition p, inside the same
Kafka transaction as its output and its input offsets; so the changelog always matches
the committed offsets. Every few batches a full *snapshot* is written and the deltas
before it are deleted with tombstones (the topic is compacted). Restoring a partition
replays the log in order: a snapshot replaces the state, a delta is merged into it.

Every entry names the batch that wrote it (its token): the last entry of a partition
tells a new owner which batch committed last, hence which staged Parquet files of that
partition were committed and must be published (see sinks.dataset).

Values can be larger than a Kafka message, so each is cut into chunks with keys
``<kind>:<id>:<i>:<n>``; a piece of state is applied only once all its chunks are read.
"""

from __future__ import annotations

import io
import json
import logging
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import polars as pl

from rater.core.state import RatingState

__all__ = [
    "CHUNK_BYTES",
    "PartitionState",
    "Replayer",
    "decode_entry",
    "encode_entry",
    "entry_messages",
]

log = logging.getLogger(__name__)

CHUNK_BYTES = 4 * 1024 * 1024
TOPUP_IDS = {"tenant_id": pl.String(), "topup_id": pl.String()}
_VERSION = 2
_LENGTHS = struct.Struct(">III")  # header, rating state, top-up ids


@dataclass(frozen=True)
class PartitionState:
    """Everything the rater must remember for the tenants of one input partition.

    ``watermark_us``: rule 2's dedupe watermark of the partition (the newest rating time
    seen, capped at the wall clock + 1 day when it was seen), None before any record.
    """

    rating: RatingState
    topup_ids: pl.DataFrame  # tenant_id, topup_id: top-ups already credited
    watermark_us: int | None = None

    @staticmethod
    def empty() -> PartitionState:
        return PartitionState(RatingState.empty(), pl.DataFrame(schema=TOPUP_IDS))

    def merge(self, delta: PartitionState) -> PartitionState:
        ids = pl.concat([self.topup_ids, delta.topup_ids]).unique(maintain_order=True)
        marks = [m for m in (self.watermark_us, delta.watermark_us) if m is not None]
        return PartitionState(self.rating.merge(delta.rating), ids, max(marks, default=None))

    def keep_tenants(self, keep: pl.Expr) -> PartitionState:
        """Only the rows whose tenant satisfies ``keep`` (an expression on tenant_id)."""
        return PartitionState(
            self.rating.filter_tenants(keep), self.topup_ids.filter(keep), self.watermark_us
        )


def encode_entry(state: PartitionState, batch: str) -> bytes:
    header = json.dumps(
        {"v": _VERSION, "watermark_us": state.watermark_us, "batch": batch}
    ).encode()
    rating = state.rating.to_bytes()
    buf = io.BytesIO()
    state.topup_ids.write_ipc(buf, compression="zstd")
    topups = buf.getvalue()
    return _LENGTHS.pack(len(header), len(rating), len(topups)) + header + rating + topups


def decode_entry(data: bytes) -> tuple[PartitionState, str]:
    """(state, batch token) of an entry written by :func:`encode_entry`."""
    n_header, n_rating, n_topups = _LENGTHS.unpack_from(data)
    pos = _LENGTHS.size
    header = json.loads(data[pos : pos + n_header])
    if header.get("v") != _VERSION:
        raise ValueError(f"changelog entry version {header.get('v')!r}, expected {_VERSION}")
    pos += n_header
    rating = RatingState.from_bytes(data[pos : pos + n_rating])
    pos += n_rating
    topups = pl.read_ipc(io.BytesIO(data[pos : pos + n_topups]))
    if pos + n_topups != len(data):
        raise ValueError("trailing bytes after a changelog entry")
    mark = header.get("watermark_us")
    state = PartitionState(rating, topups.cast(TOPUP_IDS), None if mark is None else int(mark))  # type: ignore[arg-type]
    return state, str(header.get("batch", ""))


def entry_messages(kind: str, entry_id: str, value: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) messages of one snapshot or delta, cut into chunks."""
    chunks = [value[i : i + CHUNK_BYTES] for i in range(0, len(value), CHUNK_BYTES)] or [b""]
    n = len(chunks)
    for i, chunk in enumerate(chunks):
        yield f"{kind}:{entry_id}:{i}:{n}".encode(), chunk


class Replayer:
    """Folds changelog messages, in log order, into the state they describe.

    ``last_batch``: token of the batch that wrote the last complete entry ("" if none).
    ``end_offset``: the log end offset the restore read up to (the partition's generation:
    a later owner restores at a later, or the same, offset, never an earlier one).
    """

    def __init__(self) -> None:
        self.state = PartitionState.empty()
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
