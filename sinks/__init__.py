"""Where rated records and events land besides Kafka: a month-partitioned Parquet dataset
published exactly once per committed batch, and DuckDB views over it.

A sink stages a batch's rows while its transaction is open, publishes them once it has
committed, discards them when it aborted, and recovers a crashed owner's staged files
(:class:`~sinks.base.Sink`). May import Polars, DuckDB and the standard library only:
never the rater itself.
"""

from sinks.base import Sink, SinkBatch
from sinks.duckdb_catalog import DuckDBCatalog
from sinks.formats import FileFormat, ParquetFormat
from sinks.parquet_dataset import MonthPartitionedDataset
from sinks.storage import LocalDirectory, atomic_write

__all__ = [
    "DuckDBCatalog",
    "FileFormat",
    "LocalDirectory",
    "MonthPartitionedDataset",
    "ParquetFormat",
    "Sink",
    "SinkBatch",
    "atomic_write",
]
