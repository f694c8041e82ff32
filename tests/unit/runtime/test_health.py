"""/healthz and /readyz: what the job reports, what the endpoints answer."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from rater import metrics
from rater.endpoints import start_endpoints
from rater.health import HEALTH, Health, Verdict


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_live_until_the_loop_stalls_longer_than_the_stall_time() -> None:
    clock = Clock()
    health = Health(clock, stall_s=60)
    assert health.live().ok
    clock.now += 59
    assert health.live().ok
    clock.now += 2
    verdict = health.live()
    assert not verdict.ok and "61s" in verdict.detail
    health.turned()
    assert health.live().ok


def test_ready_only_when_assigned_restored_and_connected() -> None:
    health = Health(Clock())
    assert health.ready() == Verdict(False, "broker unreachable: not connected yet")
    health.broker_ok()
    assert not health.ready().ok and "assignment" in health.ready().detail
    health.assigning([0, 2])
    assert not health.ready().ok and "restoring the state of 2 partitions" in health.ready().detail
    health.restored()
    assert health.ready().ok and "2 partitions" in health.ready().detail
    health.broker_down("all brokers are down")
    assert not health.ready().ok and "all brokers are down" in health.ready().detail
    health.broker_ok()
    health.unassigned()  # a rebalance
    assert not health.ready().ok
    health.assigning([])  # more members than partitions: nothing to restore, still a member
    health.restored()
    assert health.ready().ok
    health.stopping()
    assert health.ready() == Verdict(False, "stopping")
    assert health.live().ok  # still finishing its batch


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def served() -> Iterator[tuple[str, Health]]:
    clock = Clock()
    health = Health(clock, stall_s=30)
    server = start_endpoints(0, health)
    yield f"http://127.0.0.1:{server.server_port}", health
    server.shutdown()


def test_endpoints_answer_200_or_503_with_the_reason(served: tuple[str, Health]) -> None:
    base, health = served
    assert _get(f"{base}/healthz")[0] == 200
    status, body = _get(f"{base}/readyz")
    assert status == 503 and "broker unreachable" in body
    health.broker_ok()
    health.assigning([1])
    health.restored()
    assert _get(f"{base}/readyz") == (200, "ok: 1 partitions assigned and restored\n")
    health._clock.now += 31  # type: ignore[attr-defined]
    status, body = _get(f"{base}/healthz")
    assert status == 503 and body.startswith("stalled")
    assert _get(f"{base}/nowhere")[0] == 404
    request = urllib.request.Request(f"{base}/readyz", method="HEAD")
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 200 and resp.read() == b""


def test_metrics_serve_puts_health_next_to_metrics() -> None:
    port = metrics.serve(0)
    status, body = _get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200 and "rater_seconds_since_last_commit" in body
    assert 'rater_transactions_total{outcome="aborted"} 0.0' in body  # every outcome from the start
    HEALTH.turned()
    assert _get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    assert _get(f"http://127.0.0.1:{port}/readyz")[0] in (200, 503)
