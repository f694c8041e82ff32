"""What a customer reads on a report line: names of debits and credits, masked numbers,
durations. Pure: the standard library, Polars expressions and the tariff model.

Debits are named as billing pages name them: "Phone call charge", "Outgoing text
message", "Incoming text message", "Ring-through connection attempt" for rated records;
a ``charge`` adjustment by its product, "<product name> charge" ("Phone number charge",
"BASIC license charge"), "Account charge" when the plan does not know the product.
Credits: "Funds added" (a manual top-up), "Funds added by auto-recharge", "Refund".
"""

from __future__ import annotations

import polars as pl

from rater.core.tariff import Plan

__all__ = [
    "LINE_TYPE_NOTES",
    "adjustment_name",
    "duration_text",
    "mask_number",
    "mask_number_expr",
    "money_text_expr",
    "record_name",
]

_RECORD_NAMES = {
    ("call", "outbound"): "Phone call charge",
    ("call", "inbound"): "Phone call charge",
    ("sms", "outbound"): "Outgoing text message",
    ("sms", "inbound"): "Incoming text message",
    ("ring_through", "outbound"): "Ring-through connection attempt",
    ("ring_through", "inbound"): "Ring-through connection attempt",
}
LINE_TYPE_NOTES = {
    "fee": "",
    "recurring": "",
    "prorated": " (prorated)",
    "one_time": " (one-time)",
}
# A masked number keeps its first digits (country and area) and its last two.
_KEEP_HEAD = 5  # "+3361"
_KEEP_TAIL = 2
_MASK = "\u2022"  # a bullet: a masked digit


def record_name(kind: str, direction: str) -> str:
    """The debit of one rated record, as the customer knows it."""
    return _RECORD_NAMES.get((kind, direction), "Usage charge")


def adjustment_name(
    kind: str,
    source: str | None,
    product_id: str | None,
    line_type: str | None,
    plan: Plan | None,
) -> str:
    """The name of an applied adjustment: a credit (``topup``, ``refund``) or a debit
    (``charge``, named after its product in the tenant's plan)."""
    if kind == "topup":
        return "Funds added by auto-recharge" if source == "auto_recharge" else "Funds added"
    if kind == "refund":
        return "Refund"
    product = plan.product(product_id) if plan is not None and product_id else None
    if product is None:
        return "Account charge"
    return f"{product.name} charge{LINE_TYPE_NOTES.get(line_type or '', '')}"


def mask_number(number: str | None) -> str:
    """``+33612345678`` -> ``+3361•••••78``: the head and the last two digits kept.

    A short number keeps only its last two characters; None and "" stay empty.
    """
    if not number:
        return ""
    head = _KEEP_HEAD if len(number) > _KEEP_HEAD + _KEEP_TAIL else 0
    hidden = max(len(number) - head - _KEEP_TAIL, 0)
    return number[:head] + _MASK * hidden + number[head + hidden :]


def mask_number_expr(column: str) -> pl.Expr:
    """:func:`mask_number` over a string column (vectorized, the same result; a null
    stays null)."""
    text = pl.col(column)
    length = text.str.len_chars().cast(pl.Int64)  # UInt32 would wrap below zero
    head = pl.when(length > _KEEP_HEAD + _KEEP_TAIL).then(_KEEP_HEAD).otherwise(0)
    hidden = (length - head - _KEEP_TAIL).clip(lower_bound=0)
    masked = pl.concat_str(
        text.str.slice(0, head),
        pl.lit(_MASK).repeat_by(hidden).list.join(""),
        text.str.slice(head + hidden),
    )
    return pl.when(length == 0).then(pl.lit("")).otherwise(masked).alias(column)


def duration_text(seconds: int) -> str:
    """Whole seconds as ``H:MM:SS`` (``0:03:07``); hours grow past 99 as needed."""
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise TypeError(f"seconds must be an integer, got {type(seconds).__name__}")
    sign = "-" if seconds < 0 else ""
    minutes, secs = divmod(abs(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{sign}{hours}:{minutes:02d}:{secs:02d}"


def money_text_expr(micros: pl.Expr, decimals: int) -> pl.Expr:
    """Integer micros as exact decimal text, as :func:`rater.core.money.format_micros`
    writes them: ``decimals`` places, all 6 when the amount has more precision
    (``-1500000`` at 2 -> ``"-1.50"``; ``12500`` at 2 -> ``"0.012500"``); null stays null."""
    magnitude = micros.abs()
    whole = (magnitude // 1_000_000).cast(pl.String)
    frac = (magnitude % 1_000_000).cast(pl.String).str.zfill(6)
    on_grid = (magnitude % 10 ** (6 - decimals)) == 0
    places = pl.when(on_grid).then(pl.lit(decimals)).otherwise(pl.lit(6))
    sign = pl.when(micros < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    return (
        pl.when(micros.is_null())
        .then(pl.lit(None, pl.String))
        .when(places == 0)
        .then(pl.concat_str(sign, whole))
        .otherwise(pl.concat_str(sign, whole, pl.lit("."), frac.str.slice(0, places)))
    )
