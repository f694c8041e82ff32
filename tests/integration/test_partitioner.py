"""The rater's partitioners agree with librdkafka's, on a real broker: a producer keyed by
tenant_id puts each tenant exactly where the rater looks for it."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer

from rater.stream.partitioner import PARTITIONERS, partition_for
from tests.conftest import MakeTopic

pytestmark = pytest.mark.kafka

KEYS = [
    b"acme",
    b"globex",
    b"tinyco",
    b"a",
    b"",
    b"tenant-\xc3\xa9",
    *(f"t{i}".encode() for i in range(200)),
]


@pytest.mark.parametrize("partitioner", PARTITIONERS)
def test_librdkafka_puts_each_key_where_the_rater_expects_it(
    kafka_bootstrap: str, make_topic: MakeTopic, partitioner: str
) -> None:
    topic = make_topic(partitions=7)
    # consistent_random places an empty key at random (no tenant has an empty id).
    keys = [k for k in KEYS if k or partitioner == "murmur2_random"]
    placed: dict[bytes, int] = {}

    def delivered(err: object, msg: object) -> None:
        assert err is None, err
        placed[msg.key()] = msg.partition()  # type: ignore[attr-defined]

    producer = Producer({"bootstrap.servers": kafka_bootstrap, "partitioner": partitioner})
    for key in keys:
        producer.produce(topic, value=b"x", key=key, on_delivery=delivered)
    assert producer.flush(30) == 0
    expected = {key: partition_for(key, 7, partitioner) for key in keys}  # type: ignore[arg-type]
    assert placed == expected
