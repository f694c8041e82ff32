"""rater: a high-throughput usage-rating stream processor for telephony CDRs.

Packages, from the bottom layer up (docs/architecture.md draws them):

- :mod:`rater.core`: the pure rating core (rules, tariff tables, state): Polars only;
- :mod:`rater.tariff_files` and :mod:`rater.wire`: reading tariff files; message and
  file formats (Avro, JSON, Confluent framing);
- :mod:`rater.stream`, :mod:`rater.batch`, :mod:`rater.simulate`,
  :mod:`rater.devbroker`: the streaming job, ``rate-file``, the switch simulator, the
  local Kafka broker for development;
- :mod:`rater.demo` and :mod:`rater.cli`: the whole product in one command, and the
  command line;
- beside them, used by all: :mod:`rater.settings` (the one settings root),
  :mod:`rater.errors`, :mod:`rater.metrics`, :mod:`rater.logs`, :mod:`rater.signals`.

The top-level package :mod:`sinks` holds where outputs land (the Parquet dataset and its
DuckDB views). ``make lint`` checks that imports point one way.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
