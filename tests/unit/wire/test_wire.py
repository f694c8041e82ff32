"""The Avro/JSON wire codec: exact round trips, framing, and poison messages."""

from __future__ import annotations

import io
import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rater import wire
from rater.core.columns import CDR_SCHEMA
from rater.wire import decode_bulk, encode_bulk, varint
from rater.wire.schemas import record_fields

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def numbered_cdr(i: int, **kw: Any) -> dict[str, Any]:
    """CDR number i: its fields vary with i, to exercise every branch of the codec."""
    rec: dict[str, Any] = {
        "cdr_id": f"c{i}",
        "tenant_id": "acme" if i % 2 else "globex",
        "user_id": None if i % 5 == 0 else f"u{i % 7}",
        "team_id": None if i % 3 == 0 else "t1",
        "kind": ("call", "sms", "ring_through")[i % 3],
        "direction": ("inbound", "outbound")[i % 2],
        "caller": "+33612345678",
        "callee": f"+4420{i:07d}",
        "start_time": T0 + timedelta(seconds=i),
        "answer_time": None if i % 4 == 0 else T0 + timedelta(seconds=i + 3, microseconds=7),
        "end_time": T0 + timedelta(seconds=i + 3600),
        "hold_ms": (i * 997) % 100_000,
        "segments": 1 + i % 3,
    }
    rec.update(kw)
    return rec


def fastavro_bytes(name: str, rec: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(wire.load_schema(name)), rec)
    return out.getvalue()


def oracle(values: list[bytes]) -> wire.DecodeResult:
    """Message-by-message fastavro decoding: what the bulk path must agree with.

    Timestamps are read as plain integers, as any int64 is a valid timestamp-micros.
    """
    plain = json.loads(json.dumps(wire.load_schema("cdr")).replace('"logicalType"', '"x"'))
    # Enums are read as their int index and checked here: fastavro takes a negative index
    # (a valid zigzag varint) as Python does, from the end of the symbols, where Avro
    # readers must refuse it.
    symbols = {}
    for field in plain["fields"]:
        if isinstance(field["type"], dict) and field["type"]["type"] == "enum":
            symbols[field["name"]] = field["type"]["symbols"]
            field["type"] = "int"
    schema = fastavro.parse_schema(plain)
    rows, indices, errors = [], [], []
    for i, v in enumerate(values):
        bio = io.BytesIO(v)
        try:
            rec = fastavro.schemaless_reader(bio, schema, None)
        except Exception:
            errors.append((i, "error"))
            continue
        if bio.tell() != len(v):
            errors.append((i, "trailing"))
            continue
        if any(not 0 <= rec[name] < len(names) for name, names in symbols.items()):
            errors.append((i, "enum index"))
            continue
        rows.append({**rec, **{name: names[rec[name]] for name, names in symbols.items()}})
        indices.append(i)
    ints = {k: (pl.Int64() if k.endswith("_time") else t) for k, t in CDR_SCHEMA.items()}
    frame = pl.DataFrame(rows, schema=ints).cast(CDR_SCHEMA)  # type: ignore[arg-type]
    return wire.DecodeResult(frame=frame, indices=indices, errors=errors)


def test_schemas_load_and_cdr_fields_are_the_contract() -> None:
    names = [f["name"] for f in wire.load_schema("cdr")["fields"]]
    assert names == list(CDR_SCHEMA)
    for name in ("rated", "balance_event", "topup"):
        assert wire.load_schema(name)["namespace"] == "rater"
    assert (wire.schema_dir() / "cdr.avsc").is_file()


def test_encode_cdr_is_byte_identical_to_fastavro() -> None:
    for i in range(50):
        assert wire.encode_cdr(numbered_cdr(i)) == fastavro_bytes("cdr", numbered_cdr(i))


def test_encode_cdrs_bulk_matches_single_and_frames() -> None:
    frame = pl.DataFrame([numbered_cdr(i) for i in range(200)], schema=CDR_SCHEMA)
    bulk = wire.encode_cdrs(frame, schema_id=42)
    assert bulk == [wire.encode_cdr(numbered_cdr(i), schema_id=42) for i in range(200)]
    assert bulk[0][:5] == b"\x00\x00\x00\x00\x2a"


@pytest.mark.parametrize("framed", [False, True])
def test_decode_cdrs_round_trips_exactly(framed: bool) -> None:
    recs = [numbered_cdr(i) for i in range(1000)]
    values = [wire.encode_cdr(r, schema_id=7 if framed else None) for r in recs]
    result = wire.decode_cdrs(values, framed=framed, schema_id=7 if framed else None)
    assert result.errors == []
    assert result.indices == list(range(1000))
    assert result.frame.schema == pl.Schema(CDR_SCHEMA)
    assert result.frame.equals(pl.DataFrame(recs, schema=CDR_SCHEMA))


def test_decode_cdrs_names_each_broken_message() -> None:
    values = [wire.encode_cdr(numbered_cdr(i), schema_id=7) for i in range(600)]
    values[3] = b"\x01" + values[3][1:]
    values[10] = wire.frame_message(wire.encode_cdr(numbered_cdr(10)), 8)
    values[20] = values[20][: len(values[20]) // 2]
    values[30] = values[30] + b"\x00\x01"
    values[40] = b"\x00\x00"
    result = wire.decode_cdrs(values, framed=True, schema_id=7)
    assert result.errors == [
        (3, "bad_magic_byte"),
        (10, "unknown_schema_id"),
        (20, "truncated_avro"),
        (30, "avro_decode_error"),
        (40, "truncated_avro"),
    ]
    good = [i for i in range(600) if i not in (3, 10, 20, 30, 40)]
    assert result.indices == good
    assert result.frame.equals(pl.DataFrame([numbered_cdr(i) for i in good], schema=CDR_SCHEMA))


def test_out_of_range_union_and_enum_indexes_are_rejected_not_misread() -> None:
    body = wire.encode_cdr(numbered_cdr(1))
    # user_id's union index follows cdr_id and tenant_id; 0x33 is no valid branch.
    pos = 1 + len("c1") + 1 + len("acme")
    bad_union = body[:pos] + b"\x33" + body[pos + 1 :]
    values = [wire.encode_cdr(numbered_cdr(i)) for i in range(400)]
    values[100] = bad_union
    result = wire.decode_cdrs(values, framed=False)
    assert result.errors == [(100, "avro_decode_error")]
    assert 100 not in result.indices and len(result.indices) == 399


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    n_bad=st.integers(1, 6),
    mode=st.sampled_from(["flip", "cut", "insert", "garbage"]),
)
def test_bulk_decode_agrees_with_per_message_decoding(seed: int, n_bad: int, mode: str) -> None:
    rng = random.Random(seed)
    values = [wire.encode_cdr(numbered_cdr(i)) for i in range(300)]
    for _ in range(n_bad):
        i = rng.randrange(len(values))
        v = bytearray(values[i])
        if mode == "flip":
            v[rng.randrange(len(v))] = rng.randrange(256)
        elif mode == "cut":
            del v[rng.randrange(len(v)) :]
        elif mode == "insert":
            v.insert(rng.randrange(len(v)), rng.randrange(256))
        else:
            v = bytearray(rng.randbytes(rng.randrange(0, 80)))
        values[i] = bytes(v)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(decode_bulk, "_MIN_BULK", 4)  # exercise bulk decoding down to tiny parts
        got = wire.decode_cdrs(values, framed=False)
    want = oracle(values)
    assert got.indices == want.indices
    assert [i for i, _ in got.errors] == [i for i, _ in want.errors]
    assert got.frame.equals(want.frame)


def test_empty_batch() -> None:
    result = wire.decode_cdrs([], framed=True)
    assert result.frame.height == 0 and result.frame.schema == pl.Schema(CDR_SCHEMA)


def test_decode_cdrs_json_accepts_iso_and_micros() -> None:
    values = [
        b'{"cdr_id":"a","tenant_id":"acme","kind":"call","direction":"outbound",'
        b'"caller":"+331","callee":"+442","start_time":"2025-03-01T12:00:00Z",'
        b'"answer_time":"2025-03-01T13:00:05.000001+01:00","end_time":1740830500000000,'
        b'"hold_ms":5}',
        b"not json",
        b'{"cdr_id":"b","tenant_id":"acme","kind":"fax","direction":"outbound",'
        b'"caller":"+331","callee":"+442","start_time":1,"end_time":2}',
    ]
    result = wire.decode_cdrs_json(values)
    assert result.errors == [(1, "json_decode_error"), (2, "invalid_json_record")]
    row = result.frame.row(0, named=True)
    assert row["start_time"] == T0
    assert row["answer_time"] == T0 + timedelta(seconds=5, microseconds=1)
    assert row["end_time"] == datetime(2025, 3, 1, 12, 1, 40, tzinfo=UTC)
    assert (row["hold_ms"], row["segments"], row["user_id"]) == (5, 1, None)


def rated_row(i: int) -> dict[str, Any]:
    return {
        **numbered_cdr(i),
        "status": ("rated", "unrated", "invalid", "duplicate")[i % 4],
        "reason": None if i % 4 == 0 else "no_rate",
        "plan_id": "pro-eu",
        "rate_prefix": "44" if i % 2 else None,
        "band": "peak" if i % 3 else None,
        "billed_seconds": 60 * i if i % 3 == 0 else None,
        "covered": i % 5,
        "charge_micros": 12_345 * i,
        "charge": str(Decimal(12_345 * i) / 1_000_000),
        "currency": "EUR",
        "balance_after_micros": -5 * i if i % 2 else None,
        "source_topic": "cdrs",
        "source_partition": i % 6,
        "source_offset": 10**12 + i,
    }


def test_encode_rated_matches_fastavro_and_decodes_back() -> None:
    rows = [rated_row(i) for i in range(100)]
    frame = pl.DataFrame(rows).with_columns(pl.col("source_partition").cast(pl.Int32))
    encoded = wire.encode_rated(frame)
    assert encoded == [fastavro_bytes("rated", r) for r in rows]
    assert wire.encode_rated_record(rows[5]) == encoded[5]
    assert wire.decode_rated(encoded[7]) == rows[7]
    assert wire.encode_rated(frame, schema_id=3)[0][:5] == b"\x00\x00\x00\x00\x03"


def test_events_and_topups_round_trip() -> None:
    event = {
        "tenant_id": "acme",
        "event": "low_balance",
        "cdr_id": "c1",
        "balance_micros": 9_000_000,
        "threshold_micros": 10_000_000,
        "recharge_amount_micros": 50_000_000,
        "auto_recharge": True,
        "time": T0,
    }
    assert wire.decode_balance_event(wire.encode_balance_event(event)) == event
    framed = wire.encode_balance_event(event, schema_id=9)
    assert wire.decode_balance_event(framed, framed=True, schema_id=9) == event
    topup = {"tenant_id": "acme", "topup_id": "t1", "amount": Decimal("25.10"), "source": "manual"}
    decoded = wire.decode_topup(wire.encode_topup({**topup, "time": T0}))
    assert decoded["amount"] == "25.10" and Decimal(decoded["amount"]) == Decimal("25.10")
    with pytest.raises(ValueError, match="bad_magic_byte"):
        wire.decode_topup(b"\x05" + framed[1:], framed=True)


def test_encoders_reject_bad_values() -> None:
    with pytest.raises(ValueError):
        wire.encode_cdr(numbered_cdr(1, kind="fax"))
    with pytest.raises(ValueError):
        wire.encode_cdr(numbered_cdr(1, cdr_id=None))
    with pytest.raises(ValueError):
        wire.encode_cdr(numbered_cdr(1, start_time=datetime(2025, 1, 1)))


def test_write_avro_file_is_a_standard_container(tmp_path: Path) -> None:
    recs = [numbered_cdr(i) for i in range(25)]
    path = tmp_path / "cdrs.avro"
    wire.write_avro_file(path, "cdr", [wire.encode_cdr(r) for r in recs], block_size=10)
    with path.open("rb") as fh:
        assert list(fastavro.reader(fh)) == recs


def test_vectorized_varint_length_matches_the_encoder() -> None:
    xs = [0, 1, -1, 63, 64, -64, -65, 2**63 - 1, -(2**63)]
    xs += [s * 2**k + d for k in range(1, 63) for d in (-1, 0, 1) for s in (1, -1)]
    got = pl.DataFrame({"x": xs}, schema={"x": pl.Int64}).select(varint.varint_len(pl.col("x")))
    assert got.to_series().to_list() == [len(varint._varint_slow(x)) for x in xs]


# --------------------------------------------------------------------------- bulk encoders
#
# The bulk encoders pick, per column, a dictionary (few distinct values) or a vectorized
# varint/string encoding; both must be byte-identical to fastavro for any value.

I64 = st.integers(-(2**63), 2**63 - 1)
I32 = st.integers(-(2**31), 2**31 - 1)
TEXT = st.text(max_size=12) | st.sampled_from(["", "é", "日本語", "a" * 200, "\x00\x80"])


def _nullable(s: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | s


CDR_ROW = st.fixed_dictionaries(
    {
        "cdr_id": TEXT,
        "tenant_id": TEXT,
        "user_id": _nullable(TEXT),
        "team_id": _nullable(TEXT),
        "kind": st.sampled_from(["call", "sms", "ring_through"]),
        "direction": st.sampled_from(["inbound", "outbound"]),
        "caller": TEXT,
        "callee": TEXT,
        "start_time": I64,
        "answer_time": _nullable(I64),
        "end_time": I64,
        "hold_ms": I64,
        "segments": I32,
    }
)
RATED_EXTRA = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["rated", "unrated", "invalid", "duplicate"]),
        "reason": _nullable(TEXT),
        "plan_id": _nullable(TEXT),
        "rate_prefix": _nullable(TEXT),
        "band": _nullable(TEXT),
        "billed_seconds": _nullable(I64),
        "covered": _nullable(I64),
        "charge_micros": I64,
        "charge": TEXT,
        "currency": _nullable(TEXT),
        "balance_after_micros": _nullable(I64),
        "source_topic": TEXT,
        "source_partition": I32,
        "source_offset": I64,
    }
)
RATED_ROW = st.builds(lambda a, b: {**a, **b}, CDR_ROW, RATED_EXTRA)


def _dtypes(name: str) -> dict[str, pl.DataType]:
    """Polars dtypes of schema ``name``, timestamps as Int64 micros."""
    kinds = {"string": pl.String(), "enum": pl.String(), "int": pl.Int32()}
    return {f.name: kinds.get(f.kind, pl.Int64()) for f in record_fields(name)}


def _frame(name: str, rows: list[dict[str, Any]], datetimes: bool) -> pl.DataFrame:
    frame = pl.DataFrame(rows, schema=_dtypes(name), orient="row")
    if datetimes:
        ts = [f.name for f in record_fields(name) if f.kind == "ts"]
        # Polars datetimes hold the same int64 micros; only these are exactly representable.
        frame = frame.with_columns(pl.col(ts).cast(pl.Datetime("us", "UTC")))
    return frame


@pytest.fixture(params=["dictionary", "vectorized"])
def encoding(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with dictionary encoding of low-cardinality columns on, and off."""
    if request.param == "vectorized":
        monkeypatch.setattr(encode_bulk, "_SAMPLE_DISTINCT", -1)
    return str(request.param)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    rows=st.lists(RATED_ROW, min_size=1, max_size=30),
    schema_id=st.none() | st.integers(0, 2**31 - 1),
    datetimes=st.booleans(),
)
def test_encode_rated_is_fastavro_with_and_without_cdr_bodies(
    encoding: str, rows: list[dict[str, Any]], schema_id: int | None, datetimes: bool
) -> None:
    frame = _frame("rated", rows, datetimes)
    want = [wire.frame_message(fastavro_bytes("rated", r), schema_id) for r in rows]
    assert wire.encode_rated(frame, schema_id) == want
    cdr_names = [f.name for f in record_fields("cdr")]
    bodies = [fastavro_bytes("cdr", {k: r[k] for k in cdr_names}) for r in rows]
    assert wire.encode_rated(frame, schema_id, cdr_bodies=bodies) == want
    # The CDR columns are not read when the bodies are given.
    tail_only = frame.drop(cdr_names)
    assert wire.encode_rated(tail_only, schema_id, cdr_bodies=bodies) == want


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(rows=st.lists(CDR_ROW, min_size=1, max_size=30), datetimes=st.booleans())
def test_encode_cdrs_is_fastavro(
    encoding: str, rows: list[dict[str, Any]], datetimes: bool
) -> None:
    frame = _frame("cdr", rows, datetimes)
    assert wire.encode_cdrs(frame) == [fastavro_bytes("cdr", r) for r in rows]
    assert wire.encode_cdrs(frame, 5) == [
        wire.frame_message(fastavro_bytes("cdr", r), 5) for r in rows
    ]


def test_bulk_varints_at_every_byte_and_chunk_boundary(encoding: str) -> None:
    edges = [0, 1, -1, 2**63 - 1, -(2**63), 2**63 - 2, -(2**63) + 1]
    for bits in range(1, 64):
        for d in (-2, -1, 0, 1):
            edges += [2**bits + d, -(2**bits) + d]
    edges = [x for x in edges if -(2**63) <= x < 2**63]
    rows = [
        {**rated_row(i), "hold_ms": x, "charge_micros": -x - 1 if x >= 0 else x, "source_offset": x,
         "balance_after_micros": None if i % 3 == 0 else x, "billed_seconds": x // 2}
        for i, x in enumerate(edges)
    ]  # fmt: skip
    frame = pl.DataFrame(rows).with_columns(pl.col("source_partition").cast(pl.Int32))
    assert wire.encode_rated(frame) == [fastavro_bytes("rated", r) for r in rows]


def test_long_strings_need_multi_byte_lengths(encoding: str) -> None:
    # 20,000 bytes: a length varint of 3 bytes (two 14-bit chunks).
    rows = [
        numbered_cdr(i, caller="x" * n, team_id="é" * n)
        for i, n in enumerate([0, 63, 64, 8191, 8192, 20_000])
    ]
    frame = pl.DataFrame(rows, schema=CDR_SCHEMA)
    assert wire.encode_cdrs(frame) == [fastavro_bytes("cdr", r) for r in rows]


def test_bulk_encoders_reject_what_avro_cannot_hold() -> None:
    frame = pl.DataFrame([rated_row(i) for i in range(10)]).with_columns(
        pl.col("source_partition").cast(pl.Int32)
    )
    bad = {
        "status": pl.lit("maybe"),
        "charge": pl.lit(None, pl.String),
        "source_partition": pl.lit(2**31, pl.Int64),
        "charge_micros": pl.lit(1.5),
    }
    for column, value in bad.items():
        with pytest.raises(ValueError, match=column):
            wire.encode_rated(frame.with_columns(value.alias(column)))
    with pytest.raises(ValueError, match="lacks"):
        wire.encode_rated(frame.drop("currency"))
    with pytest.raises(ValueError, match="bodies"):
        wire.encode_rated(frame, cdr_bodies=[b""] * 9)
    assert wire.encode_rated(frame.head(0), cdr_bodies=[]) == []
    assert wire.encode_cdrs(pl.DataFrame(schema=CDR_SCHEMA)) == []


def test_large_batches_use_both_encodings_and_agree() -> None:
    # 5,000 rows: cdr_id and source_offset are high-cardinality, the rest dictionary-coded.
    rows = [rated_row(i) for i in range(5000)]
    frame = pl.DataFrame(rows).with_columns(pl.col("source_partition").cast(pl.Int32))
    bodies = wire.unframe_bodies(wire.encode_cdrs(frame, schema_id=2), framed=True)
    got = wire.encode_rated(frame, 4, cdr_bodies=bodies)
    assert got == [wire.frame_message(fastavro_bytes("rated", r), 4) for r in rows]
    assert wire.unframe_bodies(bodies, framed=False) == bodies


def test_a_poison_frame_prints_no_rust_panic(capfd: pytest.CaptureFixture[str]) -> None:
    """A string length of ~2 GB makes Polars' Avro reader panic; the panic is caught (the
    batch is split until the poison is found) and its message must not reach stderr."""
    good = [wire.encode_cdr(numbered_cdr(i)) for i in range(600)]
    poison = b"\xfe\xff\xff\xff\x0f" + b"x" * 40
    result = wire.decode_cdrs([*good[:300], poison, *good[300:]], framed=False)
    assert len(result.indices) == 600
    assert result.errors == [(300, "truncated_avro")]
    err = capfd.readouterr().err
    assert "panicked" not in err and "backtrace" not in err


def _varint_any(n: int) -> bytes:
    z = n * 2 if n >= 0 else -n * 2 - 1
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    return bytes([*out, z])


def _with_numbers(hold_ms: int, segments: int) -> bytes:
    """A CDR body whose last two fields (hold_ms, segments) are written by hand."""
    body = wire.encode_cdr({**numbered_cdr(1), "hold_ms": 0, "segments": 1})
    assert body.endswith(b"\x00\x02")
    return body[:-2] + _varint_any(hold_ms) + _varint_any(segments)


@pytest.mark.parametrize(
    ("hold_ms", "segments"),
    [(0, 2**31), (0, -(2**31) - 1), (0, 2**40), (2**64, 1), (-(2**63) - 1, 1), (2**70, 1)],
)
@pytest.mark.parametrize("bulk", [True, False])
def test_numbers_beyond_their_avro_type_are_undecodable(
    hold_ms: int, segments: int, bulk: bool
) -> None:
    """Polars keeps the low bits of an oversized varint (2**31 read as -2**31) and fastavro
    reads any size: both must be refused, in bulk and one by one alike."""
    values = [wire.encode_cdr(numbered_cdr(i)) for i in range(600 if bulk else 3)]
    values[1] = _with_numbers(hold_ms, segments)
    result = wire.decode_cdrs(values, framed=False)
    assert [i for i, _ in result.errors] == [1]
    assert 1 not in result.indices


@pytest.mark.parametrize("index_byte", [b"\x01", b"\x03", b"\x7f"])
def test_a_negative_enum_index_is_undecodable(index_byte: bytes) -> None:
    body = wire.encode_cdr(numbered_cdr(1))
    pos = body.index(b"\x18+336") - 1  # direction: the byte before the caller
    bad = body[:pos] + index_byte + body[pos + 1 :]
    for n in (3, 600):
        values = [wire.encode_cdr(numbered_cdr(i)) for i in range(n)]
        values[1] = bad
        assert [i for i, _ in wire.decode_cdrs(values, framed=False).errors] == [1]
    with pytest.raises(ValueError):
        wire.decode_cdr(bad)


def test_encoders_refuse_numbers_beyond_their_avro_type() -> None:
    for field, value in (("segments", 2**31), ("hold_ms", 2**63), ("start_time", -(2**63) - 1)):
        with pytest.raises(ValueError):
            wire.encode_cdr({**numbered_cdr(1), field: value})
