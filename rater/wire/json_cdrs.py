"""Decoding JSON CDR messages: one object each, with the Avro field names.

Each object is checked against the CDR schema (types, Avro int and long ranges, enum
symbols, required fields, text without lone surrogates); a missing ``hold_ms`` or
``segments`` takes its default.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from rater.wire.decode_bulk import DecodeResult, rows_frame
from rater.wire.encode import to_micros
from rater.wire.schemas import ENUM, INT, INT32_RANGE, INT64_RANGE, STRING, TS, record_fields

__all__ = ["decode_cdrs_json"]

_JSON_REQUIRED = ("cdr_id", "tenant_id", "kind", "direction", "caller", "callee")


def decode_cdrs_json(values: Iterable[bytes]) -> DecodeResult:
    """Decode JSON CDR messages (one object each, the Avro field names; timestamps as
    ISO-8601 strings with offset or integer micros since the epoch).

    Reasons: ``json_decode_error`` (not JSON), ``invalid_json_record`` (wrong fields/types).
    """
    rows: list[dict[str, Any]] = []
    indices: list[int] = []
    errors: list[tuple[int, str]] = []
    for i, v in enumerate(values):
        try:
            obj = json.loads(v)
        except (ValueError, UnicodeDecodeError, RecursionError):
            errors.append((i, "json_decode_error"))
            continue
        try:
            rows.append(_json_row(obj))
        except (ValueError, TypeError, OverflowError, RecursionError, UnicodeError):
            errors.append((i, "invalid_json_record"))
            continue
        indices.append(i)
    return DecodeResult(frame=rows_frame(rows), indices=indices, errors=errors)


def _json_row(obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ValueError("not an object")
    fields = {f.name: f for f in record_fields("cdr")}
    row: dict[str, Any] = {}
    for name, f in fields.items():
        v = obj.get(name)
        if f.kind == TS:
            row[name] = _json_time(v)
        elif f.kind in (STRING, ENUM):
            if v is not None and not isinstance(v, str):
                raise ValueError(f"{name} is not a string")
            if v is not None:
                v.encode("utf-8")  # a lone surrogate ("\ud800") is not text
            if f.kind == ENUM and v not in f.symbols:
                raise ValueError(f"{name} {v!r} unknown")
            row[name] = v
        else:
            if v is None:
                v = 0 if name == "hold_ms" else 1
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"{name} is not an integer")
            low, high = INT32_RANGE if f.kind == INT else INT64_RANGE
            if not low <= v <= high:
                raise ValueError(f"{name} out of range")
            row[name] = v
    missing = [n for n in (*_JSON_REQUIRED, "start_time", "end_time") if row[n] is None]
    if missing:
        raise ValueError(f"missing {missing}")
    return row


def _json_time(v: Any) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool):
        raise ValueError("boolean timestamp")
    if isinstance(v, int):
        if not INT64_RANGE[0] <= v <= INT64_RANGE[1]:
            raise ValueError("timestamp out of range")
        return v
    if isinstance(v, str):
        dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
        if dt.tzinfo is None:
            raise ValueError("timestamp without offset")
        return to_micros(dt)
    raise ValueError(f"bad timestamp {v!r}")
