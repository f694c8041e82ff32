"""Logging: level and format from the settings root, JSON lines, librdkafka's logger."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator

import pytest

from rater import cli, logs
from rater.cli import main


@contextlib.contextmanager
def bare_root() -> Iterator[logging.Logger]:
    """The root logger without pytest's handlers (as in the CLI), restored afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level, logs.kafka_logger().level
    root.handlers.clear()
    try:
        yield root
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logs.kafka_logger().setLevel(saved[2])


def test_json_format_writes_one_object_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    with bare_root():
        logs.configure("INFO", "json")
        logging.getLogger("rater.test").info("rated %d records", 3)
        logging.getLogger("rater.test").debug("not shown")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert set(entry) == {"time", "level", "logger", "message"}
    assert (entry["level"], entry["logger"], entry["message"]) == (
        "INFO",
        "rater.test",
        "rated 3 records",
    )
    assert entry["time"].endswith("+00:00")


def test_json_format_carries_the_exception() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed", (), exc_info=sys.exc_info()
        )
    entry = json.loads(logs.JsonFormatter().format(record))
    assert entry["message"] == "failed" and "RuntimeError: boom" in entry["exc"]


def test_text_format_is_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    with bare_root():
        logs.configure("WARNING")
        logging.getLogger("rater.test").warning("careful")
    assert capsys.readouterr().err.rstrip().endswith(" WARNING rater.test: careful")


@pytest.mark.parametrize(
    ("level", "kafka_level"),
    [("DEBUG", logging.DEBUG), ("INFO", logging.WARNING), ("ERROR", logging.ERROR)],
)
def test_librdkafka_records_are_quiet_unless_debugging(level: str, kafka_level: int) -> None:
    with bare_root():
        logs.configure(level)
        assert logs.kafka_logger() is logging.getLogger("rater.kafka")
        assert logs.kafka_logger().getEffectiveLevel() == kafka_level


def test_log_settings_come_from_the_settings_root(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, str]] = []
    monkeypatch.setattr(logs, "configure", lambda level, fmt: seen.append((level, fmt)))
    monkeypatch.setenv("RATER_LOG_LEVEL", "debug")
    monkeypatch.setenv("RATER_LOG_FORMAT", "json")
    cli._configure_logging(None)
    cli._configure_logging("ERROR")  # --log-level wins over the environment
    assert seen == [("DEBUG", "json"), ("ERROR", "json")]


@pytest.mark.parametrize(
    ("variable", "value"), [("RATER_LOG_LEVEL", "LOUD"), ("RATER_LOG_FORMAT", "xml")]
)
def test_a_bad_log_setting_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
) -> None:
    monkeypatch.setenv(variable, value)
    rc = main(["demo", "--output", "never-used"])  # stops before the command runs
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("rater: error: ") and variable in err
