"""`rater invoice` end to end on the example tariff: files, documents, determinism,
errors for people, the preview, and the streaming dataset as a source."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from rater.batch import rate_file
from rater.billing.run import DATA_FILES
from rater.cli import main
from rater.core.columns import CDR_SCHEMA
from rater.simulate import generate_cdrs

CONFIG = Path(__file__).resolve().parents[3] / "config"
NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
ADJUSTMENTS = """tenant_id,adjustment_id,kind,amount,time,source,reason
acme,r-1,refund,12.5,2026-11-10T10:00:00+01:00,,Service outage on 9 November
acme,r-1,refund,12.5,2026-11-10T10:00:00+01:00,,Service outage on 9 November
hooli,r-2,refund,3.333333,2026-11-02T10:00:00-05:00,,Goodwill
globex,t-1,topup,100,2026-11-05T10:00:00+01:00,manual,
"""


@pytest.fixture(scope="module")
def rated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rated")
    cdrs = generate_cdrs(CONFIG, 6_000, 17, now=NOW, span=timedelta(days=20))
    cdrs.select(list(CDR_SCHEMA)).write_parquet(root / "cdrs.parquet")
    (root / "adjustments.csv").write_text(ADJUSTMENTS)
    out = root / "out"
    rate_file(CONFIG, root / "cdrs.parquet", out, adjustments_path=root / "adjustments.csv")
    return out


def _invoice(rated: Path, out: Path, *extra: str) -> int:
    args = ["invoice", "--config", str(CONFIG), "--rated", str(rated), "--period", "2026-11"]
    return main([*args, "--output", str(out), *extra])


def test_writes_lines_invoices_and_documents(rated: Path, tmp_path: Path) -> None:
    out = tmp_path / "inv"
    assert _invoice(rated, out) == 0
    invoices = pl.read_parquet(out / "invoices.parquet")
    lines = pl.read_parquet(out / "invoice_lines.parquet")
    assert sorted(invoices["tenant_id"]) == sorted(
        ["acme", "globex", "tinyco", "initech", "wayne", "umbrella", "hooli", "stark"]
    )
    assert pl.read_csv(out / "invoices.csv", infer_schema=False).height == invoices.height
    assert pl.read_csv(out / "invoice_lines.csv", infer_schema=False)["amount"].to_list() == (
        lines["amount"].to_list()
    )
    sums = (
        lines.filter(pl.col("type") != "tax")
        .group_by("invoice_id")
        .agg(pl.col("amount_micros").sum().alias("sub"))
    )
    joined = invoices.join(sums, on="invoice_id")
    assert (joined["sub"] == joined["subtotal_micros"]).all()
    assert (invoices["total_micros"] == invoices["subtotal_micros"] + invoices["tax_micros"]).all()
    credits = lines.filter(pl.col("type") == "credit")
    assert credits.select("tenant_id", "description", "amount").rows() == [
        ("acme", "Service outage on 9 November", "-12.50"),  # resent: once
        ("hooli", "Goodwill", "-3.34"),  # us-standard rounds up: magnitude 3.333333 -> 3.34
    ]
    for invoice_id in invoices["invoice_id"]:
        assert (out / f"{invoice_id}.html").is_file() and (out / f"{invoice_id}.pdf").is_file()
    acme = invoices.filter(pl.col("tenant_id") == "acme").row(0, named=True)
    text = subprocess.run(
        ["pdftotext", "-layout", str(out / "acme-2026-11.pdf"), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    total = (
        f"{acme['total_micros'] // 1_000_000:,}.{acme['total_micros'] % 1_000_000 // 10_000:02d}"
    )
    assert total in text and "acme-2026-11" in text
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary files left"


def test_the_same_inputs_give_the_same_bytes(rated: Path, tmp_path: Path) -> None:
    assert _invoice(rated, tmp_path / "a", "--tenant", "acme", "--tenant", "globex") == 0
    assert _invoice(rated, tmp_path / "b", "--tenant", "globex", "--tenant", "acme") == 0
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(
        [
            *DATA_FILES,
            "acme-2026-11.html",
            "acme-2026-11.pdf",
            "globex-2026-11.html",
            "globex-2026-11.pdf",
        ]
    )
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_documents_can_be_left_out(rated: Path, tmp_path: Path) -> None:
    assert _invoice(rated, tmp_path / "o", "--documents", "none") == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == sorted(DATA_FILES)
    assert _invoice(rated, tmp_path / "h", "--documents", "html", "--tenant", "acme") == 0
    assert sorted(
        p.suffix for p in (tmp_path / "h").iterdir() if p.suffix in (".html", ".pdf")
    ) == [".html"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--period", "2026-13"], "--period"),
        (["--period", "26-11"], "--period"),
        (["--tenant", "ghost"], "--tenant 'ghost': not a tenant of tenants.csv"),
        (["--rated", "/nonexistent/place"], "--rated /nonexistent/place: no such file"),
        (["--adjustments", "/nonexistent.csv"], "--adjustments /nonexistent.csv: no such file"),
        (["--preview"], "--preview needs exactly one --tenant"),
        (["--preview", "--tenant", "acme", "--as-of", "yesterday"], "--as-of 'yesterday'"),
    ],
)
def test_errors_for_people(
    rated: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    base = ["invoice", "--config", str(CONFIG), "--rated", str(rated), "--period", "2026-11"]
    rc = main([*base, "--output", str(tmp_path / "out"), *args])
    err = capfd.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and message in err[0], err
    assert "Traceback" not in "".join(err)


@pytest.mark.parametrize("layout", ["file", "dataset"])
def test_rated_files_that_are_not_parquet(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], layout: str
) -> None:
    """A damaged or foreign file where rated records should be: one line, exit 2."""
    if layout == "file":
        rated = tmp_path / "rated.parquet"
        rated.write_bytes(b"not parquet at all")
    else:
        rated = tmp_path / "dataset"
        (rated / "rated" / "month=2026-11").mkdir(parents=True)
        (rated / "rated" / "month=2026-11" / "x.parquet").write_bytes(b"PAR1 broken")
    for extra in ([], ["--preview", "--tenant", "acme", "--as-of", "2026-11-15T00:00:00Z"]):
        base = ["invoice", "--config", str(CONFIG), "--rated", str(rated), "--period", "2026-11"]
        rc = main([*base, "--output", str(tmp_path / "out"), *extra])
        err = capfd.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and "cannot be read" in err[0], err


def test_output_that_is_a_file(
    rated: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "taken"
    target.write_text("mine")
    assert _invoice(rated, target) == 2
    assert "exists and is not a directory" in capfd.readouterr().err
    assert target.read_text() == "mine"


def test_preview_as_json_and_text(rated: Path, capfd: pytest.CaptureFixture[str]) -> None:
    import json

    base = ["invoice", "--config", str(CONFIG), "--rated", str(rated), "--preview"]
    assert (
        main(
            [
                *base,
                "--tenant",
                "umbrella",
                "--as-of",
                "2026-11-15T12:00:00-05:00",
                "--format",
                "json",
            ]
        )
        == 0
    )
    data = json.loads(capfd.readouterr().out)
    assert data["period"] == "2026-11" and data["currency"] == "USD"
    seats = {s["product_id"]: s for s in data["seats"]}
    # umbrella: commit 10, 8 active, +3 on 2026-11-09: held 11, billed 11 so far
    assert (seats["license-advanced"]["held"], seats["license-advanced"]["billed"]) == (11, 11)
    assert {line["type"] for line in data["lines"]} >= {"fee", "recurring", "prorated"}
    assert data["estimated_total"]["micros"] > 0
    assert main([*base, "--tenant", "acme", "--as-of", "2026-11-20T00:00:00+01:00"]) == 0
    text = capfd.readouterr().out
    assert "Usage this period: acme" in text and "estimated total" in text
    assert "call outbound 33" in text  # an allowance and its use
