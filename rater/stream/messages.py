"""The bodies of the streaming job's messages: CDRs and top-ups in, rated records and
balance events out, in the wire formats (:mod:`rater.wire`) the job's settings choose
(Avro, optionally Confluent-framed, or JSON).

Top-ups are few: each is decoded on its own and every field checked before it is
credited (the table of reasons is in docs/streaming.md).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from rater import wire
from rater.core.columns import ADJUSTMENT_SCHEMA, CDR_SCHEMA
from rater.core.tariff import Tariff
from rater.settings import Settings
from rater.stream import registry
from rater.wire.adjustments import adjustment_row

__all__ = [
    "Decoded",
    "cdr_bodies",
    "decode_adjustments",
    "decode_cdrs",
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
    return registry.framing(settings, name)  # a registry's ids, fixed ids, or no framing


def decode_cdrs(settings: Settings, values: list[bytes | None]) -> Decoded:
    """Decode CDR messages in bulk; what cannot be decoded is reported with its reason."""
    failures: list[tuple[int, str]] = []
    if all(values):  # as they nearly always are: no copies, no renumbering
        present: Sequence[int] = range(len(values))
        bodies: list[bytes] = values  # type: ignore[assignment]
    else:
        present = [i for i, v in enumerate(values) if v]
        failures = [(i, "empty_message") for i, v in enumerate(values) if not v]
        bodies = [values[i] or b"" for i in present]
    if settings.stream.input_format == "json":
        res = wire.decode_cdrs_json(bodies)
    else:
        res = registry.decode_cdr_values(settings, bodies)
    failures += [(present[i], reason) for i, reason in res.errors]
    good = res.indices if isinstance(present, range) else [present[i] for i in res.indices]
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


def decode_adjustments(settings: Settings, tariff: Tariff, msgs: Sequence[Any]) -> Decoded:
    """Top-ups (the top-ups topic) and balance adjustments (the adjustments topic) as one
    ADJUSTMENT_SCHEMA frame. They are few: decoded one by one and checked against the
    tariff (a top-up or a charge only for a prepaid tenant; a refund for any)."""
    rows: list[dict[str, Any]] = []
    good: list[int] = []
    failures: list[tuple[int, str]] = []
    for i, msg in enumerate(msgs):
        topup = msg.topic() == settings.topics.topups
        reason, row = _adjustment(settings, msg.value(), topup)
        if reason is None:
            reason = _fits_tenant(tariff, row)
        if reason is not None:
            failures.append((i, reason))
        else:
            rows.append(row)
            good.append(i)
    schema = {**ADJUSTMENT_SCHEMA, "time": pl.Int64()}
    frame = pl.DataFrame(rows, schema=schema) if rows else pl.DataFrame(schema=schema)
    return Decoded(frame.cast(ADJUSTMENT_SCHEMA), good, failures)  # type: ignore[arg-type]


def _adjustment(
    settings: Settings, value: bytes | None, topup: bool
) -> tuple[str | None, dict[str, Any]]:
    """(None, row) of one message, or the reason it is dead-lettered."""
    if not value:
        return "empty_message", {}
    name = "topup" if topup else "adjustment"
    framed, schema_id = _framing(settings, name)
    try:
        if settings.stream.input_format == "json":
            rec = json.loads(value)
        elif topup:
            rec = wire.decode_topup(value, framed=framed, schema_id=schema_id)
        else:
            rec = wire.decode_adjustment(value, framed=framed, schema_id=schema_id)
    except Exception:  # any undecodable body is dead-lettered, never fatal
        return f"{name}_decode_error", {}
    except BaseException as exc:  # a Rust panic in a decoder is a BaseException
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        return f"{name}_decode_error", {}
    return adjustment_row(rec, topup=topup)


def _fits_tenant(tariff: Tariff, row: dict[str, Any]) -> str | None:
    tenant = tariff.tenants.get(row["tenant_id"])
    if tenant is None:
        return "unknown_tenant"
    if tenant.billing != "prepaid" and row["kind"] != "refund":
        return "postpaid_tenant"
    return None


def cdr_bodies(
    settings: Settings, values: list[bytes | None], good: list[int]
) -> list[bytes] | None:
    """The Avro bodies of the decoded CDRs (None for JSON input): the rated record starts
    with exactly these bytes, so encoding it only has to append the rating fields."""
    if settings.stream.input_format == "json" or not good:
        return None
    framed, _ = _framing(settings, "cdr")
    if len(good) == len(values):  # every one decoded: none is empty
        good_values: list[bytes] = values  # type: ignore[assignment]
    else:
        good_values = [values[i] or b"" for i in good]
    if framed and not registry.reader_layout(settings, good_values):
        return None  # some were written with another version of the schema: encode whole
    return wire.unframe_bodies(good_values, framed)


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
