"""Avro object-container files: their header, and writing a file of encoded bodies.

The bulk CDR decoder also wraps a poll batch in a container header (with its own schema)
to have Polars read it as one block.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from rater.wire.schemas import raw_schema
from rater.wire.varint import varint

__all__ = ["container_header", "write_avro_file"]


def container_header(schema: bytes, sync: bytes) -> bytes:
    """The header of an uncompressed object-container file of ``schema`` (JSON text),
    ending in the 16 ``sync`` bytes that follow each block."""
    meta = {"avro.schema": schema, "avro.codec": b"null"}
    out = bytearray(b"Obj\x01")
    out += varint(len(meta))
    for k, v in meta.items():
        out += varint(len(k)) + k.encode() + varint(len(v)) + v
    out += varint(0)
    out += sync
    return bytes(out)


def write_avro_file(
    path: Path, name: str, bodies: Sequence[bytes], block_size: int = 10_000
) -> None:
    """An Avro object-container file of schema ``name`` holding ``bodies`` (unframed)."""
    sync = os.urandom(16)
    header = container_header(raw_schema(name).encode(), sync)
    with path.open("wb") as out:
        out.write(header)
        for start in range(0, len(bodies), block_size):
            chunk = bodies[start : start + block_size]
            data = b"".join(chunk)
            out.write(varint(len(chunk)) + varint(len(data)) + data + sync)
