"""The one configuration root: every setting, from defaults, environment and flags.

Environment variables use the ``RATER_`` prefix and ``__`` for nesting, e.g.
``RATER_KAFKA__BOOTSTRAP_SERVERS=broker:9092`` or ``RATER_STREAM__BATCH_MAX_RECORDS=100000``.
CLI flags are applied on top, as keyword arguments to :func:`load_settings`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from rater.errors import ConfigError

__all__ = [
    "KafkaSettings",
    "OutputSettings",
    "Settings",
    "StreamSettings",
    "TopicSettings",
    "load_settings",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Frozen):
    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    # When set, Avro messages carry the Confluent framing (magic byte 0 + schema id).
    schema_registry_url: str | None = None
    # Schema ids used in that framing; a framed CDR with another id is dead-lettered.
    schema_ids: dict[str, int] = Field(
        default_factory=lambda: {"cdr": 1, "rated": 2, "balance_event": 3, "topup": 4}
    )
    # Extra librdkafka properties, e.g. {"socket.keepalive.enable": "true"}.
    extra: dict[str, str] = Field(default_factory=dict)

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


class TopicSettings(_Frozen):
    cdrs: str = "cdrs"
    topups: str = "topups"
    rated: str = "rated-usage"
    events: str = "balance-events"
    dead_letter: str = "cdrs-dlq"
    changelog: str = "rater-state-changelog"
    partitions: int = Field(default=6, ge=1)
    replication_factor: int = Field(default=1, ge=1)


class StreamSettings(_Frozen):
    group_id: str = "rater"
    # Names this process's transactional producer; a restarted instance with the same id
    # fences its previous incarnation. Empty = the host name.
    instance_id: str = ""
    transactional_id_prefix: str = "rater"
    input_format: Literal["avro", "json"] = "avro"
    batch_max_records: int = Field(default=50_000, ge=1)
    batch_max_wait_ms: int = Field(default=500, ge=1)
    dedupe_horizon_days: float = Field(default=7.0, gt=0)
    # Stop once every assigned partition is drained and idle this long (0 = run forever).
    idle_exit_s: float = Field(default=0.0, ge=0)
    # Write a full state snapshot after this many batches (restore replays deltas after it).
    snapshot_every_batches: int = Field(default=50, ge=1)


class OutputSettings(_Frozen):
    # Parquet dataset of rated records, partitioned for cheap per-tenant-month reads.
    dataset_dir: Path = Path("out")  # rated/ and events/ datasets go below it
    duckdb_path: Path | None = Path("out/rater.duckdb")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RATER_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
    )

    tariff_dir: Path = Path("config")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    metrics_port: int = Field(default=9108, ge=0, le=65535)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    stream: StreamSettings = Field(default_factory=StreamSettings)
    output: OutputSettings = Field(default_factory=OutputSettings)


def load_settings(**overrides: Any) -> Settings:
    """Build settings from defaults < environment < ``overrides`` (CLI flags).

    A bad value raises :class:`ConfigError` naming the setting and its variable.
    """
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = "__".join(str(p) for p in err["loc"]).upper()
        raise ConfigError(
            "environment/flags",
            f"RATER_{loc}",
            err["msg"],
            f"set RATER_{loc} (or its flag) to a valid value",
        ) from None
