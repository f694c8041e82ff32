"""The one configuration root: every setting, from defaults, environment and flags.

Environment variables use the ``RATER_`` prefix and ``__`` for nesting, e.g.
``RATER_KAFKA__BOOTSTRAP_SERVERS=broker:9092`` or ``RATER_STREAM__BATCH_MAX_RECORDS=100000``.
CLI flags are applied on top, as keyword arguments to :func:`load_settings`.

Each field's ``description`` is its documentation: ``python -m rater.settings_doc`` renders
the table of docs/configuration.md from them (a unit test fails when the two differ).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rater.errors import ConfigError

__all__ = [
    "DevBrokerSettings",
    "InvoiceSettings",
    "KafkaSettings",
    "OutputSettings",
    "RateFileSettings",
    "ReportSettings",
    "Settings",
    "SimulateSettings",
    "StreamSettings",
    "TopicSettings",
    "load_settings",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Frozen):
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


class TopicSettings(_Frozen):
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


class StreamSettings(_Frozen):
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
        default=500, ge=1, description="Longest wait to fill a batch, in milliseconds."
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


class OutputSettings(_Frozen):
    dataset_dir: Path = Field(
        default=Path("out"),
        description="Root of the Parquet datasets: `rated/`, `events/` and `adjustments/` below "
        "it, partitioned by month for cheap per-tenant-month reads.",
    )
    duckdb_path: Path | None = Field(
        default=Path("out/rater.duckdb"),
        description="DuckDB file with views over the datasets, refreshed when the job stops.",
    )


class RateFileSettings(_Frozen):
    input: Path | None = Field(default=None, description="`rater rate-file --input`: the CDR file.")
    output: Path | None = Field(
        default=None, description="`rater rate-file --output`: the output directory."
    )
    batch_size: int = Field(
        default=100_000,
        ge=1,
        description="`rater rate-file --batch-size`: records rated per slice (the output "
        "does not depend on it).",
    )


class InvoiceSettings(_Frozen):
    rated: Path | None = Field(
        default=None,
        description="`rater invoice --rated`: a rate-file output directory, the streaming "
        "job's dataset directory or a rated .parquet file.",
    )
    output: Path | None = Field(
        default=None, description="`rater invoice --output`: the output directory."
    )
    period: str | None = Field(
        default=None,
        pattern=r"^20[0-9]{2}-(0[1-9]|1[0-2])$",
        description="`rater invoice --period`: the month invoiced, YYYY-MM.",
    )
    adjustments: Path | None = Field(
        default=None,
        description="`rater invoice --adjustments`: balance adjustments (.csv or .parquet) "
        "whose refunds become credits; empty = those recorded with the rated records.",
    )
    documents: Literal["all", "html", "none"] = Field(
        default="all",
        description="`--documents`: the HTML and PDF of each invoice (`all`), the HTML only, "
        "or `none` (the Parquet and CSV files only).",
    )
    pdf_workers: int = Field(
        default=0,
        ge=0,
        le=64,
        description="Processes rendering PDFs in parallel; 0 = one per CPU.",
    )
    issuer_name: str = Field(
        default="", max_length=200, description="Who issues the invoices (document header)."
    )
    issuer_address: str = Field(
        default="", max_length=500, description="The issuer's address; lines split on `;`."
    )
    issuer_tax_id: str = Field(default="", max_length=60, description="The issuer's tax id.")
    issuer_email: str = Field(default="", max_length=200, description="The issuer's email.")
    payment_terms_days: int = Field(
        default=30,
        ge=0,
        le=365,
        description="Days from the issue date (the day after the period) to the due date.",
    )


class ReportSettings(_Frozen):
    detail_rows: int = Field(
        default=1000,
        ge=0,
        le=1_000_000,
        description="`rater report`: most records (or account lines) listed on an HTML or PDF "
        "page; totals count them all, and the CSV and Parquet exports list them all.",
    )
    mask_callee: bool = Field(
        default=False, description="`rater report --mask-callee`: mask the numbers called."
    )
    issuer_name: str = Field(
        default="", max_length=200, description="Who issues the reports (page header)."
    )


class SimulateSettings(_Frozen):
    count: int = Field(default=10_000, ge=0, description="`rater simulate --count`: CDRs.")
    rate: float = Field(
        default=0.0, ge=0, description="`--rate`: records per second, 0 = as fast as possible."
    )
    seed: int = Field(default=1, description="`--seed`: the same seed gives the same records.")
    bad_fraction: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="`--bad-fraction`: share of broken records (half undecodable messages, "
        "half invalid fields; in a file, all invalid fields).",
    )
    duplicate_fraction: float = Field(
        default=0.0, ge=0, le=1, description="`--duplicate-fraction`: share of resent CDRs."
    )
    schema_id: int | None = Field(
        default=None,
        description="`--schema-id`: frame messages with this schema id (registered "
        "automatically when a schema registry is set).",
    )
    output: Path | None = Field(
        default=None, description="`--output`: write a .csv, .parquet or .avro file instead."
    )


class DevBrokerSettings(_Frozen):
    home: Path | None = Field(
        default=None,
        description="Where the development broker's jars are cached (empty = "
        "`.cache/kafka` in the repository, else `~/.cache/rater/kafka`).",
    )
    dir: Path | None = Field(
        default=None,
        description="`rater broker --dir`: data and state directory (empty = `<home>/run`).",
    )
    port: int = Field(
        default=9092,
        ge=0,
        le=65535,
        description="`rater broker start --port`: listener port (taken or 0 = a free one).",
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RATER_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
    )

    tariff_dir: Path = Field(
        default=Path("config"),
        description="Tariff directory: plans.yaml, rates.csv, tenants.csv (`--config`).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Logging level, any case (`--log-level`)."
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="Log records on stderr: `text` lines, or `json`: one JSON object per "
        "line with time, level, logger and message.",
    )
    metrics_enabled: bool = Field(
        default=True,
        description="Serve Prometheus metrics from `rater run`; `false` = no endpoint.",
    )
    metrics_port: int = Field(
        default=9108,
        ge=0,
        le=65535,
        description="Port of the Prometheus `/metrics` endpoint, and of the `/healthz` and "
        "`/readyz` probes; 0 = any free port (the port chosen is logged).",
    )
    health_stall_s: float = Field(
        default=300.0,
        gt=0,
        description="`/healthz` fails (503) when the job's loop has not turned for this many "
        "seconds (a call stuck in a Kafka client; the commit path's own bounded calls take "
        "up to 90 s, a restore up to 120 s).",
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    stream: StreamSettings = Field(default_factory=StreamSettings)
    output: OutputSettings = Field(default_factory=OutputSettings)
    rate_file: RateFileSettings = Field(default_factory=RateFileSettings)
    invoice: InvoiceSettings = Field(default_factory=InvoiceSettings)
    report: ReportSettings = Field(default_factory=ReportSettings)
    simulate: SimulateSettings = Field(default_factory=SimulateSettings)
    broker: DevBrokerSettings = Field(default_factory=DevBrokerSettings)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value  # debug = DEBUG

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value  # JSON = json


def load_settings(**overrides: Any) -> Settings:
    """Build settings from defaults < environment < ``overrides`` (CLI flags).

    A bad value raises :class:`ConfigError` naming the setting and its variable.
    """
    clean = {k: v for k, v in overrides.items() if v is not None}
    for group, values in _legacy_environment().items():
        clean[group] = {**values, **clean.get(group, {})}
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


# Names these commands read before they had their place in the settings root; still
# understood (the nested name, e.g. RATER_RATE_FILE__INPUT, wins when both are set).
_LEGACY_NAMES = {
    "RATER_RATE_FILE_INPUT": ("rate_file", "input"),
    "RATER_RATE_FILE_OUTPUT": ("rate_file", "output"),
    "RATER_RATE_FILE_BATCH_SIZE": ("rate_file", "batch_size"),
    **{
        f"RATER_SIMULATE_{name.upper()}": ("simulate", name)
        for name in SimulateSettings.model_fields
    },
    "RATER_BROKER_HOME": ("broker", "home"),
    "RATER_BROKER_DIR": ("broker", "dir"),
    "RATER_BROKER_PORT": ("broker", "port"),
}


def _legacy_environment() -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for name, (group, field) in _LEGACY_NAMES.items():
        value = os.environ.get(name)
        nested = f"RATER_{group.upper()}__{field.upper()}"
        if value not in (None, "") and nested not in os.environ:
            found.setdefault(group, {})[field] = value  # type: ignore[assignment]
    return found
