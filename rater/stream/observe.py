"""What the streaming job tells operators about itself: the metrics it sets as it runs
(consumer lag, event-time lag, time since the last commit, state size) and its liveness
and readiness (:data:`rater.health.HEALTH`).

Consumer lag and broker reachability come from librdkafka's statistics: the consumer is
configured (:func:`consumer_observers`) to hand them, every ``STATS_INTERVAL_MS``, to
:func:`on_stats`, from inside its poll calls. Lag series are labelled by topic and
partition number only, and a partition's series goes when the partition does.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from confluent_kafka import KafkaError

from rater import metrics
from rater.core.state import RatingState
from rater.health import HEALTH, Health

__all__ = [
    "STATS_INTERVAL_MS",
    "batch_committed",
    "consumer_observers",
    "forget_lag",
    "on_error",
    "on_stats",
    "stage",
    "state_held",
]

log = logging.getLogger(__name__)

STATS_INTERVAL_MS = 5_000

_lag_series: set[tuple[str, str]] = set()


def consumer_observers(health: Health = HEALTH) -> dict[str, Any]:
    """Consumer properties that report lag and broker reachability."""
    return {
        "statistics.interval.ms": STATS_INTERVAL_MS,
        "stats_cb": lambda text: on_stats(text, health),
        "error_cb": lambda err: on_error(err, health),
    }


def on_stats(text: str, health: Health = HEALTH) -> None:
    """librdkafka's statistics (JSON): per-partition lag, and whether a broker is up."""
    try:
        stats = json.loads(text)
    except ValueError:
        return
    brokers = stats.get("brokers", {}).values()
    if any(b.get("state") == "UP" for b in brokers):
        health.broker_ok()
    elif brokers:
        health.broker_down("no broker connection is up")
    seen: set[tuple[str, str]] = set()
    for topic, t in stats.get("topics", {}).items():
        for p, part in t.get("partitions", {}).items():
            if int(p) < 0 or part.get("fetch_state") in (None, "none", "stopped"):
                continue
            lag = _lag(part)
            if lag is not None:
                metrics.CONSUMER_LAG.labels(topic, p).set(lag)
                seen.add((topic, p))
    for gone in _lag_series - seen:
        _remove_lag(gone)
    _lag_series.update(seen)


def _lag(part: dict[str, Any]) -> int | None:
    """Messages after this process's position: the stored offset moves as messages are
    consumed (the committed one only with commits outside a transaction)."""
    for key in ("consumer_lag_stored", "consumer_lag"):
        value = part.get(key, -1)
        if isinstance(value, int) and value >= 0:
            return value
    return None


def on_error(err: Any, health: Health = HEALTH) -> None:
    """A client-level error: all brokers down makes the process unready."""
    if err.code() == KafkaError._ALL_BROKERS_DOWN:
        health.broker_down(str(err.str()))
    log.debug("kafka client error: %s", err)  # librdkafka logs it too, as a warning


def forget_lag(topic_partitions: Iterable[tuple[str, int]]) -> None:
    """Drop the lag series of partitions this process no longer owns."""
    for topic, p in topic_partitions:
        _remove_lag((topic, str(p)))


def _remove_lag(series: tuple[str, str]) -> None:
    _lag_series.discard(series)
    with contextlib.suppress(KeyError):  # never set, or already removed
        metrics.CONSUMER_LAG.remove(*series)


def batch_committed(held: RatingState) -> None:
    """After a commit: the newest rating time rated, the commit time and the state's size."""
    metrics.committed_now()
    if held.watermarks:
        metrics.rated_up_to(max(held.watermarks.values()))
    state_held(held)


def state_held(held: RatingState) -> None:
    """The size of the rating state held, by table."""
    metrics.STATE_TENANTS.set(len(held.tenant_ids()))
    metrics.STATE_ROWS.labels("balances").set(held.balances.height)
    metrics.STATE_ROWS.labels("allowances").set(held.allowances.height)
    metrics.STATE_ROWS.labels("dedupe_keys").set(held.seen.height)
    metrics.STATE_ROWS.labels("adjustments").set(held.adjustments.height)


@contextlib.contextmanager
def stage(name: str, totals: Counter[str] | None = None) -> Iterator[None]:
    """Time one step of the commit path into the stage-duration histogram (and add the
    seconds to ``totals[name]``, the run's summary)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - started
        metrics.STAGE_SECONDS.labels(name).observe(elapsed)
        if totals is not None:
            totals[name] += elapsed  # type: ignore[assignment]
