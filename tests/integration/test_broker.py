"""The local Kafka harness: start, topic creation, restart with data kept, CLI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]

from rater.cli import main
from rater.devbroker import LocalBroker, read_state
from rater.stream.topics import TopicSpec, ensure_topics

pytestmark = pytest.mark.kafka


def test_broker_answers_metadata(kafka_bootstrap: str) -> None:
    md = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10)
    assert len(md.brokers) == 1


def test_ensure_topics_is_idempotent_and_applies_config(kafka_bootstrap: str) -> None:
    conf: dict[str, str | int | float | bool] = {"bootstrap.servers": kafka_bootstrap}
    specs = [
        TopicSpec("it-state-changelog", partitions=3, config={"cleanup.policy": "compact"}),
        TopicSpec("it-cdrs", partitions=2),
    ]
    ensure_topics(conf, specs)
    ensure_topics(conf, specs)  # second call: nothing to do, no error
    admin = AdminClient(conf)
    md = admin.list_topics(timeout=10)
    assert len(md.topics["it-state-changelog"].partitions) == 3
    assert len(md.topics["it-cdrs"].partitions) == 2
    res = ConfigResource(ConfigResource.Type.TOPIC, "it-state-changelog")
    configs = admin.describe_configs([res])[res].result()
    assert configs["cleanup.policy"].value == "compact"


def test_auto_topic_creation_is_off(kafka_bootstrap: str, kafka_broker: LocalBroker | None) -> None:
    if kafka_broker is None:
        return  # an external broker's settings are not ours to assert
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "message.timeout.ms": 3000})
    errors: list[Any] = []
    producer.produce("never-created", b"x", on_delivery=lambda err, _m: errors.append(err))
    producer.flush(10)
    assert errors and errors[0] is not None


def test_restart_keeps_data(
    kafka_broker: LocalBroker | None,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    consume_topic: Callable[..., list[Any]],
) -> None:
    topic = make_topic(partitions=2)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    for i in range(100):
        producer.produce(topic, key=str(i % 4).encode(), value=f"v{i}".encode())
    assert producer.flush(30) == 0
    if kafka_broker is not None:
        port = kafka_broker.port
        kafka_broker.restart()
        assert kafka_broker.port == port and kafka_broker.bootstrap == kafka_bootstrap
    msgs = consume_topic(topic, 100)
    assert sorted(m.value() for m in msgs) == sorted(f"v{i}".encode() for i in range(100))


def test_cli_start_status_stop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main(["broker", "start", "--dir", str(run), "--port", "0"]) == 0
    bootstrap = capsys.readouterr().out.strip().splitlines()[-1]
    state = read_state(run)
    try:
        assert state is not None and bootstrap == state["bootstrap"]
        assert AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).brokers
        assert main(["broker", "status", "--dir", str(run)]) == 0
        assert "running" in capsys.readouterr().out
    finally:
        assert main(["broker", "stop", "--dir", str(run)]) == 0
    assert main(["broker", "status", "--dir", str(run)]) == 1
    assert "not running" in capsys.readouterr().out
    assert read_state(run) is None
    assert (run / "server.log").is_file()
