"""Vectorized encoding of whole frames: CDRs and rated records, one message per row.

Frames are encoded column-wise by Polars into one Binary column: each field becomes a
Binary expression and a row is their concatenation (``+`` on Binary, the costly step, so
each field is built with as few of them as possible).

- Low-cardinality columns (statuses, plan ids, prefixes, currencies, small counts, ...)
  are dictionary-encoded: their distinct values are encoded once in Python and each row
  gets its complete field bytes, union branch included, from one ``replace_strict``.
- Other integers are varints built from 14-bit chunks looked up in a table: a few integer
  operations and one gather per chunk, with only as many chunks as the column's largest
  value needs (see :mod:`rater.wire.varint`). Other strings are a length varint plus the
  UTF-8 bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import polars as pl

from rater.core.columns import TIME
from rater.wire.encode import encode_column
from rater.wire.framing import confluent_header
from rater.wire.schemas import (
    BOOL,
    ENUM,
    INT,
    INT32_RANGE,
    LONG,
    STRING,
    TS,
    Field,
    record_fields,
)
from rater.wire.varint import chunks_for, concat_binary, varint_bytes, zigzag

__all__ = ["encode_cdrs", "encode_rated"]

_U64 = pl.UInt64
# A column is dictionary-encoded when its first _SAMPLE rows hold at most _SAMPLE_DISTINCT
# values and the whole column at most _MAX_DISTINCT (each distinct value costs Python time).
_SAMPLE = 2048
_SAMPLE_DISTINCT = 256
_MAX_DISTINCT = 4096
# The kinds encoded from their zigzag value.
_NUMERIC = (LONG, INT, TS)


def encode_cdrs(frame: pl.DataFrame, schema_id: int | None = None) -> list[bytes]:
    """Every row of a CDR frame (CDR_SCHEMA columns) as one message each."""
    return _encode_fields("cdr", record_fields("cdr"), frame, confluent_header(schema_id))


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
    prefix = confluent_header(schema_id)
    if cdr_bodies is None:
        return _encode_fields("rated", record_fields("rated"), frame, prefix)
    if len(cdr_bodies) != frame.height:
        raise ValueError(f"{len(cdr_bodies)} CDR bodies for {frame.height} rated rows")
    return _encode_fields("rated", _rated_tail(), frame, prefix, cdr_bodies)


@cache
def _rated_tail() -> tuple[Field, ...]:
    """The rated fields after the CDR ones (the rated schema starts with the CDR's fields)."""
    cdr, rated = record_fields("cdr"), record_fields("rated")
    if rated[: len(cdr)] != cdr:
        raise ValueError("rated.avsc does not start with exactly the fields of cdr.avsc")
    return rated[len(cdr) :]


def _encode_fields(
    name: str,
    fields: Sequence[Field],
    frame: pl.DataFrame,
    prefix: bytes = b"",
    heads: Sequence[bytes] | None = None,
) -> list[bytes]:
    """Per row: ``prefix``, then ``heads[row]`` when given, then the Avro of ``fields``."""
    work, encodings = _plan_fields(name, fields, frame)
    if frame.height == 0:
        return []
    row = concat_binary([_field_bytes(e) for e in encodings])
    if heads is not None:
        row = pl.lit(pl.Series("heads", heads, dtype=pl.Binary)) + row
    if prefix:
        row = pl.lit(prefix, pl.Binary) + row
    out: list[bytes] = work.select(row.alias("avro")).to_series().to_list()
    return out


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class _FieldEncoding:
    """How to encode one field: the column of its value (and of its zigzag value, for
    numbers), and either its distinct values (a dictionary) or the varint chunks its
    largest number (or string length) needs."""

    field: Field
    value: pl.Expr
    zigzag: pl.Expr
    chunks: int = 1
    distinct: list[Any] | None = None


def _plan_fields(
    name: str, fields: Sequence[Field], frame: pl.DataFrame
) -> tuple[pl.DataFrame, list[_FieldEncoding]]:
    """Validate the columns of ``fields`` and choose how to encode each.

    Returns a frame of the converted values (``v<i>``) and zigzag values (``z<i>``, for
    numbers and timestamps) that the encodings' expressions refer to: computed once here,
    as a number's varint uses its zigzag value several times.
    """
    missing = [f.name for f in fields if f.name not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks the {name} columns {missing}")
    work = frame.select(_value_columns(name, fields, frame))
    stats = _stat_exprs(fields)
    row = work.select(stats).row(0, named=True) if stats else {}
    _check_stats(name, fields, row)
    distinct = _dictionaries(work, fields, row)
    encodings = [
        _FieldEncoding(
            f, pl.col(f"v{i}"), pl.col(f"z{i}"), chunks_for(row.get(f"{i}:z")), distinct.get(i)
        )
        for i, f in enumerate(fields)
    ]
    return work, encodings


def _value_columns(name: str, fields: Sequence[Field], frame: pl.DataFrame) -> list[pl.Expr]:
    """The expressions of the ``v<i>`` and ``z<i>`` columns of :func:`_plan_fields`."""
    columns: list[pl.Expr] = []
    for i, f in enumerate(fields):
        v = _field_value(f, frame, name)
        columns.append(v.alias(f"v{i}"))
        if f.kind in _NUMERIC:
            columns.append(zigzag(v).alias(f"z{i}"))
    return columns


def _field_value(f: Field, frame: pl.DataFrame, name: str) -> pl.Expr:
    """The column of ``f`` as Int64 (numbers, timestamps), String or Boolean."""
    s = frame.schema[f.name]
    c = pl.col(f.name)
    if f.kind == TS:
        return c if s == pl.Int64 else c.cast(TIME).dt.epoch("us")
    if f.kind in (LONG, INT):
        if not (s.is_integer() or s == pl.Null):
            raise ValueError(f"{name}.{f.name}: not an integer column ({s})")
        return c.cast(pl.Int64)
    if f.kind in (STRING, ENUM):
        if s not in (pl.String, pl.Categorical, pl.Null) and not isinstance(s, pl.Enum):
            raise ValueError(f"{name}.{f.name}: not a string column ({s})")
        return c.cast(pl.String)
    if s not in (pl.Boolean, pl.Null):
        raise ValueError(f"{name}.{f.name}: not a boolean column ({s})")
    return c.cast(pl.Boolean)


def _stat_exprs(fields: Sequence[Field]) -> list[pl.Expr]:
    """One-row statistics of the value columns, named ``<i>:<stat>``: nulls of required
    fields, values outside an enum, distinct values in the sample, the largest zigzag value
    (twice the byte length of a string), and the range of an int."""
    stats: list[pl.Expr] = []
    for i, f in enumerate(fields):
        v = pl.col(f"v{i}")
        if not f.nullable:
            stats.append(v.null_count().alias(f"{i}:nulls"))
        if f.kind == ENUM:
            stats.append((v.is_not_null() & ~v.is_in(list(f.symbols))).sum().alias(f"{i}:bad"))
        if f.kind in (STRING, LONG, INT):
            stats.append(v.head(_SAMPLE).n_unique().alias(f"{i}:sample"))
        if f.kind == STRING:
            stats.append((v.str.len_bytes().cast(pl.Int64) * 2).max().alias(f"{i}:z"))
        elif f.kind in _NUMERIC:
            stats.append(pl.col(f"z{i}").max().alias(f"{i}:z"))
        if f.kind == INT:
            stats += [v.min().alias(f"{i}:min"), v.max().alias(f"{i}:max")]
    return stats


def _check_stats(name: str, fields: Sequence[Field], row: dict[str, Any]) -> None:
    """Raise ValueError for a null required value, an unknown symbol or an int out of range."""
    for i, f in enumerate(fields):
        if row.get(f"{i}:nulls"):
            raise ValueError(f"{name}.{f.name} is null in {row[f'{i}:nulls']} rows")
        if row.get(f"{i}:bad"):
            raise ValueError(f"{name}.{f.name}: values not in {list(f.symbols)}")
        lo, hi = row.get(f"{i}:min"), row.get(f"{i}:max")
        if (lo is not None and lo < INT32_RANGE[0]) or (hi is not None and hi > INT32_RANGE[1]):
            raise ValueError(f"{name}.{f.name}: value out of the Avro int range")


def _dictionaries(
    work: pl.DataFrame, fields: Sequence[Field], row: dict[str, Any]
) -> dict[int, list[Any]]:
    """The distinct non-null values of each field (by index) to dictionary-encode."""
    few = [i for i in range(len(fields)) if row.get(f"{i}:sample", _SAMPLE + 1) <= _SAMPLE_DISTINCT]
    if not few:
        return {}
    found = work.select(
        pl.col(f"v{i}").unique().head(_MAX_DISTINCT + 1).implode().alias(str(i)) for i in few
    ).row(0)
    return {
        i: [x for x in xs if x is not None]
        for i, xs in zip(few, found, strict=True)
        if len(xs) <= _MAX_DISTINCT
    }


# --------------------------------------------------------------------------- field bytes


def _field_bytes(e: _FieldEncoding) -> pl.Expr:
    """The Avro bytes of one field, for every row."""
    f, value = e.field, e.value
    if e.distinct is not None or f.kind == ENUM:
        keys = list(f.symbols) if e.distinct is None else e.distinct
        # Every non-null value is a key (enums were checked), so the default only ever
        # meets nulls; without one, Polars mistypes the result of a String -> Binary map.
        enc = value.replace_strict(
            keys, encode_column(f, keys), default=None, return_dtype=pl.Binary
        )
    elif f.kind == STRING:
        size = value.str.len_bytes().cast(_U64) * pl.lit(2, _U64)
        enc = varint_bytes(size, e.chunks, f.nullable) + value.cast(pl.Binary)
    elif f.kind == BOOL:
        bools = [b"\x00", b"\x01", b"\x02\x00", b"\x02\x01"]
        table = pl.lit(pl.Series(bools[2:] if f.nullable else bools[:2], dtype=pl.Binary))
        enc = table.gather(value.cast(pl.UInt32))
    else:
        enc = varint_bytes(e.zigzag, e.chunks, f.nullable)
    # A null value has made ``enc`` null: the null branch of the union.
    return enc.fill_null(pl.lit(b"\x00")) if f.nullable else enc
