"""Configuration errors: each stops loading, naming the file, the line and the fix;
``rater rate-file`` turns them into one line on stderr and exit status 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from rater.core.tariff import load_tariff
from rater.errors import ConfigError

from .helpers import row, write_tariff

GOOD_PLANS = """
plans:
  - id: p
    currency: EUR
    timezone: Europe/Paris
    fallback: q
    bands:
      - {name: peak, days: [mon, tue, wed, thu, fri], from: "08:00", to: "20:00"}
  - id: q
    currency: EUR
    timezone: Europe/Paris
"""
GOOD_RATES = [row("p", prefix="33", band="peak"), row("q")]
GOOD_TENANTS = ["t1,p,postpaid,,,,false", "t2,q,prepaid,10.00,1.00,5.00,true"]


def test_the_good_tariff_loads(tmp_path: Path) -> None:
    tariff = load_tariff(write_tariff(tmp_path, GOOD_PLANS, GOOD_RATES, GOOD_TENANTS))
    assert sorted(tariff.plans) == ["p", "q"]
    assert sorted(tariff.tenants) == ["t1", "t2"]


# (file, expected line, plans, rates, tenants); CSV lines count the header as line 1.
CSV_CASES = {
    "rates: unknown plan": (
        "rates.csv",
        3,
        GOOD_PLANS,
        [*GOOD_RATES[:1], row("nope"), GOOD_RATES[1]],
        GOOD_TENANTS,
    ),
    "tenants: unknown plan": (
        "tenants.csv",
        3,
        GOOD_PLANS,
        GOOD_RATES,
        [GOOD_TENANTS[0], "t3,nope,postpaid,,,,false"],
    ),
    "duplicate rate key": (
        "rates.csv",
        4,
        GOOD_PLANS,
        [*GOOD_RATES, row("p", prefix="33", band="peak", price="0.99")],
        GOOD_TENANTS,
    ),
    "band not in plan": (
        "rates.csv",
        3,
        GOOD_PLANS,
        [GOOD_RATES[0], row("q", band="peak")],
        GOOD_TENANTS,
    ),
    "bad decimal price": (
        "rates.csv",
        2,
        GOOD_PLANS,
        [row("p", prefix="33", price="0,05"), GOOD_RATES[1]],
        GOOD_TENANTS,
    ),
    "float-style exponent is not a decimal": (
        "rates.csv",
        3,
        GOOD_PLANS,
        [GOOD_RATES[0], row("q", price="1e-3")],
        GOOD_TENANTS,
    ),
    "bad decimal balance": (
        "tenants.csv",
        3,
        GOOD_PLANS,
        GOOD_RATES,
        [GOOD_TENANTS[0], "t2,q,prepaid,ten,1.00,5.00,true"],
    ),
}


@pytest.mark.parametrize("case", sorted(CSV_CASES))
def test_csv_config_error_names_file_line_and_fix(tmp_path: Path, case: str) -> None:
    file, line, plans, rates, tenants = CSV_CASES[case]
    with pytest.raises(ConfigError) as info:
        load_tariff(write_tariff(tmp_path, plans, rates, tenants))
    err = info.value
    assert Path(err.file).name == file
    assert err.line == line
    assert err.fix
    assert f"{file}:{line}" in str(err)


PLAN_CASES = {
    "unknown time zone": """
plans:
  - {id: p, currency: EUR, timezone: Europe/Pariss}
  - {id: q, currency: EUR, timezone: Europe/Paris}
""",
    "fallback cycle": """
plans:
  - {id: p, currency: EUR, timezone: Europe/Paris, fallback: q}
  - {id: q, currency: EUR, timezone: Europe/Paris, fallback: p}
""",
    "fallback to itself": """
plans:
  - {id: p, currency: EUR, timezone: Europe/Paris, fallback: p}
  - {id: q, currency: EUR, timezone: Europe/Paris}
""",
    "unknown fallback plan": """
plans:
  - {id: p, currency: EUR, timezone: Europe/Paris, fallback: nope}
  - {id: q, currency: EUR, timezone: Europe/Paris}
""",
    "fallback in another currency": """
plans:
  - {id: p, currency: EUR, timezone: Europe/Paris, fallback: q}
  - {id: q, currency: USD, timezone: America/New_York}
""",
}


@pytest.mark.parametrize("case", sorted(PLAN_CASES))
def test_plans_config_error_names_file_place_and_fix(tmp_path: Path, case: str) -> None:
    rates = [row("p"), row("q")]
    with pytest.raises(ConfigError) as info:
        load_tariff(write_tariff(tmp_path, PLAN_CASES[case], rates, GOOD_TENANTS))
    err = info.value
    assert Path(err.file).name == "plans.yaml"
    assert err.line is not None and str(err.line)
    assert err.fix


def test_rate_file_exits_2_with_one_line_and_no_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rater.cli import main

    plans = PLAN_CASES["unknown time zone"]
    tariff = write_tariff(tmp_path, plans, [row("p"), row("q")], GOOD_TENANTS)
    cdrs = tmp_path / "cdrs.csv"
    cdrs.write_text(
        "cdr_id,tenant_id,kind,direction,caller,callee,start_time,end_time\n"
        "c1,t1,sms,outbound,+33100000000,+33612345678,2026-03-02T10:00:00Z,2026-03-02T10:00:00Z\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    rc = main(["rate-file", "--config", str(tariff), "--input", str(cdrs), "--output", str(out)])
    captured = capsys.readouterr()
    assert rc == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert "plans.yaml" in lines[0] and "Europe/Pariss" in lines[0]
    assert "Traceback" not in captured.err
    assert not (out / "rated.parquet").exists()
