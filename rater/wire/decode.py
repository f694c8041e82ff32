"""Decoding messages one at a time with fastavro, each record proven exact.

fastavro is lenient where a billing system cannot be, so a record is only returned when
encoding it again gives back the very bytes it came from (:func:`read_exact`). The bulk CDR
decoder falls back on the same check for the messages it cannot decode in bulk.
"""

from __future__ import annotations

import io
import struct
from typing import Any

import fastavro

from rater.wire.encode import encode_one
from rater.wire.framing import unframe
from rater.wire.schemas import parsed

__all__ = [
    "decode_adjustment",
    "decode_balance_event",
    "decode_cdr",
    "decode_rated",
    "decode_topup",
    "read_exact",
]


def decode_cdr(
    value: bytes, *, framed: bool = False, schema_id: int | None = None
) -> dict[str, Any]:
    """One CDR message as a dict; raises ValueError(reason) when it cannot be decoded."""
    return _decode_one("cdr", value, framed, schema_id)


def decode_rated(
    value: bytes, *, framed: bool = False, schema_id: int | None = None
) -> dict[str, Any]:
    return _decode_one("rated", value, framed, schema_id)


def decode_balance_event(
    value: bytes, *, framed: bool = False, schema_id: int | None = None
) -> dict[str, Any]:
    return _decode_one("balance_event", value, framed, schema_id)


def decode_topup(
    value: bytes, *, framed: bool = False, schema_id: int | None = None
) -> dict[str, Any]:
    """A top-up as a dict; ``amount`` stays the exact decimal string of the message."""
    return _decode_one("topup", value, framed, schema_id)


def decode_adjustment(
    value: bytes, *, framed: bool = False, schema_id: int | None = None
) -> dict[str, Any]:
    """A balance adjustment as a dict; ``amount`` stays the exact decimal string."""
    return _decode_one("adjustment", value, framed, schema_id)


def _decode_one(name: str, value: bytes, framed: bool, schema_id: int | None) -> dict[str, Any]:
    body = unframe(value, framed, schema_id)
    if isinstance(body, str):
        raise ValueError(body)
    reason, rec = _read_body(name, body)
    if rec is None:
        raise ValueError(reason)
    return rec


def _read_body(name: str, body: bytes) -> tuple[str, dict[str, Any] | None]:
    """Decode one Avro body with fastavro; timestamps come back as aware datetimes."""
    return read_exact(name, body, parsed(name))


def read_exact(name: str, body: bytes, schema: Any) -> tuple[str, dict[str, Any] | None]:
    """Decode one Avro body with fastavro and prove the record is exactly the body.

    fastavro is lenient where a billing system cannot be: it indexes an enum's symbols or
    a union's branches with a negative index, and reads ints and longs of any size. So a
    record is only trusted when encoding it again (which checks every range) gives back
    the very bytes it came from. Returns (reason, None) for a body that is not one record.
    """
    bio = io.BytesIO(body)
    try:
        rec = fastavro.schemaless_reader(bio, schema, None)
    except (EOFError, struct.error):
        return "truncated_avro", None
    except Exception:  # fastavro raises many types on garbage; all mean the same here
        return "avro_decode_error", None
    if bio.tell() != len(body) or not isinstance(rec, dict):
        return "avro_decode_error", None
    try:
        same = encode_one(name, rec, None) == body
    except (ValueError, TypeError, OverflowError, UnicodeError):
        same = False
    return ("", rec) if same else ("avro_decode_error", None)
