"""CDR files a careless or malicious user may give ``rater rate-file``.

Every file either rates (exit 0; a record with absurd values is kept and marked
``invalid``) or stops with exit status 2 and one line naming the file, the line or
record and the fix. Never a traceback.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import fastavro
import polars as pl
import pytest

from rater.batch import read_cdrs
from rater.cli import main
from rater.core.columns import CDR_SCHEMA

EXAMPLE_CONFIG = Path(__file__).resolve().parents[3] / "config"
FIELDS = list(CDR_SCHEMA)
GOOD = {
    "cdr_id": "c1",
    "tenant_id": "acme",
    "user_id": "u1",
    "team_id": "t1",
    "kind": "call",
    "direction": "outbound",
    "caller": "+33100000000",
    "callee": "+33612345678",
    "start_time": "2026-11-02T10:00:00Z",
    "answer_time": "2026-11-02T10:00:05Z",
    "end_time": "2026-11-02T10:02:00Z",
    "hold_ms": "1000",
    "segments": "1",
}
T0 = dt.datetime(2026, 11, 2, 10, tzinfo=dt.UTC)


def _rate(source: Path, out: Path, capfd: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    rc = main(
        ["rate-file", "--config", str(EXAMPLE_CONFIG), "--input", str(source), "--output", str(out)]
    )
    err = capfd.readouterr().err
    assert "Traceback" not in err and "panicked" not in err, err
    return rc, [line for line in err.strip().splitlines() if line.startswith("rater: error:")]


def _expect_error(
    source: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str], *fragments: str
) -> str:
    rc, errors = _rate(source, tmp_path / "out", capfd)
    assert rc == 2
    assert len(errors) == 1
    assert "Fix: " in errors[0]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def _expect_rated(source: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> pl.DataFrame:
    out = tmp_path / "out"
    rc, errors = _rate(source, out, capfd)
    assert (rc, errors) == (0, [])
    return pl.read_parquet(out / "rated.parquet")


def _csv(tmp_path: Path, rows: list[dict[str, str]], name: str = "cdrs.csv") -> Path:
    path = tmp_path / name
    lines = [",".join(FIELDS)] + [",".join(row[f] for f in FIELDS) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _row(**changes: str) -> dict[str, str]:
    return {**GOOD, **changes}


def _frame(**columns: Any) -> pl.DataFrame:
    base: dict[str, Any] = {
        "cdr_id": ["c1", "c2"],
        "tenant_id": ["acme", "acme"],
        "kind": ["call", "call"],
        "direction": ["outbound", "outbound"],
        "caller": ["+33100000000"] * 2,
        "callee": ["+33612345678"] * 2,
        "start_time": [T0, T0],
        "end_time": [T0 + dt.timedelta(minutes=1)] * 2,
    }
    return pl.DataFrame({**base, **columns})


def _parquet(tmp_path: Path, frame: pl.DataFrame) -> Path:
    path = tmp_path / "cdrs.parquet"
    frame.write_parquet(path)
    return path


# ---------------------------------------------------------------------------------------
# Integers that do not fit their column


def test_csv_segments_beyond_int32(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    source = _csv(tmp_path, [_row(), _row(cdr_id="c2", kind="sms", segments="3000000000")])
    _expect_error(source, tmp_path, capfd, "cdrs.csv:line 3: segments 3000000000 is out of range")


def test_csv_hold_beyond_int64(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    source = _csv(tmp_path, [_row(hold_ms="9" * 25)])
    _expect_error(source, tmp_path, capfd, "line 2: hold_ms", "does not fit a 64-bit integer")


def test_parquet_segments_beyond_int32(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    source = _parquet(tmp_path, _frame(segments=pl.Series([1, 3_000_000_000], dtype=pl.Int64)))
    _expect_error(source, tmp_path, capfd, "cdrs.parquet:record 2: segments 3000000000")


def test_parquet_unsigned_hold_beyond_int64(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    source = _parquet(tmp_path, _frame(hold_ms=pl.Series([2**64 - 1, 0], dtype=pl.UInt64)))
    _expect_error(source, tmp_path, capfd, "record 1: hold_ms 18446744073709551615 is out of")


# ---------------------------------------------------------------------------------------
# Timestamps of any unit and value


@pytest.mark.parametrize("unit", ["ms", "ns"])
@pytest.mark.parametrize("zone", [None, "UTC", "Asia/Tokyo"])
def test_parquet_timestamps_in_any_unit_and_zone(
    tmp_path: Path, unit: str, zone: str | None
) -> None:
    reference = _frame()
    times = pl.col("start_time", "end_time").dt.cast_time_unit(unit)  # type: ignore[arg-type]
    zoned = times.dt.convert_time_zone(zone) if zone else times.dt.replace_time_zone(None)
    got = read_cdrs(_parquet(tmp_path, reference.with_columns(zoned)))
    assert got.equals(read_cdrs(_parquet(tmp_path, reference)))


def test_parquet_absurd_timestamps_are_kept_and_invalid(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    extreme = pl.Series([2**62, -(2**63)], dtype=pl.Int64)
    frame = _frame(
        start_time=extreme.cast(pl.Datetime("us", "UTC")),
        answer_time=extreme.cast(pl.Datetime("ns")),
    )
    rated = _expect_rated(_parquet(tmp_path, frame), tmp_path, capfd)
    assert rated["start_time"].dt.epoch("us").to_list() == [2**62, -(2**63)]
    assert rated.select("status", "reason").rows() == [("invalid", "bad_times")] * 2


def test_parquet_milliseconds_beyond_the_microsecond_range(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    frame = _frame(end_time=pl.Series([0, 2**62], dtype=pl.Int64).cast(pl.Datetime("ms")))
    _expect_error(
        _parquet(tmp_path, frame),
        tmp_path,
        capfd,
        "record 2: end_time",
        "beyond the range of microsecond timestamps",
    )


def test_parquet_timestamp_of_another_type(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    frame = _frame(start_time=[dt.date(2026, 11, 2)] * 2)
    _expect_error(_parquet(tmp_path, frame), tmp_path, capfd, "'start_time' has type Date")


def test_csv_times_far_before_year_1_or_after_9999_are_kept(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # UTC of these lies in year 0 and year 10000, beyond Python's datetime.
    rows = [
        _row(start_time="0001-01-01 00:00:00+05:00"),  # the one-by-one parse
        _row(cdr_id="c2", end_time="9999-12-31T23:59:59-05:00"),  # the vectorized parse
    ]
    rated = _expect_rated(_csv(tmp_path, rows), tmp_path, capfd)
    assert rated["start_time"].dt.epoch("s")[0] == -62_135_614_800
    assert rated["end_time"].dt.epoch("s")[1] == 253_402_318_799
    assert rated.select("status", "reason").rows() == [("invalid", "bad_times")] * 2


# ---------------------------------------------------------------------------------------
# Avro


def _avro(tmp_path: Path, time_type: Any, records: list[dict[str, Any]]) -> Path:
    fields: list[dict[str, Any]] = [
        {"name": name, "type": "string"}
        for name in ("cdr_id", "tenant_id", "kind", "direction", "caller", "callee")
    ]
    fields += [{"name": name, "type": time_type} for name in ("start_time", "end_time")]
    schema = {"type": "record", "name": "Cdr", "fields": fields}
    base = {k: GOOD[k] for k in ("tenant_id", "kind", "direction", "caller", "callee")}
    path = tmp_path / "cdrs.avro"
    with path.open("wb") as fh:
        fastavro.writer(fh, fastavro.parse_schema(schema), [{**base, **r} for r in records])
    return path


def test_avro_timestamps_beyond_python_datetimes_are_kept(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    micros = {"type": "long", "logicalType": "timestamp-micros"}
    records = [
        {"cdr_id": "c1", "start_time": -(2**63), "end_time": 2**63 - 1},
        {"cdr_id": "c2", "start_time": 0, "end_time": 0},
    ]
    rated = _expect_rated(_avro(tmp_path, micros, records), tmp_path, capfd)
    assert rated["end_time"].dt.epoch("us")[0] == 2**63 - 1
    assert rated.select("status", "reason").rows() == [("invalid", "bad_times")] * 2


def test_avro_timestamp_millis_are_read_in_their_unit(tmp_path: Path) -> None:
    millis = {"type": "long", "logicalType": "timestamp-millis"}
    at = int(T0.timestamp() * 1000)
    got = read_cdrs(_avro(tmp_path, millis, [{"cdr_id": "c1", "start_time": at, "end_time": at}]))
    assert got["start_time"].to_list() == [T0]


@pytest.mark.parametrize(
    ("time_type", "value", "fragment"),
    [
        ("double", 1.5, "field 'start_time' holds float values"),
        ("bytes", b"x", "field 'start_time' holds bytes values"),
        ({"type": "int", "logicalType": "date"}, 20_000, "logical type 'date'"),
    ],
)
def test_avro_times_of_unexpected_types(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], time_type: Any, value: Any, fragment: str
) -> None:
    source = _avro(tmp_path, time_type, [{"cdr_id": "c1", "start_time": value, "end_time": value}])
    _expect_error(source, tmp_path, capfd, "cdrs.avro", fragment)


def test_avro_that_is_not_a_record(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cdrs.avro"
    with path.open("wb") as fh:
        fastavro.writer(fh, fastavro.parse_schema({"type": "string"}), ["a", "b"])
    _expect_error(path, tmp_path, capfd, "holds Avro 'string' values, not CDR records")


# ---------------------------------------------------------------------------------------
# Encodings, directories


def test_csv_not_utf8_names_its_line(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    source = _csv(tmp_path, [_row(), _row(cdr_id="c2")])
    source.write_bytes(
        source.read_bytes().replace(b"u1", b"caf\xe9", 2).replace(b"caf\xe9", b"u1", 1)
    )
    _expect_error(
        source, tmp_path, capfd, "cdrs.csv:line 3: not UTF-8 text", "save the file as UTF-8"
    )


def test_csv_header_not_utf8(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    source = _csv(tmp_path, [_row()])
    source.write_bytes(source.read_bytes().replace(b"user_id", b"user_\xe9d", 1))
    _expect_error(source, tmp_path, capfd, "cdrs.csv:line 1: not UTF-8 text")


def test_csv_in_utf16(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    source = _csv(tmp_path, [_row()])
    source.write_bytes(source.read_text(encoding="utf-8").encode("utf-16"))
    _expect_error(source, tmp_path, capfd, "line 1: UTF-16 text, not UTF-8")


def test_csv_with_a_bom_reads_like_without(tmp_path: Path) -> None:
    plain = _csv(tmp_path, [_row(), _row(cdr_id="c2")], name="plain.csv")
    bommed = tmp_path / "bom.csv"
    bommed.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    assert read_cdrs(bommed).equals(read_cdrs(plain))


def test_a_directory_as_input(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "cdrs.csv").mkdir()
    _expect_error(tmp_path / "cdrs.csv", tmp_path, capfd, "cdrs.csv: is a directory, not a file")
    assert not (tmp_path / "out").exists()  # nothing created for a run that cannot start


# ---------------------------------------------------------------------------------------
# Absurd values are kept for the core to mark invalid


def test_absurd_values_are_kept_and_marked_invalid(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    sixty = "+" + "4" * 60
    rows = [
        _row(cdr_id="y9999", end_time="9999-12-31T23:59:59Z"),
        _row(cdr_id="y1", start_time="0001-01-01T00:00:00Z"),
        _row(cdr_id="digits40", callee="3" * 40),
        _row(cdr_id="digits60", callee=sixty),
        _row(cdr_id="hold", hold_ms="-1"),
        _row(cdr_id="seg0", kind="sms", answer_time="", hold_ms="", segments="0"),
    ]
    rated = _expect_rated(_csv(tmp_path, rows), tmp_path, capfd)
    assert rated["cdr_id"].to_list() == [r["cdr_id"] for r in rows]
    assert rated["callee"][3] == sixty  # passed through untouched
    assert (rated["hold_ms"][4], rated["segments"][5]) == (-1, 0)
    assert rated.select("status", "reason").rows() == [
        ("invalid", "bad_times"),
        ("invalid", "bad_times"),
        ("invalid", "bad_number"),
        ("invalid", "bad_number"),
        ("invalid", "bad_hold"),
        ("invalid", "bad_segments"),
    ]


def test_output_columns_in_the_input_are_replaced(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # A rated.parquet read back in, plus columns named like the core's working columns.
    frame = _frame(status=["x", "y"], charge=["9", "9"], _t=[7, 7], __row=["a", "b"])
    rated = _expect_rated(_parquet(tmp_path, frame), tmp_path, capfd)
    assert rated["status"].to_list() == ["rated", "rated"]
    assert rated["_t"].to_list() == [7, 7] and rated["__row"].to_list() == ["a", "b"]
    assert "ignoring input column(s) status, charge" in caplog.text


# ---------------------------------------------------------------------------------------
# Fuzz-ish: hostile values in every column

HOSTILE = [
    "",
    "1" * 60,
    "1e30",
    "-1",
    "ünïcødé ☎",
    "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00+05:00",
    "NaN",
    "+",
    "0",
    "-9223372036854775808",
    "9223372036854775808",
    '"a, b"',
    "\u202e",
    "１２３",
    "status",
]


@pytest.mark.parametrize("column", FIELDS)
def test_hostile_values_in_every_column(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], column: str
) -> None:
    for i, value in enumerate(HOSTILE):
        source = _csv(tmp_path, [_row(**{column: value}), _row(cdr_id="c2")], name=f"{i}.csv")
        rc, errors = _rate(source, tmp_path / f"out{i}", capfd)
        assert rc in (0, 2), (column, value)
        if rc == 2:
            assert len(errors) == 1 and "Fix: " in errors[0], (column, value, errors)
            assert f"{i}.csv:line 2: {column}" in errors[0], (column, value, errors)
        else:
            rated = pl.read_parquet(tmp_path / f"out{i}" / "rated.parquet")
            assert rated.height == 2 and rated["cdr_id"][1] == "c2"
