"""The columns of invoice lines and invoices (billing rules, "Batch command and output
files"), the order of line types, and how quantities are written."""

from __future__ import annotations

import polars as pl

__all__ = [
    "DRAFT_SCHEMA",
    "INVOICE_SCHEMA",
    "LINE_SCHEMA",
    "LINE_TYPES",
    "SORT_KEYS",
    "UNITS",
    "amount_text_expr",
    "decimal_text_expr",
    "micro_units_text",
]

# Rule 8: lines appear in this order.
LINE_TYPES = ("fee", "recurring", "prorated", "one_time", "usage", "included", "credit", "tax")
UNITS = ("month", "unit", "minute", "segment", "attempt")

LINE_SCHEMA: dict[str, pl.DataType] = {
    "invoice_id": pl.String(),
    "tenant_id": pl.String(),
    "period": pl.String(),  # YYYY-MM
    "line_no": pl.Int32(),  # 1-based within the invoice
    "type": pl.String(),  # LINE_TYPES
    "product_id": pl.String(),
    "kind": pl.String(),
    "direction": pl.String(),
    "plan_id": pl.String(),
    "rate_prefix": pl.String(),
    "band": pl.String(),
    "description": pl.String(),
    "quantity": pl.String(),  # exact decimal text
    "unit": pl.String(),  # UNITS; null for credit and tax
    "unit_price_micros": pl.Int64(),  # null for usage, included, credit and tax
    "days": pl.Int32(),  # prorated only
    "amount_micros": pl.Int64(),  # negative for credits
    "amount": pl.String(),  # decimal text at invoice_decimals
    "currency": pl.String(),
}

INVOICE_SCHEMA: dict[str, pl.DataType] = {
    "invoice_id": pl.String(),
    "tenant_id": pl.String(),
    "period": pl.String(),
    "period_start": pl.Date(),  # local date of the first day
    "period_end": pl.Date(),  # local date of the last day
    "currency": pl.String(),
    "subtotal_micros": pl.Int64(),
    "tax_micros": pl.Int64(),
    "total_micros": pl.Int64(),
    "paid_from_balance_micros": pl.Int64(),
    "amount_due_micros": pl.Int64(),
    # Extensions: what a reader of the invoice needs besides the contract's columns.
    "billing": pl.String(),  # prepaid | postpaid
    "invoice_decimals": pl.Int32(),
    "tax_name": pl.String(),  # null without a tax line
    "tax_rate": pl.String(),  # decimal text; null without a tax line
}

# A line before it is numbered: the line columns it has, its time (when it takes effect,
# for prepaid debits) and the change that made it, and the keys that order it (rule 8).
DRAFT_SCHEMA: dict[str, pl.DataType] = {
    **{
        name: dtype
        for name, dtype in LINE_SCHEMA.items()
        if name not in ("invoice_id", "period", "line_no", "amount", "currency")
    },
    "time_us": pl.Int64(),
    "change_id": pl.String(),
    "_type": pl.Int32(),
    "_k1": pl.Int64(),
    "_k2": pl.Int64(),
    "_k3": pl.Int64(),
    "_s1": pl.String(),
    "_s2": pl.String(),
    "_s3": pl.String(),
}
SORT_KEYS = ("tenant_id", "_type", "_k1", "_k2", "_k3", "_s1", "_s2", "_s3")


def micro_units_text(value: int) -> str:
    """Millionths of a unit as exact decimal text without trailing zeros: 12500000 ->
    "12.5", 3000000 -> "3"."""
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 1_000_000)
    return f"{sign}{whole}" if frac == 0 else f"{sign}{whole}.{frac:06d}".rstrip("0")


def decimal_text_expr(micro_units: pl.Expr) -> pl.Expr:
    """Column version of :func:`micro_units_text` for values >= 0."""
    whole = (micro_units // 1_000_000).cast(pl.String)
    frac = micro_units % 1_000_000
    digits = frac.cast(pl.String).str.zfill(6).str.strip_chars_end("0")
    return pl.when(frac == 0).then(whole).otherwise(pl.concat_str(whole, pl.lit("."), digits))


def amount_text_expr(micros: pl.Expr, decimals: pl.Expr) -> pl.Expr:
    """Decimal text of amounts already rounded to ``decimals`` (0..6) places:
    -1234500 at 2 -> "-1.23"... exactly as ``format_micros`` writes them; an amount off
    its grid (never, for invoice amounts) shows all 6 decimals rather than lose digits."""
    magnitude = micros.abs()
    whole = (magnitude // 1_000_000).cast(pl.String)
    frac = (magnitude % 1_000_000).cast(pl.String).str.zfill(6)
    on_grid = (magnitude % pl.lit(10).pow(6 - decimals).cast(pl.Int64)) == 0
    places = pl.when(on_grid).then(decimals).otherwise(6)
    sign = pl.when(micros < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    shown = frac.str.slice(0, places)
    return (
        pl.when(places == 0)
        .then(pl.concat_str(sign, whole))
        .otherwise(pl.concat_str(sign, whole, pl.lit("."), shown))
    )
