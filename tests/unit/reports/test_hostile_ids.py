"""Hostile tenant ids, team names and user ids (quotes, ``%``, ``_``, markup, unicode): a
tenant's report holds its own rows and no other's, filters match values exactly (never as
patterns), and every value reaches the page as text."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from markupsafe import escape
from reportdeck import HOSTILE_TEAMS, HOSTILE_TENANTS, HOSTILE_USERS, NOW_US, TENANTS, Deck

from rater.reports import make_report

MARKUP = ("<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "<b>ops</b>")


def _expected(deck: Deck, tenant: str, **equal: str) -> pl.DataFrame:
    """The tenant's rated records of November (its zone), by plain Polars equality."""
    zone = deck.tariff.plans[deck.tariff.tenants[tenant].plan_id].timezone
    local = pl.coalesce("answer_time", "start_time").dt.convert_time_zone(zone)
    frame = deck.rated().filter(
        (pl.col("tenant_id") == tenant)
        & (pl.col("status") == "rated")
        & (local.dt.strftime("%Y-%m") == "2026-11")
    )
    for column, value in equal.items():
        frame = frame.filter(pl.col(column) == value)
    return frame


def _report(deck: Deck, report: str, tenant: str, output: Path, **kw: object) -> Path:
    make_report(
        deck.tariff_dir,
        deck.rated_dir,
        report,
        tenant_id=tenant,
        output=output,
        format=None,
        start="2026-11-01",
        end="2026-11-30",
        now_us=NOW_US,
        **kw,  # type: ignore[arg-type]
    )
    return output


@pytest.mark.parametrize("tenant", [t for t, *_ in TENANTS])
def test_a_tenant_report_holds_its_rows_only(deck: Deck, tmp_path: Path, tenant: str) -> None:
    csv = pl.read_csv(_report(deck, "consumption", tenant, tmp_path / "c.csv"), infer_schema=False)
    expected = _expected(deck, tenant)
    assert expected.height > 0
    assert set(csv.get_column("tenant_id")) == {tenant}
    assert sorted(csv.get_column("cdr_id")) == sorted(expected.get_column("cdr_id"))
    page = _report(deck, "consumption", tenant, tmp_path / "c.html").read_text(encoding="utf-8")
    total = int(expected.get_column("charge_micros").sum())
    assert f'id="total-charge" data-micros="{total}"' in page
    assert str(escape(tenant)) in page
    for raw in MARKUP:
        assert raw not in page
    if deck.tariff.tenants[tenant].billing == "prepaid":
        lines = pl.read_csv(
            _report(deck, "activity", tenant, tmp_path / "a.csv"), infer_schema=False
        )
        assert set(lines.get_column("tenant_id")) == {tenant}
        records = lines.filter(pl.col("reference").str.starts_with("cdr-"))
        charged = expected.filter(pl.col("charge_micros") != 0)
        assert sorted(records.get_column("reference")) == sorted(charged.get_column("cdr_id"))
        activity = _report(deck, "activity", tenant, tmp_path / "a.html").read_text(
            encoding="utf-8"
        )
        assert all(raw not in activity for raw in MARKUP)
    usage = _report(deck, "usage", tenant, tmp_path / "u.csv")
    assert set(pl.read_csv(usage, infer_schema=False).get_column("tenant_id")) == {tenant}


@pytest.mark.parametrize("team", HOSTILE_TEAMS)
def test_a_team_filter_matches_the_team_exactly(deck: Deck, tmp_path: Path, team: str) -> None:
    tenant = "globex"
    csv = pl.read_csv(
        _report(deck, "consumption", tenant, tmp_path / "t.csv", teams=[team]), infer_schema=False
    )
    expected = _expected(deck, tenant, team_id=team)
    assert expected.height > 0
    assert set(csv.get_column("team_id")) == {team}
    assert csv.height == expected.height


@pytest.mark.parametrize("user", [f"{u}-{i}" for i, u in enumerate(HOSTILE_USERS)])
def test_a_user_filter_matches_the_user_exactly(deck: Deck, tmp_path: Path, user: str) -> None:
    tenant = "<script>alert(1)</script>"
    csv = pl.read_csv(
        _report(deck, "consumption", tenant, tmp_path / "u.csv", users=[user]), infer_schema=False
    )
    expected = _expected(deck, tenant, user_id=user)
    assert csv.height == expected.height > 0
    assert set(csv.get_column("user_id")) == {user}
    page = _report(deck, "consumption", tenant, tmp_path / "u.html", users=[user])
    text = page.read_text(encoding="utf-8")
    assert str(escape(user)) in text
    assert all(raw not in text for raw in MARKUP)


def test_pattern_characters_match_nothing_else(deck: Deck, tmp_path: Path) -> None:
    """``%`` and ``_`` are tenants, teams and users of their own, not wildcards."""
    for tenant in ("%", "_"):
        csv = pl.read_csv(
            _report(deck, "consumption", tenant, tmp_path / "p.csv"), infer_schema=False
        )
        assert set(csv.get_column("tenant_id")) == {tenant}
    none = tmp_path / "none.csv"
    _report(deck, "consumption", "acme", none, teams=["%"], users=["_"])
    assert pl.read_csv(none).height == 0


def test_the_hostile_tenants_exist_in_the_deck(deck: Deck) -> None:
    rated = deck.rated()
    for tenant in HOSTILE_TENANTS:
        assert rated.filter(pl.col("tenant_id") == tenant).height > 0, tenant
    assert ZoneInfo("Europe/Paris")


def test_the_installed_command_says_one_line(deck: Deck, tmp_path: Path) -> None:
    """Through the real entry point: an unknown flag and a hostile unknown tenant."""
    base = [
        sys.executable,
        "-m",
        "rater",
        "report",
        "consumption",
        "--config",
        str(deck.tariff_dir),
        "--dataset",
        str(deck.rated_dir),
        "--output",
        str(tmp_path / "x.html"),
    ]
    for extra, message in (
        (["--tenant", "acme", "--bogus"], "unrecognized arguments: --bogus"),
        (["--tenant", "acme'; DROP TABLE x; --"], "unknown tenant"),
    ):
        done = subprocess.run([*base, *extra], capture_output=True, text=True, timeout=120)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and message in lines[0], done.stderr
        assert "Fix" in lines[0]
