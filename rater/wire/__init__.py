"""Avro and JSON wire codec for CDRs, rated records, balance events and top-ups.

Messages are Avro binary bodies, optionally with the Confluent framing (magic byte 0 and a
4-byte big-endian schema id). CDRs arrive in bulk, so :func:`decode_cdrs` decodes a whole
poll batch at once, an order of magnitude faster than message by message, and trusts a bulk
decode only when every row is proven to be exactly its own message; anything else is
decoded message by message, naming the broken messages. Frames of CDRs and rated records
are encoded column-wise by Polars (:func:`encode_cdrs`, :func:`encode_rated`).

Modules, each importing only those listed before it:

- :mod:`~rater.wire.quiet`: silencing native code's stderr (Polars' panic messages).
- :mod:`~rater.wire.schemas`: the ``*.avsc`` files and the flat field description
  (:class:`~rater.wire.schemas.Field`) that drives the codec.
- :mod:`~rater.wire.framing`: the Confluent header.
- :mod:`~rater.wire.varint`: zigzag varints, one at a time and vectorized.
- :mod:`~rater.wire.encode`: records one at a time (which also proves decodes exact).
- :mod:`~rater.wire.encode_bulk`: whole frames, vectorized.
- :mod:`~rater.wire.decode`: messages one at a time with fastavro, proven exact.
- :mod:`~rater.wire.avro_files`: object-container headers and files.
- :mod:`~rater.wire.decode_bulk`: a poll batch of CDRs in one Polars read.
- :mod:`~rater.wire.json_cdrs`: JSON CDR messages.
- :mod:`~rater.wire.writers`: CDRs written with other versions of the CDR schema (a registry's
  writer schemas).

The package depends on the standard library, fastavro, Polars and
:mod:`rater.core.columns` only: no Kafka, no settings. Code outside it imports the names
re-exported here (``from rater import wire``); the modules' other names are its own.
"""

from __future__ import annotations

from rater.wire.avro_files import write_avro_file
from rater.wire.decode import (
    decode_adjustment,
    decode_balance_event,
    decode_cdr,
    decode_rated,
    decode_topup,
)
from rater.wire.decode_bulk import DecodeResult, decode_cdrs
from rater.wire.encode import (
    encode_adjustment,
    encode_balance_event,
    encode_cdr,
    encode_rated_record,
    encode_topup,
)
from rater.wire.encode_bulk import encode_cdrs, encode_rated
from rater.wire.framing import MAGIC_BYTE, frame_message, unframe_bodies
from rater.wire.json_cdrs import decode_cdrs_json
from rater.wire.quiet import native_stderr_silenced
from rater.wire.schemas import load_schema, raw_schema, schema_dir
from rater.wire.writers import Writer, classify_writer, decode_cdrs_by_writer

__all__ = [
    "MAGIC_BYTE",
    "DecodeResult",
    "Writer",
    "classify_writer",
    "decode_adjustment",
    "decode_balance_event",
    "decode_cdr",
    "decode_cdrs",
    "decode_cdrs_by_writer",
    "decode_cdrs_json",
    "decode_rated",
    "decode_topup",
    "encode_adjustment",
    "encode_balance_event",
    "encode_cdr",
    "encode_cdrs",
    "encode_rated",
    "encode_rated_record",
    "encode_topup",
    "frame_message",
    "load_schema",
    "native_stderr_silenced",
    "raw_schema",
    "schema_dir",
    "unframe_bodies",
    "write_avro_file",
]
