"""What a plan of plans.yaml bills besides usage: its products, invoice decimals and tax.

```yaml
    invoice_decimals: 2        # invoice line amounts are rounded to this (0..6), default 2
    tax_rate: "0.20"           # optional decimal; none = no tax line
    tax_name: VAT              # optional label, default "Tax"
    products:
      - {id: pro-fee, name: "Professional plan", type: fee, price: "49.00"}
      - {id: extension, name: "Extension", type: seat, price: "4.00", included: 5}
```

Decimals are exact: quote them (``"0.20"``); an unquoted YAML number is read from the
text it was written as (``0.2`` is 0.2 exactly), never through binary floating point.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from rater.core.tariff.model import Product
from rater.errors import ConfigError
from rater.tariff_files.text import label, shown

__all__ = ["parse_billing_fields"]

_DECIMAL = re.compile(r"[0-9]{1,12}(\.[0-9]{1,6})?")
_PRODUCT_TYPES = ("fee", "seat", "one_time")
# A product's price, times the largest quantity (1000000), stays within an int64 of micros.
_MAX_PRICE = Decimal(1_000_000)
_PRODUCT_FIX = (
    'write {id: ..., name: ..., type: fee|seat|one_time, price: "12.50"} '
    "(and included: N for a seat)"
)


def parse_billing_fields(raw: dict[str, Any], file: str, where: str) -> dict[str, Any]:
    """The plan's billing keys, checked: invoice_decimals, tax_rate, tax_name, products."""
    out: dict[str, Any] = {}
    if "invoice_decimals" in raw:
        value = raw["invoice_decimals"]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 6:
            raise ConfigError(
                file, where, f"invoice_decimals {shown(value)}", "write a whole number from 0 to 6"
            )
        out["invoice_decimals"] = value
    if raw.get("tax_rate") is not None:
        rate = _decimal(raw["tax_rate"])
        if rate is None or rate > 1:
            raise ConfigError(
                file,
                where,
                f"tax_rate {shown(raw['tax_rate'])}",
                'write a decimal from 0 to 1, e.g. "0.20"',
            )
        out["tax_rate"] = rate
    if "tax_name" in raw:
        name = raw["tax_name"]
        if not isinstance(name, str) or not name.strip() or len(name) > 40:
            raise ConfigError(
                file, where, f"tax_name {shown(name)}", "write a short label, e.g. VAT"
            )
        out["tax_name"] = name.strip()
    products = raw.get("products") or []
    if not isinstance(products, list):
        raise ConfigError(file, where, "products must be a list", "write them as a YAML list")
    parsed = [_product(p, file, where) for p in products]
    ids = [p.id for p in parsed]
    duplicate = next((i for i in ids if ids.count(i) > 1), None)
    if duplicate is not None:
        raise ConfigError(
            file, where, f"product {shown(duplicate)} listed twice", "give each product a unique id"
        )
    out["products"] = tuple(parsed)
    return out


def _product(raw: Any, file: str, where: str) -> Product:
    if not isinstance(raw, dict):
        raise ConfigError(file, where, "a product must be a mapping", _PRODUCT_FIX)
    line = raw.get("__line__", where)
    product_id, name, kind = raw.get("id"), raw.get("name"), raw.get("type")
    if not isinstance(product_id, str) or not product_id.strip():
        raise ConfigError(file, line, "product without an id", _PRODUCT_FIX)
    what = f"product {label(product_id)}"
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(file, line, f"{what} without a name", _PRODUCT_FIX)
    if kind not in _PRODUCT_TYPES:
        raise ConfigError(file, line, f"{what}: type {shown(kind)}", "use fee, seat or one_time")
    price = _decimal(raw.get("price"))
    if price is None or price > _MAX_PRICE:
        raise ConfigError(
            file,
            line,
            f"{what}: price {shown(raw.get('price'))}",
            'write a decimal from 0 to 1000000 with at most 6 decimals, e.g. "49.00"',
        )
    included = raw.get("included", 0)
    if isinstance(included, bool) or not isinstance(included, int) or not 0 <= included <= 10**6:
        raise ConfigError(
            file,
            line,
            f"{what}: included {shown(included)}",
            "write a whole number from 0 to 1000000",
        )
    if included and kind != "seat":
        raise ConfigError(file, line, f"{what}: only a seat has included units", "remove included")
    unknown = sorted(set(raw) - {"id", "name", "type", "price", "included", "__line__"})
    if unknown:
        raise ConfigError(file, line, f"{what}: unknown key {shown(unknown[0])}", _PRODUCT_FIX)
    return Product(id=product_id, name=name.strip(), type=kind, price=price, included=included)


def _decimal(value: Any) -> Decimal | None:
    """A plain non-negative decimal (at most 12 digits before the point, 6 after), exactly
    as written: from text, an int, or a YAML float's shortest repr."""
    if isinstance(value, bool) or value is None:
        return None
    text = repr(value) if isinstance(value, float) else str(value).strip()
    return Decimal(text) if _DECIMAL.fullmatch(text) else None
