"""CDRs written with other versions of the CDR schema: which versions the rater can read,
and decoding a poll batch whose messages name several writer schemas.

With a schema registry, each CDR's Confluent header names the schema it was written with.
:func:`classify_writer` tells, from that schema's text, how such messages are read:

- the reader's own schema (``schemas/cdr.avsc``, compared in Avro's canonical form): the
  bulk decoder's fast path (:mod:`rater.wire.decode_bulk`);
- another record the reader can resolve (fields added with defaults, fields the reader
  does not know, int promoted to long, enum symbols the reader has): decoded message by
  message with fastavro's schema resolution, then checked like every decode (the body is
  exactly one writer record, and the reader's view fits the reader's types);
- anything else: its messages are dead-lettered as ``incompatible_schema``.

:func:`decode_cdrs_by_writer` groups a batch by schema id and decodes each group its way;
the usual batch (one id, the reader's schema) costs one look at the headers more than
:func:`rater.wire.decode_cdrs`.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import fastavro
import polars as pl

from rater.wire.decode_bulk import DecodeResult, decode_cdrs, rows_frame
from rater.wire.encode import encode_one
from rater.wire.framing import MAGIC_BYTE, uniform_header
from rater.wire.schemas import load_schema, parsed_plain

__all__ = ["Writer", "classify_writer", "decode_cdrs_by_writer"]


@dataclass(frozen=True)
class Writer:
    """How the messages of one writer schema id are read: as the reader's own schema, with
    ``schema`` (fastavro-parsed, logical types removed) resolved onto the reader's, or not
    at all (``problem`` is the dead-letter reason)."""

    same_as_reader: bool = False
    schema: Any = None
    problem: str | None = None


UNKNOWN = Writer(problem="unknown_schema_id")
INCOMPATIBLE = Writer(problem="incompatible_schema")
READER = Writer(same_as_reader=True)


def classify_writer(schema_text: str, schema_type: str = "AVRO") -> Writer:
    """How CDRs written with the schema ``schema_text`` are read (see the module doc)."""
    if schema_type.upper() != "AVRO":
        return INCOMPATIBLE
    try:
        raw = json.loads(schema_text)
        parsed = fastavro.parse_schema(_strip_logical(raw))
        canonical = fastavro.schema.to_parsing_canonical_form(fastavro.parse_schema(raw))
    except Exception:  # not JSON, not Avro: nothing the rater can read
        return INCOMPATIBLE
    if canonical == _reader_canonical():
        return READER
    if _resolution_problem(raw, load_schema("cdr")) is not None:
        return INCOMPATIBLE
    return Writer(schema=parsed)


@cache
def _reader_canonical() -> str:
    return str(fastavro.schema.to_parsing_canonical_form(fastavro.parse_schema(load_schema("cdr"))))


def _strip_logical(t: Any) -> Any:
    if isinstance(t, list):
        return [_strip_logical(x) for x in t]
    if isinstance(t, dict):
        if "logicalType" in t and t.get("type") in ("int", "long", "bytes", "fixed", "string"):
            return {k: v for k, v in t.items() if k != "logicalType"}
        return {k: _strip_logical(v) for k, v in t.items()}
    return t


_PROMOTIONS = {("int", "long"), ("int", "float"), ("int", "double"), ("long", "float")}


def _resolution_problem(writer: Any, reader: dict[str, Any]) -> str | None:
    """Why Avro cannot resolve ``writer`` records onto the (flat) ``reader``, or None."""
    if not isinstance(writer, dict) or writer.get("type") != "record":
        return "not a record"
    if writer.get("name", "").split(".")[-1] != reader["name"]:
        return "another record name"
    fields = {f["name"]: f for f in writer.get("fields", [])}
    for rf in reader["fields"]:
        wf = fields.get(rf["name"]) or _by_alias(fields, rf)
        if wf is None:
            if "default" not in rf:
                return f"no {rf['name']} and no default"
            continue
        problem = _type_problem(wf["type"], rf["type"])
        if problem:
            return f"{rf['name']}: {problem}"
    return None


def _by_alias(fields: dict[str, Any], rf: dict[str, Any]) -> Any:
    for alias in rf.get("aliases", []):
        if alias in fields:
            return fields[alias]
    return None


def _type_problem(w: Any, r: Any) -> str | None:
    if isinstance(r, list):  # reader [null, T]: every writer branch must fit a reader branch
        branches = w if isinstance(w, list) else [w]
        for b in branches:
            if all(_type_problem(b, rb) for rb in r):
                return f"writer branch {_name(b)} fits no reader branch"
        return None
    if isinstance(w, list):  # a union written, a plain type read: nulls could not be read
        return "writer union read as a plain type"
    wn, rn = _name(w), _name(r)
    if wn == rn == "enum":
        missing = set(w["symbols"]) - set(r["symbols"])
        return f"enum symbols {sorted(missing)} unknown" if missing and "default" not in r else None
    if wn == rn or (wn, rn) in _PROMOTIONS:
        return None
    return f"{wn} cannot be read as {rn}"


def _name(t: Any) -> str:
    return str(t.get("type")) if isinstance(t, dict) else str(t)


# --------------------------------------------------------------------------- decoding


def decode_cdrs_by_writer(
    values: Sequence[bytes], writer_of: Callable[[int], Writer]
) -> DecodeResult:
    """Decode Confluent-framed CDR messages, each with the writer schema its id names.

    ``writer_of(schema_id)`` says how an id's messages are read (it may raise, e.g. when
    the registry cannot be reached: nothing is dead-lettered then). Rows come in input
    order, as from :func:`rater.wire.decode_cdrs`.
    """
    if values and uniform_header(values, None):
        schema_id = int.from_bytes(values[0][1:5], "big")
        writer = writer_of(schema_id)
        if writer.same_as_reader:  # the usual batch: one id, the reader's own schema
            return decode_cdrs(values, framed=True, schema_id=schema_id)
    groups: dict[int, list[int]] = {}
    errors: list[tuple[int, str]] = []
    for i, v in enumerate(values):
        if len(v) < 5:
            errors.append((i, "bad_magic_byte" if v[:1] != b"\x00" else "truncated_avro"))
        elif v[0] != MAGIC_BYTE:
            errors.append((i, "bad_magic_byte"))
        else:
            groups.setdefault(int.from_bytes(v[1:5], "big"), []).append(i)
    pieces: list[pl.DataFrame] = []
    indices: list[int] = []
    for schema_id, positions in groups.items():
        writer = writer_of(schema_id)
        if writer.problem is not None:
            errors += [(i, writer.problem) for i in positions]
            continue
        if writer.same_as_reader:
            res = decode_cdrs([values[i] for i in positions], framed=True, schema_id=schema_id)
            part, good, bad = res.frame, [positions[j] for j in res.indices], res.errors
            errors += [(positions[j], reason) for j, reason in bad]
        else:
            part, good, resolved_errors = _resolve_all(writer.schema, values, positions)
            errors += resolved_errors
        pieces.append(part)
        indices += good
    return _in_input_order(pieces, indices, errors)


def _resolve_all(
    writer: Any, values: Sequence[bytes], positions: list[int]
) -> tuple[pl.DataFrame, list[int], list[tuple[int, str]]]:
    rows: list[dict[str, Any]] = []
    good: list[int] = []
    errors: list[tuple[int, str]] = []
    for i in positions:
        reason, rec = _resolve_one(writer, values[i][5:])
        if rec is None:
            errors.append((i, reason))
        else:
            rows.append(rec)
            good.append(i)
    return rows_frame(rows), good, errors


def _resolve_one(writer: Any, body: bytes) -> tuple[str, dict[str, Any] | None]:
    """One body read as ``writer`` and resolved onto the reader, proven exact."""
    reader = parsed_plain("cdr")
    try:
        bio = io.BytesIO(body)
        as_written = fastavro.schemaless_reader(bio, writer, None)
        if bio.tell() != len(body):
            return "avro_decode_error", None
        again = io.BytesIO()
        fastavro.schemaless_writer(again, writer, as_written)
        if again.getvalue() != body:  # a lenient read (negative index, ...): not one record
            return "avro_decode_error", None
        rec = fastavro.schemaless_reader(io.BytesIO(body), writer, reader)
    except (EOFError, struct.error):
        return "truncated_avro", None
    except Exception:  # fastavro raises many types on garbage; all mean the same here
        return "avro_decode_error", None
    if not isinstance(rec, dict):
        return "avro_decode_error", None
    try:
        encode_one("cdr", rec, None)  # the reader's view fits the reader's types and ranges
    except (ValueError, TypeError, OverflowError, UnicodeError):
        return "avro_decode_error", None
    return "", rec


def _in_input_order(
    pieces: list[pl.DataFrame], indices: list[int], errors: list[tuple[int, str]]
) -> DecodeResult:
    frame = pl.concat(pieces, how="vertical") if pieces else rows_frame([])
    order = sorted(range(len(indices)), key=indices.__getitem__)
    if order != list(range(len(indices))):
        frame = frame[order]
        indices = [indices[j] for j in order]
    errors.sort()
    return DecodeResult(frame=frame, indices=indices, errors=errors)
