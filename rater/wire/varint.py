"""Avro's zigzag varints: one at a time, and vectorized as Polars expressions.

The vectorized varint of a column is built from 14-bit chunks looked up in a table (see
:func:`chunk_table`): a few integer operations and one gather per chunk, with only as many
chunks as the column's largest value needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import polars as pl

__all__ = [
    "chunk_table",
    "chunks_for",
    "concat_binary",
    "has_non_minimal_varint",
    "varint",
    "varint_bytes",
    "varint_len",
    "zigzag",
]

# --------------------------------------------------------------------------- one at a time


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


def varint(n: int) -> bytes:
    """The zigzag varint of ``n`` (small values from a table)."""
    if -4096 <= n < 4096:
        return _small_varints()[n + 4096]
    return _varint_slow(n)


# A varint byte with the continuation bit set followed by 0x00 is the only way to write a
# non-minimal varint; its absence from a block guarantees consumed length == re-encoded length.
# Found with one translate + one memmem: bytes >= 0x80 become 0x80, other non-zero bytes 0x01.
_VARINT_TABLE = bytes([0] + [1] * 127 + [0x80] * 128)
_NON_MINIMAL_VARINT = b"\x80\x00"


def has_non_minimal_varint(data: bytes) -> bool:
    """True when ``data`` may hold a varint that is not minimally encoded."""
    return data.translate(_VARINT_TABLE).find(_NON_MINIMAL_VARINT) >= 0


# --------------------------------------------------------------------------- vectorized

_CHUNK_BITS = 14
_CHUNK = 1 << _CHUNK_BITS
_U64 = pl.UInt64
# Sections of the chunk table (see chunk_table).
_MORE, _LAST, _ABSENT, _MORE_SOME, _LAST_SOME = range(5)


@cache
def chunk_table() -> pl.Series:
    """Varint bytes of one 14-bit chunk ``c`` at index ``c + _CHUNK * section``.

    _MORE: more chunks follow (two bytes, both with the continuation bit); _LAST: the last
    chunk (minimal: one byte when ``c`` < 128); _ABSENT: empty; _MORE_SOME and _LAST_SOME:
    as _MORE and _LAST after the union branch byte of a present nullable value.
    """
    more = [bytes([(c & 0x7F) | 0x80, (c >> 7) | 0x80]) for c in range(_CHUNK)]
    last = [bytes([c]) if c < 0x80 else bytes([(c & 0x7F) | 0x80, c >> 7]) for c in range(_CHUNK)]
    some = [b"\x02" + b for b in (*more, *last)]
    return pl.Series("varint", [*more, *last, *([b""] * _CHUNK), *some], dtype=pl.Binary)


def zigzag(x: pl.Expr) -> pl.Expr:
    """The zigzag value of an Int64 expression, as UInt64 (exact at both int64 extremes)."""
    neg = x < 0
    y = pl.when(neg).then(-(x + 1)).otherwise(x).cast(_U64)
    return y * pl.lit(2, _U64) + neg.cast(_U64)


def chunks_for(max_zigzag: int | None) -> int:
    """The 14-bit chunks the varint of a zigzag value up to ``max_zigzag`` needs."""
    bits = max(max_zigzag or 0, 1).bit_length()
    return -(-bits // _CHUNK_BITS)


def varint_bytes(z: pl.Expr, chunks: int, nullable: bool) -> pl.Expr:
    """The varint of UInt64 expression ``z`` (all values below 2**(14 * chunks)); when
    ``nullable``, preceded by the union branch byte of a present value (null stays null)."""
    table = pl.lit(chunk_table())
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
    return concat_binary(pieces)


def concat_binary(parts: Sequence[pl.Expr]) -> pl.Expr:
    """Binary concatenation as a balanced tree: each byte is copied log2(len(parts)) times
    instead of up to len(parts) times by a left fold."""
    if len(parts) == 1:
        return parts[0]
    mid = len(parts) // 2
    return concat_binary(parts[:mid]) + concat_binary(parts[mid:])


def varint_len(e: pl.Expr) -> pl.Expr:
    """Bytes of the zigzag varint of an Int64 expression (vectorized).

    zigzag(x) has one bit more than y = x ^ (x >> 63) (i.e. x or -x-1), so its varint
    takes ceil((bit_length(y) + 1) / 7) bytes, at least one.
    """
    y = pl.when(e >= 0).then(e).otherwise(-e - 1)
    return ((65 - y.bitwise_leading_zeros().cast(pl.Int64) + 6) // 7).clip(lower_bound=1)
