"""Builders of test records shared by every suite: one CDR builder, whatever the suite.

Suites keep their own defaults (a tenant of their tariff, a date their rates cover) as a
``functools.partial`` of :func:`cdr`.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from typing import Any

import polars as pl

from rater.core.columns import ADJUSTMENT_SCHEMA, CDR_SCHEMA

__all__ = ["adjustment", "adjustment_frame", "cdr", "cdr_frame", "utc"]

_ids = itertools.count(1)


def utc(when: str | dt.datetime) -> dt.datetime:
    """An aware instant from ISO-8601 text with an offset (``2026-03-02T10:00:00Z``) or a
    datetime, in UTC."""
    value = dt.datetime.fromisoformat(when) if isinstance(when, str) else when
    assert value.tzinfo is not None, when
    return value.astimezone(dt.UTC)


def cdr(
    cdr_id: str | None = None,
    *,
    tenant: str = "t1",
    kind: str = "call",
    direction: str = "outbound",
    caller: str = "+33100000000",
    callee: str = "+33612345678",
    start: str | dt.datetime = "2026-03-02T10:00:00Z",
    answer: str | dt.datetime | None = None,
    end: str | dt.datetime | None = None,
    seconds: float | None = None,
    hold_ms: int | None = 0,
    segments: int | None = 1,
    user_id: str | None = None,
    team_id: str | None = None,
) -> dict[str, Any]:
    """One CDR as a dict of CDR_SCHEMA fields.

    Times are ISO text or aware datetimes; ``end`` defaults to the answer, else the start.
    ``seconds`` is a shortcut for a call answered at ``start`` and lasting that long.
    ``cdr_id`` defaults to a fresh ``c<n>``.
    """
    start_t = utc(start)
    answer_t = None if answer is None else utc(answer)
    end_t = None if end is None else utc(end)
    if seconds is not None:
        answer_t, end_t = start_t, start_t + dt.timedelta(seconds=seconds)
    return {
        "cdr_id": cdr_id or f"c{next(_ids)}",
        "tenant_id": tenant,
        "user_id": user_id,
        "team_id": team_id,
        "kind": kind,
        "direction": direction,
        "caller": caller,
        "callee": callee,
        "start_time": start_t,
        "answer_time": answer_t,
        "end_time": end_t or answer_t or start_t,
        "hold_ms": hold_ms,
        "segments": segments,
    }


def cdr_frame(rows: Sequence[dict[str, Any]]) -> pl.DataFrame:
    """Rows of :func:`cdr` as a frame with the core's CDR dtypes."""
    return pl.DataFrame(list(rows), schema=CDR_SCHEMA)


def adjustment(
    adjustment_id: str,
    *,
    tenant: str,
    kind: str = "topup",
    amount_micros: int,
    time: str | dt.datetime,
    source: str | None = None,
    reason: str | None = None,
    product_id: str | None = None,
    line_type: str | None = None,
) -> dict[str, Any]:
    """One balance adjustment as a dict of ADJUSTMENT_SCHEMA fields."""
    return {
        "tenant_id": tenant,
        "adjustment_id": adjustment_id,
        "kind": kind,
        "amount_micros": amount_micros,
        "time": utc(time),
        "source": source if source is not None or kind != "topup" else "manual",
        "reason": reason,
        "product_id": product_id,
        "line_type": line_type,
    }


def adjustment_frame(rows: Sequence[dict[str, Any]]) -> pl.DataFrame:
    """Rows of :func:`adjustment` as a frame with the core's adjustment dtypes."""
    return pl.DataFrame(list(rows), schema=ADJUSTMENT_SCHEMA)
