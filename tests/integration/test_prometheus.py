"""A real Prometheus scraping a running `rater run`: the rated counter advances, and every
expression of the dashboard and of the alert rules finds the rater's series. The same run
checks /healthz and /readyz, and that the rater's JSON logs name no number or CDR id."""

from __future__ import annotations

import json
import re
import signal
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from rater.devbroker import free_port
from rater.simulate import generate_cdrs
from tests.integration.promkit import REPO, LocalPrometheus
from tests.integration.streamkit import (
    EXAMPLE_CONFIG,
    StreamEnv,
    cdr_items,
    create_topics,
    publish,
    start_rater,
)

pytestmark = pytest.mark.kafka

DASHBOARD = REPO / "config" / "grafana" / "dashboards" / "rater.json"
RULES = REPO / "config" / "prometheus" / "rules" / "rater-alerts.yml"


def _wait_for(what: str, check: Callable[[], Any], timeout_s: float = 90.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after a
    generous deadline (a bound on a hang, not a measurement)."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"{what}: not seen within {timeout_s:.0f}s"
        time.sleep(0.5)


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        t["expr"].replace("$__rate_interval", "15s")
        for p in dashboard["panels"]
        for t in p["targets"]
    ]


def _alert_exprs() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [r["expr"] for g in groups for r in g["rules"]]


def _selectors(expr: str) -> set[str]:
    return {m.group(0) for m in re.finditer(r"\b(rater_[a-z_]+|up)\b(\{[^}]*\})?", expr)}


@pytest.fixture
def rater_and_prometheus(
    kafka_bootstrap: str, tmp_path: Path
) -> Iterator[tuple[StreamEnv, LocalPrometheus, int, Path, pl.DataFrame]]:
    env = StreamEnv(kafka_bootstrap, f"p{uuid.uuid4().hex[:8]}", tmp_path / "out")
    create_topics(env)
    port = free_port()
    log = tmp_path / "rater.log"
    proc = start_rater(env, "a", log, RATER_METRICS_PORT=str(port), RATER_LOG_FORMAT="json")
    prometheus = LocalPrometheus(tmp_path / "prometheus", [f"127.0.0.1:{port}"]).start()
    frame = generate_cdrs(EXAMPLE_CONFIG, count=4000, seed=17)
    try:
        yield env, prometheus, port, log, frame
    finally:
        prometheus.stop()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]


def test_prometheus_scrapes_the_rater_and_every_panel_and_alert_finds_its_series(
    rater_and_prometheus: tuple[StreamEnv, LocalPrometheus, int, Path, pl.DataFrame],
) -> None:
    env, prometheus, port, log, frame = rater_and_prometheus
    items = cdr_items(frame)
    garbage = [(items[0][0], b"\x00garbage that no Avro reader takes \xff\xff")] * 3
    publish(env.bootstrap, env.topic("cdrs"), items[:2000] + garbage)

    def rated() -> float:
        series = prometheus.query('sum(rater_records_total{job="rater", status="rated"})')
        return float(series[0]["value"][1]) if series else 0.0

    first = _wait_for("rated records in Prometheus", rated)
    publish(env.bootstrap, env.topic("cdrs"), items[2000:])
    _wait_for("the rated counter advancing", lambda: rated() > first)

    base = f"http://127.0.0.1:{port}"
    assert _wait_for("/readyz 200", lambda: _status(f"{base}/readyz") == 200)
    assert _status(f"{base}/healthz") == 200

    exprs = _dashboard_exprs()
    selectors = sorted(set().union(*(_selectors(e) for e in _alert_exprs())))
    assert selectors and 'up{job="rater"}' in selectors

    def missing() -> list[str]:
        return [e for e in [*exprs, *selectors] if not prometheus.query(e)]

    last: list[list[str]] = []

    def none_missing() -> bool:
        last[:] = [missing()]
        return not last[0]

    try:
        _wait_for("a series for every dashboard expression and alert selector", none_missing)
    except AssertionError:
        pytest.fail(f"no series for: {last[0]}")
    for expr in _alert_exprs():  # whole expressions are valid PromQL (empty: not firing)
        prometheus.query(expr)
    rules = prometheus.api("rules")["groups"][0]["rules"]
    assert len(rules) == 7 and {r["health"] for r in rules} == {"ok"}, rules
    firing = {a["labels"]["alertname"] for a in prometheus.api("alerts")["alerts"]}
    assert "RaterDown" not in firing and "RaterAbsent" not in firing

    # JSON log lines, none naming a number or a CDR id of the traffic.
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert lines and all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    text = log.read_text()
    personal = set(frame["caller"]) | set(frame["callee"]) | set(frame["cdr_id"])
    assert not [p for p in personal if p in text]
