"""Balance adjustments (and top-ups) as records: every field checked before any arithmetic.

Used wherever adjustments come in, messages and files alike: a record either becomes one
ADJUSTMENT_SCHEMA row or gets the reason it is refused, and no value can raise here or
later when a frame is built from the rows. Checks against the tariff (unknown tenant,
prepaid or not) are the caller's.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, TypeGuard

from rater.core.money import decimal_to_micros
from rater.core.rating import VALID_FROM_US, VALID_UNTIL_US

__all__ = ["KINDS", "MAX_ADJUSTMENT_MICROS", "adjustment_row", "is_text", "time_us"]

# An adjustment above this (in micros: a billion currency units) is refused as bad_amount:
# nobody pays that in at once, and balances stay far from the limits of Int64.
MAX_ADJUSTMENT_MICROS = 10**15
KINDS = ("topup", "refund", "charge")
LINE_TYPES = ("fee", "recurring", "prorated", "one_time")
_SOURCES = ("manual", "auto_recharge")
_MAX_ID_CHARS = 256
_MAX_TEXT_CHARS = 200
_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def adjustment_row(rec: Any, *, topup: bool = False) -> tuple[str | None, dict[str, Any]]:
    """(None, row) of a decoded record, or (the reason it is refused, {}).

    ``topup``: the record is a top-up (``topup_id``, ``amount``, ``source``, ``time``): it
    becomes an adjustment of kind ``topup`` whose adjustment_id is the topup_id. The row's
    ``time`` is in microseconds since the epoch.
    """
    if not isinstance(rec, dict):
        return ("topup_decode_error" if topup else "adjustment_decode_error"), {}
    tenant_id = rec.get("tenant_id")
    adjustment_id = rec.get("topup_id" if topup else "adjustment_id")
    kind = "topup" if topup else rec.get("kind")
    if not is_text(tenant_id):
        return "unknown_tenant", {}
    if not is_text(adjustment_id) or not 0 < len(adjustment_id) <= _MAX_ID_CHARS:
        return ("missing_topup_id" if topup else "missing_adjustment_id"), {}
    if kind not in KINDS:
        return "bad_kind", {}
    micros = _amount_micros(rec.get("amount"))
    if micros is None:
        return "bad_amount", {}
    at = time_us(rec.get("time"))
    if at is None:
        return "bad_time", {}
    reason, fields = _kind_fields(kind, rec)
    if reason is not None:
        return reason, {}
    return None, {
        "tenant_id": tenant_id,
        "adjustment_id": adjustment_id,
        "kind": kind,
        "amount_micros": micros,
        "time": at,
        **fields,
    }


def _kind_fields(kind: str, rec: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """source (top-up), reason (refund), product_id and line_type (charge)."""
    fields: dict[str, Any] = {"source": None, "reason": None, "product_id": None, "line_type": None}
    if kind == "topup":
        fields["source"] = rec.get("source") or "manual"
        if fields["source"] not in _SOURCES:
            return "bad_source", {}
    for name in ("reason", "product_id", "line_type"):
        value = rec.get(name)
        if value is not None and (not is_text(value) or len(value) > _MAX_TEXT_CHARS):
            return f"bad_{name}", {}
        if (kind == "refund" and name == "reason") or (kind == "charge" and name != "reason"):
            fields[name] = value
    if kind == "charge" and fields["line_type"] not in (None, *LINE_TYPES):
        return "bad_line_type", {}
    return None, fields


def is_text(value: Any) -> TypeGuard[str]:
    """A string that is text: a JSON "\\ud800" (a lone surrogate) is not."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _amount_micros(value: Any) -> int | None:
    """Micros of a plain decimal string in (0, MAX_ADJUSTMENT_MICROS] with <= 6 decimals."""
    if not isinstance(value, str) or len(value) > 40 or not _DECIMAL.fullmatch(value):
        return None
    try:
        micros = decimal_to_micros(Decimal(value))
    except (InvalidOperation, ValueError):
        return None
    return micros if 0 < micros <= MAX_ADJUSTMENT_MICROS else None


def time_us(value: Any) -> int | None:
    """Microseconds since the epoch of an aware datetime, integer micros or ISO-8601 text
    with an offset, when within [2000-01-01, 2100-01-01); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            return None
        value = (value - _EPOCH) // timedelta(microseconds=1)
    if isinstance(value, int) and VALID_FROM_US <= value < VALID_UNTIL_US:
        return value
    return None
