"""Every Prometheus metric of the rater, defined once.

Labels are low-cardinality on purpose: status, reason, currency, event kind, stage and
topic-partition numbers; never a tenant, a user or a phone number.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

__all__ = [
    "BALANCE_EVENTS",
    "BATCHES",
    "BATCH_RECORDS",
    "CHARGED_MICROS",
    "CONSUMED",
    "DEAD_LETTERED",
    "RECORDS",
    "RESTORE_SECONDS",
    "STAGE_SECONDS",
    "STATE_TENANTS",
    "TOPUPS",
    "TRANSACTIONS",
    "serve",
]

CONSUMED = Counter("rater_consumed_records_total", "CDR messages consumed from the input topics.")
RECORDS = Counter(
    "rater_records_total",
    "Consumed CDRs by outcome (rated, unrated, invalid, duplicate, dead_lettered).",
    ["status"],
)
DEAD_LETTERED = Counter(
    "rater_dead_lettered_total", "Messages sent to the dead-letter topic, by reason.", ["reason"]
)
CHARGED_MICROS = Counter(
    "rater_charged_micros_total", "Sum of charges, in micro-units of the currency.", ["currency"]
)
BALANCE_EVENTS = Counter(
    "rater_balance_events_total", "Balance events emitted (low_balance, exhausted).", ["event"]
)
TOPUPS = Counter("rater_topups_total", "Top-ups consumed, by outcome.", ["outcome"])
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


def serve(port: int) -> None:
    """Expose /metrics on ``port`` (0 disables)."""
    if port:
        start_http_server(port)
