"""Read a balance adjustments file (.csv or .parquet) into ADJUSTMENT_SCHEMA rows.

Columns: tenant_id, adjustment_id, kind (topup | refund | charge), amount (a positive
decimal, at most 6 decimals), time (ISO-8601 with an offset), and optionally source
(topup: manual | auto_recharge), reason (refund), product_id and line_type (charge).
Every value is checked as a message's would be (:mod:`rater.wire.adjustments`); money
moves on these rows, so a row that fails a check stops the run with ``InputError``
naming the file, the line and the fix, rather than being skipped unseen. Unknown tenants
and adjustments that do not fit the tenant's billing are not errors here: the core
marks them ``ignored``, as the streaming job does.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl

from rater.batch.cdr_files import check_input_file, read_parquet_file, read_text_csv
from rater.batch.coerce import Place
from rater.core.columns import ADJUSTMENT_SCHEMA
from rater.errors import InputError
from rater.tariff_files.text import shown
from rater.wire.adjustments import adjustment_row

__all__ = ["ADJUSTMENT_COLUMNS", "read_adjustments"]

REQUIRED = ("tenant_id", "adjustment_id", "kind", "amount", "time")
ADJUSTMENT_COLUMNS = (*REQUIRED, "source", "reason", "product_id", "line_type")
_FIELDS = {"unknown_tenant": "tenant_id", "missing_adjustment_id": "adjustment_id"}
_FIXES = {
    "unknown_tenant": "give the tenant_id as text",
    "missing_adjustment_id": "give every row an adjustment_id (unique per tenant)",
    "bad_kind": "kind is topup, refund or charge",
    "bad_amount": "amount is a positive decimal such as 25.00 (at most 6 decimals, "
    "at most 1000000000)",
    "bad_time": "time is ISO-8601 with an offset, e.g. 2026-04-01T00:00:00+02:00, "
    "in years 2000..2099",
    "bad_source": "source is manual or auto_recharge (or empty)",
    "bad_line_type": "line_type is fee, recurring, prorated or one_time (or empty)",
}


def read_adjustments(path: Path) -> pl.DataFrame:
    """The adjustments of ``path`` in file order (ADJUSTMENT_SCHEMA).

    Raises InputError for a file that cannot be read, a missing column or a bad value.
    """
    path = Path(path)
    check_input_file(path, (".csv", ".parquet"))
    if path.suffix.lower() == ".csv":
        frame, place = read_text_csv(path, "adjustment columns"), Place(path, 2, "line")
    else:
        place = Place(path, 1, "record")
        frame = read_parquet_file(place, "the adjustment columns")
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise InputError(
            f"{place.file}: required column(s) missing: {', '.join(missing)}. "
            f"Fix: add them (the columns are {', '.join(ADJUSTMENT_COLUMNS)})"
        )
    rows = [_row(place, i, rec) for i, rec in enumerate(_records(frame, place))]
    return pl.DataFrame(
        {name: [r[name] for r in rows] for name in ADJUSTMENT_SCHEMA},
        schema={**ADJUSTMENT_SCHEMA, "time": pl.Int64()},
    ).with_columns(pl.col("time").cast(ADJUSTMENT_SCHEMA["time"]))


def _records(frame: pl.DataFrame, place: Place) -> list[dict[str, Any]]:
    """The rows as dicts of text (amounts as decimal text), whatever the column types."""
    present = [c for c in ADJUSTMENT_COLUMNS if c in frame.columns]
    columns: list[pl.Expr] = []
    for name in present:
        dtype = frame.schema[name]
        if name == "amount" and (dtype.is_float() or dtype == pl.Boolean):
            raise InputError(
                f"{place.file}: column amount holds {dtype} values, which are not exact. "
                "Fix: write amounts as decimal text or a Decimal column"
            )
        if name == "time" and isinstance(dtype, pl.Datetime):
            if dtype.time_zone is None:
                raise InputError(
                    f"{place.file}: column time has no time zone. "
                    "Fix: write times with a time zone (or as ISO-8601 text with an offset)"
                )
            columns.append(pl.col(name))
        elif dtype in (pl.String, pl.Null) or isinstance(dtype, pl.Datetime):
            columns.append(pl.col(name))
        else:
            columns.append(pl.col(name).cast(pl.String, strict=False))
    return frame.select(columns).to_dicts()


def _row(place: Place, index: int, rec: dict[str, Any]) -> dict[str, Any]:
    if isinstance(rec.get("time"), dt.datetime):
        rec["time"] = rec["time"].isoformat()
    refused, row = adjustment_row(rec)
    if refused is None:
        return row
    field = _FIELDS.get(refused) or refused.removeprefix("bad_")
    fix = _FIXES.get(refused, f"give {field} as text of at most 200 characters")
    raise InputError(f"{place.at(index)}: bad {field} {shown(rec.get(field))}. Fix: {fix}")
