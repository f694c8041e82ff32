"""rater rate-file and the CDR file readers: formats, errors, slicing, atomic outputs."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import fastavro
import polars as pl
import pytest

from rater.batch import OUTPUT_FILES, rate_file, read_cdrs
from rater.batch.rate_file import _ProgressBar
from rater.cli import rate_file as rate_file_command
from rater.core.columns import CDR_SCHEMA
from rater.errors import InputError, UsageError

EXAMPLE_CONFIG = Path(__file__).resolve().parents[3] / "config"
HEADER = (
    "cdr_id,tenant_id,kind,direction,caller,callee,start_time,answer_time,end_time,hold_ms,segments"
)


def _day_of_traffic(n: int) -> pl.DataFrame:
    """n deterministic CDRs over the example tenants, with repeats and bad records."""
    tenants = [
        "acme",
        "globex",
        "tinyco",
        "initech",
        "wayne",
        "umbrella",
        "hooli",
        "stark",
        "ghost",
    ]
    callees = [
        "+33612345678",
        "+33145678901",
        "+447700900123",
        "+4915112345678",
        "+12125550100",
        "+19175550100",
        "+81312345678",
        "+99912345",
        "+",
        "+33389123456",
    ]
    kinds = ["call", "call", "call", "sms", "ring_through"]
    base = dt.datetime(2026, 11, 2, 6, 0, tzinfo=dt.UTC)
    rows = []
    for i in range(n):
        start = base + dt.timedelta(seconds=97 * i)
        kind = kinds[i % len(kinds)]
        answered = kind != "sms" and i % 4 != 0
        answer = start + dt.timedelta(seconds=i % 13) if answered else None
        end = start + dt.timedelta(milliseconds=(i * 7919) % 600_000 + 15_000)
        rows.append(
            {
                "cdr_id": f"c{i % (n - 5)}",  # the last 5 ids repeat earlier ones
                "tenant_id": tenants[(i % (n - 5) * 5) % len(tenants)],
                "user_id": None,
                "team_id": None,
                "kind": kind,
                "direction": "inbound" if i % 7 == 0 else "outbound",
                "caller": "+33100000000",
                "callee": callees[i % len(callees)],
                "start_time": start,
                "answer_time": answer,
                "end_time": end,
                "hold_ms": (i % 3) * 1000 if answered else 0,
                "segments": 1 + i % 3,
            }
        )
    return pl.DataFrame(rows, schema=CDR_SCHEMA)


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("in") / "day.parquet"
    _day_of_traffic(400).write_parquet(path)
    return path


def test_output_is_identical_for_any_batch_size(traffic: Path, tmp_path: Path) -> None:
    outputs = {}
    for size in (1_000_000, 97, 7):
        out = tmp_path / f"out{size}"
        rate_file(EXAMPLE_CONFIG, traffic, out, batch_size=size)
        outputs[size] = [pl.read_parquet(out / name) for name in OUTPUT_FILES]
    reference = outputs[1_000_000]
    assert reference[0].height == 400
    for size, frames in outputs.items():
        for got, want in zip(frames, reference, strict=True):
            assert got.equals(want), size
    statuses = set(reference[0]["status"].to_list())
    assert statuses == {"rated", "unrated", "invalid", "duplicate"}


def test_example_config_shows_both_balance_events(tmp_path: Path) -> None:
    # tinyco: 0.50 opening, 0.40 threshold; pro-eu sms to France 0.035 each (4 decimals).
    lines = [HEADER] + [
        f"s{i},tinyco,sms,outbound,+33100000000,+33612345678,2026-11-02T10:00:0{i}Z,,"
        f"2026-11-02T10:00:0{i}Z,,1"
        for i in range(10)
    ]
    # allowance: 500 free segments first, so send enough segments to use them up
    lines.append(
        "big,tinyco,sms,outbound,+33100000000,+33612345678,2026-11-02T11:00:00Z,,"
        "2026-11-02T11:00:00Z,,505"
    )
    source = tmp_path / "tiny.csv"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = rate_file(EXAMPLE_CONFIG, source, tmp_path / "out")
    events = pl.read_parquet(tmp_path / "out" / "events.parquet")
    # 10 covered segments, then 505: 490 covered, 15 * 0.035 = 0.525 -> 0.50 - 0.525 < 0
    assert events.select("tenant_id", "event", "cdr_id").rows() == [
        ("tinyco", "low_balance", "big"),
        ("tinyco", "exhausted", "big"),
    ]
    assert summary.charges_by_currency == {"EUR": 525_000}


def test_csv_parquet_and_avro_read_the_same(tmp_path: Path) -> None:
    frame = _day_of_traffic(30)
    csv_path = tmp_path / "d.csv"
    text = frame.with_columns(
        pl.col(c).dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        for c in ("start_time", "answer_time", "end_time")
    )
    text.write_csv(csv_path)
    pq_path = tmp_path / "d.parquet"
    frame.write_parquet(pq_path)
    avro_path = tmp_path / "d.avro"
    schema = {
        "type": "record",
        "name": "Cdr",
        "fields": [
            {"name": "cdr_id", "type": "string"},
            {"name": "tenant_id", "type": "string"},
            {"name": "user_id", "type": ["null", "string"], "default": None},
            {"name": "team_id", "type": ["null", "string"], "default": None},
            {
                "name": "kind",
                "type": {
                    "type": "enum",
                    "name": "Kind",
                    "symbols": ["call", "sms", "ring_through"],
                },
            },
            {
                "name": "direction",
                "type": {"type": "enum", "name": "Dir", "symbols": ["inbound", "outbound"]},
            },
            {"name": "caller", "type": "string"},
            {"name": "callee", "type": "string"},
            {"name": "start_time", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            {
                "name": "answer_time",
                "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}],
            },
            {"name": "end_time", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            {"name": "hold_ms", "type": "long", "default": 0},
            {"name": "segments", "type": "int", "default": 1},
        ],
    }
    with avro_path.open("wb") as fh:
        fastavro.writer(fh, fastavro.parse_schema(schema), frame.to_dicts())
    from_csv, from_pq, from_avro = (read_cdrs(p) for p in (csv_path, pq_path, avro_path))
    assert from_pq.equals(frame)
    assert from_csv.equals(frame)
    assert from_avro.equals(frame)
    assert dict(from_avro.schema) == CDR_SCHEMA


def test_csv_optional_columns_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "min.csv"
    path.write_text(
        "cdr_id,tenant_id,kind,direction,caller,callee,start_time,end_time,note\n"
        "a,acme,call,outbound,+331,,2026-03-29 01:30:00+0100,2026-03-29T00:31:00.5Z,x\n",
        encoding="utf-8",
    )
    got = read_cdrs(path).row(0, named=True)
    assert got["start_time"] == dt.datetime(2026, 3, 29, 0, 30, tzinfo=dt.UTC)
    assert got["end_time"] == dt.datetime(2026, 3, 29, 0, 31, 0, 500_000, tzinfo=dt.UTC)
    assert (got["answer_time"], got["user_id"], got["hold_ms"], got["segments"]) == (
        None,
        None,
        0,
        1,
    )
    assert got["callee"] == ""  # empty callee is kept: the core marks it bad_number
    assert got["note"] == "x"  # extra columns pass through


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("cdr_id,tenant_id,kind\na,b,call\n", "required column(s) missing"),
        (
            HEADER + "\na,acme,call,outbound,+1,+1,2026-03-02 10:00,,2026-03-02T10:00:00Z,,\n",
            "line 2: start_time",
        ),
        (
            HEADER + "\na,acme,call,outbound,+1,+1,2026-03-02T10:00:00,,2026-03-02T10:00:00Z,,\n",
            "line 2: start_time",
        ),
        (
            HEADER
            + "\na,acme,call,outbound,+1,+1,2026-03-02T10:00:00Z,,2026-03-02T10:00:00Z,1.5,\n",
            "line 2: hold_ms",
        ),
        (
            HEADER + "\na,acme,call,outbound,+1,+1,2026-03-02T10:00:00Z,,2026-03-02T10:00:00Z,,\n"
            "b,acme,fax,outbound,+1,+1,2026-03-02T10:00:00Z,,2026-03-02T10:00:00Z,,\n",
            "line 3: kind 'fax'",
        ),
        (
            HEADER + "\n,acme,call,outbound,+1,+1,2026-03-02T10:00:00Z,,2026-03-02T10:00:00Z,,\n",
            "line 2: cdr_id is empty",
        ),
    ],
)
def test_unreadable_csv_names_file_line_and_fix(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(InputError) as info:
        read_cdrs(path)
    assert message in str(info.value)
    assert str(path) in str(info.value) and "Fix:" in str(info.value)


def test_unknown_suffix_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("{}", encoding="utf-8")
    with pytest.raises(InputError, match="unknown input format"):
        read_cdrs(tmp_path / "x.json")
    with pytest.raises(InputError, match="no such file"):
        read_cdrs(tmp_path / "missing.csv")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputError, match="not a readable Parquet"):
        read_cdrs(tmp_path / "junk.parquet")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rater")
    rate_file_command.register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_command_prints_summary_and_reads_env(
    traffic: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("RATER_TARIFF_DIR", str(EXAMPLE_CONFIG))
    monkeypatch.setenv("RATER_RATE_FILE_BATCH_SIZE", "50")
    out = tmp_path / "out"
    args = _parser().parse_args(["rate-file", "--input", str(traffic), "--output", str(out)])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "400 records" in printed and "status:" in printed and "EUR" in printed
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)  # no temp files left


def test_command_usage_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("INPUT", "OUTPUT", "_INPUT", "_OUTPUT"):
        monkeypatch.delenv(f"RATER_RATE_FILE_{name}", raising=False)
    args = _parser().parse_args(["rate-file", "--config", str(EXAMPLE_CONFIG)])
    with pytest.raises(UsageError, match="--input"):
        args.func(args)
    with pytest.raises(UsageError, match="batch-size"):
        rate_file(EXAMPLE_CONFIG, tmp_path / "x.csv", tmp_path / "o", batch_size=0)
    with pytest.raises(UsageError, match="tariff directory"):
        rate_file(tmp_path / "nope", tmp_path / "x.csv", tmp_path / "o")


def test_progress_bar_draws_on_one_line() -> None:
    import io

    stream = io.StringIO()
    ticks = iter([0.0, 2.0, 4.0])
    bar = _ProgressBar(100, stream, clock=lambda: next(ticks))
    bar.update(50)
    bar.update(100)
    bar.finish()
    text = stream.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n")
    assert "50/100 records 50% 25/s" in text and "100/100 records 100% 25/s" in text


# ---------------------------------------------------------------------------------------
# The output directory is checked before any input is read


def _cli(args: list[str], capfd: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    from rater.cli import main

    rc = main(args)
    err = capfd.readouterr().err
    assert "Traceback" not in err
    return rc, err.strip().splitlines()


def _unreadable_input(tmp_path: Path) -> Path:
    """A CSV that fails to parse: an --output error must be reported before it is read."""
    path = tmp_path / "bad.csv"
    path.write_text(HEADER + "\nx,acme,call,outbound,+1,+1,not-a-time,,also-not,,\n")
    return path


def _rate_to(
    output: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> tuple[int, list[str]]:
    args = [
        "rate-file",
        "--config",
        str(EXAMPLE_CONFIG),
        "--input",
        str(_unreadable_input(tmp_path)),
    ]
    return _cli([*args, "--output", str(output)], capfd)


def test_output_under_a_regular_file_cannot_be_created(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "plain").write_text("not a directory")
    rc, lines = _rate_to(tmp_path / "plain" / "out", tmp_path, capfd)
    assert rc == 2 and len(lines) == 1
    assert "--output" in lines[0] and "cannot be created (Not a directory)" in lines[0]
    assert "Fix: choose a directory you can write to" in lines[0]


def test_output_that_is_a_file(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "out").write_text("results")
    rc, lines = _rate_to(tmp_path / "out", tmp_path, capfd)
    assert rc == 2 and len(lines) == 1
    assert "exists and is not a directory" in lines[0] and "Fix:" in lines[0]
    assert (tmp_path / "out").read_text() == "results"


@pytest.mark.parametrize("directory", ["/proc", "/sys"])
def test_output_that_is_not_writable(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], directory: str
) -> None:
    # Kernel file systems refuse new files even to root (chmod does not stop root).
    target = Path(directory)
    if not target.is_dir() or (os.access(target, os.W_OK) and _can_create_in(target)):
        pytest.skip(f"{directory} is not a read-only directory here")
    rc, lines = _rate_to(target, tmp_path, capfd)
    assert rc == 2 and len(lines) == 1
    assert f"--output {directory}: not writable" in lines[0]
    assert "Fix: choose a directory you can write to" in lines[0]


def test_output_without_write_permission(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    with _unwritable(locked):
        rc, lines = _rate_to(locked, tmp_path, capfd)
    assert rc == 2 and len(lines) == 1
    assert "not writable (" in lines[0] and "Fix: choose a directory you can write to" in lines[0]


@contextlib.contextmanager
def _unwritable(directory: Path) -> Iterator[None]:
    """No new file in ``directory``: mode 0500, or for root (whom modes do not stop) the
    immutable attribute."""
    root = os.geteuid() == 0
    if root:
        subprocess.run(["chattr", "+i", str(directory)], check=True)
    else:
        directory.chmod(0o500)
    try:
        assert not _can_create_in(directory)
        yield
    finally:
        if root:
            subprocess.run(["chattr", "-i", str(directory)], check=True)
        directory.chmod(0o700)


def _can_create_in(directory: Path) -> bool:
    import tempfile

    try:
        handle, name = tempfile.mkstemp(dir=directory)
    except OSError:
        return False
    os.close(handle)
    os.unlink(name)
    return True


def test_leftover_temp_files_of_a_killed_run_are_removed(
    traffic: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    dead_pid = 10**9  # above any pid_max
    stale = [out / f".{name}.{dead_pid}.tmp" for name in OUTPUT_FILES]
    old_but_alive = out / f".rated.parquet.{os.getppid()}.tmp"
    alive = out / f".events.parquet.{os.getppid()}.tmp"
    users = [
        out / ".rated.parquet.abc.tmp",
        out / ".notes.parquet.123.tmp",
        out / "rated.parquet.123.tmp",
        out / f".rated.parquet.{dead_pid}.tmp.bak",
        out / "my.csv",
    ]
    for path in [*stale, old_but_alive, alive, *users]:
        path.write_text("x")
    two_days_ago = time.time() - 2 * 86_400
    os.utime(old_but_alive, (two_days_ago, two_days_ago))
    (out / f".balances.parquet.{dead_pid + 1}.tmp").mkdir()  # not a file: not ours
    rc, _ = _cli(
        [
            "rate-file",
            "--config",
            str(EXAMPLE_CONFIG),
            "--input",
            str(traffic),
            "--output",
            str(out),
        ],
        capfd,
    )
    assert rc == 0
    assert not any(p.exists() for p in [*stale, old_but_alive])
    assert alive.exists()  # a run writing now
    assert all(p.exists() for p in users)
    assert (out / f".balances.parquet.{dead_pid + 1}.tmp").is_dir()
    assert all((out / name).is_file() for name in OUTPUT_FILES)


def test_a_failed_write_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # The disk fills up (or the directory vanishes) after the checks passed.
    source = tmp_path / "one.csv"
    source.write_text(
        HEADER + "\na,acme,sms,outbound,+1,+33612345678,2026-11-02T10:00:00Z,,"
        "2026-11-02T10:00:00Z,,1\n"
    )

    def full(self: pl.DataFrame, file: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", full)
    out = tmp_path / "out"
    rc, lines = _cli(
        [
            "rate-file",
            "--config",
            str(EXAMPLE_CONFIG),
            "--input",
            str(source),
            "--output",
            str(out),
        ],
        capfd,
    )
    assert rc == 2 and len(lines) == 1
    assert "writing the results failed (No space left on device)" in lines[0]
    assert sorted(p.name for p in out.iterdir()) == []  # no temporary file left behind
