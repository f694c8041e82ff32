"""The rating state threaded from batch to batch: balances, allowance use, dedupe keys.

State is minimal on purpose. Low-balance and exhausted alarms need no "armed"
flag: between top-ups a balance only falls, so an alarm is armed exactly when
the balance is still >= the threshold (low_balance) or > 0 (exhausted).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import polars as pl

__all__ = [
    "ALLOWANCE_SCHEMA",
    "BALANCE_STATE_SCHEMA",
    "CLOCK_SKEW_US",
    "SEEN_SCHEMA",
    "RatingState",
    "advance_watermark",
]

# Rule 2: the dedupe watermark is the newest rating time seen, but never more than this
# ahead of the wall clock, so that no record, however far in the future, can push it on.
CLOCK_SKEW_US = 86_400_000_000


def advance_watermark(current_us: int | None, newest_us: int | None, now_us: int) -> int | None:
    """The dedupe watermark after records whose newest rating time is ``newest_us``, seen
    at wall-clock time ``now_us``: it only moves forward, and never past now + 1 day."""
    if newest_us is None:
        return current_us
    candidate = min(newest_us, now_us + CLOCK_SKEW_US)
    return candidate if current_us is None else max(current_us, candidate)


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
_KEYS = {
    "balances": ["tenant_id"],
    "allowances": ["tenant_id", "period", "allowance_index"],
    "seen": ["tenant_id", "cdr_id"],
}
_SCHEMAS = {"balances": BALANCE_STATE_SCHEMA, "allowances": ALLOWANCE_SCHEMA, "seen": SEEN_SCHEMA}


def _conform(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return frame.select(pl.col(name).cast(dtype) for name, dtype in schema.items())


def _upsert(
    base: pl.DataFrame, delta: pl.DataFrame, keys: list[str], *, sort: bool
) -> pl.DataFrame:
    if delta.height == 0:
        return base
    merged = (
        delta
        if base.height == 0
        else pl.concat([base.join(delta.select(keys), on=keys, how="anti"), delta])
    )
    # The small frames stay sorted by key; the large dedupe set is left in arrival order.
    return merged.sort(keys) if sort else merged


@dataclass(frozen=True)
class RatingState:
    """Balances of prepaid tenants whose balance moved, allowance use, dedupe keys.

    ``balances``: tenant_id, balance_micros (absent = the tenant's opening balance).
    ``allowances``: tenant_id, period ("YYYY-MM"), allowance_index, used.
    ``seen``: tenant_id, cdr_id, seen_time (the rating time of the first valid record).
    ``balances`` and ``allowances`` are kept sorted by key; ``seen`` is in arrival order.
    """

    balances: pl.DataFrame
    allowances: pl.DataFrame
    seen: pl.DataFrame

    @staticmethod
    def empty() -> RatingState:
        return RatingState(
            balances=pl.DataFrame(schema=BALANCE_STATE_SCHEMA),
            allowances=pl.DataFrame(schema=ALLOWANCE_SCHEMA),
            seen=pl.DataFrame(schema=SEEN_SCHEMA),
        )

    @staticmethod
    def of(
        balances: pl.DataFrame | None = None,
        allowances: pl.DataFrame | None = None,
        seen: pl.DataFrame | None = None,
    ) -> RatingState:
        """Build a state from frames in any order and compatible dtypes (keys deduplicated, last wins)."""
        parts: dict[str, pl.DataFrame] = {}
        for name, frame in (("balances", balances), ("allowances", allowances), ("seen", seen)):
            schema = _SCHEMAS[name]
            if frame is None:
                parts[name] = pl.DataFrame(schema=schema)
            else:
                parts[name] = (
                    _conform(frame, schema)
                    .unique(subset=_KEYS[name], keep="last", maintain_order=True)
                    .sort(_KEYS[name])
                )
        return RatingState(**parts)

    def merge(self, delta: RatingState) -> RatingState:
        """Upsert every row of ``delta`` by key."""
        return RatingState(
            balances=_upsert(self.balances, delta.balances, _KEYS["balances"], sort=True),
            allowances=_upsert(self.allowances, delta.allowances, _KEYS["allowances"], sort=True),
            seen=_upsert(self.seen, delta.seen, _KEYS["seen"], sort=False),
        )

    def filter_tenants(self, keep: pl.Expr) -> RatingState:
        """Only the rows whose tenant satisfies ``keep`` (an expression on tenant_id)."""
        return RatingState(
            balances=self.balances.filter(keep),
            allowances=self.allowances.filter(keep),
            seen=self.seen.filter(keep),
        )

    def prune_seen(self, watermark_us: int, horizon_us: int, tenants: pl.Expr) -> RatingState:
        """Rule 2: forget the dedupe keys of ``tenants`` (an expression on tenant_id) whose
        rating time is before ``watermark_us - horizon_us``."""
        cutoff = pl.lit(watermark_us - horizon_us).cast(pl.Datetime("us", "UTC"))
        return RatingState(
            balances=self.balances,
            allowances=self.allowances,
            seen=self.seen.filter(~tenants | (pl.col("seen_time") >= cutoff)),
        )

    def to_bytes(self) -> bytes:
        """Serialize as one Arrow IPC stream per frame, length-prefixed."""
        out = bytearray()
        for frame in (self.balances, self.allowances, self.seen):
            buf = io.BytesIO()
            frame.write_ipc(buf, compression="zstd")
            data = buf.getvalue()
            out += len(data).to_bytes(8, "big") + data
        return bytes(out)

    @staticmethod
    def from_bytes(data: bytes) -> RatingState:
        frames: list[pl.DataFrame] = []
        pos = 0
        for name in ("balances", "allowances", "seen"):
            size = int.from_bytes(data[pos : pos + 8], "big")
            pos += 8
            frame = pl.read_ipc(io.BytesIO(data[pos : pos + size]))
            frames.append(_conform(frame, _SCHEMAS[name]))
            pos += size
        if pos != len(data):
            raise ValueError("trailing bytes after rating state")
        return RatingState(balances=frames[0], allowances=frames[1], seen=frames[2])

    def equals(self, other: RatingState) -> bool:
        """Same rows, whatever their order."""
        return all(
            getattr(self, name).sort(keys).equals(getattr(other, name).sort(keys))
            for name, keys in _KEYS.items()
        )
