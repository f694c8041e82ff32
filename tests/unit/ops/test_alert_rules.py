"""The alert rules: valid (promtool check), each alert unit-tested on synthetic series
(promtool test), documented in docs/operations.md, and the dashboard's and the rules'
metrics are all metrics the rater defines."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from rater import metrics

REPO = Path(__file__).resolve().parents[3]
PROM = REPO / "config" / "prometheus"
RULES = PROM / "rules" / "rater-alerts.yml"
TESTS = PROM / "tests" / "rater-alerts.test.yml"
DASHBOARD = REPO / "config" / "grafana" / "dashboards" / "rater.json"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is not installed: run `make setup` (Debian package prometheus)")
    return found


def _run(*cmd: str) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def test_promtool_checks_the_rules_and_the_config(promtool: str) -> None:
    assert "SUCCESS: 7 rules found" in _run(promtool, "check", "rules", str(RULES))
    _run(promtool, "check", "config", str(PROM / "prometheus.yml"))


def test_promtool_unit_tests_of_every_alert_pass(promtool: str) -> None:
    assert "SUCCESS" in _run(promtool, "test", "rules", str(TESTS))


def _alerts() -> list[dict[str, str]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for g in groups for rule in g["rules"] if "alert" in rule]


def test_every_alert_is_tested_firing_and_has_a_runbook() -> None:
    tests = yaml.safe_load(TESTS.read_text())["tests"]
    fired = {
        case["alertname"]
        for t in tests
        for case in t.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    anchors = {
        "#" + re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
        for h in re.findall(r"^#+ (.+)$", (REPO / "docs/operations.md").read_text(), re.MULTILINE)
    }
    for alert in _alerts():
        assert alert["alert"] in fired, f"{alert['alert']} has no test where it fires"
        runbook = alert["annotations"]["runbook"]
        assert runbook.startswith("docs/operations.md#") and runbook[18:] in anchors, runbook


def _metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b(rater_[a-z_]+)", expr))


def test_rules_and_dashboard_use_only_the_raters_metrics() -> None:
    exposed: set[str] = set()
    for name in metrics.__all__:
        metric = getattr(metrics, name)
        if isinstance(metric, MetricWrapperBase):
            base, kind = metric._name, metric._type
            suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
            exposed |= {base + s for s in suffixes.get(kind, [""])}
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [a["expr"] for a in _alerts()]
    used = set().union(*(_metric_names(e) for e in exprs))
    assert used and used <= exposed, sorted(used - exposed)
