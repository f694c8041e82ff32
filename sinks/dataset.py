"""A month-partitioned file dataset written batch by batch, idempotently.

Layout: ``<root>/month=YYYY-MM/<topic>-<partition>-<first>-<last>.parquet``, one file per
batch and month, rows sorted by tenant_id so that a tenant's month is cheap to read
(Hive partition pruning on month, row-group statistics on tenant_id).

Why replays never duplicate: a batch that was written but not committed (a crash, an
aborted transaction) is read again from the same first offset. Before a batch starting
at offset O is written, every file of that topic-partition starting at or after O is
deleted: those can only be leftovers of uncommitted batches, since committed batches
end before O. A fenced process can still finish writing one batch after the new owner
took over; its rows carry an older ``writer_generation``, and the reading views keep,
for each source offset, the rows of the newest generation.
"""

from __future__ import annotations

import functools
import logging
import re
from collections import defaultdict

import polars as pl

from sinks.base import SinkBatch
from sinks.formats import FileFormat, ParquetFormat
from sinks.storage import LocalDirectory

__all__ = ["MonthPartitionedDataset"]

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(?P<topic>.+)-(?P<p>\d+)-(?P<first>\d{20})-(?P<last>\d{20})\.\w+$")


class MonthPartitionedDataset:
    """Sink of rated rows (or events) into a month-partitioned Parquet dataset.

    ``time_column`` gives the month (UTC) of each row; ``sort_by`` orders rows in a file.
    """

    def __init__(
        self,
        storage: LocalDirectory,
        *,
        time_column: str,
        sort_by: tuple[str, ...] = ("tenant_id",),
        file_format: FileFormat | None = None,
    ) -> None:
        self.storage = storage
        self.time_column = time_column
        self.sort_by = sort_by
        self.format: FileFormat = file_format or ParquetFormat()
        # (topic, partition) -> {relpath: first_offset}, files this process knows of.
        self._known: dict[tuple[str, int], dict[str, int]] = defaultdict(dict)
        self._scanned: set[tuple[str, int]] = set()

    def assign(self, topic: str, partition: int) -> None:
        """Learn which files exist for a topic-partition this process now owns."""
        key = (topic, partition)
        known = self._known[key]
        known.clear()
        for rel in self.storage.glob(f"month=*/{_glob_escape(topic)}-{partition}-*"):
            m = _NAME.match(rel.rsplit("/", 1)[-1])
            if m and m["topic"] == topic and int(m["p"]) == partition:
                known[rel] = int(m["first"])
        self._scanned.add(key)

    def revoke(self, topic: str, partition: int) -> None:
        self._known.pop((topic, partition), None)
        self._scanned.discard((topic, partition))

    def write(self, batch: SinkBatch) -> None:
        key = (batch.topic, batch.partition)
        if key not in self._scanned:
            self.assign(batch.topic, batch.partition)
        known = self._known[key]
        for rel, first in list(known.items()):
            if first >= batch.first_offset:
                log.info("removing leftover of an uncommitted batch: %s", rel)
                self.storage.delete(rel)
                del known[rel]
        if batch.frame.is_empty():
            return
        frame = batch.frame.with_columns(
            pl.col(self.time_column).dt.strftime("%Y-%m").alias("_month"),
            pl.lit(batch.generation, dtype=pl.Int64).alias("writer_generation"),
        )
        name = (
            f"{batch.topic}-{batch.partition}-{batch.first_offset:020d}-{batch.last_offset:020d}"
            f"{self.format.extension}"
        )
        for (month,), part in frame.partition_by(
            "_month", as_dict=True, maintain_order=True
        ).items():
            rows = part.drop("_month").sort(list(self.sort_by), maintain_order=True)
            rel = f"month={month}/{name}"
            self.storage.put(rel, functools.partial(self.format.dump, rows))
            known[rel] = batch.first_offset

    def flush(self) -> None:
        # Every write is already durable (fsync + atomic rename).
        return None

    def close(self) -> None:
        self._known.clear()
        self._scanned.clear()


def _glob_escape(text: str) -> str:
    return re.sub(r"([\[\]*?])", r"[\1]", text)
