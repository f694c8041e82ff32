"""The one rating state, threaded from batch to batch, and its deltas.

Batch and streaming use the same type: ``rate-file`` carries one state through a file's
slices; the streaming job holds the state of the partitions it owns (a partition's part
is the rows of its tenants, plus its dedupe watermark) and writes what each batch
changed (a *delta*, the same type) to its changelog.

State is minimal on purpose. Low-balance and exhausted alarms need no "armed" flag:
between top-ups a balance only falls, so an alarm is armed exactly when the balance is
still >= the threshold (low_balance) or > 0 (exhausted).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import polars as pl

from rater.core.columns import ADJUSTMENT_SCHEMA
from rater.core.seen_index import SeenIndex, key_hash

__all__ = [
    "ADJUSTMENT_STATE_SCHEMA",
    "ALLOWANCE_SCHEMA",
    "BALANCE_STATE_SCHEMA",
    "CLOCK_SKEW_US",
    "SEEN_SCHEMA",
    "RatingState",
    "advance_watermark",
]

_KEY = ("tenant_id", "adjustment_id")
# Rule 2: the dedupe watermark is the newest rating time seen, but never more than this
# ahead of the wall clock, so that no record, however far in the future, can push it on.
CLOCK_SKEW_US = 86_400_000_000

BALANCE_STATE_SCHEMA: dict[str, pl.DataType] = {
    "tenant_id": pl.String(),
    "balance_micros": pl.Int64(),
}
ALLOWANCE_SCHEMA: dict[str, pl.DataType] = {
    "tenant_id": pl.String(),
    "period": pl.String(),  # "YYYY-MM" in the tenant plan's time zone
    "allowance_index": pl.Int32(),
    "used": pl.Int64(),
}
SEEN_SCHEMA: dict[str, pl.DataType] = {
    "tenant_id": pl.String(),
    "cdr_id": pl.String(),
    "seen_time": pl.Datetime("us", "UTC"),
}
# Adjustments seen: applied ones (so that a resent one is applied once; only the key is
# kept) and pending ones (consumed, waiting for their place among the CDR debits: the
# whole adjustment is kept, with where it was read from).
ADJUSTMENT_STATE_SCHEMA: dict[str, pl.DataType] = {
    "tenant_id": pl.String(),
    "adjustment_id": pl.String(),  # a top-up's topup_id
    "pending": pl.Boolean(),
    **{name: dtype for name, dtype in ADJUSTMENT_SCHEMA.items() if name not in _KEY},
    "source_topic": pl.String(),
    "source_partition": pl.Int32(),
    "source_offset": pl.Int64(),
}
_FRAMES = ("balances", "allowances", "seen", "adjustments")
_KEYS = {
    "balances": ["tenant_id"],
    "allowances": ["tenant_id", "period", "allowance_index"],
    "seen": ["tenant_id", "cdr_id"],
    "adjustments": ["tenant_id", "adjustment_id"],
}
_SCHEMAS = {
    "balances": BALANCE_STATE_SCHEMA,
    "allowances": ALLOWANCE_SCHEMA,
    "seen": SEEN_SCHEMA,
    "adjustments": ADJUSTMENT_STATE_SCHEMA,
}


def advance_watermark(current_us: int | None, newest_us: int | None, now_us: int) -> int | None:
    """The dedupe watermark after records whose newest rating time is ``newest_us``, seen
    at wall-clock time ``now_us``: it only moves forward, and never past now + 1 day."""
    if newest_us is None:
        return current_us
    candidate = min(newest_us, now_us + CLOCK_SKEW_US)
    return candidate if current_us is None else max(current_us, candidate)


@dataclass(frozen=True)
class RatingState:
    """Balances that moved, allowance use, dedupe keys, applied adjustments, watermarks.

    - ``balances``: tenant_id, balance_micros (absent = the tenant's opening balance);
    - ``allowances``: tenant_id, period ("YYYY-MM"), allowance_index, used;
    - ``seen``: tenant_id, cdr_id, seen_time (the rating time of the first valid record);
    - ``adjustments``: tenant_id, adjustment_id, pending: balance adjustments applied (so
      that a resent one is applied once), and those consumed but still waiting for their
      place among the CDR debits (``pending``, with all their columns);
    - ``watermarks``: input partition -> rule 2's dedupe watermark in microseconds
      (streaming only; a file has none).

    ``balances``, ``allowances`` and ``adjustments`` are kept sorted by key; ``seen`` is
    in arrival order.
    """

    balances: pl.DataFrame
    allowances: pl.DataFrame
    seen: pl.DataFrame
    adjustments: pl.DataFrame = field(default_factory=lambda: _empty("adjustments"))
    watermarks: Mapping[int, int] = field(default_factory=dict)
    # The hash index of ``seen``'s first keys (rater.core.seen_index), kept only by the
    # operations that leave ``seen`` as it is or append to it; never written, rebuilt when
    # missing.
    seen_index: SeenIndex | None = field(default=None, compare=False, repr=False)

    @staticmethod
    def empty() -> RatingState:
        return RatingState(
            balances=_empty("balances"),
            allowances=_empty("allowances"),
            seen=_empty("seen"),
            adjustments=_empty("adjustments"),
        )

    @staticmethod
    def of(
        balances: pl.DataFrame | None = None,
        allowances: pl.DataFrame | None = None,
        seen: pl.DataFrame | None = None,
        adjustments: pl.DataFrame | None = None,
        watermarks: Mapping[int, int] | None = None,
    ) -> RatingState:
        """A state from frames in any order and compatible dtypes (keys deduplicated,
        last wins)."""
        given = dict(zip(_FRAMES, (balances, allowances, seen, adjustments), strict=True))
        parts = {
            name: _empty(name)
            if frame is None
            else _conform(frame, _SCHEMAS[name])
            .unique(subset=_KEYS[name], keep="last", maintain_order=True)
            .sort(_KEYS[name])
            for name, frame in given.items()
        }
        return RatingState(**parts, watermarks=dict(watermarks or {}), seen_index=None)

    def merge(self, delta: RatingState) -> RatingState:
        """Upsert every row of ``delta`` by key; a watermark only moves forward."""
        marks = dict(self.watermarks)
        for partition, mark in delta.watermarks.items():
            marks[partition] = max(mark, marks.get(partition, mark))
        return RatingState(
            balances=_upsert(self.balances, delta.balances, "balances", sort=True),
            allowances=_upsert(self.allowances, delta.allowances, "allowances", sort=True),
            seen=_upsert(self.seen, delta.seen, "seen", sort=False),
            adjustments=_upsert(self.adjustments, delta.adjustments, "adjustments", sort=True),
            watermarks=marks,
            seen_index=self.seen_index if delta.seen.height == 0 else None,
        )

    def with_seen(self, appended: pl.DataFrame) -> RatingState:
        """The state with dedupe keys appended that it does not hold (SEEN_SCHEMA): a
        plain append. The index (when the state has one) then covers the keys before
        them; they are added to it when it is next used (:meth:`seen_lookup`)."""
        if appended.height == 0:
            return self
        frames = {name: getattr(self, name) for name in _FRAMES}
        frames["seen"] = pl.concat([self.seen, appended]) if self.seen.height else appended
        return RatingState(**frames, watermarks=self.watermarks, seen_index=self.seen_index)

    def seen_lookup(self) -> SeenIndex:
        """The hash index of ``seen``: the state's own, with the keys appended since it
        was last used added to it, or built now when the state has none."""
        index = self.seen_index
        if index is None or index.rows > self.seen.height:
            return SeenIndex.of(self.seen)
        if index.rows < self.seen.height:
            return index.appended(self.seen.slice(index.rows).select(key_hash()).to_series())
        return index

    def with_seen_index(self, index: SeenIndex) -> RatingState:
        """The same state keeping ``index`` (an index of its ``seen``'s first keys)."""
        frames = {name: getattr(self, name) for name in _FRAMES}
        return RatingState(**frames, watermarks=self.watermarks, seen_index=index)

    def filter_tenants(self, keep: pl.Expr, partitions: Iterable[int] | None = None) -> RatingState:
        """Only the rows whose tenant satisfies ``keep`` (an expression on tenant_id), and
        the watermarks of ``partitions`` (all of them when None)."""
        marks = (
            dict(self.watermarks)
            if partitions is None
            else {p: self.watermarks[p] for p in partitions if p in self.watermarks}
        )
        frames = {name: getattr(self, name).filter(keep) for name in _FRAMES}
        return RatingState(**frames, watermarks=marks)

    def with_watermarks(self, watermarks: Mapping[int, int]) -> RatingState:
        frames = {name: getattr(self, name) for name in _FRAMES}
        return RatingState(**frames, watermarks=dict(watermarks), seen_index=self.seen_index)

    def prune_seen(self, watermark_us: int, horizon_us: int, tenants: pl.Expr) -> RatingState:
        """Rule 2: forget the dedupe keys of ``tenants`` (an expression on tenant_id) whose
        rating time is before ``watermark_us - horizon_us``."""
        cutoff = pl.lit(watermark_us - horizon_us).cast(pl.Datetime("us", "UTC"))
        frames = {name: getattr(self, name) for name in _FRAMES}
        frames["seen"] = self.seen.filter(~tenants | (pl.col("seen_time") >= cutoff))
        return RatingState(**frames, watermarks=self.watermarks)

    def pending_adjustments(self) -> pl.DataFrame:
        """The adjustments consumed but not applied yet (ADJUSTMENT_STATE_SCHEMA)."""
        return self.adjustments.filter(pl.col("pending").fill_null(False))

    def tenant_ids(self) -> list[str]:
        """Every tenant with a row in the state."""
        ids = pl.concat([getattr(self, name).get_column("tenant_id") for name in _FRAMES])
        return [t for t in ids.unique().to_list() if t is not None]

    def to_bytes(self) -> bytes:
        """One Arrow IPC stream per frame and a JSON line of watermarks, length-prefixed."""
        out = bytearray()
        marks = json.dumps({str(p): m for p, m in sorted(self.watermarks.items())}).encode()
        for data in (*(_ipc(getattr(self, name)) for name in _FRAMES), marks):
            out += len(data).to_bytes(8, "big") + data
        return bytes(out)

    @staticmethod
    def from_bytes(data: bytes) -> RatingState:
        pieces: list[bytes] = []
        pos = 0
        while pos < len(data):
            size = int.from_bytes(data[pos : pos + 8], "big")
            pieces.append(data[pos + 8 : pos + 8 + size])
            pos += 8 + size
        if len(pieces) != len(_FRAMES) + 1 or pos != len(data):
            raise ValueError("not a rating state")
        frames = {
            name: _conform(pl.read_ipc(io.BytesIO(piece)), _SCHEMAS[name])
            for name, piece in zip(_FRAMES, pieces, strict=False)
        }
        marks = {int(p): int(m) for p, m in json.loads(pieces[-1]).items()}
        return RatingState(**frames, watermarks=marks, seen_index=None)

    def equals(self, other: RatingState) -> bool:
        """Same rows and watermarks, whatever their order."""
        return dict(self.watermarks) == dict(other.watermarks) and all(
            getattr(self, name).sort(keys).equals(getattr(other, name).sort(keys))
            for name, keys in _KEYS.items()
        )


def _empty(name: str) -> pl.DataFrame:
    return pl.DataFrame(schema=_SCHEMAS[name])


def _conform(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """``frame`` in ``schema``'s columns and dtypes; a column it lacks (written by an
    older version) is null."""
    return frame.select(
        (pl.col(name) if name in frame.columns else pl.lit(None)).cast(dtype).alias(name)
        for name, dtype in schema.items()
    )


def _upsert(base: pl.DataFrame, delta: pl.DataFrame, name: str, *, sort: bool) -> pl.DataFrame:
    if delta.height == 0:
        return base
    keys = _KEYS[name]
    merged = (
        _conform(delta, _SCHEMAS[name])
        if base.height == 0
        else pl.concat([base.join(delta.select(keys), on=keys, how="anti"), delta])
    )
    # The small frames stay sorted by key; the large dedupe set is left in arrival order.
    return merged.sort(keys) if sort else merged


def _ipc(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.write_ipc(buf, compression="zstd")
    return buf.getvalue()
