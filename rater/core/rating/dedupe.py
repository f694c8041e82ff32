"""Rule 2: valid records whose (tenant_id, cdr_id) was already seen are ``duplicate``.

Seen means: earlier in the batch, or in the state's dedupe keys (kept for a horizon by
the streaming job; a batch file is one horizon).
"""

from __future__ import annotations

import polars as pl

from rater.core.seen_index import SeenIndex, key_hash
from rater.core.state import RatingState

__all__ = ["duplicates"]


def duplicates(
    cdrs: pl.DataFrame, w: pl.DataFrame, state: RatingState, index: SeenIndex
) -> pl.Series:
    """Valid records whose (tenant_id, cdr_id) an earlier valid record or ``state.seen`` has
    (``index``: the hash index of ``state.seen``).

    Within the batch, only the keys whose 64-bit hash occurs twice are compared
    exactly, which spares hashing a million string pairs into a table. Against the
    held keys, each key is looked up by its hash in the index (a cost that grows with
    the batch, not with the keys held).
    """
    n = w.height
    valid = pl.col("_rule1") == 0
    flags = pl.repeat(False, n, dtype=pl.Boolean, eager=True).alias("_dup")
    hashes = w.select(pl.col("_key_hash").filter(valid).sort())["_key_hash"]
    repeated = hashes.filter(hashes == hashes.shift(1))
    # Size-dependent: keys are compared exactly only when their hashes repeat (resends or
    # collisions), so a batch without any pays for sorting hashes, not strings.
    if repeated.len():
        clash = (
            w.lazy()
            .select(
                "_row",
                "_tenant",
                "_key_hash",
                pl.lit(cdrs["cdr_id"]).alias("cdr_id"),
                valid.alias("_valid"),
            )
            .filter(pl.col("_valid") & pl.col("_key_hash").is_in(repeated.implode()))
            .collect()
        )
        later = clash.filter(~pl.struct("_tenant", "cdr_id").is_first_distinct())["_row"]
        if later.len():
            flags.scatter(later, True)
    if index.rows:
        again = _held(cdrs, w["_rule1"] == 0, state.seen, index)
        if again.len():
            flags.scatter(again, True)
    return flags


def _held(cdrs: pl.DataFrame, valid: pl.Series, seen: pl.DataFrame, index: SeenIndex) -> pl.Series:
    """Rows of the valid records whose key ``seen`` holds. The index gives every held key
    with the same hash (a held equal key is among them); the keys are then compared."""
    asked = (
        cdrs.lazy()
        .select(
            pl.int_range(pl.len(), dtype=pl.Int64).alias("_row"),
            "tenant_id",
            "cdr_id",
            key_hash().alias("_h"),
        )
        .filter(pl.lit(valid))
        .collect()
    )
    hits = index.hits(asked["_h"])
    q, pos = pl.col("q"), pl.col("pos")
    same = hits.filter(
        (pl.lit(asked["tenant_id"]).gather(q) == pl.lit(seen["tenant_id"]).gather(pos))
        & (pl.lit(asked["cdr_id"]).gather(q) == pl.lit(seen["cdr_id"]).gather(pos))
    )
    return asked["_row"].gather(same["q"].unique())
