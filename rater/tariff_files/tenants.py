"""tenants.csv: the billing accounts, their plan, prepaid or postpaid, and prepaid amounts
in exact micros."""

from __future__ import annotations

from pathlib import Path

from rater.core.money import decimal_to_micros, parse_decimal
from rater.core.tariff.model import MAX_BALANCE_MICROS, Plan, Tenant
from rater.errors import ConfigError
from rater.tariff_files.csv_rows import read_csv
from rater.tariff_files.text import shown

__all__ = ["TENANTS_FILE", "TENANT_COLUMNS", "load_tenants"]

TENANTS_FILE = "tenants.csv"
TENANT_COLUMNS = (
    "tenant_id",
    "plan_id",
    "billing",
    "opening_balance",
    "low_balance_threshold",
    "recharge_amount",
    "auto_recharge",
)


def load_tenants(directory: Path, plans: dict[str, Plan]) -> dict[str, Tenant]:
    path = directory / TENANTS_FILE
    file = str(path)
    rows = read_csv(path, TENANT_COLUMNS)
    tenants: dict[str, Tenant] = {}
    for line, row in rows:
        tenant_id = row["tenant_id"]
        if not tenant_id:
            raise ConfigError(file, line, "empty tenant_id", "give every tenant an id")
        if tenant_id in tenants:
            raise ConfigError(
                file, line, f"duplicate tenant {shown(tenant_id)}", "list each tenant once"
            )
        if row["plan_id"] not in plans:
            raise ConfigError(
                file,
                line,
                f"unknown plan {shown(row['plan_id'])}",
                "use a plan id defined in plans.yaml",
            )
        billing = row["billing"]
        if billing not in ("prepaid", "postpaid"):
            raise ConfigError(
                file, line, f"unknown billing {shown(billing)}", "use prepaid or postpaid"
            )
        amounts = {
            column: _parse_balance(row[column], file, line, column)
            for column in ("opening_balance", "low_balance_threshold", "recharge_amount")
        }
        auto = row["auto_recharge"].lower()
        if auto not in ("true", "false", ""):
            raise ConfigError(
                file, line, f"auto_recharge {shown(row['auto_recharge'])}", "write true or false"
            )
        tenants[tenant_id] = Tenant(
            tenant_id=tenant_id,
            plan_id=row["plan_id"],
            billing=billing,  # type: ignore[arg-type]
            opening_balance_micros=amounts["opening_balance"],
            low_balance_threshold_micros=amounts["low_balance_threshold"],
            recharge_amount_micros=amounts["recharge_amount"],
            auto_recharge=auto == "true",
        )
    return tenants


def _parse_balance(text: str, file: str, line: int, column: str) -> int:
    """An amount of tenants.csv in exact micros (empty = 0)."""
    if text == "":
        return 0
    whole_digits = len(str(MAX_BALANCE_MICROS)) - 6
    if len(text) > 2 * len(str(MAX_BALANCE_MICROS)):
        raise ConfigError(
            file,
            line,
            f"column {column!r}: {shown(text)} has too many digits",
            f"write at most {whole_digits} digits before the point and 6 after it",
        )
    value = parse_decimal(text, file=file, line=line, column=column)
    try:
        micros = decimal_to_micros(value)
    except ValueError:
        raise ConfigError(
            file,
            line,
            f"column {column!r}: {shown(text)} has more than 6 decimals",
            "round it to micros",
        ) from None
    if abs(micros) > MAX_BALANCE_MICROS:
        raise ConfigError(
            file,
            line,
            f"column {column!r}: {shown(text)} is too large",
            f"write at most {whole_digits} digits before the point",
        )
    return micros
