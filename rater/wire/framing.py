"""The Confluent framing of messages: magic byte 0 and a 4-byte big-endian schema id.

A framed message is that 5-byte header followed by the Avro body; an unframed message is
the body alone.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

__all__ = [
    "MAGIC_BYTE",
    "confluent_header",
    "frame_message",
    "unframe",
    "unframe_bodies",
    "uniform_header",
]

MAGIC_BYTE = 0
_HEADER = struct.Struct(">bI")


def frame_message(body: bytes, schema_id: int | None) -> bytes:
    """Prefix ``body`` with the Confluent header when a schema id is given."""
    if schema_id is None:
        return body
    return _HEADER.pack(MAGIC_BYTE, schema_id) + body


def confluent_header(schema_id: int | None) -> bytes:
    """The header :func:`frame_message` puts before each body (none without a schema id)."""
    return b"" if schema_id is None else _HEADER.pack(MAGIC_BYTE, schema_id)


def unframe(value: bytes, framed: bool, schema_id: int | None) -> bytes | str:
    """The Avro body of ``value``, or the reason it has none."""
    if not framed:
        return value
    if len(value) < 5:
        return "bad_magic_byte" if value[:1] != b"\x00" else "truncated_avro"
    if value[0] != MAGIC_BYTE:
        return "bad_magic_byte"
    if schema_id is not None and int.from_bytes(value[1:5], "big") != schema_id:
        return "unknown_schema_id"
    return value[5:]


def unframe_bodies(values: Sequence[bytes], framed: bool) -> list[bytes]:
    """The Avro bodies of messages that decoded: ``value[5:]`` when framed, else ``value``."""
    if not framed:
        return list(values)
    return [v[5:] for v in values]


def uniform_header(values: Sequence[bytes], schema_id: int | None) -> bool:
    """True when every message carries the same valid header (the common case, checked fast)."""
    heads = {v[:5] for v in values}
    if len(heads) != 1:
        return not heads
    head = next(iter(heads))
    if len(head) != 5 or head[0] != MAGIC_BYTE:
        return False
    return schema_id is None or int.from_bytes(head[1:], "big") == schema_id
