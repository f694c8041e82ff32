"""Output writers: small sinks with ``write(batch)``, ``flush()`` and ``close()``."""

from sinks.base import Sink, SinkBatch
from sinks.dataset import MonthPartitionedDataset
from sinks.duckdb_catalog import DuckDBCatalog
from sinks.formats import FileFormat, ParquetFormat
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
