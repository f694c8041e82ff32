"""What every dataset sink is: the protocol the streaming job really uses.

A batch's rows are staged while its Kafka transaction is open, published once it has
committed, discarded when it aborted, and recovered by the next owner of a partition
after a crash (see :mod:`sinks.parquet_dataset`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import polars as pl

__all__ = ["Sink", "SinkBatch"]


@dataclass(frozen=True)
class SinkBatch:
    """Rows that came from one input topic-partition's offsets [first_offset, last_offset].

    ``generation`` is the changelog offset at which the writer took the partition over:
    a later owner's is larger or equal.
    """

    topic: str
    partition: int
    first_offset: int
    last_offset: int
    generation: int
    frame: pl.DataFrame


class Sink(Protocol):
    def stage(self, batch: SinkBatch, token: str) -> None: ...

    def publish(self, token: str) -> None: ...

    def discard(self, token: str) -> None: ...

    def recover(self, topic: str, partition: int, committed: str) -> None: ...
