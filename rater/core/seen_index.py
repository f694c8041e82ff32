"""A sorted index of the dedupe keys held (rule 2), by a 64-bit hash of each key.

Checking a batch against the held keys by a join hashes every held key again, every
batch: a cost that grows with the horizon, not with the batch. This index keeps the
hashes sorted, so a batch looks its keys up by binary search. A hash only says where to
look: a key is a duplicate when the held key at that place is equal to it, and a key
whose hash is held under another key (a 64-bit collision) is checked exactly.

The index lives beside the state in memory and is never written: a state read back, cut
to some tenants or pruned has none, and it is rebuilt from the keys on first use.

It is a few sorted *runs* (an appended batch is a new run; runs are merged two by two
when the older one is not larger), so appending costs about log(keys/batch) merges per
key in all and a lookup searches at most that many runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

__all__ = ["SeenIndex", "key_hash"]


def key_hash() -> pl.Expr:
    """The 64-bit hash of a frame's dedupe key (``tenant_id``, ``cdr_id``)."""
    return pl.col("cdr_id").hash(0x5EED) ^ pl.col("tenant_id").hash(0xC0DE)


@dataclass(frozen=True)
class _Run:
    """Key hashes ``h`` in order with their rows ``pos``, and where each bucket of hashes
    (their top ``bits`` bits) starts: the hashes of bucket b are ``h[starts[b]:starts[b + 1]]``,
    at most ``widest`` of them. About one hash per bucket, so a lookup reads two places
    instead of binary-searching the whole run."""

    h: pl.Series  # UInt64, sorted
    pos: pl.Series  # Int64
    starts: pl.Series  # Int64, 2**bits + 1 entries
    bits: int
    widest: int

    @staticmethod
    def of(h: pl.Series, pos: pl.Series) -> _Run:
        bits = max(1, h.len().bit_length() - 1)
        runs = _bucket(h, bits).rle()  # hashes are sorted, so are their buckets
        counts = pl.zeros(1 << bits, dtype=pl.Int64, eager=True)
        counts.scatter(runs.struct.field("value"), runs.struct.field("len").cast(pl.Int64))
        starts = pl.concat([pl.Series([0], dtype=pl.Int64), counts.cum_sum()])
        widest = runs.struct.field("len").max()
        return _Run(h, pos, starts, bits, widest if isinstance(widest, int) else 0)

    @property
    def height(self) -> int:
        return self.h.len()

    def hits(self, query: pl.Series) -> pl.DataFrame:
        """Every (``q``: position in ``query``, ``pos``: row) whose hashes are equal."""
        bucket = _bucket(query, self.bits)
        first = self.starts.gather(bucket)
        width = self.starts.gather(bucket + 1) - first
        asked = pl.DataFrame({"q": pl.int_range(query.len(), dtype=pl.Int64, eager=True)})
        asked = asked.with_columns(first.alias("first"), width.alias("width"), query.alias("h"))
        found: list[pl.DataFrame] = []
        for j in range(self.widest):
            asked = asked.filter(pl.col("width") > j)
            at = asked["first"] + j
            same = self.h.gather(at) == asked["h"]
            found.append(
                pl.DataFrame(
                    {"q": asked["q"].filter(same), "pos": self.pos.gather(at.filter(same))}
                )
            )
        return pl.concat(found) if found else _NO_HITS


def _bucket(h: pl.Series, bits: int) -> pl.Series:
    """The top ``bits`` bits of each hash."""
    return (h // pl.Series([1 << (64 - bits)], dtype=pl.UInt64)).cast(pl.Int64)


_NO_HITS = pl.DataFrame(schema={"q": pl.Int64, "pos": pl.Int64})


@dataclass(frozen=True)
class SeenIndex:
    """Runs of key hashes, each with the rows of the held keys that have them."""

    runs: tuple[_Run, ...]
    rows: int  # how many held keys it covers: rows 0 .. rows - 1

    @staticmethod
    def empty() -> SeenIndex:
        return SeenIndex((), 0)

    @staticmethod
    def of(seen: pl.DataFrame) -> SeenIndex:
        """The index of the held keys ``seen`` (columns tenant_id, cdr_id)."""
        return SeenIndex.empty().appended(seen.select(key_hash()).to_series())

    def appended(self, hashes: pl.Series) -> SeenIndex:
        """The index once keys with these hashes are appended to the held keys."""
        if hashes.len() == 0:
            return self
        run = pl.DataFrame(
            {
                "h": hashes.cast(pl.UInt64),
                "pos": pl.int_range(
                    self.rows, self.rows + hashes.len(), dtype=pl.Int64, eager=True
                ),
            }
        ).sort("h")
        frames = [*self._frames(), run]
        while len(frames) >= 2 and frames[-2].height <= frames[-1].height:
            last = frames.pop()
            frames[-1] = frames[-1].merge_sorted(last, key="h")
        kept = len(self.runs) if len(frames) > len(self.runs) else len(frames) - 1
        runs = (*self.runs[:kept], *(_Run.of(f["h"], f["pos"]) for f in frames[kept:]))
        return SeenIndex(runs, self.rows + hashes.len())

    def _frames(self) -> list[pl.DataFrame]:
        return [pl.DataFrame({"h": r.h, "pos": r.pos}) for r in self.runs]

    def hits(self, hashes: pl.Series) -> pl.DataFrame:
        """Every held key with the hash of a query: ``q`` (position in ``hashes``) and
        ``pos`` (the key's row). A key held is among its hash's hits; a hit is the same
        key only if the keys compare equal (64-bit hashes can collide)."""
        query = hashes.cast(pl.UInt64)
        found = [run.hits(query) for run in self.runs]
        return pl.concat(found) if found else _NO_HITS
