"""The switch simulator: deterministic, realistic, and shaped like the contract's CDRs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import fastavro
import polars as pl
import pytest

from rater import wire
from rater.cli import main
from rater.core.columns import CDR_SCHEMA
from rater.errors import UsageError
from rater.simulate import corrupt_messages, encode_cdrs_json, generate_cdrs, write_cdrs

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def test_same_seed_same_records_other_seed_other_records(tiny_tariff_dir: Path) -> None:
    a = generate_cdrs(tiny_tariff_dir, 2000, seed=5, now=NOW)
    assert a.equals(generate_cdrs(tiny_tariff_dir, 2000, seed=5, now=NOW))
    assert not a.equals(generate_cdrs(tiny_tariff_dir, 2000, seed=6, now=NOW))
    assert a.schema == pl.Schema(CDR_SCHEMA)


def test_mix_of_records_is_realistic(tiny_tariff_dir: Path) -> None:
    f = generate_cdrs(tiny_tariff_dir, 20_000, seed=1, now=NOW)
    share = {k: n / f.height for k, n in f.get_column("kind").value_counts().iter_rows()}
    assert share["call"] == pytest.approx(0.75, abs=0.02)
    assert share["sms"] == pytest.approx(0.20, abs=0.02)
    assert share["ring_through"] == pytest.approx(0.05, abs=0.01)
    calls = f.filter(pl.col("kind") == "call")
    unanswered = calls.get_column("answer_time").null_count() / calls.height
    assert unanswered == pytest.approx(0.25, abs=0.02)
    assert set(f.get_column("tenant_id")) == {"acme", "globex", "initech"}
    assert set(f.get_column("direction")) == {"inbound", "outbound"}
    assert f.get_column("cdr_id").n_unique() == f.height
    # Every record is valid: times ordered, hold within the answered time, E.164 numbers.
    answered = calls.drop_nulls("answer_time")
    talk_ms = (answered["end_time"] - answered["answer_time"]).dt.total_milliseconds()
    assert (talk_ms >= answered["hold_ms"]).all()
    assert (answered["hold_ms"] > 0).mean() == pytest.approx(0.12, abs=0.02)
    assert talk_ms.median() < 5 * 60_000 < talk_ms.max()  # type: ignore[operator]
    assert (f["end_time"] >= f["start_time"]).all()
    assert f["callee"].str.contains(r"^\+\d{8,15}$").all()
    assert f["caller"].str.contains(r"^\+\d{8,15}$").all()
    outbound = f.filter(pl.col("direction") == "outbound")
    assert outbound["callee"].str.contains(r"^\+(33|336|44)").all()
    sms = f.filter(pl.col("kind") == "sms")
    assert sms["segments"].max() > 1 and sms["segments"].min() == 1  # type: ignore[operator]
    assert (f.filter(pl.col("kind") != "sms")["segments"] == 1).all()
    assert (f["start_time"] > NOW - timedelta(hours=4)).all()
    assert f["end_time"].is_sorted()


def test_invalid_and_duplicate_fractions(tiny_tariff_dir: Path) -> None:
    f = generate_cdrs(
        tiny_tariff_dir, 20_000, seed=3, now=NOW, invalid_fraction=0.1, duplicate_fraction=0.05
    )
    bad_times = (f["end_time"] < f["start_time"]).mean()
    bad_number = (~f["callee"].str.contains(r"^\+\d+$")).mean()
    assert bad_times == pytest.approx(0.05, abs=0.01)
    assert bad_number == pytest.approx(0.05, abs=0.01)
    dup_share = 1 - f.unique(maintain_order=True).height / f.height
    assert dup_share == pytest.approx(0.05, abs=0.01)
    # A duplicate is an unchanged copy of an earlier record.
    assert f.unique(subset=["cdr_id"]).height == f.unique().height


def test_generate_rejects_bad_arguments(tiny_tariff_dir: Path) -> None:
    with pytest.raises(UsageError):
        generate_cdrs(tiny_tariff_dir, -1, seed=1)
    with pytest.raises(UsageError):
        generate_cdrs(tiny_tariff_dir, 10, seed=1, duplicate_fraction=2.0)


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".avro"])
def test_write_cdrs_round_trips(tiny_tariff_dir: Path, tmp_path: Path, suffix: str) -> None:
    f = generate_cdrs(tiny_tariff_dir, 500, seed=2, now=NOW)
    path = tmp_path / f"cdrs{suffix}"
    write_cdrs(f, path)
    if suffix == ".parquet":
        back = pl.read_parquet(path)
    elif suffix == ".csv":
        back = pl.read_csv(path, schema=CDR_SCHEMA)
    else:
        with path.open("rb") as fh:
            back = pl.DataFrame(list(fastavro.reader(fh)), schema=CDR_SCHEMA)
    assert back.equals(f)


def test_json_encoding_decodes_to_the_same_frame(tiny_tariff_dir: Path) -> None:
    f = generate_cdrs(tiny_tariff_dir, 300, seed=4, now=NOW)
    result = wire.decode_cdrs_json(encode_cdrs_json(f))
    assert result.errors == []
    assert result.frame.equals(f)


@pytest.mark.parametrize("framed", [False, True])
def test_corrupted_messages_are_caught_by_the_decoder(tiny_tariff_dir: Path, framed: bool) -> None:
    f = generate_cdrs(tiny_tariff_dir, 2000, seed=4, now=NOW)
    values = wire.encode_cdrs(f, schema_id=1 if framed else None)
    hit = corrupt_messages(values, 0.02, seed=4, framed=framed)
    assert 10 < len(hit) < 80
    result = wire.decode_cdrs(values, framed=framed, schema_id=1 if framed else None)
    assert [i for i, _ in result.errors] == hit
    keep = [i for i in range(f.height) if i not in set(hit)]
    assert result.frame.equals(f[keep])


def test_cli_writes_a_file(tiny_tariff_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "sim.parquet"
    rc = main(
        [
            "simulate",
            "--config",
            str(tiny_tariff_dir),
            "--count",
            "100",
            "--seed",
            "9",
            "--output",
            str(out),
        ]
    )
    assert rc == 0
    assert pl.read_parquet(out).height == 100
    assert main(["simulate", "--config", str(tiny_tariff_dir), "--output", "x.txt"]) == 2
    assert main(["simulate", "--config", str(tiny_tariff_dir), "--bad-fraction", "3"]) == 2
