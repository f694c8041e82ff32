"""``rater report`` from the command line: every report in every format, exit 0 and one
line; every bad flag exit 2 and one line with the fix, never a traceback; files written
atomically; an empty range gives a valid empty report and a friendly line; progress goes
to stderr only when it is a terminal."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from reportdeck import Deck

from rater.cli import main
from rater.core.columns import CDR_SCHEMA, RATED_EXTRA_SCHEMA
from rater.reports.activity import ACTIVITY_SCHEMA


def _args(deck: Deck, report: str, tenant: str, output: Path, *more: str) -> list[str]:
    return [
        "report",
        report,
        "--config",
        str(deck.tariff_dir),
        "--dataset",
        str(deck.rated_dir),
        "--tenant",
        tenant,
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-30",
        "--output",
        str(output),
        *more,
    ]


def _run(capfd: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, list[str], list[str]]:
    try:
        code = main(argv)
    except SystemExit as exit:  # argparse's errors (the parser runs before main's handler)
        code = int(exit.code or 0)
    captured = capfd.readouterr()
    return code, captured.out.splitlines(), captured.err.splitlines()


@pytest.mark.parametrize("fmt", ["html", "csv", "parquet"])
@pytest.mark.parametrize("report", ["consumption", "activity", "usage"])
def test_every_report_in_every_format(
    deck: Deck, tmp_path: Path, capfd: pytest.CaptureFixture[str], report: str, fmt: str
) -> None:
    output = tmp_path / f"{report}.{fmt}"
    code, out, err = _run(capfd, _args(deck, report, "globex", output, "--format", fmt))
    assert code == 0, err
    assert len(out) == 1 and str(output) in out[0] and err == []
    assert output.is_file() and output.stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [output.name]  # no temporary left
    if fmt == "html":
        assert output.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    elif report == "consumption":
        frame = pl.read_csv(output, infer_schema=False) if fmt == "csv" else pl.read_parquet(output)
        assert frame.columns == [*CDR_SCHEMA, *RATED_EXTRA_SCHEMA, "local_time"]
        assert set(frame.get_column("tenant_id")) == {"globex"}
    elif report == "activity":
        frame = pl.read_csv(output, infer_schema=False) if fmt == "csv" else pl.read_parquet(output)
        assert frame.columns == [*ACTIVITY_SCHEMA, "amount", "balance_after"]


def test_the_pdf_format(deck: Deck, tmp_path: Path) -> None:
    """In a process of its own, as a person runs it: one line, nothing on stderr (no log
    line of the PDF engine's steps)."""
    output = tmp_path / "activity.pdf"
    argv = _args(deck, "activity", "wayne", output, "--from", "2026-11-01", "--to", "2026-11-03")
    done = subprocess.run(  # the format from the file name
        [sys.executable, "-m", "rater", *argv], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("wrote activity report (pdf, ")
    assert lines[0].endswith(f" to {output}")
    assert output.read_bytes().startswith(b"%PDF-")


def test_the_dataset_defaults_to_the_settings(
    deck: Deck, tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RATER_OUTPUT__DATASET_DIR", str(deck.rated_dir))
    monkeypatch.setenv("RATER_REPORT__MASK_CALLEE", "true")
    argv = _args(deck, "consumption", "acme", tmp_path / "c.csv", "--format", "csv")
    argv = argv[:4] + argv[6:]  # without --dataset
    assert _run(capfd, argv)[0] == 0
    callees = pl.read_csv(tmp_path / "c.csv", infer_schema=False).get_column("callee")
    assert callees.str.contains("\u2022").all()


BAD_FLAGS = [
    (["--format", "docx"], "--format: 'docx' unknown. Fix: use --format html|pdf|csv|parquet"),
    (["--kind", "video"], "--kind 'video': unknown. Fix: use one of call, sms, ring_through"),
    (["--direction", "sideways"], "--direction 'sideways': unknown. Fix"),
    (
        ["--show", "everything"],
        "--show 'everything': unknown. Fix: use one of all, debits, credits",
    ),
    (["--from", "2026-13-01"], "--from '2026-13-01': not a date. Fix: write YYYY-MM-DD"),
    (["--from", "1999-12-01"], "--from '1999-12-01': not a date. Fix"),
    (["--to", "tomorrow"], "--to 'tomorrow': not a date. Fix"),
    (["--from", "2026-11-10", "--to", "2026-11-01"], "is not before --to"),
    (["--team", ""], "--team '': empty or too long. Fix"),
    (["--user", "u" * 300], "--user 'uuuuu"),
    (["--team", "bad\udcffbyte"], "not text (bytes that are not UTF-8, or NUL). Fix"),
    (["--user", "nul\x00"], "not text"),
    (["--bogus"], "report: unrecognized arguments: --bogus. Fix: see `rater report --help`"),
    (
        ["--dataset", "/nonexistent/data"],
        "--dataset /nonexistent/data: no such file or directory. Fix",
    ),
    (["--config", "/nonexistent/tariff"], "/nonexistent/tariff: tariff directory not found. Fix"),
]


@pytest.mark.parametrize(("more", "message"), BAD_FLAGS)
def test_a_bad_flag_is_one_line_with_the_fix(
    deck: Deck, tmp_path: Path, capfd: pytest.CaptureFixture[str], more: list[str], message: str
) -> None:
    output = tmp_path / "out.html"
    code, out, err = _run(capfd, _args(deck, "consumption", "acme", output, *more))
    assert code == 2 and out == []
    assert len(err) == 1 and message in err[0] and "Fix" in err[0], err
    assert "Traceback" not in err[0]
    assert not output.exists()


@pytest.mark.parametrize(
    ("argv_edit", "message"),
    [
        (lambda a: [*a[:1], "invoices", *a[2:]], "report 'invoices': unknown. Fix: use one of"),
        (
            lambda a: [x if x != "acme" else "nobody" for x in a],
            "--tenant 'nobody': unknown tenant. Fix",
        ),
        (lambda a: [x if x != "acme" else "evil\udcff" for x in a], "unknown tenant. Fix"),
        (
            lambda a: [x if x != "consumption" else "activity" for x in a],
            "is postpaid; account activity",
        ),
        (lambda a: a[:6] + a[8:], "--tenant is required. Fix"),
        (lambda a: a[:-2], "--output is required. Fix"),
    ],
)
def test_a_bad_report_tenant_or_missing_flag_is_one_line(
    deck: Deck,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    argv_edit,
    message: str,  # type: ignore[no-untyped-def]
) -> None:
    argv = argv_edit(_args(deck, "consumption", "acme", tmp_path / "out.html"))
    code, _, err = _run(capfd, argv)
    assert code == 2 and len(err) == 1 and message in err[0], err


@pytest.mark.parametrize(
    ("report", "more", "message"),
    [
        ("activity", ["--team", "sales"], "--team: filters the consumption report only"),
        ("usage", ["--kind", "call"], "--kind: filters the consumption report only; the usage"),
        ("usage", ["--direction", "inbound"], "--direction: filters the consumption report"),
        ("consumption", ["--show", "debits"], "--show: chooses the lines of the account activity"),
        ("usage", ["--show", "all"], "Fix: leave --show out of `rater report usage`"),
    ],
)
def test_a_flag_the_report_does_not_use_is_refused(
    deck: Deck,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    report: str,
    more: list[str],
    message: str,
) -> None:
    output = tmp_path / "out.html"
    code, out, err = _run(capfd, _args(deck, report, "globex", output, *more))
    assert code == 2 and out == [] and len(err) == 1 and message in err[0], err
    assert not output.exists()


def test_bad_settings_and_output_paths(
    deck: Deck, tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RATER_REPORT__DETAIL_ROWS", "-5")
    code, _, err = _run(capfd, _args(deck, "consumption", "acme", tmp_path / "a.html"))
    assert code == 2 and len(err) == 1 and "RATER_REPORT__DETAIL_ROWS" in err[0]
    monkeypatch.delenv("RATER_REPORT__DETAIL_ROWS")
    code, _, err = _run(capfd, _args(deck, "consumption", "acme", tmp_path, "--format", "html"))
    assert code == 2 and len(err) == 1 and "is a directory. Fix: give a file name" in err[0]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = _run(capfd, _args(deck, "consumption", "acme", blocker / "a.html"))
    assert code == 2 and len(err) == 1 and "exists and is not a directory" in err[0]


def test_a_failed_report_leaves_the_previous_file_whole(
    deck: Deck, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "report.html"
    output.write_text("the previous report")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "rated.parquet").write_bytes(b"PAR1 this is not parquet")
    argv = _args(deck, "consumption", "acme", output)
    argv[argv.index("--dataset") + 1] = str(broken)
    code, _, err = _run(capfd, argv)
    assert code == 2 and len(err) == 1 and "cannot be read" in err[0] and "Fix:" in err[0]
    assert output.read_text() == "the previous report"
    assert sorted(os.listdir(tmp_path)) == ["broken", "report.html"]


@pytest.mark.parametrize("fmt", ["html", "csv", "parquet"])
def test_an_empty_range_is_a_friendly_line_and_a_valid_empty_report(
    deck: Deck, tmp_path: Path, capfd: pytest.CaptureFixture[str], fmt: str
) -> None:
    output = tmp_path / f"empty.{fmt}"
    argv = _args(deck, "consumption", "acme", output, "--format", fmt)
    argv[argv.index("--from") + 1], argv[argv.index("--to") + 1] = "2025-01-01", "2025-01-31"
    code, out, err = _run(capfd, argv)
    assert code == 0 and err == [] and len(out) == 1
    assert out[0].startswith("no records for tenant 'acme' from 2025-01-01 to 2025-01-31")
    if fmt == "html":
        assert 'id="empty-note"' in output.read_text(encoding="utf-8")
    else:
        frame = pl.read_csv(output) if fmt == "csv" else pl.read_parquet(output)
        assert frame.height == 0 and "charge_micros" in frame.columns


@pytest.mark.parametrize(
    ("report", "tenant", "line"),
    [
        (
            "activity",
            "wayne",
            "no debits and credits for tenant 'wayne' from 2025-01-01 to 2025-01-31 "
            "(Europe/Paris): wrote an empty activity report",
        ),
        (
            "usage",
            "acme",
            "no records for tenant 'acme' in period 2025-01 up to 2025-01-31 23:59:59 "
            "(Europe/Paris): wrote its usage report",
        ),
    ],
)
@pytest.mark.parametrize("fmt", ["html", "csv"])
def test_an_empty_range_of_the_other_reports(
    deck: Deck,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    report: str,
    tenant: str,
    line: str,
    fmt: str,
) -> None:
    output = tmp_path / f"empty.{fmt}"
    argv = _args(deck, report, tenant, output, "--format", fmt)
    argv[argv.index("--from") + 1], argv[argv.index("--to") + 1] = "2025-01-01", "2025-01-31"
    code, out, err = _run(capfd, argv)
    assert code == 0 and err == [] and len(out) == 1
    assert out[0].startswith(line) and out[0].endswith(f" to {output}"), out
    if fmt == "html":
        page = output.read_text(encoding="utf-8")
        assert page.startswith("<!DOCTYPE html>")
        if report == "activity":
            assert 'id="empty-note"' in page
    else:
        frame = pl.read_csv(output, infer_schema=False)
        if report == "activity":
            assert frame.height == 0 and "amount_micros" in frame.columns
        else:  # the plan's fee and seats, nothing used
            sections = frame.filter(pl.col("item") == "Overage so far")
            assert sections.get_column("amount").to_list() == ["0.00"]


def _on_a_terminal(argv: list[str]) -> tuple[int, str, str]:
    """``rater`` in a child process whose stderr is a terminal (a pseudo-terminal) and
    whose stdout is a pipe: (exit status, stdout, what the terminal received)."""
    master, slave = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "rater", *argv],
            stdout=subprocess.PIPE,
            stderr=slave,
            stdin=subprocess.DEVNULL,
            timeout=300,
            check=False,
        )
    finally:
        os.close(slave)
    received = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the terminal's other side is closed: all read
            break
        if not chunk:
            break
        received += chunk
    os.close(master)
    return done.returncode, done.stdout.decode("utf-8"), received.decode("utf-8")


@pytest.mark.parametrize("fmt", ["html", "csv"])
def test_progress_goes_to_the_terminal_and_never_to_a_pipe(
    deck: Deck, tmp_path: Path, capfd: pytest.CaptureFixture[str], fmt: str
) -> None:
    output = tmp_path / f"c.{fmt}"
    argv = _args(deck, "consumption", "globex", output, "--format", fmt)
    code, out, terminal = _on_a_terminal(argv)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 1, (out, terminal)
    assert lines[0].startswith(f"wrote consumption report ({fmt}, ") and str(output) in lines[0]
    stages = terminal.splitlines()
    assert all(re.fullmatch(r"rater report: [a-z ]+\.\.\. \(\d+\.\d s\)", s) for s in stages)
    next_stage = "drawing the charts" if fmt == "html" else "exporting the records"
    assert [s.split("...")[0] for s in stages] == [
        f"rater report: {stage}" for stage in ("reading records", next_stage, "writing the file")
    ]
    # The same command with stderr a pipe (as in a script or a cron job): no progress.
    code, out_lines, err = _run(capfd, argv)
    assert code == 0 and len(out_lines) == 1 and err == []
