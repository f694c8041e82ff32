"""`rater demo --output DIR` never deletes anything it did not write (no broker needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rater.cli import main
from rater.demo import MARKER, check_output, prepare_output
from rater.errors import UsageError

EXAMPLE_CONFIG = Path(__file__).resolve().parents[3] / "config"


def _demo(output: Path) -> int:
    return main(["demo", "--config", str(EXAMPLE_CONFIG), "--output", str(output)])


def test_refuses_a_non_empty_directory_it_did_not_create(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "thesis.tex").write_text("years of work", encoding="utf-8")
    assert _demo(tmp_path) == 2
    err = capsys.readouterr().err
    assert err == (
        f"rater: error: --output {tmp_path} is not empty and was not created by rater demo. "
        "Fix: choose a new or empty directory\n"
    )
    assert (tmp_path / "thesis.tex").read_text(encoding="utf-8") == "years of work"
    assert not (tmp_path / MARKER).exists()


def test_refuses_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("keep me", encoding="utf-8")
    assert _demo(target) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a directory" in err and "Fix:" in err
    assert target.read_text(encoding="utf-8") == "keep me"


def test_a_hidden_file_is_content_too(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SECRET=1", encoding="utf-8")
    with pytest.raises(UsageError, match="not empty"):
        check_output(tmp_path)


def test_a_new_directory_is_created_with_the_marker(tmp_path: Path) -> None:
    output = tmp_path / "a" / "demo-out"
    prepare_output(output)
    assert [p.name for p in output.iterdir()] == [MARKER]


def test_an_empty_directory_is_used(tmp_path: Path) -> None:
    prepare_output(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [MARKER]


def test_a_previous_demo_output_is_emptied_without_following_links(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.csv").write_text("x", encoding="utf-8")
    output = tmp_path / "demo-out"
    prepare_output(output)
    (output / "rated" / "month=2026-11").mkdir(parents=True)
    (output / "rated" / "month=2026-11" / "cdrs-0-0-9.parquet").write_bytes(b"PAR1")
    (output / "rater.duckdb").write_bytes(b"db")
    (output / "link").symlink_to(outside, target_is_directory=True)
    prepare_output(output)
    assert [p.name for p in output.iterdir()] == [MARKER]
    assert (outside / "precious.csv").read_text(encoding="utf-8") == "x"


def test_a_directory_named_like_the_marker_is_not_the_marker(tmp_path: Path) -> None:
    (tmp_path / MARKER).mkdir()
    with pytest.raises(UsageError, match="not empty"):
        prepare_output(tmp_path)
    assert (tmp_path / MARKER).is_dir()
