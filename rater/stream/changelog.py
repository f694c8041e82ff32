"""How a partition's rating state is written to, and read back from, the changelog topic.

Each batch writes the *delta* of the state it changed (balances, allowance usage, new
dedupe keys, top-up ids) to changelog partition p, inside the same Kafka transaction
as its output and its input offsets; so the changelog always matches the committed
offsets. Every few batches a full *snapshot* is written and the deltas before it are
deleted with tombstones (the topic is compacted). Restoring a partition replays the log
in order: a snapshot replaces the state, a delta is merged into it.

Values can be larger than a Kafka message, so each is cut into chunks with keys
``<kind>:<id>:<i>:<n>``; a piece of state is applied only once all its chunks are read.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import polars as pl

from rater.core.state import RatingState

__all__ = [
    "CHUNK_BYTES",
    "PartitionState",
    "Replayer",
    "decode_state",
    "encode_state",
    "entry_messages",
]

CHUNK_BYTES = 4 * 1024 * 1024
_TOPUP_IDS = {"tenant_id": pl.String(), "topup_id": pl.String()}


@dataclass(frozen=True)
class PartitionState:
    """Everything the rater must remember for the tenants of one input partition."""

    rating: RatingState
    topup_ids: pl.DataFrame  # tenant_id, topup_id: top-ups already credited

    @staticmethod
    def empty() -> PartitionState:
        return PartitionState(RatingState.empty(), pl.DataFrame(schema=_TOPUP_IDS))

    def select_tenants(self, tenants: pl.Series) -> PartitionState:
        """Only the rows of these tenants (those of one partition)."""
        ids = self.topup_ids.filter(pl.col("tenant_id").is_in(tenants.implode()))
        return PartitionState(self.rating.select_tenants(tenants), ids)

    def merge(self, delta: PartitionState) -> PartitionState:
        ids = pl.concat([self.topup_ids, delta.topup_ids]).unique(maintain_order=True)
        return PartitionState(self.rating.merge(delta.rating), ids)


def encode_state(state: PartitionState) -> bytes:
    rating = state.rating.to_bytes()
    buf = io.BytesIO()
    state.topup_ids.write_ipc(buf, compression="zstd")
    topups = buf.getvalue()
    return struct.pack(">QQ", len(rating), len(topups)) + rating + topups


def decode_state(data: bytes) -> PartitionState:
    n_rating, n_topups = struct.unpack_from(">QQ", data)
    start = 16
    rating = RatingState.from_bytes(data[start : start + n_rating])
    topups = pl.read_ipc(io.BytesIO(data[start + n_rating : start + n_rating + n_topups]))
    return PartitionState(rating, topups.cast(_TOPUP_IDS))  # type: ignore[arg-type]


def entry_messages(kind: str, entry_id: str, value: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) messages of one snapshot or delta, cut into chunks."""
    chunks = [value[i : i + CHUNK_BYTES] for i in range(0, len(value), CHUNK_BYTES)] or [b""]
    n = len(chunks)
    for i, chunk in enumerate(chunks):
        yield f"{kind}:{entry_id}:{i}:{n}".encode(), chunk


class Replayer:
    """Folds changelog messages, in log order, into the state they describe."""

    def __init__(self) -> None:
        self.state = PartitionState.empty()
        self.live_keys: list[bytes] = []  # keys to tombstone at the next snapshot
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
        data = b"".join(parts[j] for j in range(int(n)))
        piece = decode_state(data)
        if kind == "snap":
            self.state = piece
            self.live_keys = [
                k for k in self.live_keys if k.startswith(b"snap:" + entry_id.encode())
            ]
        else:
            self.state = self.state.merge(piece)

    def feed_all(self, messages: Iterable[tuple[bytes, bytes | None]]) -> PartitionState:
        for key, value in messages:
            self.feed(key, value)
        return self.state
