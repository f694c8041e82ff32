"""Which partition a tenant's messages belong to: the producers' key partitioners, in Python.

A tenant's CDRs, top-ups and rating state must share one partition number. Producers key
their messages by tenant_id and let a partitioner pick the partition; the rater checks
that every message is where that partitioner would have put it, and dead-letters the
others as ``misrouted`` (a CDR rated on the wrong partition would be rated against state
that is not its tenant's).

- ``murmur2_random`` (the default): Kafka's Java client partitioner, also Kafka Streams'
  and librdkafka's ``murmur2_random``: ``(murmur2(key) & 0x7fffffff) % partitions``.
- ``consistent_random``: librdkafka's default: ``crc32(key) % partitions`` (an empty key
  goes to a random partition there; no tenant has an empty id).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Literal

import polars as pl

__all__ = ["PARTITIONERS", "PartitionerName", "TenantPartitioner", "murmur2", "partition_for"]

PartitionerName = Literal["murmur2_random", "consistent_random"]
PARTITIONERS: tuple[PartitionerName, ...] = ("murmur2_random", "consistent_random")

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
_SEED = 0x9747B28C


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 of ``data`` as an unsigned 32-bit integer (Utils.murmur2 in Java)."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    tail = length & ~3
    for i in range(0, tail, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    rest = length & 3
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def partition_for(key: bytes, partitions: int, partitioner: PartitionerName) -> int:
    """The partition ``partitioner`` gives a message with this (non-null) key."""
    if partitions < 1:
        raise ValueError("a topic has at least one partition")
    if partitioner == "murmur2_random":
        return (murmur2(key) & 0x7FFFFFFF) % partitions
    if partitioner == "consistent_random":
        return zlib.crc32(key) % partitions
    raise ValueError(f"unknown partitioner {partitioner!r}; expected one of {PARTITIONERS}")


class TenantPartitioner:
    """The partition of each tenant_id, cached (a process sees few distinct tenants).

    The cache is bounded: past ``max_cached`` tenants it starts over, so a flood of
    distinct bogus tenant ids cannot grow memory without bound.
    """

    def __init__(
        self, partitions: int, partitioner: PartitionerName, *, max_cached: int = 1_000_000
    ) -> None:
        if partitions < 1:
            raise ValueError("a topic has at least one partition")
        self.partitions = partitions
        self.partitioner: PartitionerName = partitioner
        self._max_cached = max_cached
        self._cache: dict[str, int] = {}

    def of(self, tenant_id: str) -> int:
        found = self._cache.get(tenant_id)
        if found is None:
            if len(self._cache) >= self._max_cached:
                self._cache.clear()
            found = partition_for(tenant_id.encode(), self.partitions, self.partitioner)
            self._cache[tenant_id] = found
        return found

    def of_all(self, tenant_ids: Iterable[str]) -> dict[str, int]:
        return {t: self.of(t) for t in tenant_ids}

    def column(self, tenant_ids: pl.Series) -> pl.Series:
        """The partition of every tenant id of a column (Int32; null for a null id)."""
        distinct = [t for t in tenant_ids.unique().to_list() if t is not None]
        mapping = self.of_all(distinct)
        return tenant_ids.replace_strict(mapping, default=None, return_dtype=pl.Int32).alias(
            "partition"
        )
