"""Avro and JSON wire codec for CDRs, rated records, balance events and top-ups.

Messages are Avro binary bodies, optionally with the Confluent framing (magic byte 0 and a
4-byte big-endian schema id). CDRs arrive in bulk, so :func:`decode_cdrs` decodes a whole
poll batch at once: the bodies are concatenated into one Avro object-container block and read
by ``polars.read_avro``, which is an order of magnitude faster than decoding message by message.

A bulk decode is only trusted when every row provably came from its own message's bytes: each
decoded row's re-encoded length must equal its message's body length, and every varint in the
block must be minimally encoded (checked on the raw bytes), so the decoder cannot have drifted
across a message boundary. Anything else is decoded message by message with fastavro, which
names the broken messages and still decodes the good ones.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import os
import struct
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import fastavro
import polars as pl

from rater.core.columns import CDR_SCHEMA, TIME

__all__ = [
    "MAGIC_BYTE",
    "DecodeResult",
    "decode_balance_event",
    "decode_cdr",
    "decode_cdrs",
    "decode_cdrs_json",
    "decode_rated",
    "decode_topup",
    "encode_balance_event",
    "encode_cdr",
    "encode_cdrs",
    "encode_rated",
    "encode_rated_record",
    "encode_topup",
    "frame_message",
    "load_schema",
    "native_stderr_silenced",
    "schema_dir",
    "unframe_bodies",
    "write_avro_file",
]

log = logging.getLogger(__name__)

MAGIC_BYTE = 0
_HEADER = struct.Struct(">bI")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# A varint byte with the continuation bit set followed by 0x00 is the only way to write a
# non-minimal varint; its absence from a block guarantees consumed length == re-encoded length.
# Found with one translate + one memmem: bytes >= 0x80 become 0x80, other non-zero bytes 0x01.
_VARINT_TABLE = bytes([0] + [1] * 127 + [0x80] * 128)
_NON_MINIMAL_VARINT = b"\x80\x00"

# A failed bulk decode is retried on _SPLIT parts; parts this small go message by message.
_SPLIT = 8
_MIN_BULK = 256


# --------------------------------------------------------------------------- quiet panics

_SILENCE = threading.Lock()


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Send what native code writes to file descriptor 2 to /dev/null meanwhile.

    Polars' Avro reader panics on some garbage; the panic is caught (the batch is then
    split to find the poison message), but Rust's panic hook has already printed a
    message and a backtrace to fd 2, which would only alarm an operator. Python's own
    output is not lost when ``sys.stderr`` writes to a duplicate of fd 2 (the CLI sets
    that up at start).
    """
    with _SILENCE:
        try:
            saved = os.dup(2)
        except OSError:  # no fd 2 at all: nothing to silence
            yield
            return
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(null)


# --------------------------------------------------------------------------- schemas


def schema_dir() -> Path:
    """The directory holding the ``*.avsc`` files (package data, or the repository's schemas/)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "schemas", here.parent / "schemas"):
        if (candidate / "cdr.avsc").is_file():
            return candidate
    raise FileNotFoundError(f"no Avro schemas found next to {here}")


@cache
def _raw_schema(name: str) -> str:
    return (schema_dir() / f"{name}.avsc").read_text(encoding="utf-8")


def load_schema(name: str) -> dict[str, Any]:
    """The JSON of schema ``name`` (``cdr``, ``rated``, ``balance_event``, ``topup``)."""
    loaded: dict[str, Any] = json.loads(_raw_schema(name))
    return loaded


@cache
def _parsed(name: str) -> Any:
    return fastavro.parse_schema(load_schema(name))


@cache
def _parsed_plain(name: str) -> Any:
    """The schema with logical types removed: timestamps stay integer micros, as in Polars."""
    raw = load_schema(name)
    for f in raw["fields"]:
        f["type"] = _strip_logical(f["type"])
    return fastavro.parse_schema(raw)


def _strip_logical(t: Any) -> Any:
    if isinstance(t, list):
        return [_strip_logical(x) for x in t]
    if isinstance(t, dict) and "logicalType" in t:
        return t["type"]
    return t


# Field kinds of the flat records this codec handles.
_STRING, _LONG, _INT, _BOOL, _ENUM, _TS = "string", "long", "int", "boolean", "enum", "ts"


@dataclass(frozen=True)
class _Field:
    name: str
    kind: str
    nullable: bool
    symbols: tuple[str, ...] = ()


@cache
def _fields(name: str) -> tuple[_Field, ...]:
    out = []
    for f in load_schema(name)["fields"]:
        t = f["type"]
        nullable = isinstance(t, list)
        if nullable:
            if len(t) != 2 or t[0] != "null":
                raise ValueError(f"{name}.{f['name']}: only [null, T] unions are supported")
            t = t[1]
        symbols: tuple[str, ...] = ()
        if isinstance(t, dict):
            if t.get("logicalType") == "timestamp-micros":
                kind = _TS
            elif t["type"] == "enum":
                kind, symbols = _ENUM, tuple(t["symbols"])
            else:
                kind = t["type"]
        else:
            kind = t
        if kind not in (_STRING, _LONG, _INT, _BOOL, _ENUM, _TS):
            raise ValueError(f"{name}.{f['name']}: unsupported type {kind}")
        out.append(_Field(f["name"], kind, nullable, symbols))
    return tuple(out)


# --------------------------------------------------------------------------- framing


def frame_message(body: bytes, schema_id: int | None) -> bytes:
    """Prefix ``body`` with the Confluent header when a schema id is given."""
    if schema_id is None:
        return body
    return _HEADER.pack(MAGIC_BYTE, schema_id) + body


def _unframe(value: bytes, framed: bool, schema_id: int | None) -> bytes | str:
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


# --------------------------------------------------------------------------- encoding


@cache
def _small_varints() -> tuple[bytes, ...]:
    return tuple(_varint_slow(i) for i in range(-4096, 4096))


def _varint_slow(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z & ~0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _varint(n: int) -> bytes:
    if -4096 <= n < 4096:
        return _small_varints()[n + 4096]
    return _varint_slow(n)


def _to_micros(v: Any) -> int:
    if isinstance(v, datetime):
        if v.tzinfo is None:
            raise ValueError("naive datetime: timestamps must be timezone-aware (UTC)")
        delta = v - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    raise TypeError(f"not a timestamp: {v!r}")


def _encode_column(f: _Field, values: Sequence[Any]) -> list[bytes]:
    """The Avro encoding of one field for every row (column-wise: far fewer Python calls)."""
    vi = _varint
    if f.kind == _STRING:
        enc: Callable[[Any], bytes] = _enc_string
    elif f.kind == _INT:
        enc = _enc_int32
    elif f.kind == _LONG:
        enc = _enc_int
    elif f.kind == _TS:
        enc = _enc_ts
    elif f.kind == _BOOL:
        enc = _enc_bool
    else:
        index = {s: vi(i) for i, s in enumerate(f.symbols)}

        def enc(v: Any) -> bytes:
            try:
                return index[v]
            except KeyError:
                raise ValueError(f"{f.name}: {v!r} is not one of {list(f.symbols)}") from None

    if not f.nullable:
        try:
            return [enc(v) for v in values]
        except (TypeError, AttributeError) as exc:
            raise ValueError(f"{f.name}: {exc}") from None
    null, some = b"\x00", b"\x02"
    return [null if v is None else some + enc(v) for v in values]


def _enc_string(v: str) -> bytes:
    b = v.encode("utf-8")
    return _varint(len(b)) + b


def _enc_int(v: int) -> bytes:
    """An Avro long: any integer of 64 bits."""
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"not an integer: {v!r}")
    if not _INT64[0] <= v <= _INT64[1]:
        raise ValueError(f"{v} does not fit an Avro long")
    return _varint(v)


def _enc_int32(v: int) -> bytes:
    """An Avro int: 32 bits."""
    if isinstance(v, int) and not isinstance(v, bool) and not _INT32[0] <= v <= _INT32[1]:
        raise ValueError(f"{v} does not fit an Avro int")
    return _enc_int(v)


def _enc_ts(v: Any) -> bytes:
    return _enc_int(_to_micros(v))


def _enc_bool(v: bool) -> bytes:
    return b"\x01" if v else b"\x00"


# --------------------------------------------------------------------------- bulk encoding
#
# Frames are encoded column-wise by Polars into one Binary column: each field becomes a
# Binary expression and a row is their concatenation (``+`` on Binary, the costly step, so
# each field is built with as few of them as possible).
#
# - Low-cardinality columns (statuses, plan ids, prefixes, currencies, small counts, ...)
#   are dictionary-encoded: their distinct values are encoded once in Python and each row
#   gets its complete field bytes, union branch included, from one ``replace_strict``.
# - Other integers are varints built from 14-bit chunks looked up in a table: a few integer
#   operations and one gather per chunk, with only as many chunks as the column's largest
#   value needs. Other strings are a length varint plus the UTF-8 bytes.

_CHUNK_BITS = 14
_CHUNK = 1 << _CHUNK_BITS
_U64 = pl.UInt64
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
# A column is dictionary-encoded when its first _SAMPLE rows hold at most _SAMPLE_DISTINCT
# values and the whole column at most _MAX_DISTINCT (each distinct value costs Python time).
_SAMPLE = 2048
_SAMPLE_DISTINCT = 256
_MAX_DISTINCT = 4096
# Sections of the chunk table (see _chunk_table).
_MORE, _LAST, _ABSENT, _MORE_SOME, _LAST_SOME = range(5)


@cache
def _chunk_table() -> pl.Series:
    """Varint bytes of one 14-bit chunk ``c`` at index ``c + _CHUNK * section``.

    _MORE: more chunks follow (two bytes, both with the continuation bit); _LAST: the last
    chunk (minimal: one byte when ``c`` < 128); _ABSENT: empty; _MORE_SOME and _LAST_SOME:
    as _MORE and _LAST after the union branch byte of a present nullable value.
    """
    more = [bytes([(c & 0x7F) | 0x80, (c >> 7) | 0x80]) for c in range(_CHUNK)]
    last = [bytes([c]) if c < 0x80 else bytes([(c & 0x7F) | 0x80, c >> 7]) for c in range(_CHUNK)]
    some = [b"\x02" + b for b in (*more, *last)]
    return pl.Series("varint", [*more, *last, *([b""] * _CHUNK), *some], dtype=pl.Binary)


def _zigzag(x: pl.Expr) -> pl.Expr:
    """The zigzag value of an Int64 expression, as UInt64 (exact at both int64 extremes)."""
    neg = x < 0
    y = pl.when(neg).then(-(x + 1)).otherwise(x).cast(_U64)
    return y * pl.lit(2, _U64) + neg.cast(_U64)


def _chunks_for(max_zigzag: int | None) -> int:
    bits = max(max_zigzag or 0, 1).bit_length()
    return -(-bits // _CHUNK_BITS)


def _varint_bytes(z: pl.Expr, chunks: int, nullable: bool) -> pl.Expr:
    """The varint of UInt64 expression ``z`` (all values below 2**(14 * chunks)); when
    ``nullable``, preceded by the union branch byte of a present value (null stays null)."""
    table = pl.lit(_chunk_table())
    base = _CHUNK * (_MORE_SOME if nullable else _MORE)  # first chunk: _MORE or _LAST after
    if chunks == 1:
        return table.gather((z + (base + _CHUNK)).cast(pl.UInt32))
    pieces: list[pl.Expr] = []
    for j in range(chunks):
        lo, hi = _CHUNK_BITS * j, _CHUNK_BITS * (j + 1)
        c = (z // pl.lit(1 << lo, _U64) if j else z) % _CHUNK
        # section: _MORE while z has bits above this chunk, then _LAST, then _ABSENT.
        section = (z < pl.lit(1 << hi, _U64)).cast(_U64) if hi < 64 else pl.lit(1, _U64)
        if j:
            section = section + (z < pl.lit(1 << lo, _U64)).cast(_U64)
        offset = base if j == 0 else 0
        pieces.append(table.gather((c + section * _CHUNK + offset).cast(pl.UInt32)))
    return _concat(pieces)


def _concat(parts: Sequence[pl.Expr]) -> pl.Expr:
    """Binary concatenation as a balanced tree: each byte is copied log2(len(parts)) times
    instead of up to len(parts) times by a left fold."""
    if len(parts) == 1:
        return parts[0]
    mid = len(parts) // 2
    return _concat(parts[:mid]) + _concat(parts[mid:])


def _field_value(f: _Field, frame: pl.DataFrame, name: str) -> pl.Expr:
    """The column of ``f`` as Int64 (numbers, timestamps), String or Boolean."""
    s = frame.schema[f.name]
    c = pl.col(f.name)
    if f.kind == _TS:
        return c if s == pl.Int64 else c.cast(TIME).dt.epoch("us")
    if f.kind in (_LONG, _INT):
        if not (s.is_integer() or s == pl.Null):
            raise ValueError(f"{name}.{f.name}: not an integer column ({s})")
        return c.cast(pl.Int64)
    if f.kind in (_STRING, _ENUM):
        if s not in (pl.String, pl.Categorical, pl.Null) and not isinstance(s, pl.Enum):
            raise ValueError(f"{name}.{f.name}: not a string column ({s})")
        return c.cast(pl.String)
    if s not in (pl.Boolean, pl.Null):
        raise ValueError(f"{name}.{f.name}: not a boolean column ({s})")
    return c.cast(pl.Boolean)


@dataclass(frozen=True)
class _Plan:
    """How to encode one field: the column of its value (and of its zigzag value, for
    numbers), and either its distinct values (a dictionary) or the varint chunks its
    largest number (or string length) needs."""

    field: _Field
    value: pl.Expr
    zigzag: pl.Expr
    chunks: int = 1
    distinct: list[Any] | None = None


def _plan(
    name: str, fields: Sequence[_Field], frame: pl.DataFrame
) -> tuple[pl.DataFrame, list[_Plan]]:
    """Validate the columns of ``fields`` and plan them.

    Returns a frame of the converted values (``v<i>``) and zigzag values (``z<i>``, for
    numbers and timestamps) that the plans' expressions refer to: computed once here, as
    a number's varint uses its zigzag value several times.
    """
    missing = [f.name for f in fields if f.name not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks the {name} columns {missing}")
    numeric = (_LONG, _INT, _TS)
    columns: list[pl.Expr] = []
    for i, f in enumerate(fields):
        v = _field_value(f, frame, name)
        columns.append(v.alias(f"v{i}"))
        if f.kind in numeric:
            columns.append(_zigzag(v).alias(f"z{i}"))
    work = frame.select(columns)

    stats: list[pl.Expr] = []
    for i, f in enumerate(fields):
        v = pl.col(f"v{i}")
        if not f.nullable:
            stats.append(v.null_count().alias(f"{i}:nulls"))
        if f.kind == _ENUM:
            stats.append((v.is_not_null() & ~v.is_in(list(f.symbols))).sum().alias(f"{i}:bad"))
        if f.kind in (_STRING, _LONG, _INT):
            stats.append(v.head(_SAMPLE).n_unique().alias(f"{i}:sample"))
        if f.kind == _STRING:
            stats.append((v.str.len_bytes().cast(pl.Int64) * 2).max().alias(f"{i}:z"))
        elif f.kind in numeric:
            stats.append(pl.col(f"z{i}").max().alias(f"{i}:z"))
        if f.kind == _INT:
            stats += [v.min().alias(f"{i}:min"), v.max().alias(f"{i}:max")]
    row = work.select(stats).row(0, named=True) if stats else {}
    for i, f in enumerate(fields):
        if row.get(f"{i}:nulls"):
            raise ValueError(f"{name}.{f.name} is null in {row[f'{i}:nulls']} rows")
        if row.get(f"{i}:bad"):
            raise ValueError(f"{name}.{f.name}: values not in {list(f.symbols)}")
        lo, hi = row.get(f"{i}:min"), row.get(f"{i}:max")
        if (lo is not None and lo < _INT32[0]) or (hi is not None and hi > _INT32[1]):
            raise ValueError(f"{name}.{f.name}: value out of the Avro int range")

    few = [i for i in range(len(fields)) if row.get(f"{i}:sample", _SAMPLE + 1) <= _SAMPLE_DISTINCT]
    distinct: dict[int, list[Any]] = {}
    if few:
        found = work.select(
            pl.col(f"v{i}").unique().head(_MAX_DISTINCT + 1).implode().alias(str(i)) for i in few
        ).row(0)
        distinct = {
            i: [x for x in xs if x is not None]
            for i, xs in zip(few, found, strict=True)
            if len(xs) <= _MAX_DISTINCT
        }
    plans = [
        _Plan(f, pl.col(f"v{i}"), pl.col(f"z{i}"), _chunks_for(row.get(f"{i}:z")), distinct.get(i))
        for i, f in enumerate(fields)
    ]
    return work, plans


def _field_bytes(p: _Plan) -> pl.Expr:
    """The Avro bytes of one field, for every row."""
    f, value = p.field, p.value
    if p.distinct is not None or f.kind == _ENUM:
        keys = list(f.symbols) if p.distinct is None else p.distinct
        # Every non-null value is a key (enums were checked), so the default only ever
        # meets nulls; without one, Polars mistypes the result of a String -> Binary map.
        enc = value.replace_strict(
            keys, _encode_column(f, keys), default=None, return_dtype=pl.Binary
        )
    elif f.kind == _STRING:
        size = value.str.len_bytes().cast(_U64) * pl.lit(2, _U64)
        enc = _varint_bytes(size, p.chunks, f.nullable) + value.cast(pl.Binary)
    elif f.kind == _BOOL:
        bools = [b"\x00", b"\x01", b"\x02\x00", b"\x02\x01"]
        table = pl.lit(pl.Series(bools[2:] if f.nullable else bools[:2], dtype=pl.Binary))
        enc = table.gather(value.cast(pl.UInt32))
    else:
        enc = _varint_bytes(p.zigzag, p.chunks, f.nullable)
    # A null value has made ``enc`` null: the null branch of the union.
    return enc.fill_null(pl.lit(b"\x00")) if f.nullable else enc


def _encode_fields(
    name: str,
    fields: Sequence[_Field],
    frame: pl.DataFrame,
    prefix: bytes = b"",
    heads: Sequence[bytes] | None = None,
) -> list[bytes]:
    """Per row: ``prefix``, then ``heads[row]`` when given, then the Avro of ``fields``."""
    work, plans = _plan(name, fields, frame)
    if frame.height == 0:
        return []
    row = _concat([_field_bytes(p) for p in plans])
    if heads is not None:
        row = pl.lit(pl.Series("heads", heads, dtype=pl.Binary)) + row
    if prefix:
        row = pl.lit(prefix, pl.Binary) + row
    out: list[bytes] = work.select(row.alias("avro")).to_series().to_list()
    return out


def _encode_frame(name: str, frame: pl.DataFrame, schema_id: int | None) -> list[bytes]:
    prefix = b"" if schema_id is None else _HEADER.pack(MAGIC_BYTE, schema_id)
    return _encode_fields(name, _fields(name), frame, prefix)


@cache
def _rated_tail() -> tuple[_Field, ...]:
    """The rated fields after the CDR ones (the rated schema starts with the CDR's fields)."""
    cdr, rated = _fields("cdr"), _fields("rated")
    if rated[: len(cdr)] != cdr:
        raise ValueError("rated.avsc does not start with exactly the fields of cdr.avsc")
    return rated[len(cdr) :]


def _encode_one(name: str, record: Mapping[str, Any], schema_id: int | None) -> bytes:
    parts = []
    for f in _fields(name):
        v = record.get(f.name)
        if v is None and not f.nullable:
            raise ValueError(f"{name}.{f.name} is required")
        parts.append(_encode_column(f, [v])[0])
    return frame_message(b"".join(parts), schema_id)


def encode_cdr(record: Mapping[str, Any], schema_id: int | None = None) -> bytes:
    """One CDR (field -> value; timestamps as aware datetimes or integer micros)."""
    return _encode_one("cdr", record, schema_id)


def encode_cdrs(frame: pl.DataFrame, schema_id: int | None = None) -> list[bytes]:
    """Every row of a CDR frame (CDR_SCHEMA columns) as one message each."""
    return _encode_frame("cdr", frame, schema_id)


def encode_rated(
    frame: pl.DataFrame,
    schema_id: int | None = None,
    *,
    cdr_bodies: Sequence[bytes] | None = None,
) -> list[bytes]:
    """Every row of a rated frame (CDR + RATED_EXTRA columns + source_topic,
    source_partition, source_offset) as one message each, in row order.

    ``cdr_bodies``: the unframed Avro CDR body each row was decoded from (one per row, in
    row order; see :func:`unframe_bodies`). The rated schema begins with the CDR's fields,
    so these bytes are reused as they are and only the rating fields are encoded, which is
    several times faster. The CDR columns of ``frame`` are then not read.
    """
    prefix = b"" if schema_id is None else _HEADER.pack(MAGIC_BYTE, schema_id)
    if cdr_bodies is None:
        return _encode_fields("rated", _fields("rated"), frame, prefix)
    if len(cdr_bodies) != frame.height:
        raise ValueError(f"{len(cdr_bodies)} CDR bodies for {frame.height} rated rows")
    return _encode_fields("rated", _rated_tail(), frame, prefix, cdr_bodies)


def unframe_bodies(values: Sequence[bytes], framed: bool) -> list[bytes]:
    """The Avro bodies of messages that decoded: ``value[5:]`` when framed, else ``value``."""
    if not framed:
        return list(values)
    return [v[5:] for v in values]


def encode_rated_record(record: Mapping[str, Any], schema_id: int | None = None) -> bytes:
    return _encode_one("rated", record, schema_id)


def encode_balance_event(record: Mapping[str, Any], schema_id: int | None = None) -> bytes:
    return _encode_one("balance_event", record, schema_id)


def encode_topup(record: Mapping[str, Any], schema_id: int | None = None) -> bytes:
    """A top-up; ``amount`` is an exact decimal string (or a ``Decimal``, written as str)."""
    rec = dict(record)
    if rec.get("amount") is not None and not isinstance(rec["amount"], str):
        rec["amount"] = str(rec["amount"])
    return _encode_one("topup", rec, schema_id)


def write_avro_file(
    path: Path, name: str, bodies: Sequence[bytes], block_size: int = 10_000
) -> None:
    """An Avro object-container file of schema ``name`` holding ``bodies`` (unframed)."""
    sync = os.urandom(16)
    meta = {"avro.schema": _raw_schema(name).encode(), "avro.codec": b"null"}
    with path.open("wb") as out:
        out.write(b"Obj\x01" + _varint(len(meta)))
        for k, v in meta.items():
            out.write(_varint(len(k)) + k.encode() + _varint(len(v)) + v)
        out.write(_varint(0) + sync)
        for start in range(0, len(bodies), block_size):
            chunk = bodies[start : start + block_size]
            data = b"".join(chunk)
            out.write(_varint(len(chunk)) + _varint(len(data)) + data + sync)


# --------------------------------------------------------------------------- single decode


def _decode_one(name: str, value: bytes, framed: bool, schema_id: int | None) -> dict[str, Any]:
    body = _unframe(value, framed, schema_id)
    if isinstance(body, str):
        raise ValueError(body)
    reason, rec = _read_body(name, body)
    if rec is None:
        raise ValueError(reason)
    return rec


def _read_body(name: str, body: bytes) -> tuple[str, dict[str, Any] | None]:
    """Decode one Avro body with fastavro; timestamps come back as aware datetimes."""
    return _read_exact(name, body, _parsed(name))


def _read_exact(name: str, body: bytes, schema: Any) -> tuple[str, dict[str, Any] | None]:
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
        same = _encode_one(name, rec, None) == body
    except (ValueError, TypeError, OverflowError, UnicodeError):
        same = False
    return ("", rec) if same else ("avro_decode_error", None)


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


# --------------------------------------------------------------------------- bulk decode


@dataclass
class DecodeResult:
    """Decoded rows, in input order, and the messages that could not be decoded.

    ``indices[i]`` is the position in the input of ``frame`` row ``i``; ``errors`` holds
    ``(input position, reason)`` for the others, in input order.
    """

    frame: pl.DataFrame
    indices: list[int] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)


@cache
def _ocf_header(name: str) -> tuple[bytes, bytes]:
    """An object-container header whose schema reads enums as their int index.

    Enums are read as ints because Polars' reader panics on an out-of-range index; the
    index is mapped to its symbol (and checked) afterwards. Defaults and docs are dropped:
    the binary encoding does not depend on them and Polars rejects non-null defaults.
    """
    raw = copy.deepcopy(load_schema(name))
    for f in raw["fields"]:
        f.pop("default", None)
        f.pop("doc", None)
        t = f["type"]
        inner = t[1] if isinstance(t, list) else t
        if isinstance(inner, dict) and inner.get("type") == "enum":
            f["type"] = ["null", "int"] if isinstance(t, list) else "int"
    # Sync bytes below 0x80 and non-zero: no varint pattern can start in or run into them.
    sync = bytes(1 + b % 127 for b in os.urandom(16))
    meta = {"avro.schema": json.dumps(raw).encode(), "avro.codec": b"null"}
    out = bytearray(b"Obj\x01")
    out += _varint(len(meta))
    for k, v in meta.items():
        out += _varint(len(k)) + k.encode() + _varint(len(v)) + v
    out += _varint(0)
    out += sync
    return bytes(out), sync


def _varint_len(e: pl.Expr) -> pl.Expr:
    """Bytes of the zigzag varint of an Int64 expression (vectorized).

    zigzag(x) has one bit more than y = x ^ (x >> 63) (i.e. x or -x-1), so its varint
    takes ceil((bit_length(y) + 1) / 7) bytes, at least one.
    """
    y = pl.when(e >= 0).then(e).otherwise(-e - 1)
    return ((65 - y.bitwise_leading_zeros().cast(pl.Int64) + 6) // 7).clip(lower_bound=1)


def _field_len(f: _Field) -> pl.Expr:
    c = pl.col(f.name)
    if f.kind == _STRING:
        b = c.str.len_bytes().cast(pl.Int64)
        size = _varint_len(b) + b
    elif f.kind == _BOOL:
        size = pl.lit(1, pl.Int64)
    elif f.kind == _TS:
        size = _varint_len(c.dt.epoch("us"))
    else:  # long, int and enum index
        size = _varint_len(c.cast(pl.Int64))
    if f.nullable:
        return pl.when(c.is_null()).then(pl.lit(1, pl.Int64)).otherwise(size + 1)
    return size


@cache
def _verify_exprs(name: str) -> tuple[list[pl.Expr], pl.Expr]:
    """Expressions proving each bulk-decoded row is exactly its message (column ``__body``)."""
    fields = _fields(name)
    # Per row: the re-encoded length of each field, hence each field's offset in its body.
    sizes = [_field_len(f).alias(f"__len{i}") for i, f in enumerate(fields)]
    lens = [pl.col(f"__len{i}") for i in range(len(fields))]
    checks = [pl.sum_horizontal(*lens) == pl.col("__body").bin.size()]
    offset: pl.Expr = pl.lit(0, pl.Int64)
    for i, f in enumerate(fields):
        if f.nullable:
            # Polars reads any non-zero union index as the value branch; the byte must be 2.
            branch = pl.when(pl.col(f.name).is_null()).then(0).otherwise(2).cast(pl.UInt8)
            checks.append(pl.col("__body").bin.get(offset, null_on_oob=True) == branch)
        if f.kind == _ENUM:
            ok_enum = pl.col(f.name).is_between(0, len(f.symbols) - 1)
            checks.append(ok_enum.fill_null(f.nullable))
        elif not f.nullable:
            checks.append(pl.col(f.name).is_not_null())
        if f.kind in (_INT, _ENUM, _LONG, _TS):
            checks.append(_varint_in_range(f, offset, lens[i]))
        offset = offset + lens[i]
    return sizes, pl.all_horizontal(*checks).fill_null(False).alias("ok")


def _varint_in_range(f: _Field, offset: pl.Expr, length: pl.Expr) -> pl.Expr:
    """The raw varint of a number field holds no more bits than its type.

    Polars' reader keeps the low 32 (int) or 64 (long) bits of a longer value, and the
    value it keeps can need as many bytes as the one written (2**31 read as -2**31), so the
    length check above cannot see it. The last byte of a varint of the type's longest
    length carries the top bits: at most 0x0F for an int (4 + 4 * 7 = 32 bits), 0x01 for a
    long (1 + 9 * 7 = 64 bits).
    """
    widest, top = (5, 0x0F) if f.kind in (_INT, _ENUM) else (10, 0x01)
    start = offset + 1 if f.nullable else offset
    size = length - 1 if f.nullable else length
    last = pl.col("__body").bin.get(start + size - 1, null_on_oob=True)
    ok = pl.when(size == widest).then(last <= top).otherwise(True)
    return ok.fill_null(True) if f.nullable else ok


def _bulk_read(name: str, bodies: Sequence[bytes]) -> pl.DataFrame | None:
    """Decode ``bodies`` in one block; None unless every row is proven exact."""
    header, sync = _ocf_header(name)
    data = b"".join(bodies)
    if data.translate(_VARINT_TABLE).find(_NON_MINIMAL_VARINT) >= 0:
        return None
    block = b"".join((header, _varint(len(bodies)), _varint(len(data)), data, sync))
    try:
        with native_stderr_silenced():
            df = pl.read_avro(io.BytesIO(block))
    except (
        BaseException
    ) as exc:  # Polars raises a PanicException (not an Exception) on some garbage
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        return None
    if df.height != len(bodies):
        return None
    raw = pl.Series("__body", bodies, dtype=pl.Binary)
    sizes, check = _verify_exprs(name)
    try:
        ok = (
            df.lazy()
            .with_columns(raw)
            .with_columns(sizes)
            .select(check)
            .collect(optimizations=pl.QueryOptFlags.none())
            .get_column("ok")
        )
    except pl.exceptions.PolarsError:
        return None
    if not ok.all():
        return None
    return _finish_cdr(df) if name == "cdr" else df


def _finish_cdr(df: pl.DataFrame) -> pl.DataFrame:
    fields = {f.name: f for f in _fields("cdr")}
    exprs = []
    for col, dtype in CDR_SCHEMA.items():
        f = fields[col]
        if f.kind == _ENUM:
            mapping = dict(enumerate(f.symbols))
            expr = pl.col(col).replace_strict(mapping, return_dtype=pl.String)
        elif f.kind == _TS:
            expr = pl.col(col).cast(pl.Int64).cast(TIME)
        else:
            expr = pl.col(col).cast(dtype)
        exprs.append(expr.alias(col))
    return df.select(exprs)


def _slow_cdrs(
    name: str, bodies: Sequence[bytes], positions: Sequence[int]
) -> tuple[list[dict[str, Any]], list[int], list[tuple[int, str]]]:
    rows: list[dict[str, Any]] = []
    good: list[int] = []
    errors: list[tuple[int, str]] = []
    schema = _parsed_plain(name)
    for pos, body in zip(positions, bodies, strict=True):
        reason, rec = _read_exact(name, body, schema)
        if rec is None:
            errors.append((pos, reason))
        else:
            rows.append(rec)
            good.append(pos)
    return rows, good, errors


def _rows_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    plain = {k: (pl.Int64() if v == TIME else v) for k, v in CDR_SCHEMA.items()}
    df = pl.DataFrame(rows, schema=plain) if rows else pl.DataFrame(schema=plain)
    return df.with_columns(pl.col(c).cast(TIME) for c in CDR_SCHEMA if CDR_SCHEMA[c] == TIME)


def decode_cdrs(
    values: Sequence[bytes], *, framed: bool, schema_id: int | None = None
) -> DecodeResult:
    """Decode a batch of CDR messages into a CDR_SCHEMA frame (see :class:`DecodeResult`).

    ``framed``: messages carry the Confluent header; with ``schema_id`` given, any other id
    is rejected as ``unknown_schema_id``. Reasons: ``bad_magic_byte``, ``unknown_schema_id``,
    ``truncated_avro``, ``avro_decode_error``.
    """
    errors: list[tuple[int, str]] = []
    bodies: list[bytes]
    positions: list[int]
    if not framed:
        bodies, positions = list(values), list(range(len(values)))
    elif _uniform_header(values, schema_id):
        bodies, positions = [v[5:] for v in values], list(range(len(values)))
    else:
        bodies, positions = [], []
        for i, v in enumerate(values):
            body = _unframe(v, framed, schema_id)
            if isinstance(body, str):
                errors.append((i, body))
            else:
                bodies.append(body)
                positions.append(i)

    pieces: list[pl.DataFrame] = []
    indices: list[int] = []
    _decode_range("cdr", bodies, positions, 0, len(bodies), pieces, indices, errors)
    frame = pl.concat(pieces, how="vertical") if pieces else _rows_frame([])
    errors.sort()
    return DecodeResult(frame=frame, indices=indices, errors=errors)


def _uniform_header(values: Sequence[bytes], schema_id: int | None) -> bool:
    """True when every message carries the same valid header (the common case, checked fast)."""
    heads = {v[:5] for v in values}
    if len(heads) != 1:
        return not heads
    head = next(iter(heads))
    if len(head) != 5 or head[0] != MAGIC_BYTE:
        return False
    return schema_id is None or int.from_bytes(head[1:], "big") == schema_id


def _decode_range(
    name: str,
    bodies: Sequence[bytes],
    positions: Sequence[int],
    lo: int,
    hi: int,
    pieces: list[pl.DataFrame],
    indices: list[int],
    errors: list[tuple[int, str]],
) -> None:
    """Bulk-decode bodies[lo:hi]; when that fails, split it and retry the parts in bulk.

    Each level of splitting costs at most one bulk pass over the batch, so a few poison
    messages cost a few passes; parts of at most ``_MIN_BULK`` go message by message.
    """
    if lo >= hi:
        return
    if hi - lo > _MIN_BULK:
        df = _bulk_read(name, bodies[lo:hi])
        if df is not None:
            pieces.append(df)
            indices.extend(positions[lo:hi])
            return
        step = -(-(hi - lo) // _SPLIT)
        for start in range(lo, hi, step):
            _decode_range(
                name, bodies, positions, start, min(start + step, hi), pieces, indices, errors
            )
        return
    rows, good, bad = _slow_cdrs(name, bodies[lo:hi], positions[lo:hi])
    if rows:
        pieces.append(_rows_frame(rows))
        indices.extend(good)
    errors.extend(bad)


# --------------------------------------------------------------------------- JSON


def _json_time(v: Any) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool):
        raise ValueError("boolean timestamp")
    if isinstance(v, int):
        if not _INT64[0] <= v <= _INT64[1]:
            raise ValueError("timestamp out of range")
        return v
    if isinstance(v, str):
        dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
        if dt.tzinfo is None:
            raise ValueError("timestamp without offset")
        return _to_micros(dt)
    raise ValueError(f"bad timestamp {v!r}")


_JSON_REQUIRED = ("cdr_id", "tenant_id", "kind", "direction", "caller", "callee")


def _json_row(obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ValueError("not an object")
    fields = {f.name: f for f in _fields("cdr")}
    row: dict[str, Any] = {}
    for name, f in fields.items():
        v = obj.get(name)
        if f.kind == _TS:
            row[name] = _json_time(v)
        elif f.kind in (_STRING, _ENUM):
            if v is not None and not isinstance(v, str):
                raise ValueError(f"{name} is not a string")
            if v is not None:
                v.encode("utf-8")  # a lone surrogate ("\ud800") is not text
            if f.kind == _ENUM and v not in f.symbols:
                raise ValueError(f"{name} {v!r} unknown")
            row[name] = v
        else:
            if v is None:
                v = 0 if name == "hold_ms" else 1
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"{name} is not an integer")
            low, high = _INT32 if f.kind == _INT else _INT64
            if not low <= v <= high:
                raise ValueError(f"{name} out of range")
            row[name] = v
    missing = [n for n in (*_JSON_REQUIRED, "start_time", "end_time") if row[n] is None]
    if missing:
        raise ValueError(f"missing {missing}")
    return row


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
    return DecodeResult(frame=_rows_frame(rows), indices=indices, errors=errors)
