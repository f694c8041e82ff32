"""CDRs written with other versions of the CDR schema (a registry's writer schemas)."""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro
import polars as pl
import pytest

from rater import wire
from rater.core.columns import CDR_SCHEMA
from tests.builders import cdr, cdr_frame

READER_TEXT = wire.raw_schema("cdr")


def _v2() -> dict[str, Any]:
    """A newer version: one field added at the end (with a default), segments widened."""
    raw = json.loads(READER_TEXT)
    raw["fields"].append({"name": "site", "type": ["null", "string"], "default": None})
    for f in raw["fields"]:
        if f["name"] == "segments":
            f["type"] = "int"
    # A field the reader lacks, in the middle: the reader must skip its bytes.
    raw["fields"].insert(3, {"name": "trunk", "type": "string", "default": ""})
    return raw


def _write(schema: dict[str, Any], record: dict[str, Any], schema_id: int) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), record)
    return wire.frame_message(out.getvalue(), schema_id)


def _records(n: int) -> list[dict[str, Any]]:
    return [cdr(f"w{i}", tenant=("acme", "globex")[i % 2], seconds=10 + i) for i in range(n)]


def test_classify_writer() -> None:
    assert wire.classify_writer(READER_TEXT).same_as_reader
    # The same schema written otherwise (spacing, docs) is still the reader's.
    assert wire.classify_writer(json.dumps(json.loads(READER_TEXT), indent=4)).same_as_reader
    v2 = wire.classify_writer(json.dumps(_v2()))
    assert not v2.same_as_reader and v2.schema is not None and v2.problem is None
    no_caller = json.loads(READER_TEXT)
    no_caller["fields"] = [f for f in no_caller["fields"] if f["name"] != "caller"]
    assert wire.classify_writer(json.dumps(no_caller)).problem == "incompatible_schema"
    caller_is_long = json.loads(READER_TEXT)
    for f in caller_is_long["fields"]:
        if f["name"] == "caller":
            f["type"] = "long"
    assert wire.classify_writer(json.dumps(caller_is_long)).problem == "incompatible_schema"
    more_kinds = json.loads(READER_TEXT)
    more_kinds["fields"][4]["type"]["symbols"].append("fax")
    assert wire.classify_writer(json.dumps(more_kinds)).problem == "incompatible_schema"
    # A long cannot be read as the reader's int (a value could not fit).
    assert wire.classify_writer(json.dumps(_v2_long_segments())).problem == "incompatible_schema"
    assert wire.classify_writer('syntax = "proto3";', "PROTOBUF").problem == "incompatible_schema"
    assert wire.classify_writer("{not json").problem == "incompatible_schema"


def test_a_batch_of_several_writer_versions_decodes_in_input_order() -> None:
    v2 = _v2()
    writers = {
        1: wire.classify_writer(READER_TEXT),
        2: wire.classify_writer(json.dumps(v2)),
        3: wire.Writer(problem="incompatible_schema"),
    }
    asked: list[int] = []

    def writer_of(schema_id: int) -> wire.Writer:
        asked.append(schema_id)
        return writers.get(schema_id, wire.Writer(problem="unknown_schema_id"))

    recs = _records(12)
    values = []
    for i, rec in enumerate(recs):
        if i % 3 == 0:
            values.append(wire.encode_cdr(rec, schema_id=1))
        else:
            values.append(_write(v2, {**rec, "site": f"s{i}", "trunk": "t"}, 2))
    values[4] = wire.encode_cdr(recs[4], schema_id=3)
    values[5] = wire.encode_cdr(recs[5], schema_id=99)
    values[7] = b"\x01" + values[7][1:]  # bad magic byte
    values[8] = values[8][:20]  # truncated in the middle of a v2 record
    result = wire.decode_cdrs_by_writer(values, writer_of)
    assert result.errors == [
        (4, "incompatible_schema"),
        (5, "unknown_schema_id"),
        (7, "bad_magic_byte"),
        (8, "truncated_avro"),
    ]
    assert result.indices == [0, 1, 2, 3, 6, 9, 10, 11]
    want = cdr_frame([recs[i] for i in result.indices]).select(list(CDR_SCHEMA))
    assert result.frame.select(list(CDR_SCHEMA)).equals(want)
    assert sorted(set(asked)) == [1, 2, 3, 99]


def test_one_id_of_the_reader_schema_takes_the_bulk_path() -> None:
    recs = _records(600)
    values = [wire.encode_cdr(r, schema_id=7) for r in recs]
    result = wire.decode_cdrs_by_writer(values, lambda _id: wire.Writer(same_as_reader=True))
    plain = wire.decode_cdrs(values, framed=True, schema_id=7)
    assert result.frame.equals(plain.frame) and result.indices == list(range(600))


@pytest.mark.parametrize("tamper", ["negative_enum", "trailing_bytes"])
def test_a_newer_version_is_read_exactly_or_dead_lettered(tamper: str) -> None:
    v2 = _v2()
    writer = wire.classify_writer(json.dumps(v2))
    rec = {**_records(1)[0], "site": None, "trunk": ""}
    good = _write(v2, rec, 2)
    body = bytearray(good[5:])
    if tamper == "negative_enum":
        # kind is the 6th field; after cdr_id, tenant_id, user_id (null), trunk (""),
        # team_id (null): find the enum byte by re-encoding with another kind.
        other = bytes(_write(v2, {**rec, "kind": "sms"}, 2)[5:])
        pos = next(i for i, (a, b) in enumerate(zip(body, other, strict=True)) if a != b)
        body[pos] = 0x01  # zigzag -1
    else:
        body += b"\x00"
    result = wire.decode_cdrs_by_writer([wire.frame_message(bytes(body), 2)], lambda _id: writer)
    assert result.frame.height == 0 and result.errors == [(0, "avro_decode_error")]
    ok = wire.decode_cdrs_by_writer([good], lambda _id: writer)
    assert ok.errors == [] and ok.frame.height == 1


def _v2_long_segments() -> dict[str, Any]:
    raw = _v2()
    for f in raw["fields"]:
        if f["name"] == "segments":
            f["type"] = "long"
    return raw


def test_rows_frame_of_resolved_records_matches_the_cdr_schema() -> None:
    v2 = _v2()
    writer = wire.classify_writer(json.dumps(v2))
    recs = _records(3)
    values = [_write(v2, {**r, "site": "x", "trunk": "y"}, 2) for r in recs]
    frame = wire.decode_cdrs_by_writer(values, lambda _id: writer).frame
    assert dict(frame.schema) == dict(pl.DataFrame(schema=CDR_SCHEMA).schema)
