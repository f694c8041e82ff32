"""Configuration errors: each stops loading, naming the file, the line and the fix;
``rater rate-file`` turns them into one line on stderr and exit status 2."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from rater.errors import ConfigError
from rater.tariff_files import load_tariff

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
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
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
    captured = capfd.readouterr()
    assert rc == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert "plans.yaml" in lines[0] and "Europe/Pariss" in lines[0]
    assert "Traceback" not in captured.err
    assert not (out / "rated.parquet").exists()


# ---------------------------------------------------------------------------------------
# max_call_seconds: a top-level key of plans.yaml (rule 1), default one day


def _good_tariff(tmp_path: Path, plans: str = GOOD_PLANS) -> Path:
    return write_tariff(tmp_path, plans, GOOD_RATES, GOOD_TENANTS)


def test_max_call_seconds_defaults_to_one_day(tmp_path: Path) -> None:
    assert load_tariff(_good_tariff(tmp_path)).max_call_seconds == 86_400


def test_max_call_seconds_is_read_next_to_plans(tmp_path: Path) -> None:
    plans = "max_call_seconds: 7200\n" + GOOD_PLANS
    assert load_tariff(_good_tariff(tmp_path, plans)).max_call_seconds == 7200
    after = GOOD_PLANS + "max_call_seconds: 60\n"
    assert load_tariff(_good_tariff(tmp_path / "after", after)).max_call_seconds == 60


@pytest.mark.parametrize(
    "value", ["0", "-5", "1.5", "'3600'", "true", "[1]", "null", "3155760001", "1" * 5000]
)
def test_bad_max_call_seconds_names_its_line_and_fix(tmp_path: Path, value: str) -> None:
    plans = GOOD_PLANS + f"max_call_seconds: {value}\n"
    with pytest.raises(ConfigError) as info:
        load_tariff(_good_tariff(tmp_path, plans))
    err = info.value
    assert Path(err.file).name == "plans.yaml"
    if len(value) < 100:  # a 5000-digit integer stops the YAML reader itself
        assert err.line == len(plans.strip().splitlines())  # the last line
        assert "max_call_seconds" in err.problem and "86400" in err.fix
    assert len(str(err)) < 300


# ---------------------------------------------------------------------------------------
# Files that are not what they should be: one line with the fix, exit status 2

CDR_LINE = (
    "c1,t1,sms,outbound,+33100000000,+33612345678,2026-03-02T10:00:00Z,2026-03-02T10:00:00Z\n"
)


def _rate_file(
    tmp_path: Path, tariff: Path, capfd: pytest.CaptureFixture[str]
) -> tuple[int, list[str]]:
    from rater.cli import main

    cdrs = tmp_path / "cdrs.csv"
    cdrs.write_text(
        "cdr_id,tenant_id,kind,direction,caller,callee,start_time,end_time\n" + CDR_LINE,
        encoding="utf-8",
    )
    out = tmp_path / "out"
    rc = main(["rate-file", "--config", str(tariff), "--input", str(cdrs), "--output", str(out)])
    err = capfd.readouterr().err
    assert "Traceback" not in err
    return rc, err.strip().splitlines()


def _assert_one_line_error(rc: int, lines: list[str], *fragments: str) -> None:
    assert rc == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith("rater: error: ") and "Fix: " in lines[0]
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize("name", ["plans.yaml", "rates.csv", "tenants.csv"])
def test_a_file_that_is_not_utf8_names_its_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], name: str
) -> None:
    tariff = _good_tariff(tmp_path)
    path = tariff / name
    path.write_bytes(path.read_bytes() + "# café\n".encode("latin-1"))
    line = len(path.read_bytes().splitlines())
    rc, lines = _rate_file(tmp_path, tariff, capfd)
    _assert_one_line_error(rc, lines, f"{name}:{line}: is not UTF-8 text", "save it as UTF-8")


def test_a_utf16_file_is_named_as_such(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    tariff = _good_tariff(tmp_path)
    rates = tariff / "rates.csv"
    rates.write_bytes(rates.read_text(encoding="utf-8").encode("utf-16"))
    rc, lines = _rate_file(tmp_path, tariff, capfd)
    _assert_one_line_error(rc, lines, "rates.csv:1: is UTF-16 text", "save it as UTF-8")


def test_a_utf8_bom_loads_like_the_same_file_without_it(tmp_path: Path) -> None:
    plain = load_tariff(_good_tariff(tmp_path / "plain"))
    bommed = _good_tariff(tmp_path / "bom")
    for name in ("plans.yaml", "rates.csv", "tenants.csv"):
        path = bommed / name
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    tariff = load_tariff(bommed)
    assert tariff.plans == plain.plans
    assert tariff.tenants == plain.tenants
    assert tariff.rates.equals(plain.rates)


@pytest.mark.parametrize("name", ["plans.yaml", "rates.csv", "tenants.csv"])
def test_a_directory_in_place_of_a_file(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], name: str
) -> None:
    tariff = _good_tariff(tmp_path)
    (tariff / name).unlink()
    (tariff / name).mkdir()
    rc, lines = _rate_file(tmp_path, tariff, capfd)
    _assert_one_line_error(rc, lines, f"{name}: is a directory, not a file")


def test_a_file_that_cannot_be_read(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    # A symlink to itself fails to open for every user, root included.
    tariff = _good_tariff(tmp_path)
    (tariff / "tenants.csv").unlink()
    (tariff / "tenants.csv").symlink_to(tariff / "tenants.csv")
    rc, lines = _rate_file(tmp_path, tariff, capfd)
    _assert_one_line_error(rc, lines, "tenants.csv: cannot be read (Too many levels")


def test_a_file_without_read_permission(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    # Root reads whatever the mode: as root, the load runs with the effective user nobody
    # (the real user stays root, so the test can switch back).
    shared = Path(tempfile.mkdtemp(prefix="rater-unreadable-"))
    shared.chmod(0o755)
    try:
        tariff = _good_tariff(shared)
        (tariff / "rates.csv").chmod(0)
        load_tariff(_good_tariff(tmp_path))  # every module the load needs is imported now
        with _as_nobody(), pytest.raises(ConfigError) as err:
            load_tariff(tariff)
        assert "rates.csv: cannot be read (Permission denied)" in str(err.value)
        assert "Fix:" in str(err.value) and "\n" not in str(err.value)
    finally:
        shutil.rmtree(shared)


@contextlib.contextmanager
def _as_nobody() -> Iterator[None]:
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def test_a_tariff_path_that_is_a_file(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    tariff = _good_tariff(tmp_path) / "plans.yaml"
    rc, lines = _rate_file(tmp_path, tariff, capfd)
    _assert_one_line_error(rc, lines, "is a file, not a tariff directory")


def test_an_empty_rate_deck_loads_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="rater.core.tariff"):
        tariff = load_tariff(write_tariff(tmp_path, GOOD_PLANS, [], GOOD_TENANTS))
    assert tariff.rates.height == 0
    assert "rates.csv has no rates: every CDR will be unrated (no_rate)" in caplog.text


def _rate(**fields: str) -> list[str]:
    return [row("q", prefix="49", **fields)]  # type: ignore[arg-type]


def _tenant(balance: str) -> list[str]:
    return [f"t9,q,prepaid,{balance},1,1,true"]


# case: (where, what the message says, plans.yaml, extra rates, extra tenants)
HOSTILE_CONFIG: dict[str, tuple[str, str, str, list[str], list[str]]] = {
    "price with 60 decimals": (
        "rates.csv:4",
        "has too many digits",
        GOOD_PLANS,
        _rate(price="0." + "0" * 59 + "1"),
        [],
    ),
    "price of 50 digits": (
        "rates.csv:4",
        "has too many digits",
        GOOD_PLANS,
        _rate(price="9" * 50),
        [],
    ),
    "increment of 30 digits": (
        "rates.csv:4",
        "is not an integer from 1 to 86400",
        GOOD_PLANS,
        _rate(inc="9" * 30),
        [],
    ),
    "field over the csv limit": (
        "rates.csv:4",
        "field larger than field limit",
        GOOD_PLANS,
        _rate(price="1" * 200_000),
        [],
    ),
    "balance of 40 digits": (
        "tenants.csv:4",
        "has too many digits",
        GOOD_PLANS,
        [],
        _tenant("9" * 40),
    ),
    "balance of 10**12": ("tenants.csv:4", "is too large", GOOD_PLANS, [], _tenant("1" + "0" * 12)),
    "yaml nested too deeply": (
        "plans.yaml",
        "nested too deeply",
        "plans: " + "[" * 5000 + "]" * 5000 + "\n",
        [],
        [],
    ),
    "yaml recursive anchor": (
        "plans.yaml",
        "recursive node",
        GOOD_PLANS.replace(
            "timezone: Europe/Paris\n", "timezone: Europe/Paris\n    x: &a [*a]\n", 1
        ),
        [],
        [],
    ),
    "yaml impossible date": (
        "plans.yaml",
        "month must be in 1..12",
        GOOD_PLANS + "when: 2001-13-45\n",
        [],
        [],
    ),
    "yaml syntax error on several lines": (
        "plans.yaml:12",
        "invalid YAML",
        GOOD_PLANS + "  - {id: [\n",
        [],
        [],
    ),
    "allowance of 30 digits": (
        "plans.yaml:12",
        "less than or equal to 1000000000000",
        GOOD_PLANS
        + "    allowances:\n      - {kind: call, direction: any, seconds: "
        + "9" * 30
        + "}\n",
        [],
        [],
    ),
    "time zone of 5000 letters": (
        "plans.yaml:2",
        "unknown time zone 'aaaa",
        GOOD_PLANS.replace("Europe/Paris", "a" * 5000),
        [],
        [],
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_CONFIG))
def test_hostile_tariff_values_give_one_short_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], case: str
) -> None:
    where, problem, plans, rates, tenants = HOSTILE_CONFIG[case]
    tariff = write_tariff(tmp_path, plans, [*GOOD_RATES, *rates], [*GOOD_TENANTS, *tenants])
    rc, lines = _rate_file(tmp_path, tariff, capfd)
    _assert_one_line_error(rc, lines, where, problem)
    assert len(lines[0]) < 400


TARIFF_HOSTILE = [
    "",
    "1" * 60,
    "1e30",
    "-1",
    "ünïcødé",
    "9999-12-31T23:59:59Z",
    "NaN",
    '"a, b"',
    "\u202e",
]
RATE_FIELDS = ("plan_id", "kind", "direction", "prefix", "band", "effective_from", "effective_to")
RATE_FIELDS += ("connect_fee", "price", "first_increment", "increment", "min_charge")
TENANT_FIELDS = ("tenant_id", "plan_id", "billing", "opening_balance", "low_balance_threshold")
TENANT_FIELDS += ("recharge_amount", "auto_recharge")


@pytest.mark.parametrize(
    ("file", "column"),
    [("rates.csv", c) for c in RATE_FIELDS] + [("tenants.csv", c) for c in TENANT_FIELDS],
)
def test_hostile_values_in_every_tariff_column(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], file: str, column: str
) -> None:
    good_rate = dict(zip(RATE_FIELDS, row("q", prefix="49").split(","), strict=True))
    good_tenant = dict(
        zip(TENANT_FIELDS, ["t9", "q", "prepaid", "10", "1", "5", "true"], strict=True)
    )
    for i, value in enumerate(TARIFF_HOSTILE):
        rate, tenant = dict(good_rate), dict(good_tenant)
        (rate if file == "rates.csv" else tenant)[column] = value
        tariff = write_tariff(
            tmp_path / str(i),
            GOOD_PLANS,
            [*GOOD_RATES, ",".join(rate.values())],
            [*GOOD_TENANTS, ",".join(tenant.values())],
        )
        rc, lines = _rate_file(tmp_path / str(i), tariff, capfd)
        assert rc in (0, 2), (column, value)
        if rc == 2:
            _assert_one_line_error(rc, lines, f"{file}:4")


@pytest.mark.parametrize(
    ("row", "what"),
    [
        ("p,call,outbound,33,any,2026-01-01T00:00:00Z,,0,700,60,60,", "a call of max_call_seconds"),
        (
            "p,call,outbound,33,any,2026-01-01T00:00:00Z,,0,0,60,60,1000001",
            "a call of max_call_seconds",
        ),
        ("p,sms,outbound,33,any,2026-01-01T00:00:00Z,,,1000000.01,,,", "one segment"),
    ],
)
def test_a_rate_that_could_charge_over_a_million_is_refused(
    tmp_path: Path, row: str, what: str
) -> None:
    d = tmp_path / "t"
    d.mkdir()
    (d / "plans.yaml").write_text("plans:\n  - {id: p, currency: EUR, timezone: UTC}\n")
    header = "plan_id,kind,direction,prefix,band,effective_from,effective_to,connect_fee,price,first_increment,increment,min_charge"
    (d / "rates.csv").write_text(f"{header}\n{row}\n")
    (d / "tenants.csv").write_text(
        "tenant_id,plan_id,billing,opening_balance,low_balance_threshold,recharge_amount,auto_recharge\n"
    )
    with pytest.raises(ConfigError, match=what) as err:
        load_tariff(d)
    assert err.value.line == 2


def test_a_dear_rate_fits_when_calls_are_capped_shorter(tmp_path: Path) -> None:
    d = tmp_path / "t"
    d.mkdir()
    (d / "plans.yaml").write_text(
        "max_call_seconds: 3600\nplans:\n  - {id: p, currency: EUR, timezone: UTC}\n"
    )
    header = "plan_id,kind,direction,prefix,band,effective_from,effective_to,connect_fee,price,first_increment,increment,min_charge"
    (d / "rates.csv").write_text(
        f"{header}\np,call,outbound,33,any,2026-01-01T00:00:00Z,,0,700,60,60,\n"
    )
    (d / "tenants.csv").write_text(
        "tenant_id,plan_id,billing,opening_balance,low_balance_threshold,recharge_amount,auto_recharge\n"
    )
    assert load_tariff(d).max_call_seconds == 3600
