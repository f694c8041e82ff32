"""Catalogue and subscriptions.csv errors: file, line and fix, exit status 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from rater.errors import ConfigError
from rater.tariff_files import load_tariff

from .billing import pro_eu, write_billing_tariff


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("a,ghost,did,add,1,2026-04-01T00:00:00Z", "subscriptions.csv:2: unknown tenant 'ghost'"),
        ("a,acme,fax,add,1,2026-04-01T00:00:00Z", "product 'fax' is not a product of plan pro-eu"),
        ("a,acme,did,rent,1,2026-04-01T00:00:00Z", "unknown change 'rent'"),
        ("a,acme,did,charge,1,2026-04-01T00:00:00Z", "charge does not fit product did (seat)"),
        ("a,acme,did-setup,add,1,2026-04-01T00:00:00Z", "add does not fit product did-setup"),
        ("a,acme,pro-fee,add,1,2026-04-01T00:00:00Z", "add does not fit product pro-fee (fee)"),
        ("a,acme,did,add,0,2026-04-01T00:00:00Z", "quantity '0'"),
        ("a,acme,did,add,-1,2026-04-01T00:00:00Z", "quantity '-1'"),
        ("a,acme,did,add,1.5,2026-04-01T00:00:00Z", "quantity '1.5'"),
        ("a,acme,did,add," + "9" * 60 + ",2026-04-01T00:00:00Z", "quantity"),
        ("a,acme,did,add,1,2026-04-01 00:00", "at"),
        ("a,acme,did,add,1,9999-04-01T00:00:00Z", "not within 2000..2099"),
        ("a,acme,did,remove,1,2026-04-01T00:00:00Z", "removes 1 did of tenant acme"),
        (",acme,did,add,1,2026-04-01T00:00:00Z", "change_id"),
    ],
)
def test_a_bad_change_names_its_line(tmp_path: Path, row: str, message: str) -> None:
    tariff = write_billing_tariff(tmp_path, pro_eu(), [row])
    with pytest.raises(ConfigError) as err:
        load_tariff(tariff)
    text = str(err.value)
    assert message in text and "Fix:" in text and "\n" not in text, text


def test_a_repeated_change_id_and_removals_across_tenants(tmp_path: Path) -> None:
    rows = [
        "a,acme,did,add,1,2026-04-01T00:00:00Z",
        "a,acme,did,add,1,2026-04-02T00:00:00Z",
    ]
    with pytest.raises(ConfigError, match=r"subscriptions.csv:3: change_id 'a' .*repeats line 2"):
        load_tariff(write_billing_tariff(tmp_path, pro_eu(), rows))
    # The same instant for two tenants: b's removal is checked although a change of
    # another tenant follows it at that instant.
    rows = [
        "a,acme,did,add,1,2026-04-01T00:00:00Z",
        "b,beta,did,remove,1,2026-04-05T00:00:00Z",
        "c,acme,did,add,1,2026-04-05T00:00:00Z",
    ]
    tenants = ["acme,pro-eu,postpaid,,,,false", "beta,pro-eu,postpaid,,,,false"]
    with pytest.raises(ConfigError, match=r"subscriptions.csv:3: removes 1 did of tenant beta"):
        load_tariff(write_billing_tariff(tmp_path / "2", pro_eu(), rows, tenants=tenants))


@pytest.mark.parametrize(
    ("product", "message"),
    [
        ('{id: x, name: "X", type: seat, price: "1e30"}', "price '1e30'"),
        ('{id: x, name: "X", type: seat, price: "-1"}', "price '-1'"),
        ('{id: x, name: "X", type: seat, price: "2000000"}', "price '2000000'"),
        ('{id: x, name: "X", type: seat, price: "1.0000001"}', "price"),
        ('{id: x, name: "X", type: lease, price: "1"}', "type 'lease'"),
        ('{id: x, name: "X", type: fee, price: "1", included: 2}', "only a seat"),
        ('{id: x, name: "X", type: seat, price: "1", included: -2}', "included -2"),
        ('{id: x, type: seat, price: "1"}', "without a name"),
        ('{id: x, name: "X", type: seat, price: "1", colour: red}', "unknown key 'colour'"),
    ],
)
def test_a_bad_product_names_its_plan(tmp_path: Path, product: str, message: str) -> None:
    plans = pro_eu().replace(
        '      - {id: did, name: "Phone number", type: seat, price: "5.00"}',
        f"      - {product}",
    )
    with pytest.raises(ConfigError) as err:
        load_tariff(write_billing_tariff(tmp_path, plans, []))
    assert message in str(err.value) and "plans.yaml" in str(err.value)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("invoice_decimals: 7", "invoice_decimals 7"),
        ('tax_rate: "1.5"', "tax_rate '1.5'"),
        ('tax_rate: "abc"', "tax_rate 'abc'"),
        ("tax_name: ''", "tax_name"),
    ],
)
def test_bad_invoice_settings_of_a_plan(tmp_path: Path, key: str, message: str) -> None:
    plans = pro_eu().replace("    tax_name: VAT\n", f"    tax_name: VAT\n    {key}\n")
    plans = "\n".join(
        line
        for line in plans.splitlines()
        if not (line.strip().startswith(key.split(":")[0] + ":") and line.strip() != key)
    )
    with pytest.raises(ConfigError) as err:
        load_tariff(write_billing_tariff(tmp_path, plans, []))
    assert message in str(err.value)


def test_the_command_prints_one_line_and_exits_2(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from rater.cli import main

    tariff = write_billing_tariff(tmp_path, pro_eu(), ["a,acme,did,add,x,2026-04-01T00:00:00Z"])
    rated = tmp_path / "rated.parquet"
    rc = main(
        [
            "invoice",
            "--config",
            str(tariff),
            "--rated",
            str(rated),
            "--period",
            "2026-04",
            "--output",
            str(tmp_path / "out"),
        ]
    )
    err = capfd.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert "subscriptions.csv:2: quantity 'x'" in err[0]
