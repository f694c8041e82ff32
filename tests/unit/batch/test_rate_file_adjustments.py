"""rate-file --adjustments: the adjustments file, its errors, and slicing that cannot move
an adjustment among the CDR debits."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import polars as pl
import pytest

from rater.batch import OUTPUT_FILES, rate_file
from rater.batch.adjustment_files import read_adjustments
from rater.core.columns import ADJUSTMENT_SCHEMA, CDR_SCHEMA
from rater.errors import InputError
from rater.simulate import generate_cdrs

EXAMPLE_CONFIG = Path(__file__).resolve().parents[3] / "config"
HEADER = "tenant_id,adjustment_id,kind,amount,time,source,reason,product_id,line_type"
PREPAID = ("globex", "tinyco", "wayne", "umbrella", "stark")


def _traffic(tmp_path: Path) -> tuple[Path, pl.DataFrame]:
    cdrs = generate_cdrs(
        EXAMPLE_CONFIG,
        3_000,
        5,
        now=dt.datetime(2026, 11, 2, tzinfo=dt.UTC),
        duplicate_fraction=0.02,
    )
    path = tmp_path / "cdrs.parquet"
    cdrs.select(list(CDR_SCHEMA)).write_parquet(path)
    return path, cdrs


def _adjustments_csv(tmp_path: Path, cdrs: pl.DataFrame, count: int, seed: int) -> Path:
    rng = random.Random(seed)
    first = cdrs.get_column("start_time").min()
    last = cdrs.get_column("start_time").max()
    span = int((last - first).total_seconds())  # type: ignore[operator]
    lines = [HEADER]
    for i in range(count - 3):
        kind = rng.choice(["topup", "refund", "charge"])
        when = first + dt.timedelta(seconds=rng.randint(-600, span + 600))  # type: ignore[operator]
        tenant = rng.choice([*PREPAID, "acme", "ghost"])
        extra = {
            "topup": ",manual,,,",
            "refund": ",,sorry,,",
            "charge": ",,,did,recurring",
        }[kind]
        amount = f"{rng.randint(1, 500)}.{rng.randint(0, 999999):06d}"
        lines.append(f"{tenant},a{i},{kind},{amount},{when.isoformat()}{extra}")
    lines += [lines[3], lines[1], lines[2]]  # resent: applied once
    lines[5] = f"stark,a4,charge,100000,{first.isoformat()},,,did,recurring"  # exhausts
    path = tmp_path / "adjustments.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_slicing_cannot_move_an_adjustment(tmp_path: Path) -> None:
    cdrs_path, cdrs = _traffic(tmp_path)
    adjustments = _adjustments_csv(tmp_path, cdrs, 80, seed=5)
    outputs = {}
    for size in (1_000_000, 333, 50, 7):
        out = tmp_path / f"out{size}"
        rate_file(EXAMPLE_CONFIG, cdrs_path, out, batch_size=size, adjustments_path=adjustments)
        outputs[size] = [pl.read_parquet(out / name) for name in OUTPUT_FILES]
    reference = outputs[1_000_000]
    for size, frames in outputs.items():
        for name, got, want in zip(OUTPUT_FILES, frames, reference, strict=True):
            assert got.equals(want), (size, name)
    applied = reference[3]
    assert applied.height == 80
    assert set(applied["status"]) == {"applied", "duplicate", "ignored"}
    assert applied.columns == [*ADJUSTMENT_SCHEMA, "status", "balance_after_micros"]
    # Every prepaid adjustment applied has the balance after it; postpaid refunds do not.
    prepaid = applied.filter(
        (pl.col("status") == "applied") & pl.col("tenant_id").is_in(list(PREPAID))
    )
    assert prepaid["balance_after_micros"].null_count() == 0
    events = reference[1]
    assert events.filter(pl.col("cdr_id").str.starts_with("a")).height > 0, "a charge's event"


def test_an_adjustment_moves_the_balance_at_its_place(tmp_path: Path) -> None:
    # tinyco: prepaid, 0.50 opening; calls to Italy cost 0.016 per minute (pro-eu).
    calls = tmp_path / "calls.csv"
    calls.write_text(
        "cdr_id,tenant_id,kind,direction,caller,callee,start_time,answer_time,end_time\n"
        "c1,tinyco,call,outbound,+331,+390612345678,2026-11-02T10:00:00Z,"
        "2026-11-02T10:00:00Z,2026-11-02T10:30:00Z\n"
        "c2,tinyco,call,outbound,+331,+390612345678,2026-11-02T12:00:00Z,"
        "2026-11-02T12:00:00Z,2026-11-02T12:30:00Z\n"
    )
    adjustments = tmp_path / "adj.csv"
    adjustments.write_text(
        f"{HEADER}\n"
        "tinyco,t1,topup,10,2026-11-02T11:00:00+01:00,auto_recharge,,,\n"  # 10:00Z: before c1
        "tinyco,t1,topup,10,2026-11-02T11:00:00+01:00,,,,\n"  # resent
        "tinyco,x1,charge,1.5,2026-11-02T11:00:00Z,,,did,recurring\n"  # before c2
    )
    out = tmp_path / "out"
    summary = rate_file(EXAMPLE_CONFIG, calls, out, adjustments_path=adjustments)
    rated = pl.read_parquet(out / "rated.parquet")
    charges = rated["charge_micros"].to_list()
    assert rated["balance_after_micros"].to_list() == [
        500_000 + 10_000_000 - charges[0],
        500_000 + 10_000_000 - charges[0] - 1_500_000 - charges[1],
    ]
    applied = pl.read_parquet(out / "adjustments.parquet")
    assert applied.select("adjustment_id", "status", "balance_after_micros").rows() == [
        ("t1", "applied", 10_500_000),
        ("t1", "duplicate", None),
        ("x1", "applied", 10_500_000 - charges[0] - 1_500_000),
    ]
    assert summary.adjustments == {"applied": 2, "duplicate": 1}
    assert "adjustments: applied 2, duplicate 1" in "\n".join(summary.lines())


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("acme,a1,topup,1e30,2026-11-02T10:00:00Z,,,,", "line 2: bad amount '1e30'"),
        ("acme,a1,topup,-5,2026-11-02T10:00:00Z,,,,", "line 2: bad amount '-5'"),
        ("acme,a1,topup,0.0000001,2026-11-02T10:00:00Z,,,,", "bad amount"),
        ("acme,a1,gift,5,2026-11-02T10:00:00Z,,,,", "line 2: bad kind 'gift'"),
        ("acme,a1,topup,5,2026-11-02 10:00:00,,,,", "line 2: bad time"),
        ("acme,a1,topup,5,9999-01-01T00:00:00Z,,,,", "line 2: bad time"),
        ("acme,,topup,5,2026-11-02T10:00:00Z,,,,", "line 2: bad adjustment_id"),
        ("acme,a1,topup,5,2026-11-02T10:00:00Z,bank,,,", "line 2: bad source 'bank'"),
        ("acme,a1,charge,5,2026-11-02T10:00:00Z,,,did,monthly", "bad line_type 'monthly'"),
    ],
)
def test_a_bad_row_names_file_line_and_fix(tmp_path: Path, row: str, message: str) -> None:
    path = tmp_path / "adj.csv"
    path.write_text(f"{HEADER}\n{row}\n")
    with pytest.raises(InputError) as err:
        read_adjustments(path)
    assert message in str(err.value) and "Fix:" in str(err.value)
    assert "\n" not in str(err.value)


def test_parquet_adjustments_and_wrong_files(tmp_path: Path) -> None:
    good = pl.DataFrame(
        {
            "tenant_id": ["tinyco"],
            "adjustment_id": ["p1"],
            "kind": ["topup"],
            "amount": pl.Series(["12.50"]).str.to_decimal(scale=2),
            "time": [dt.datetime(2026, 11, 2, tzinfo=dt.UTC)],
        }
    )
    good.write_parquet(tmp_path / "a.parquet")
    assert read_adjustments(tmp_path / "a.parquet").select("amount_micros", "source").rows() == [
        (12_500_000, "manual")
    ]
    good.with_columns(pl.col("amount").cast(pl.Float64)).write_parquet(tmp_path / "f.parquet")
    with pytest.raises(InputError, match="not exact"):
        read_adjustments(tmp_path / "f.parquet")
    good.drop("kind").write_parquet(tmp_path / "k.parquet")
    with pytest.raises(InputError, match="required column"):
        read_adjustments(tmp_path / "k.parquet")
    (tmp_path / "a.avro").write_bytes(b"Obj\x01")
    with pytest.raises(InputError, match=r"use a \.csv or \.parquet file"):
        read_adjustments(tmp_path / "a.avro")
    (tmp_path / "u.csv").write_bytes(HEADER.encode() + b"\nacme,\xff,topup,5,x,,,,\n")
    with pytest.raises(InputError, match="not UTF-8"):
        read_adjustments(tmp_path / "u.csv")


def test_command_line(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from rater.cli import main

    cdrs_path, _ = _traffic(tmp_path)
    bad = tmp_path / "adj.csv"
    bad.write_text(f"{HEADER}\nacme,a1,topup,lots,2026-11-02T10:00:00Z,,,,\n")
    args = ["rate-file", "--config", str(EXAMPLE_CONFIG), "--input", str(cdrs_path)]
    assert main([*args, "--output", str(tmp_path / "o"), "--adjustments", str(bad)]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "adj.csv:line 2: bad amount 'lots'" in err[0]
    assert not (tmp_path / "o" / "rated.parquet").exists()
