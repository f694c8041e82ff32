"""Shared fixtures: a Kafka broker for the tests marked ``kafka`` and a small tariff dir.

The broker is, in order of preference: the one named by KAFKA_BOOTSTRAP_SERVERS, a
testcontainers Kafka when RATER_TEST_DOCKER=1, or a LocalBroker started for the session.

Property tests explore new random examples on every run (and replay the failures they
found, from .hypothesis/); ``HYPOTHESIS_PROFILE=ci`` (set by .ci/run) derandomizes them,
so that a CI verdict depends on the change and not on the draw.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from rater.devbroker import LocalBroker
from rater.stream.topics import TopicSpec, ensure_topics

settings.register_profile("ci", derandomize=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

MakeTopic = Callable[..., str]


@pytest.fixture(scope="session")
def kafka_broker(request: pytest.FixtureRequest) -> Iterator[LocalBroker | None]:
    """The session's LocalBroker (None when an external or container broker is used)."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or os.environ.get("RATER_TEST_DOCKER") == "1":
        yield None
        return
    broker = LocalBroker(heap="512m")
    broker.start()
    try:
        yield broker
    finally:
        # Keep the broker's data and logs when a test failed.
        failed = request.session.testsfailed > 0
        broker.stop(keep_data=failed)
        if failed:
            print(f"\nKafka broker data and logs kept in {broker.data_dir}")


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: LocalBroker | None) -> Iterator[str]:
    """bootstrap.servers of a running Kafka broker."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
    elif kafka_broker is not None:
        yield kafka_broker.bootstrap
    else:
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer() as container:
            yield container.get_bootstrap_server()


@pytest.fixture
def make_topic(kafka_bootstrap: str) -> MakeTopic:
    """Create a uniquely named topic and wait until it is ready; returns its name."""

    def make(partitions: int = 1, config: dict[str, str] | None = None, prefix: str = "t") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        ensure_topics(
            {"bootstrap.servers": kafka_bootstrap},
            [TopicSpec(name, partitions=partitions, config=config or {})],
        )
        return name

    return make


TINY_RATES = """\
plan_id,kind,direction,prefix,band,effective_from,effective_to,connect_fee,price,first_increment,increment,min_charge
basic,call,outbound,33,any,2020-01-01T00:00:00+00:00,,0,0.05,60,60,
basic,call,outbound,336,any,2020-01-01T00:00:00+00:00,,0,0.12,60,60,
basic,call,outbound,44,any,2020-01-01T00:00:00+00:00,,0.01,0.08,30,6,
basic,call,inbound,,any,2020-01-01T00:00:00+00:00,,0,0,1,1,
basic,sms,outbound,33,any,2020-01-01T00:00:00+00:00,,,0.07,,,
basic,sms,inbound,,any,2020-01-01T00:00:00+00:00,,,0,,,
basic,ring_through,outbound,,any,2020-01-01T00:00:00+00:00,,,0.001,,,
basic,ring_through,inbound,,any,2020-01-01T00:00:00+00:00,,,0,,,
"""

TINY_TENANTS = """\
tenant_id,plan_id,billing,opening_balance,low_balance_threshold,recharge_amount,auto_recharge
acme,basic,prepaid,100,10,50,true
globex,basic,postpaid,,,,false
initech,basic,prepaid,5,1,0,false
"""

TINY_PLANS = """\
plans:
  - id: basic
    currency: EUR
    timezone: Europe/Paris
"""


@pytest.fixture
def tiny_tariff_dir(tmp_path: Path) -> Path:
    """A three-tenant, one-plan tariff directory (plans.yaml, rates.csv, tenants.csv)."""
    d = tmp_path / "tariff"
    d.mkdir()
    (d / "plans.yaml").write_text(TINY_PLANS)
    (d / "rates.csv").write_text(TINY_RATES)
    (d / "tenants.csv").write_text(TINY_TENANTS)
    return d


@pytest.fixture
def consume_topic(kafka_bootstrap: str) -> Callable[..., list[Any]]:
    """``consume(topic, expected, timeout_s=60)``: messages read from the start of ``topic``."""
    return lambda topic, expected, timeout_s=60.0: _consume(
        kafka_bootstrap, topic, expected, timeout_s
    )


def _consume(bootstrap: str, topic: str, expected: int, timeout_s: float) -> list[Any]:
    """Read ``expected`` messages from the start of ``topic`` (fewer if the timeout passes)."""
    import time

    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    out: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(out) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=10_000, timeout=0.5):
                if msg.error() is None:
                    out.append(msg)
    finally:
        consumer.close()
    return out


@pytest.fixture(scope="session")
def schema_registry_url() -> Iterator[str]:
    """A real Confluent-compatible schema registry (Apicurio, in memory) for the session:
    the one named by SCHEMA_REGISTRY_URL, else one started from its jar (built by Maven on
    first use, rater.devbroker.registry)."""
    external = os.environ.get("SCHEMA_REGISTRY_URL")
    if external:
        yield external
        return
    from rater.devbroker.registry import LocalRegistry

    with LocalRegistry() as registry:
        yield registry.url
