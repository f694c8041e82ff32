"""The settings groups of the running rater: Kafka, topics, the streaming job, its outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

__all__ = ["Frozen", "KafkaSettings", "OutputSettings", "StreamSettings", "TopicSettings"]


class Frozen(BaseModel):
    """A settings group: immutable, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(Frozen):
    bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Kafka brokers, `host:port[,host:port...]`."
    )
    security_protocol: str = Field(
        default="PLAINTEXT",
        description="librdkafka `security.protocol`: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.",
    )
    sasl_mechanism: str | None = Field(
        default=None, description="librdkafka `sasl.mechanism`, e.g. PLAIN or SCRAM-SHA-512."
    )
    sasl_username: str | None = Field(default=None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(
        default=None, description="SASL password; a secret, never logged or printed."
    )
    schema_registry_url: str | None = Field(
        default=None,
        description="Confluent-compatible schema registry (e.g. `http://registry:8081`). When "
        "set, Avro messages carry the Confluent framing (magic byte 0 + schema id): CDRs are "
        "decoded with the writer schema their id names (any version compatible with "
        "`schemas/cdr.avsc`), and the rater registers its output schemas under "
        "`<topic>-value` at start and frames its output with the ids the registry returns.",
    )
    confluent_framing: bool = Field(
        default=False,
        description="Without a registry: frame Avro messages with the fixed ids of "
        "`RATER_KAFKA__SCHEMA_IDS` (ids managed out of band). Ignored when "
        "`RATER_KAFKA__SCHEMA_REGISTRY_URL` is set.",
    )
    schema_ids: dict[str, int] = Field(
        default_factory=lambda: {
            "cdr": 1,
            "rated": 2,
            "balance_event": 3,
            "topup": 4,
            "adjustment": 5,
        },
        description="The fixed schema ids of `RATER_KAFKA__CONFLUENT_FRAMING`; a framed CDR "
        "with another id is dead-lettered.",
    )
    extra: dict[str, str] = Field(
        default_factory=dict,
        description='Extra librdkafka properties, e.g. `{"socket.keepalive.enable": "true"}`.',
    )
    partitioner: Literal["murmur2_random", "consistent_random"] = Field(
        default="murmur2_random",
        description="How producers map a tenant_id key to a partition: `murmur2_random` (Java "
        "clients, Kafka Streams) or `consistent_random` (librdkafka's default, CRC32). The "
        "rater dead-letters CDRs and top-ups on another partition as `misrouted`, and its "
        "own producers (the simulator included) use it.",
    )

    def client_config(self) -> dict[str, Any]:
        """librdkafka properties common to producers, consumers and admin clients."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            conf["sasl.username"] = self.sasl_username
        if self.sasl_password is not None:
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        conf.update(self.extra)
        return conf


class TopicSettings(Frozen):
    cdrs: str = Field(default="cdrs", description="CDRs from the switches (input).")
    topups: str = Field(default="topups", description="Credits to prepaid balances (input).")
    adjustments: str = Field(
        default="adjustments",
        description="Balance adjustments: top-ups, refunds and charges (input), e.g. the "
        "prepaid debits of `rater invoice --publish-debits`.",
    )
    rated: str = Field(default="rated-usage", description="One rated record per consumed CDR.")
    events: str = Field(
        default="balance-events", description="Balance events: `low_balance`, `exhausted`."
    )
    dead_letter: str = Field(
        default="cdrs-dlq", description="Undecodable messages and invalid CDRs."
    )
    changelog: str = Field(
        default="rater-state-changelog", description="Rating state (compacted), internal."
    )
    partitions: int = Field(
        default=6, ge=1, description="Partitions of the input topics the rater creates."
    )
    replication_factor: int = Field(
        default=1, ge=1, description="Replication factor of the topics the rater creates."
    )


class StreamSettings(Frozen):
    group_id: str = Field(default="rater", description="Consumer group of `rater run`.")
    instance_id: str = Field(
        default="",
        description="Stable id of this process: names its transactional producer, so a "
        "restarted instance with the same id fences its previous incarnation. "
        "Empty = the host name.",
    )
    transactional_id_prefix: str = Field(
        default="rater",
        description="The producer's `transactional.id` is `<prefix>-<instance id>`.",
    )
    input_format: Literal["avro", "json"] = Field(
        default="avro", description="Encoding of the CDR messages."
    )
    batch_max_records: int = Field(
        default=50_000, ge=1, description="Most messages per batch (one Kafka transaction)."
    )
    batch_max_wait_ms: int = Field(
        default=200, ge=1, description="Longest wait to fill a batch, in milliseconds."
    )
    dedupe_horizon_days: float = Field(
        default=7.0,
        gt=0,
        description="Duplicate CDRs are detected this many days back, in event time.",
    )
    idle_exit_s: float = Field(
        default=0.0,
        ge=0,
        description="Stop once every assigned partition is drained and idle this many "
        "seconds (0 = run forever).",
    )
    snapshot_every_batches: int = Field(
        default=50,
        ge=1,
        description="Write a full state snapshot after this many batches (restore replays "
        "the deltas after it).",
    )


class OutputSettings(Frozen):
    dataset_dir: Path = Field(
        default=Path("out"),
        description="Root of the Parquet datasets: `rated/`, `events/` and `adjustments/` below "
        "it, partitioned by month for cheap per-tenant-month reads.",
    )
    duckdb_path: Path | None = Field(
        default=Path("out/rater.duckdb"),
        description="DuckDB file with views over the datasets, refreshed when the job stops.",
    )
