"""The rater against a real schema registry (Apicurio's Confluent-compatible API) and a
real broker: writer schemas looked up by id, a newer compatible CDR version rated, output
registered and framed with the registry's ids."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path
from typing import Any

import fastavro
import polars as pl
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from rater import wire
from rater.core.columns import CDR_SCHEMA
from rater.errors import ConfigError
from rater.simulate import generate_cdrs
from rater.stream.job import RaterJob
from rater.tariff_files import load_tariff
from tests.integration.streamkit import (
    EXAMPLE_CONFIG,
    StreamEnv,
    cdr_items,
    create_topics,
    publish,
    read_topic,
)

pytestmark = pytest.mark.kafka


def _v2_text() -> str:
    """The next version of the CDR schema, as a switch upgraded first would register it."""
    raw = json.loads(wire.raw_schema("cdr"))
    raw["fields"].insert(4, {"name": "trunk_group", "type": ["null", "string"], "default": None})
    raw["fields"].append({"name": "codec", "type": "string", "default": "g711"})
    return json.dumps(raw)


def _v2_value(record: dict[str, Any], schema_id: int, i: int) -> bytes:
    out = io.BytesIO()
    schema = fastavro.parse_schema(json.loads(_v2_text()))
    fastavro.schemaless_writer(
        out, schema, {**record, "trunk_group": f"tg{i % 3}", "codec": "opus"}
    )
    return wire.frame_message(out.getvalue(), schema_id)


def test_writer_schemas_come_from_the_registry_and_output_ids_too(
    kafka_bootstrap: str, schema_registry_url: str, tmp_path: Path
) -> None:
    env = StreamEnv(kafka_bootstrap, f"r{uuid.uuid4().hex[:8]}", tmp_path / "out")
    create_topics(env)
    client = SchemaRegistryClient({"url": schema_registry_url})
    subject = f"{env.topic('cdrs')}-value"
    v1 = client.register_schema(subject, Schema(wire.raw_schema("cdr"), "AVRO"))
    v2 = client.register_schema(subject, Schema(_v2_text(), "AVRO"))
    other = client.register_schema(
        f"{env.name}-other-value",
        Schema(
            json.dumps(
                {"type": "record", "name": "Other", "fields": [{"name": "x", "type": "long"}]}
            ),
            "AVRO",
        ),
    )
    assert len({v1, v2, other}) == 3

    frame = generate_cdrs(EXAMPLE_CONFIG, count=600, seed=3)
    rows = frame.select(list(CDR_SCHEMA)).to_dicts()
    plain = cdr_items(frame)
    items = []
    for i, (key, body) in enumerate(plain):
        if i % 2:
            items.append((key, _v2_value(rows[i], v2, i)))  # a producer already on v2
        else:
            items.append((key, wire.frame_message(body, v1)))
    unknown = max(v1, v2, other) + 1000
    bad = [
        (plain[0][0], wire.frame_message(plain[0][1], unknown)),  # an id the registry never gave
        (plain[1][0], wire.frame_message(plain[1][1], other)),  # a schema that is no CDR
    ]
    publish(kafka_bootstrap, env.topic("cdrs"), items[:300] + bad + items[300:])
    settings = env.settings(
        RATER_STREAM__IDLE_EXIT_S="3", RATER_KAFKA__SCHEMA_REGISTRY_URL=schema_registry_url
    )
    summary = RaterJob(settings, load_tariff(EXAMPLE_CONFIG), "a").run(handle_signals=False)

    c = summary.counts
    assert c["consumed"] == 602 and c["dead_lettered"] == 2
    assert c["rated"] + c["unrated"] + c["duplicate"] + c["invalid"] == 600
    dlq = read_topic(kafka_bootstrap, env.topic("dlq"))
    reasons = sorted(
        dict(m.headers())["rater.reason"].decode() for m in dlq if m.value() in {v for _, v in bad}
    )
    assert reasons == ["incompatible_schema", "unknown_schema_id"]

    # The output's schemas were registered under <topic>-value; its frames carry their ids.
    rated_id = client.get_latest_version(f"{env.topic('rated')}-value").schema_id
    events_subject = f"{env.topic('events')}-value"
    assert events_subject in client.get_subjects()
    rated = read_topic(kafka_bootstrap, env.topic("rated"))
    assert len(rated) == 600
    assert {m.value()[:5] for m in rated} == {wire.frame_message(b"", rated_id)}
    writer = fastavro.parse_schema(json.loads(client.get_schema(rated_id).schema_str))
    records = [fastavro.schemaless_reader(io.BytesIO(m.value()[5:]), writer, None) for m in rated]
    got = pl.DataFrame([{"cdr_id": r["cdr_id"], "caller": r["caller"]} for r in records])
    want = frame.select("cdr_id", "caller")
    assert got.sort("cdr_id").equals(want.sort("cdr_id"))  # v1 and v2 CDRs alike, every field read


def test_a_registry_refusing_the_output_schema_stops_the_rater_with_one_line(
    kafka_bootstrap: str, schema_registry_url: str, tmp_path: Path
) -> None:
    env = StreamEnv(kafka_bootstrap, f"r{uuid.uuid4().hex[:8]}", tmp_path / "out")
    create_topics(env)
    client = SchemaRegistryClient({"url": schema_registry_url})
    subject = f"{env.topic('rated')}-value"
    older = {
        "type": "record",
        "name": "RatedUsage",
        "namespace": "rater",
        "fields": [{"name": "a", "type": "long"}],
    }
    client.register_schema(subject, Schema(json.dumps(older), "AVRO"))
    client.set_compatibility(subject_name=subject, level="BACKWARD")
    settings = env.settings(RATER_KAFKA__SCHEMA_REGISTRY_URL=schema_registry_url)
    with pytest.raises(ConfigError) as info:
        RaterJob(settings, load_tariff(EXAMPLE_CONFIG), "a").run(handle_signals=False)
    line = str(info.value)
    assert "\n" not in line and subject in line and "RATER_KAFKA__SCHEMA_REGISTRY_URL" in line
