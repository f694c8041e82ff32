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

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rater.errors import ConfigError
from rater.settings.commands import (
    DevBrokerSettings,
    InvoiceSettings,
    RateFileSettings,
    ReportSettings,
    SimulateSettings,
)
from rater.settings.groups import KafkaSettings, OutputSettings, StreamSettings, TopicSettings

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
