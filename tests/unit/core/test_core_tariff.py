from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from coredeck import PLANS, RATES, TENANTS, write_tariff

from rater.errors import ConfigError
from rater.tariff_files import load_tariff

HEADER = RATES.splitlines()[0]


def test_loads_example(tmp_path: Path) -> None:
    tariff = load_tariff(write_tariff(tmp_path))
    assert list(tariff.plans) == ["pro", "base"]
    assert tariff.plans["pro"].fallback == "base"
    assert tariff.plans["pro"].bands[1].to_minute == 1440
    assert tariff.tenants["pre"].opening_balance_micros == 1_000_000
    assert tariff.tenants["post"].billing == "postpaid"
    row = tariff.rates.row(0, named=True)
    # Exact: numerator over 10**scale reproduces the decimal string.
    assert Decimal(row["price_num"]) / 10**tariff.price_scale == Decimal("0.0123456789")
    assert row["price"] == "0.0123456789"


def _expect(tmp_path: Path, file: str, line: object, fragment: str, **files: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_tariff(write_tariff(tmp_path, **files))
    assert err.value.file.endswith(file)
    assert err.value.line == line
    assert fragment in err.value.problem
    assert err.value.fix


@pytest.mark.parametrize(
    ("row", "fragment"),
    [
        ("nope,call,outbound,1,any,2025-01-01T00:00:00Z,,0,1,1,1,", "unknown plan"),
        ("pro,fax,outbound,1,any,2025-01-01T00:00:00Z,,0,1,1,1,", "unknown kind"),
        ("pro,call,sideways,1,any,2025-01-01T00:00:00Z,,0,1,1,1,", "unknown direction"),
        ("pro,call,outbound,1,night,2025-01-01T00:00:00Z,,0,1,1,1,", "not a band"),
        ("pro,call,outbound,1,any,2025-01-01T00:00:00Z,,0,1.2.3,1,1,", "price"),
        ("pro,call,outbound,1,any,2025-01-01T00:00:00,,0,1,1,1,", "offset"),
        ("pro,call,outbound,1,any,2025-01-01T00:00:00Z,,0,1,0,1,", "first_increment"),
        ("pro,call,outbound,1,any,2025-01-01T00:00:00Z,,0,1,1,x,", "increment"),
        ("pro,call,outbound,+1,any,2025-01-01T00:00:00Z,,0,1,1,1,", "prefix"),
        ("pro,call,outbound,33,peak,2025-01-01T00:00:00+01:00,,0,9,1,1,", "duplicate rate key"),
        ("pro,call,outbound,33,peak,2024-12-31T23:00:00Z,,0,9,1,1,", "duplicate rate key"),
        (
            "pro,call,outbound,1,any,2025-01-01T00:00:00Z,2024-01-01T00:00:00Z,0,1,1,1,",
            "effective_to",
        ),
    ],
)
def test_rate_errors_name_the_line(tmp_path: Path, row: str, fragment: str) -> None:
    rates = RATES + row + "\n"
    _expect(tmp_path, "rates.csv", len(rates.splitlines()), fragment, rates=rates)


def test_missing_rate_column(tmp_path: Path) -> None:
    _expect(tmp_path, "rates.csv", 1, "missing column", rates="plan_id,kind\npro,call\n")


def test_missing_file(tmp_path: Path) -> None:
    write_tariff(tmp_path)
    (tmp_path / "tenants.csv").unlink()
    with pytest.raises(ConfigError) as err:
        load_tariff(tmp_path)
    assert "not found" in err.value.problem


@pytest.mark.parametrize(
    ("row", "fragment"),
    [
        ("x,nope,prepaid,1,1,1,true", "unknown plan"),
        ("x,pro,credit,1,1,1,true", "unknown billing"),
        ("x,pro,prepaid,1.0000001,1,1,true", "more than 6 decimals"),
        ("x,pro,prepaid,abc,1,1,true", "opening_balance"),
        ("pre,pro,prepaid,1,1,1,true", "duplicate tenant"),
    ],
)
def test_tenant_errors_name_the_line(tmp_path: Path, row: str, fragment: str) -> None:
    tenants = TENANTS + row + "\n"
    _expect(tmp_path, "tenants.csv", len(tenants.splitlines()), fragment, tenants=tenants)


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ("timezone: Europe/Paris", "timezone: Mars/Olympus", "unknown time zone"),
        ("fallback: base", "fallback: gone", "unknown fallback"),
        ('from: "08:00", to: "20:00"', 'from: "8h", to: "20:00"', "bad time"),
        ('from: "08:00", to: "20:00"', 'from: "24:00", to: "20:00"', "bad time"),
        ('from: "08:00", to: "20:00"', 'from: "08:00", to: "24:01"', "bad time"),
        ("rounding: half_up", "rounding: bankers", "bad plan"),
        ("decimals: 4", "decimals: 9", "bad plan"),
    ],
)
def test_plan_errors(tmp_path: Path, old: str, new: str, fragment: str) -> None:
    assert old in PLANS
    with pytest.raises(ConfigError) as err:
        load_tariff(write_tariff(tmp_path, plans=PLANS.replace(old, new, 1)))
    assert err.value.file.endswith("plans.yaml")
    assert fragment in err.value.problem
    assert err.value.line is not None


def test_fallback_cycle_and_currency(tmp_path: Path) -> None:
    cyclic = PLANS.replace("    rounding: up\n", "    rounding: up\n    fallback: pro\n")
    with pytest.raises(ConfigError) as err:
        load_tariff(write_tariff(tmp_path / "a", plans=cyclic))
    assert "cycle" in err.value.problem
    usd = PLANS.replace(
        "currency: EUR\n    timezone: America", "currency: USD\n    timezone: America"
    )
    with pytest.raises(ConfigError) as err:
        load_tariff(write_tariff(tmp_path / "b", plans=usd))
    assert "same currency" in err.value.fix


def test_plan_error_carries_yaml_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_tariff(write_tariff(tmp_path, plans=PLANS.replace("Europe/Paris", "Nowhere/X")))
    assert str(err.value.line).startswith("2 ")  # the plan's mapping starts on line 2
