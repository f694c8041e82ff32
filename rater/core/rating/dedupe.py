"""Rule 2: valid records whose (tenant_id, cdr_id) was already seen are ``duplicate``.

Seen means: earlier in the batch, or in the state's dedupe keys (kept for a horizon by
the streaming job; a batch file is one horizon).
"""

from __future__ import annotations

import polars as pl

from rater.core.state import RatingState

__all__ = ["duplicates"]


def duplicates(cdrs: pl.DataFrame, w: pl.DataFrame, state: RatingState) -> pl.Series:
    """Valid records whose (tenant_id, cdr_id) an earlier valid record or ``state.seen`` has.

    Within the batch, only the keys whose 64-bit hash occurs twice are compared
    exactly, which spares hashing a million string pairs into a table.
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
    if state.seen.height:
        again = (
            cdrs.lazy()
            .select("tenant_id", "cdr_id", pl.int_range(pl.len(), dtype=pl.Int64).alias("_row"))
            .filter(pl.lit(w["_rule1"]) == 0)
            .join(
                state.seen.lazy().select("tenant_id", "cdr_id"),
                on=["tenant_id", "cdr_id"],
                how="semi",
            )
            .collect()["_row"]
        )
        if again.len():
            flags.scatter(again, True)
    return flags
