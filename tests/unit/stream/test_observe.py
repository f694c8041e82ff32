"""Consumer lag and broker reachability from librdkafka's statistics."""

from __future__ import annotations

import json

from prometheus_client import REGISTRY

from rater.health import Health
from rater.stream import observe


def _stats(lag: dict[int, int], broker_state: str = "UP") -> str:
    partitions = {
        str(p): {"fetch_state": "active", "consumer_lag": 999, "consumer_lag_stored": n}
        for p, n in lag.items()
    }
    partitions["-1"] = {"fetch_state": "none", "consumer_lag": -1}
    partitions["7"] = {"fetch_state": "none", "consumer_lag": -1}  # not assigned here
    return json.dumps(
        {
            "brokers": {"127.0.0.1:9092/1": {"state": broker_state, "nodeid": 1}},
            "topics": {"obs-cdrs": {"partitions": partitions}},
        }
    )


def _lag(p: int) -> float | None:
    return REGISTRY.get_sample_value(
        "rater_consumer_lag", {"topic": "obs-cdrs", "partition": str(p)}
    )


def test_lag_per_assigned_partition_and_series_that_go_with_their_partition() -> None:
    health = Health()
    observe.on_stats(_stats({0: 5, 1: 0}), health)
    assert (_lag(0), _lag(1), _lag(7)) == (5.0, 0.0, None)
    assert "broker" not in health.ready().detail
    observe.on_stats(_stats({1: 3}), health)  # partition 0 moved to another member
    assert (_lag(0), _lag(1)) == (None, 3.0)
    observe.forget_lag([("obs-cdrs", 1)])
    assert _lag(1) is None


def test_no_broker_up_makes_the_process_unready() -> None:
    health = Health()
    health.assigning([0])
    health.restored()
    observe.on_stats(_stats({0: 1}), health)
    assert health.ready().ok
    observe.on_stats(_stats({0: 1}, broker_state="DOWN"), health)
    assert not health.ready().ok and "broker unreachable" in health.ready().detail
    observe.on_stats("not json", health)  # ignored
    observe.on_stats(_stats({0: 1}), health)
    assert health.ready().ok
