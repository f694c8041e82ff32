"""Message bodies of the streaming job: bulk CDR decoding, top-ups, rated and event encoding."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import polars as pl

from rater import wire
from rater.core.columns import CDR_SCHEMA, TOPUP_SCHEMA
from rater.core.money import decimal_to_micros
from rater.core.tariff import Tariff
from rater.settings import Settings

__all__ = [
    "Decoded",
    "cdr_bodies",
    "decode_cdrs",
    "decode_topups",
    "empty_cdr_frame",
    "encode_events",
    "encode_rated",
]


@dataclass(frozen=True)
class Decoded:
    frame: pl.DataFrame
    good: list[int]  # message index of each frame row
    failures: list[tuple[int, str]]  # (message index, reason)


def empty_cdr_frame() -> pl.DataFrame:
    return pl.DataFrame(schema=CDR_SCHEMA).with_columns(
        pl.lit(None, dtype=pl.String).alias("source_topic"),
        pl.lit(None, dtype=pl.Int32).alias("source_partition"),
        pl.lit(None, dtype=pl.Int64).alias("source_offset"),
    )


def _framing(settings: Settings, name: str) -> tuple[bool, int | None]:
    if settings.kafka.schema_registry_url is None:
        return False, None
    return True, settings.kafka.schema_ids.get(name)


def decode_cdrs(settings: Settings, values: list[bytes | None]) -> Decoded:
    """Decode CDR messages in bulk; what cannot be decoded is reported with its reason."""
    present = [i for i, v in enumerate(values) if v]
    failures = [(i, "empty_message") for i, v in enumerate(values) if not v]
    bodies = [values[i] or b"" for i in present]
    if settings.stream.input_format == "json":
        res = wire.decode_cdrs_json(bodies)
    else:
        framed, schema_id = _framing(settings, "cdr")
        res = wire.decode_cdrs(bodies, framed=framed, schema_id=schema_id)
    failures += [(present[i], reason) for i, reason in res.errors]
    failures.sort()
    return Decoded(res.frame, [present[i] for i in res.indices], failures)


def decode_topups(settings: Settings, tariff: Tariff, values: list[bytes | None]) -> Decoded:
    """Top-ups are few: decoded one by one and checked against the tariff."""
    rows: list[dict[str, Any]] = []
    good: list[int] = []
    failures: list[tuple[int, str]] = []
    framed, schema_id = _framing(settings, "topup")
    for i, value in enumerate(values):
        if not value:
            failures.append((i, "empty_message"))
            continue
        try:
            if settings.stream.input_format == "json":
                rec = json.loads(value)
            else:
                rec = wire.decode_topup(value, framed=framed, schema_id=schema_id)
        except Exception:  # any undecodable body is dead-lettered, never fatal
            failures.append((i, "topup_decode_error"))
            continue
        reason, row = _topup_row(tariff, rec)
        if reason:
            failures.append((i, reason))
        else:
            rows.append(row)
            good.append(i)
    frame = pl.DataFrame(rows, schema=TOPUP_SCHEMA) if rows else pl.DataFrame(schema=TOPUP_SCHEMA)
    return Decoded(frame, good, failures)


def _topup_row(tariff: Tariff, rec: Any) -> tuple[str | None, dict[str, Any]]:
    if not isinstance(rec, dict):
        return "topup_decode_error", {}
    tenant = tariff.tenants.get(str(rec.get("tenant_id")))
    if tenant is None:
        return "unknown_tenant", {}
    if tenant.billing != "prepaid":
        return "postpaid_tenant", {}
    try:
        amount = Decimal(str(rec.get("amount")))
        micros = decimal_to_micros(amount)
    except (InvalidOperation, ValueError, ArithmeticError):
        return "bad_amount", {}
    if micros <= 0 or not rec.get("topup_id"):
        return "bad_amount" if micros <= 0 else "missing_topup_id", {}
    source = str(rec.get("source") or "manual")
    return None, {
        "tenant_id": tenant.tenant_id,
        "topup_id": str(rec["topup_id"]),
        "amount_micros": micros,
        "source": source,
        "time": _as_time(rec.get("time")),
    }


def _as_time(value: Any) -> Any:
    if isinstance(value, int):
        return pl.Series([value]).cast(pl.Datetime("us", "UTC")).item()
    return value


def cdr_bodies(
    settings: Settings, values: list[bytes | None], good: list[int]
) -> list[bytes] | None:
    """The Avro bodies of the decoded CDRs (None for JSON input): the rated record starts
    with exactly these bytes, so encoding it only has to append the rating fields."""
    if settings.stream.input_format == "json" or not good:
        return None
    framed, _ = _framing(settings, "cdr")
    return wire.unframe_bodies([values[i] or b"" for i in good], framed)


def encode_rated(
    settings: Settings, rated: pl.DataFrame, bodies: list[bytes] | None = None
) -> list[bytes]:
    _, schema_id = _framing(settings, "rated")
    return wire.encode_rated(rated, schema_id, cdr_bodies=bodies)


def encode_events(settings: Settings, events: pl.DataFrame) -> list[bytes]:
    _, schema_id = _framing(settings, "balance_event")
    return [
        wire.encode_balance_event({**row, "time": row["rating_time"]}, schema_id)
        for row in events.iter_rows(named=True)
    ]
