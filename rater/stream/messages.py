"""The bodies of the streaming job's messages: CDRs and top-ups in, rated records and
balance events out, in the wire formats (:mod:`rater.wire`) the job's settings choose
(Avro, optionally Confluent-framed, or JSON).

Top-ups are few: each is decoded on its own and every field checked before it is
credited (the table of reasons is in docs/streaming.md).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, TypeGuard

import polars as pl

from rater import wire
from rater.core.columns import CDR_SCHEMA, TOPUP_SCHEMA
from rater.core.money import decimal_to_micros
from rater.core.rating import VALID_FROM_US, VALID_UNTIL_US
from rater.core.tariff import Tariff
from rater.settings import Settings

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

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
    good = [present[i] for i in res.indices]
    frame, good, dated = _representable(res.frame, good)
    failures += dated
    failures.sort()
    return Decoded(frame, good, failures)


# Timestamps a calendar can show: 0001-01-01T00:00Z to 9999-12-31T23:59:59.999999Z. A
# CDR with a time outside it is dead-lettered: its rated record (which repeats the CDR)
# could not be read back by Avro readers that turn timestamps into dates.
_FIRST_DATE_US = -62_135_596_800_000_000
_LAST_DATE_US = 253_402_300_799_999_999
_TIMES = ("start_time", "answer_time", "end_time")


def _representable(
    frame: pl.DataFrame, good: list[int]
) -> tuple[pl.DataFrame, list[int], list[tuple[int, str]]]:
    """Drop the rows with a time no calendar can show, as ``timestamp_out_of_range``."""
    if frame.height == 0:
        return frame, good, []
    ok = frame.select(
        pl.all_horizontal(
            pl.col(c).dt.epoch("us").is_between(_FIRST_DATE_US, _LAST_DATE_US).fill_null(True)
            for c in _TIMES
        )
    ).to_series()
    if ok.all():
        return frame, good, []
    flags = ok.to_list()
    bad = [(i, "timestamp_out_of_range") for i, keep in zip(good, flags, strict=True) if not keep]
    return frame.filter(ok), [i for i, keep in zip(good, flags, strict=True) if keep], bad


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
        except BaseException as exc:  # a Rust panic in a decoder is a BaseException
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            failures.append((i, "topup_decode_error"))
            continue
        reason, row = _topup_row(tariff, rec)
        if reason:
            failures.append((i, reason))
        else:
            rows.append(row)
            good.append(i)
    schema = {**TOPUP_SCHEMA, "time": pl.Int64()}
    frame = pl.DataFrame(rows, schema=schema) if rows else pl.DataFrame(schema=schema)
    return Decoded(frame.cast(TOPUP_SCHEMA), good, failures)  # type: ignore[arg-type]


# A top-up above this (in micros: a billion currency units) is refused as bad_amount:
# nobody pays that in at once, and balances stay far from the limits of Int64.
MAX_TOPUP_MICROS = 10**15
_MAX_ID_CHARS = 256
_SOURCES = ("manual", "auto_recharge")
_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def _topup_row(tariff: Tariff, rec: Any) -> tuple[str | None, dict[str, Any]]:
    """The validated top-up row of a decoded message, or the reason it is dead-lettered.

    Every field is checked before any arithmetic, so no value can raise here or later
    when the batch's frame is built: the amount is a plain positive decimal with at most
    6 decimals and at most MAX_TOPUP_MICROS; the time is within the contract's range.
    """
    if not isinstance(rec, dict):
        return "topup_decode_error", {}
    tenant_id, topup_id = rec.get("tenant_id"), rec.get("topup_id")
    if not isinstance(tenant_id, str) or tenant_id not in tariff.tenants:
        return "unknown_tenant", {}
    if tariff.tenants[tenant_id].billing != "prepaid":
        return "postpaid_tenant", {}
    if not _is_text(topup_id) or not 0 < len(topup_id) <= _MAX_ID_CHARS:
        return "missing_topup_id", {}
    micros = _amount_micros(rec.get("amount"))
    if micros is None:
        return "bad_amount", {}
    time_us = _time_us(rec.get("time"))
    if time_us is None:
        return "bad_time", {}
    source = rec.get("source") or "manual"
    if source not in _SOURCES:
        return "bad_source", {}
    return None, {
        "tenant_id": tenant_id,
        "topup_id": topup_id,
        "amount_micros": micros,
        "source": source,
        "time": time_us,
    }


def _is_text(value: Any) -> TypeGuard[str]:
    """A string that is text: a JSON "\ud800" (a lone surrogate) is not."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _amount_micros(value: Any) -> int | None:
    """Micros of a plain decimal string in (0, MAX_TOPUP_MICROS] with <= 6 decimals."""
    if not isinstance(value, str) or len(value) > 40 or not _DECIMAL.fullmatch(value):
        return None
    try:
        micros = decimal_to_micros(Decimal(value))
    except (InvalidOperation, ValueError):
        return None
    return micros if 0 < micros <= MAX_TOPUP_MICROS else None


def _time_us(value: Any) -> int | None:
    """Microseconds since the epoch of an aware datetime, integer micros or ISO-8601 text
    with an offset, when within [2000-01-01, 2100-01-01); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            return None
        value = (value - _EPOCH) // timedelta(microseconds=1)
    if isinstance(value, int) and VALID_FROM_US <= value < VALID_UNTIL_US:
        return value
    return None


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
