"""Every Prometheus metric of the rater, defined once, and where /metrics is served.

Labels are low-cardinality on purpose: status, reason, currency, event kind, stage and
topic-partition numbers; never a tenant, a user or a phone number.

Money is exact: :func:`add_charges` keeps a Python-int running total of micro-units per
currency and exposes it as whole currency units (a counter) plus the micros beyond them
(a gauge, 0..999999), so no value ever goes through a float that could round it.
"""

from __future__ import annotations

import errno
import logging
import operator
import threading
import time

from prometheus_client import Counter, Gauge, Histogram

from rater.endpoints import start_endpoints
from rater.errors import ConfigError

__all__ = [
    "ADJUSTMENTS",
    "BALANCE_EVENTS",
    "BATCHES",
    "BATCH_RECORDS",
    "CHARGED_MICROS_REMAINDER",
    "CHARGED_UNITS",
    "CONSUMED",
    "CONSUMER_LAG",
    "DEAD_LETTERED",
    "EVENT_TIME_LAG",
    "RECORDS",
    "RESTORE_SECONDS",
    "SINCE_COMMIT",
    "STAGE_SECONDS",
    "STATE_ROWS",
    "STATE_TENANTS",
    "TRANSACTIONS",
    "add_charges",
    "charged_micros",
    "committed_now",
    "rated_up_to",
    "serve",
]

log = logging.getLogger(__name__)

MICROS_PER_UNIT = 1_000_000

CONSUMED = Counter("rater_consumed_records_total", "CDR messages consumed from the input topics.")
RECORDS = Counter(
    "rater_records_total",
    "Consumed CDRs by outcome (rated, unrated, invalid, duplicate, dead_lettered).",
    ["status"],
)
DEAD_LETTERED = Counter(
    "rater_dead_lettered_total", "Messages sent to the dead-letter topic, by reason.", ["reason"]
)
CHARGED_UNITS = Counter(
    "rater_charged_units_total",
    "Whole currency units charged: floor(exact sum of charges in micro-units / 1e6). "
    "The exact sum is this * 1e6 + rater_charged_micros_remainder.",
    ["currency"],
)
CHARGED_MICROS_REMAINDER = Gauge(
    "rater_charged_micros_remainder",
    "Micro-units charged beyond rater_charged_units_total (0..999999).",
    ["currency"],
)
BALANCE_EVENTS = Counter(
    "rater_balance_events_total", "Balance events emitted (low_balance, exhausted).", ["event"]
)
ADJUSTMENTS = Counter(
    "rater_adjustments_total",
    "Balance adjustments (top-ups, refunds, charges) consumed, by outcome "
    "(applied, duplicate, ignored).",
    ["outcome"],
)
BATCHES = Counter("rater_batches_total", "Batches processed, by outcome.", ["outcome"])
TRANSACTIONS = Counter(
    "rater_transactions_total", "Kafka transactions, by outcome (committed, aborted).", ["outcome"]
)
BATCH_RECORDS = Histogram(
    "rater_batch_records",
    "Messages per batch.",
    buckets=(1, 10, 100, 1_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000),
)
STAGE_SECONDS = Histogram(
    "rater_stage_seconds",
    "Time spent per batch in each step of the commit path.",
    ["stage"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RESTORE_SECONDS = Histogram(
    "rater_state_restore_seconds",
    "Time to restore a partition's rating state from the changelog.",
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60),
)
STATE_TENANTS = Gauge("rater_state_tenants", "Tenants with rating state held by this process.")
STATE_ROWS = Gauge(
    "rater_state_rows",
    "Rows of the rating state held by this process, by table (balances, allowances, "
    "dedupe_keys, adjustments): what a restore replays and memory grows with.",
    ["table"],
)
CONSUMER_LAG = Gauge(
    "rater_consumer_lag",
    "Messages between this process's position and the end of each assigned input "
    "partition (librdkafka statistics, every few seconds).",
    ["topic", "partition"],
)
EVENT_TIME_LAG = Gauge(
    "rater_event_time_lag_seconds",
    "Now minus the newest rating time this process has committed (NaN before the first).",
)
SINCE_COMMIT = Gauge(
    "rater_seconds_since_last_commit",
    "Seconds since this process last committed a batch (since it started, before the first).",
)

# Every value of these labels exists from the start, so that rates and alerts over them
# see a 0 rather than no series at all.
for _status in ("rated", "unrated", "invalid", "duplicate", "dead_lettered"):
    RECORDS.labels(_status)
for _outcome in ("committed", "aborted"):
    TRANSACTIONS.labels(_outcome)
    BATCHES.labels(_outcome)
for _event in ("low_balance", "exhausted"):
    BALANCE_EVENTS.labels(_event)
for _stage in ("rate", "produce", "send_offsets", "sinks", "commit", "publish"):
    STAGE_SECONDS.labels(_stage)

_newest_rating_s = float("nan")  # epoch seconds of the newest rating time committed
_last_commit = time.monotonic()


def rated_up_to(epoch_us: int) -> None:
    """A committed batch rated records up to this rating time (micros since the epoch)."""
    global _newest_rating_s
    seconds = epoch_us / 1_000_000
    if not seconds <= _newest_rating_s:  # NaN compares False: the first one is taken
        _newest_rating_s = seconds


def committed_now() -> None:
    """A batch has just committed."""
    global _last_commit
    _last_commit = time.monotonic()


EVENT_TIME_LAG.set_function(lambda: time.time() - _newest_rating_s)
SINCE_COMMIT.set_function(lambda: time.monotonic() - _last_commit)


_charged: dict[str, int] = {}  # exact running totals, micro-units per currency
_charged_lock = threading.Lock()


def add_charges(currency: str, micros: int) -> None:
    """Add ``micros`` (an exact integer, >= 0) to the charges of ``currency``."""
    micros = operator.index(micros)  # an int, or a TypeError: never a float
    if micros < 0:
        raise ValueError(f"charges only grow: got {micros} micros for {currency}")
    with _charged_lock:
        before = _charged.get(currency, 0)
        after = before + micros
        _charged[currency] = after
        units = after // MICROS_PER_UNIT - before // MICROS_PER_UNIT  # whole units crossed
        CHARGED_UNITS.labels(currency).inc(units)
        CHARGED_MICROS_REMAINDER.labels(currency).set(after % MICROS_PER_UNIT)


def charged_micros(currency: str) -> int:
    """The exact sum of the charges added for ``currency``, in micro-units."""
    with _charged_lock:
        return _charged.get(currency, 0)


def serve(port: int, enabled: bool = True) -> int | None:
    """Serve ``/metrics``, ``/healthz`` and ``/readyz`` (:mod:`rater.endpoints`) on ``port``
    (0 = any free port); the port bound, or None if off.

    A port that cannot be bound (already in use, or privileged) is a :class:`ConfigError`
    naming RATER_METRICS_PORT, so the CLI prints one line and exits 2.
    """
    if not enabled:
        log.info("metrics: off (RATER_METRICS_ENABLED=false)")
        return None
    try:
        server = start_endpoints(port)
    except OSError as exc:
        raise _bind_error(port, exc) from None
    bound: int = server.server_port
    log.info("metrics: serving /metrics, /healthz and /readyz on port %d", bound)
    return bound


def _bind_error(port: int, exc: OSError) -> ConfigError:
    problem = (
        f"port {port} is already in use"
        if exc.errno == errno.EADDRINUSE
        else f"cannot listen on port {port} ({exc.strerror or exc})"
    )
    return ConfigError(
        "environment/flags",
        "RATER_METRICS_PORT",
        problem,
        "choose another port, or 0 for any free port "
        "(or RATER_METRICS_ENABLED=false to switch metrics off)",
    )
