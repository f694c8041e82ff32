"""A month-partitioned file dataset, published exactly once per committed batch.

Layout: ``<root>/month=YYYY-MM/<topic>-<partition>-<first>-<last>.parquet``, one file per
batch, input partition and month, rows sorted by tenant_id so that a tenant's month is
cheap to read (Hive partition pruning on month, row-group statistics on tenant_id). Rows
without a rating time (an invalid record whose times are outside the valid range) go to
``month=undated``.

Why a reader never sees a row twice or a row of an uncommitted batch:

1. **stage**: a batch's files are written in full under ``_staging/<token>/<topic>-<p>/``
   (``token`` names the attempt) while its Kafka transaction is open. Readers only look at
   ``month=*`` directories, so staged files are invisible.
2. **publish**: once the transaction has committed, each staged file is renamed into its
   ``month=`` directory. An aborted attempt's staged files are deleted.
3. **recover**: a crash between commit and publish leaves the committed batch staged. The
   next owner of the partition reads, from the state changelog, the token of the last
   batch that committed there: it publishes that token's files and deletes every other
   staged file of the partition (attempts that never committed, whoever wrote them).

Committed batches never overlap in input offsets, so published files never hold the same
record twice. Each row also carries ``writer_generation`` (the changelog offset at which
its writer took the partition over); the views keep the newest per source offset, a
second line of defence that costs nothing.
"""

from __future__ import annotations

import functools
import logging

import polars as pl

from sinks.base import SinkBatch
from sinks.formats import FileFormat, ParquetFormat
from sinks.storage import LocalDirectory

__all__ = ["STAGING", "UNDATED", "MonthPartitionedDataset"]

log = logging.getLogger(__name__)

STAGING = "_staging"
UNDATED = "undated"


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

    def stage(self, batch: SinkBatch, token: str) -> None:
        """Write the batch's files, invisible to readers until :meth:`publish`."""
        if batch.frame.is_empty():
            return
        frame = batch.frame.with_columns(
            pl.col(self.time_column).dt.strftime("%Y-%m").fill_null(UNDATED).alias("_month"),
            pl.lit(batch.generation, dtype=pl.Int64).alias("writer_generation"),
        )
        name = (
            f"{batch.topic}-{batch.partition}-{batch.first_offset:020d}-{batch.last_offset:020d}"
            f"{self.format.extension}"
        )
        staged = _staged_dir(token, batch.topic, batch.partition)
        for (month,), part in frame.partition_by(
            "_month", as_dict=True, maintain_order=True
        ).items():
            rows = part.drop("_month").sort(list(self.sort_by), maintain_order=True)
            self.storage.put(
                f"{staged}/month={month}/{name}", functools.partial(self.format.dump, rows)
            )

    def publish(self, token: str) -> None:
        """Move every file staged under ``token`` into the dataset (idempotent)."""
        for partition_dir in self.storage.glob(f"{STAGING}/{token}/*"):
            self._publish_dir(partition_dir)
        self.storage.delete_tree(f"{STAGING}/{token}")

    def discard(self, token: str) -> None:
        """Delete what an attempt that did not commit staged."""
        self.storage.delete_tree(f"{STAGING}/{token}")

    def recover(self, topic: str, partition: int, committed: str) -> None:
        """On taking a partition over: publish its files staged by the last committed
        batch (``committed``, its token) and delete every other staged file of it."""
        for staged in self.storage.glob(f"{STAGING}/*/{topic}-{partition}"):
            token = staged.split("/")[1]
            if committed and token == committed:
                log.info(
                    "publishing the files of committed batch %s of %s-%d", token, topic, partition
                )
                self._publish_dir(staged)
            else:
                log.info("removing the staged files of uncommitted batch %s", token)
                self.storage.delete_tree(staged)

    def _publish_dir(self, staged: str) -> None:
        for rel in self.storage.files_under(staged):
            self.storage.move(f"{staged}/{rel}", rel)
        self.storage.delete_tree(staged)


def _staged_dir(token: str, topic: str, partition: int) -> str:
    return f"{STAGING}/{token}/{topic}-{partition}"
