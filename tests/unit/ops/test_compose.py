"""The container stack's wiring, checked without Docker: docker-compose.yml, the Dockerfile,
Prometheus' and Grafana's files agree with each other and with the settings model."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from rater.settings import load_settings
from rater.settings_doc import rows

REPO = Path(__file__).resolve().parents[3]


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return loaded


def _rater_env() -> dict[str, str]:
    env = _compose()["services"]["rater"]["environment"]
    return {k: str(v) for k, v in env.items()}


def _dockerfile_env() -> dict[str, str]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    found: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            found.update(dict(re.findall(r"(\w+)=(\S+)", line)))
    return found


def _container_port(service: dict[str, Any], host_port: str | None = None) -> list[str]:
    return [
        p.split(":")[-1] for p in service.get("ports", []) if host_port in (None, p.split(":")[0])
    ]


def test_every_rater_variable_is_a_setting_and_the_settings_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    known = {row.variable for row in rows()}
    env = {**{k: v for k, v in _dockerfile_env().items() if k.startswith("RATER_")}, **_rater_env()}
    unknown = sorted(k for k in env if k.startswith("RATER_") and k not in known)
    assert not unknown, f"not settings of rater.settings: {unknown}"
    for name in list(os.environ):
        if name.startswith("RATER_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.kafka.schema_registry_url
    assert settings.log_format == "json"


def test_ports_line_up() -> None:
    services = _compose()["services"]
    env = _rater_env()
    metrics_port = env["RATER_METRICS_PORT"]
    assert metrics_port in _container_port(services["rater"])
    assert f"EXPOSE {metrics_port}" in (REPO / "Dockerfile").read_text()
    assert f"127.0.0.1:{metrics_port}/healthz" in (REPO / "Dockerfile").read_text()
    # Prometheus scrapes the rater's service name and metrics port, as job "rater".
    prom = yaml.safe_load((REPO / "config/prometheus/prometheus.yml").read_text())
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "rater")
    assert job["static_configs"][0]["targets"] == [f"rater:{metrics_port}"]
    # The rater reaches Kafka on its internal listener, and the registry on its port.
    host, port = env["RATER_KAFKA__BOOTSTRAP_SERVERS"].split(":")
    listeners = services[host]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert f"//{host}:{port}" in listeners
    registry = urlparse(env["RATER_KAFKA__SCHEMA_REGISTRY_URL"])
    assert registry.hostname in services
    assert str(registry.port) in _container_port(services[str(registry.hostname)])
    assert registry.path == "/apis/ccompat/v6"
    # Grafana's datasource is the Prometheus service.
    ds = yaml.safe_load(
        (REPO / "config/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    url = urlparse(ds["datasources"][0]["url"])
    assert url.hostname == "prometheus"
    assert str(url.port) in _container_port(services["prometheus"])


def test_volumes_line_up() -> None:
    services = _compose()["services"]
    mounts = {
        name: dict(v.split(":")[:2] for v in svc.get("volumes", []))
        for name, svc in services.items()
    }
    for name, volumes in mounts.items():
        for host in volumes:
            if host.startswith("."):
                assert (REPO / host).is_dir(), f"{name} mounts {host}, which does not exist"
    env = {**_dockerfile_env(), **_rater_env()}
    data = next(iter(mounts["rater"].values()))
    assert env["RATER_OUTPUT__DATASET_DIR"].startswith(data + "/")
    assert env["RATER_OUTPUT__DUCKDB_PATH"].startswith(data + "/")
    # The tariff is copied into the image where RATER_TARIFF_DIR points.
    assert "/app/config/" in (REPO / "Dockerfile").read_text()
    assert env["RATER_TARIFF_DIR"] == "/app/config"
    # Prometheus loads its rules from the mounted directory.
    prom_dir = mounts["prometheus"]["./config/prometheus"]
    command = " ".join(services["prometheus"]["command"])
    assert f"--config.file={prom_dir}/prometheus.yml" in command
    prom = yaml.safe_load((REPO / "config/prometheus/prometheus.yml").read_text())
    for pattern in prom["rule_files"]:
        assert list((REPO / "config/prometheus").glob(pattern)), pattern
    # Grafana's dashboard provider reads the mounted dashboards.
    provider = yaml.safe_load(
        (REPO / "config/grafana/provisioning/dashboards/rater.yml").read_text()
    )
    path = provider["providers"][0]["options"]["path"]
    assert mounts["grafana"]["./config/grafana/dashboards"] == path
    assert mounts["grafana"]["./config/grafana/provisioning"] == "/etc/grafana/provisioning"
    dashboard = json.loads((REPO / "config/grafana/dashboards/rater.json").read_text())
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]}
    ds = yaml.safe_load(
        (REPO / "config/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    assert uids == {ds["datasources"][0]["uid"]}


def test_the_image_installs_at_build_time_runs_unprivileged_and_execs_the_rater() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert "pip wheel" in text and "-c constraints.txt" in text
    user = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert user and user[-1] not in ("root", "0")
    entrypoint = re.findall(r"^ENTRYPOINT (.+)$", text, re.MULTILINE)
    assert entrypoint and json.loads(entrypoint[-1]) == ["rater"]  # exec form: no shell
    assert json.loads(re.findall(r"^CMD (.+)$", text, re.MULTILINE)[-1]) == ["run"]
    rater = _compose()["services"]["rater"]
    assert "build" in rater and "command" not in rater and "image" not in rater
    for service in _compose()["services"].values():
        assert "pip install" not in json.dumps(service)
