"""Schema ids of the streaming job's messages: from a schema registry, fixed, or none.

Three ways to frame Avro messages, by the settings:

- ``RATER_KAFKA__SCHEMA_REGISTRY_URL`` set: a Confluent-compatible registry, through
  confluent_kafka's client (which caches what it fetched). At start (:func:`prepare`) the
  rater registers its output schemas under ``<topic>-value`` and frames its output with
  the ids returned; a CDR's writer schema is fetched by the id in its header, once per
  id, and decoded as :mod:`rater.wire.writers` says. A registry that cannot be reached is
  a transient error (the batch is retried, never dead-lettered); a registry refusing the
  output schemas (incompatible with the subject's versions) is a configuration error.
- ``RATER_KAFKA__CONFLUENT_FRAMING=true`` without a URL: the fixed ids of
  ``RATER_KAFKA__SCHEMA_IDS``, for ids managed out of band; a CDR with another id is
  dead-lettered as ``unknown_schema_id``.
- neither: plain Avro bodies.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from rater import wire
from rater.errors import ConfigError, TransientError
from rater.settings import Settings

__all__ = [
    "Registry",
    "decode_cdr_values",
    "framing",
    "output_subject",
    "prepare",
    "reader_layout",
    "registry_for",
]

log = logging.getLogger(__name__)

# Output schema -> the topic setting naming its subject (<topic>-value).
_OUTPUTS = {"rated": "rated", "balance_event": "events"}
_MAX_REMEMBERED = 10_000  # ids remembered (garbage headers name random ids)


class Registry:
    """A schema registry client for one URL, with the answers the job needs, cached."""

    def __init__(self, url: str, client: Any = None) -> None:
        if client is None:
            from confluent_kafka.schema_registry import SchemaRegistryClient

            client = SchemaRegistryClient({"url": url})
        self.url = url
        self.client = client
        self.output_ids: dict[str, int] = {}  # subject -> id
        self._writers: dict[int, wire.Writer] = {}
        self._lock = threading.Lock()

    def register_outputs(self, settings: Settings) -> dict[str, int]:
        """Register the output schemas under ``<topic>-value``; their ids, by subject."""
        from confluent_kafka.schema_registry import Schema, SchemaRegistryError

        for name in _OUTPUTS:
            subject = output_subject(settings, name)
            text = wire.raw_schema(name)
            try:
                self.output_ids[subject] = self.client.register_schema(
                    subject, Schema(text, "AVRO")
                )
            except SchemaRegistryError as exc:
                if exc.http_status_code in (409, 422):
                    raise ConfigError(
                        f"schema registry {self.url}",
                        "RATER_KAFKA__SCHEMA_REGISTRY_URL",
                        f"refused schemas/{name}.avsc under {subject} ({_brief(exc.error_message)})",
                        "make the subject's compatibility accept it, or use another topic",
                    ) from None
                raise TransientError(f"schema registry {self.url}: {exc}") from exc
            except Exception as exc:  # connection refused, DNS, timeout: try again later
                raise TransientError(f"schema registry {self.url}: {exc}") from exc
        log.info("schema registry: output schema ids %s", self.output_ids)
        return dict(self.output_ids)

    def writer(self, schema_id: int) -> wire.Writer:
        """How CDRs framed with ``schema_id`` are read (fetched once per id)."""
        with self._lock:
            known = self._writers.get(schema_id)
        if known is not None:
            return known
        from confluent_kafka.schema_registry import SchemaRegistryError

        try:
            schema = self.client.get_schema(schema_id)
            writer = wire.classify_writer(schema.schema_str, schema.schema_type or "AVRO")
        except SchemaRegistryError as exc:
            if exc.http_status_code != 404:
                raise TransientError(f"schema registry {self.url}: {exc}") from exc
            writer = wire.Writer(problem="unknown_schema_id")
        except Exception as exc:
            raise TransientError(f"schema registry {self.url}: {exc}") from exc
        if writer.problem == "incompatible_schema":
            log.warning("CDR schema id %d cannot be read as schemas/cdr.avsc", schema_id)
        with self._lock:
            if len(self._writers) >= _MAX_REMEMBERED:
                self._writers.clear()
            self._writers[schema_id] = writer
        return writer


def _brief(text: object, limit: int = 160) -> str:
    """A registry's error message on one short line (Apicurio's include whole schemas)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def output_subject(settings: Settings, name: str) -> str:
    """The subject of output schema ``name``: ``<its topic>-value``."""
    return f"{getattr(settings.topics, _OUTPUTS[name])}-value"


_registries: dict[str, Registry] = {}
_registries_lock = threading.Lock()


def registry_for(settings: Settings) -> Registry | None:
    """The process's client of the configured registry (None without a URL)."""
    url = settings.kafka.schema_registry_url
    if not url:
        return None
    with _registries_lock:
        if url not in _registries:
            _registries[url] = Registry(url)
        return _registries[url]


def prepare(settings: Settings) -> None:
    """Register the output schemas when a registry is configured (at the job's start)."""
    registry = registry_for(settings)
    if registry is not None:
        registry.register_outputs(settings)


def framing(settings: Settings, name: str) -> tuple[bool, int | None]:
    """(framed, schema id) of messages of schema ``name``: an output's id to frame with, or
    an input's id to accept (None: any id)."""
    registry = registry_for(settings)
    if registry is not None:
        if name in _OUTPUTS:
            subject = output_subject(settings, name)
            if subject not in registry.output_ids:
                registry.register_outputs(settings)
            return True, registry.output_ids[subject]
        return True, None
    if settings.kafka.confluent_framing:
        return True, settings.kafka.schema_ids.get(name)
    return False, None


def decode_cdr_values(settings: Settings, values: Sequence[bytes]) -> wire.DecodeResult:
    """Decode Avro CDR messages (non-empty values) the way the settings frame them."""
    registry = registry_for(settings)
    if registry is not None:
        return wire.decode_cdrs_by_writer(values, registry.writer)
    framed, schema_id = framing(settings, "cdr")
    return wire.decode_cdrs(values, framed=framed, schema_id=schema_id)


def reader_layout(settings: Settings, values: Sequence[bytes]) -> bool:
    """Whether these decoded CDR messages' bodies are laid out as ``schemas/cdr.avsc``
    (the rated record can then start with them); with a registry, ids of other versions
    are not."""
    registry = registry_for(settings)
    if registry is None:
        return True
    ids = {v[1:5] for v in values}
    return all(registry.writer(int.from_bytes(i, "big")).same_as_reader for i in ids)
