"""Batch rating: CDR files in, the contract's Parquet outputs out, with the same core as
the streaming job (``rater rate-file``).

- :mod:`~rater.batch.cdr_files`: reading .csv, .parquet and .avro CDR files (with
  :mod:`~rater.batch.avro_cdrs` and :mod:`~rater.batch.coerce`), never a traceback;
- :mod:`~rater.batch.rate_file`: rating a file in slices and writing its outputs.

May import :mod:`rater.core`, :mod:`rater.tariff_files`, :mod:`rater.wire` and the
standard library; never Kafka.
"""

from rater.batch.cdr_files import check_input_file, iter_cdr_batches, read_cdrs
from rater.batch.rate_file import DEFAULT_BATCH_SIZE, OUTPUT_FILES, BatchSummary, rate_file

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "OUTPUT_FILES",
    "BatchSummary",
    "check_input_file",
    "iter_cdr_batches",
    "rate_file",
    "read_cdrs",
]
