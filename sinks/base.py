"""What every sink is: a small object with ``write(batch)``, ``flush()`` and ``close()``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import polars as pl

__all__ = ["Sink", "SinkBatch"]


@dataclass(frozen=True)
class SinkBatch:
    """Rows that came from one input topic-partition's offsets [first_offset, last_offset].

    ``generation`` is the consumer-group generation under which the rows were rated: when
    a fenced process (a zombie) left files behind, the rows of the newest generation win.
    """

    topic: str
    partition: int
    first_offset: int
    last_offset: int
    generation: int
    frame: pl.DataFrame


class Sink(Protocol):
    def write(self, batch: SinkBatch) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...
