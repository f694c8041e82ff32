"""Decoding a whole poll batch of CDR messages at once.

The bodies are concatenated into one Avro object-container block and read by
``polars.read_avro``, which is an order of magnitude faster than decoding message by
message.

A bulk decode is only trusted when every row provably came from its own message's bytes: each
decoded row's re-encoded length must equal its message's body length, and every varint in the
block must be minimally encoded (checked on the raw bytes), so the decoder cannot have drifted
across a message boundary. Anything else is decoded message by message with fastavro, which
names the broken messages and still decodes the good ones.
"""

from __future__ import annotations

import copy
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import polars as pl

from rater.core.columns import CDR_SCHEMA, TIME
from rater.wire.avro_files import container_header
from rater.wire.decode import read_exact
from rater.wire.framing import unframe, uniform_header
from rater.wire.quiet import native_stderr_silenced
from rater.wire.schemas import (
    BOOL,
    ENUM,
    INT,
    LONG,
    STRING,
    TS,
    Field,
    load_schema,
    parsed_plain,
    record_fields,
)
from rater.wire.varint import has_non_minimal_varint, varint, varint_len

__all__ = ["DecodeResult", "decode_cdrs", "rows_frame"]

# A failed bulk decode is retried on _SPLIT parts; parts this small go message by message.
_SPLIT = 8
_MIN_BULK = 256


@dataclass
class DecodeResult:
    """Decoded rows, in input order, and the messages that could not be decoded.

    ``indices[i]`` is the position in the input of ``frame`` row ``i``; ``errors`` holds
    ``(input position, reason)`` for the others, in input order.
    """

    frame: pl.DataFrame
    indices: list[int] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)


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
    elif uniform_header(values, schema_id):
        bodies, positions = [v[5:] for v in values], list(range(len(values)))
    else:
        bodies, positions = [], []
        for i, v in enumerate(values):
            body = unframe(v, framed, schema_id)
            if isinstance(body, str):
                errors.append((i, body))
            else:
                bodies.append(body)
                positions.append(i)

    pieces: list[pl.DataFrame] = []
    indices: list[int] = []
    _decode_range("cdr", bodies, positions, 0, len(bodies), pieces, indices, errors)
    frame = pl.concat(pieces, how="vertical") if pieces else rows_frame([])
    errors.sort()
    return DecodeResult(frame=frame, indices=indices, errors=errors)


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
        pieces.append(rows_frame(rows))
        indices.extend(good)
    errors.extend(bad)


# --------------------------------------------------------------------------- in bulk


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
    return container_header(json.dumps(raw).encode(), sync), sync


def _bulk_read(name: str, bodies: Sequence[bytes]) -> pl.DataFrame | None:
    """Decode ``bodies`` in one block; None unless every row is proven exact."""
    header, sync = _ocf_header(name)
    data = b"".join(bodies)
    if has_non_minimal_varint(data):
        return None
    block = b"".join((header, varint(len(bodies)), varint(len(data)), data, sync))
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


@cache
def _verify_exprs(name: str) -> tuple[list[pl.Expr], pl.Expr]:
    """Expressions proving each bulk-decoded row is exactly its message (column ``__body``)."""
    fields = record_fields(name)
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
        if f.kind == ENUM:
            ok_enum = pl.col(f.name).is_between(0, len(f.symbols) - 1)
            checks.append(ok_enum.fill_null(f.nullable))
        elif not f.nullable:
            checks.append(pl.col(f.name).is_not_null())
        if f.kind in (INT, ENUM, LONG, TS):
            checks.append(_varint_in_range(f, offset, lens[i]))
        offset = offset + lens[i]
    return sizes, pl.all_horizontal(*checks).fill_null(False).alias("ok")


def _field_len(f: Field) -> pl.Expr:
    c = pl.col(f.name)
    if f.kind == STRING:
        b = c.str.len_bytes().cast(pl.Int64)
        size = varint_len(b) + b
    elif f.kind == BOOL:
        size = pl.lit(1, pl.Int64)
    elif f.kind == TS:
        size = varint_len(c.dt.epoch("us"))
    else:  # long, int and enum index
        size = varint_len(c.cast(pl.Int64))
    if f.nullable:
        return pl.when(c.is_null()).then(pl.lit(1, pl.Int64)).otherwise(size + 1)
    return size


def _varint_in_range(f: Field, offset: pl.Expr, length: pl.Expr) -> pl.Expr:
    """The raw varint of a number field holds no more bits than its type.

    Polars' reader keeps the low 32 (int) or 64 (long) bits of a longer value, and the
    value it keeps can need as many bytes as the one written (2**31 read as -2**31), so the
    length check above cannot see it. The last byte of a varint of the type's longest
    length carries the top bits: at most 0x0F for an int (4 + 4 * 7 = 32 bits), 0x01 for a
    long (1 + 9 * 7 = 64 bits).
    """
    widest, top = (5, 0x0F) if f.kind in (INT, ENUM) else (10, 0x01)
    start = offset + 1 if f.nullable else offset
    size = length - 1 if f.nullable else length
    last = pl.col("__body").bin.get(start + size - 1, null_on_oob=True)
    ok = pl.when(size == widest).then(last <= top).otherwise(True)
    return ok.fill_null(True) if f.nullable else ok


def _finish_cdr(df: pl.DataFrame) -> pl.DataFrame:
    fields = {f.name: f for f in record_fields("cdr")}
    exprs = []
    for col, dtype in CDR_SCHEMA.items():
        f = fields[col]
        if f.kind == ENUM:
            mapping = dict(enumerate(f.symbols))
            expr = pl.col(col).replace_strict(mapping, return_dtype=pl.String)
        elif f.kind == TS:
            expr = pl.col(col).cast(pl.Int64).cast(TIME)
        else:
            expr = pl.col(col).cast(dtype)
        exprs.append(expr.alias(col))
    return df.select(exprs)


# --------------------------------------------------------------------------- one by one


def _slow_cdrs(
    name: str, bodies: Sequence[bytes], positions: Sequence[int]
) -> tuple[list[dict[str, Any]], list[int], list[tuple[int, str]]]:
    rows: list[dict[str, Any]] = []
    good: list[int] = []
    errors: list[tuple[int, str]] = []
    schema = parsed_plain(name)
    for pos, body in zip(positions, bodies, strict=True):
        reason, rec = read_exact(name, body, schema)
        if rec is None:
            errors.append((pos, reason))
        else:
            rows.append(rec)
            good.append(pos)
    return rows, good, errors


def rows_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """A CDR_SCHEMA frame of CDR records whose timestamps are integer micros."""
    plain = {k: (pl.Int64() if v == TIME else v) for k, v in CDR_SCHEMA.items()}
    df = pl.DataFrame(rows, schema=plain) if rows else pl.DataFrame(schema=plain)
    return df.with_columns(pl.col(c).cast(TIME) for c in CDR_SCHEMA if CDR_SCHEMA[c] == TIME)
