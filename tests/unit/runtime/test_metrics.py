"""Metrics: exact money per currency, and the /metrics endpoint's port handling."""

from __future__ import annotations

import itertools
import logging
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from rater import metrics
from rater.cli import main
from rater.errors import ConfigError

EXAMPLE_CONFIG = Path(__file__).resolve().parents[3] / "config"

_labels = (f"T{n:02d}" for n in itertools.count())  # a fresh currency label per test


def _units(currency: str) -> float | None:
    return REGISTRY.get_sample_value("rater_charged_units_total", {"currency": currency})


def _remainder(currency: str) -> float | None:
    return REGISTRY.get_sample_value("rater_charged_micros_remainder", {"currency": currency})


def test_charges_past_2_pow_53_micros_stay_exact() -> None:
    currency = next(_labels)
    total = 2**53 + 1
    assert float(2**53) + 1 == float(2**53)  # what a float counter of micros would lose
    pieces = [2**52, 999_999, 1, 2**52 - 1_000_001, 1, 1]
    assert sum(pieces) == total
    for micros in pieces:
        metrics.add_charges(currency, micros)
    assert metrics.charged_micros(currency) == total
    assert _units(currency) == total // 1_000_000 == 9_007_199_254
    assert _remainder(currency) == total % 1_000_000 == 740_993


def test_units_count_only_whole_units_crossed() -> None:
    currency = next(_labels)
    metrics.add_charges(currency, 999_999)
    assert (_units(currency), _remainder(currency)) == (0, 999_999)
    metrics.add_charges(currency, 1)
    assert (_units(currency), _remainder(currency)) == (1, 0)
    metrics.add_charges(currency, 2_500_000)
    assert (_units(currency), _remainder(currency)) == (3, 500_000)
    metrics.add_charges(currency, 0)
    assert (_units(currency), _remainder(currency)) == (3, 500_000)


def test_huge_totals_in_many_pieces() -> None:
    currency = next(_labels)
    piece = 3 * 2**50 + 123_457
    for _ in range(1000):
        metrics.add_charges(currency, piece)
    total = 1000 * piece
    assert total > 2**61
    assert metrics.charged_micros(currency) == total
    assert _units(currency) == total // 1_000_000
    assert _remainder(currency) == total % 1_000_000


def test_charges_are_integers_and_never_negative() -> None:
    currency = next(_labels)
    with pytest.raises(TypeError):
        metrics.add_charges(currency, 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="only grow"):
        metrics.add_charges(currency, -1)
    assert metrics.charged_micros(currency) == 0


def test_the_float_counter_of_micros_is_gone() -> None:
    currency = next(_labels)
    metrics.add_charges(currency, 2_000_001)
    assert not hasattr(metrics, "CHARGED_MICROS")
    assert REGISTRY.get_sample_value("rater_charged_micros_total", {"currency": currency}) is None
    assert set(metrics.__all__) <= set(dir(metrics))


def test_port_0_binds_a_free_port_logs_it_and_serves_metrics(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics.add_charges("T-SERVED", 1_500_000)
    with caplog.at_level(logging.INFO, logger="rater.metrics"):
        port = metrics.serve(0)
    assert port is not None and port > 0
    assert f"port {port}" in caplog.text
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        body = response.read().decode()
    assert 'rater_charged_units_total{currency="T-SERVED"} 1.0' in body
    assert 'rater_charged_micros_remainder{currency="T-SERVED"} 500000.0' in body
    assert metrics.serve(0) not in (None, port)  # a second process on the host: another port


def test_disabled_serves_nothing() -> None:
    assert metrics.serve(0, enabled=False) is None
    assert metrics.serve(9108, enabled=False) is None


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        yield s.getsockname()[1]


def test_a_busy_port_is_a_config_error_naming_the_fix(busy_port: int) -> None:
    with pytest.raises(ConfigError) as info:
        metrics.serve(busy_port)
    message = str(info.value)
    assert "RATER_METRICS_PORT" in message and f"port {busy_port} is already in use" in message
    assert "choose another port, or 0 for any free port" in message


def _no_job(*args: object, **kwargs: object) -> None:
    raise AssertionError("the job must not start when the metrics port is busy")


def test_rater_run_on_a_busy_port_exits_2_with_one_line(
    busy_port: int, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("rater.cli.run.load_tariff", lambda directory: None)
    monkeypatch.setattr("rater.cli.run.RaterJob", _no_job)
    rc = main(["run", "--config", str(EXAMPLE_CONFIG), "--metrics-port", str(busy_port)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("rater: error: ") and "RATER_METRICS_PORT" in err
