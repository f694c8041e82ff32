"""Logging of the rater: text or JSON lines on stderr, and librdkafka's logs through Python.

Only the CLI calls :func:`configure`; library modules just use ``logging.getLogger``.
Kafka clients get ``{"logger": kafka_logger()}`` in their configuration so that
librdkafka's own messages (``%4|...|GETPID|...`` otherwise printed raw on stderr) become
ordinary records of the ``rater.kafka`` logger, formatted and filtered like the others.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Literal

__all__ = ["KAFKA_LOGGER", "JsonFormatter", "configure", "kafka_logger"]

KAFKA_LOGGER = "rater.kafka"

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Loggers that are chatty at INFO about things an operator does not act on. librdkafka
# reports transient broker conditions (coordinator loading, reconnects) as warnings and
# recovers by itself, so its records are shown from WARNING up unless DEBUG is asked for.
# Loggers that only a developer wants below WARNING: librdkafka's, and WeasyPrint's steps
# of printing each PDF (invoices, reports).
_QUIET_UNLESS_DEBUG = {
    KAFKA_LOGGER: logging.WARNING,
    "weasyprint.progress": logging.WARNING,
    "fontTools": logging.WARNING,
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message[, exc]."""

    def format(self, record: logging.LogRecord) -> str:
        time = dt.datetime.fromtimestamp(record.created, tz=dt.UTC)
        entry = {
            "time": time.isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str, fmt: Literal["text", "json"] = "text") -> None:
    """Log records at ``level`` and above to stderr, as text lines or JSON lines.

    Like :func:`logging.basicConfig`, leaves a root logger that already has handlers
    (pytest's, an embedding application's) alone.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
    threshold = logging.getLevelNamesMapping()[level]
    for name, floor in _QUIET_UNLESS_DEBUG.items():
        quiet = threshold if threshold <= logging.DEBUG else max(threshold, floor)
        logging.getLogger(name).setLevel(quiet)


def kafka_logger() -> logging.Logger:
    """The logger to pass as librdkafka's ``logger`` configuration property."""
    return logging.getLogger(KAFKA_LOGGER)
