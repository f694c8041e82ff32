"""Which tenants, hence which rows of the state, belong to which input partition.

A tenant belongs to the partition its producers' partitioner gives its tenant_id
(:mod:`rater.stream.partitioner`). The job holds one :class:`RatingState` for every
partition it owns; these functions cut it by partition, take a restored partition over
and let one go, and find the messages that sit on the wrong partition (``misrouted``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import polars as pl

from rater.core.state import RatingState
from rater.stream.partitioner import TenantPartitioner

__all__ = ["let_go", "misrouted", "of_partition", "partition_state", "take_over"]

log = logging.getLogger(__name__)


def of_partition(partitioner: TenantPartitioner, tenants: Iterable[str], partition: int) -> pl.Expr:
    """An expression on tenant_id: the tenant is one of ``tenants`` of ``partition``."""
    mine = [t for t in tenants if partitioner.of(t) == partition]
    return pl.col("tenant_id").is_in(pl.Series(mine, dtype=pl.String).implode())


def partition_state(
    held: RatingState, partition: int, partitioner: TenantPartitioner
) -> RatingState:
    """The part of ``held`` that belongs to ``partition`` (its tenants and watermark)."""
    mine = of_partition(partitioner, held.tenant_ids(), partition)
    return held.filter_tenants(mine, [partition])


def take_over(
    held: RatingState, partition: int, restored: RatingState, partitioner: TenantPartitioner
) -> RatingState:
    """``held`` with a restored partition added, without rows of tenants that are not its
    own (a changelog written before tenants were checked against their partition): a
    stale copy of a tenant's state must never overwrite its real one."""
    tenants = restored.tenant_ids()
    strays = sum(1 for t in tenants if partitioner.of(t) != partition)
    if strays:
        log.warning(
            "dropped the restored state of %d tenant(s) that do not belong to partition %d",
            strays,
            partition,
        )
    own = restored.filter_tenants(of_partition(partitioner, tenants, partition), [partition])
    return held.merge(own)


def let_go(held: RatingState, partition: int, partitioner: TenantPartitioner) -> RatingState:
    """``held`` without ``partition``'s tenants and watermark."""
    gone = of_partition(partitioner, held.tenant_ids(), partition)
    others = [p for p in held.watermarks if p != partition]
    return held.filter_tenants(~gone, others)


def misrouted(
    partitioner: TenantPartitioner,
    tenants: pl.Series,
    keys: list[bytes | None],
    partitions: list[int],
) -> pl.Series:
    """Rows whose message (its key and partition, row for row) is not keyed by its
    tenant_id, or not on the tenant's partition."""
    if tenants.len() == 0:
        return pl.Series("misrouted", [], dtype=pl.Boolean)
    key_column = pl.Series("key", keys, dtype=pl.Binary)
    partition_column = pl.Series("partition", partitions, dtype=pl.Int32)
    right = (key_column == tenants.cast(pl.Binary)) & (
        partitioner.column(tenants) == partition_column
    )
    return (~right.fill_null(False)).alias("misrouted")
