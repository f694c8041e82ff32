"""Reconciliation on simulated data, for every tenant and month: the detailed records =
the consumption totals (every way they are cut) = the invoice's usage lines before each
line is rounded (the charges of the ``rated`` records) = the record debits of the
account activity; and opening balance + credits - debits = closing balance.

The invoice is checked twice: its core (:func:`rater.core.billing.bill_period`) over the
records, and ``rater invoice``'s own run (:func:`rater.billing.run.invoice_period`, which
opens the same rate-file output directory the reports read and writes
``invoice_lines.parquet``), line by line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import polars as pl
import pytest
from reportdeck import MONTHS, NOW_US, TENANTS, Deck

from rater.billing.run import invoice_period
from rater.core.billing import bill_period
from rater.core.billing.rounding import round_amount
from rater.core.tariff import Tariff
from rater.reports import build_request
from rater.reports.activity import build_activity
from rater.reports.consumption import Consumption, build_consumption, export_frame
from rater.reports.store import RecordStore, open_dataset
from rater.settings import InvoiceSettings

CASES = [(tenant, month) for tenant, *_ in TENANTS for month in MONTHS]
# An invoice has one usage line per (kind, direction, plan_id, rate_prefix, band).
LINE_KEY = ["kind", "direction", "plan_id", "rate_prefix", "band"]


def _month_range(month: str) -> tuple[str, str]:
    year, number = (int(x) for x in month.split("-"))
    last = {10: 31, 11: 30}[number]
    return f"{year}-{number:02d}-01", f"{year}-{number:02d}-{last}"


def _request(deck: Deck, report: str, tenant: str, month: str, tmp: Path, **kw: object):  # type: ignore[no-untyped-def]
    start, end = _month_range(month)
    return build_request(
        deck.tariff,
        report,
        tenant_id=tenant,
        output=tmp / "out.csv",
        format="csv",
        start=start,
        end=end,
        now_us=NOW_US,
        **kw,  # type: ignore[arg-type]
    )


def _consumption(
    deck: Deck, tenant: str, month: str, tmp: Path
) -> tuple[Consumption, pl.DataFrame]:
    request = _request(deck, "consumption", tenant, month, tmp)
    with RecordStore(open_dataset(deck.rated_dir)) as store:
        consumption = build_consumption(store, request)
        return consumption, export_frame(store, request)


def _exact(tariff: Tariff) -> Tariff:
    """The tariff with invoice lines kept to the micro: no rounding per line."""
    plans = {k: p.model_copy(update={"invoice_decimals": 6}) for k, p in tariff.plans.items()}
    return dataclasses.replace(tariff, plans=plans)


@pytest.mark.parametrize(("tenant", "month"), CASES)
def test_records_totals_invoice_and_activity_agree(
    deck: Deck, tmp_path: Path, tenant: str, month: str
) -> None:
    consumption, records = _consumption(deck, tenant, month, tmp_path)
    total = consumption.charge_micros
    assert records.height == consumption.records
    assert set(records.get_column("tenant_id")) <= {tenant}
    assert (records.get_column("status") == "rated").all()
    assert int(records.get_column("charge_micros").sum()) == total
    for rows in (
        consumption.by_kind,
        consumption.by_team,
        consumption.by_user,
        consumption.by_destination,
        consumption.by_day,
    ):
        assert sum(r.charge_micros for r in rows) == total
        assert sum(r.records for r in rows) == consumption.records
    # The invoice's usage lines, each kept exact (no rounding per line), add up to it.
    bill = bill_period(_exact(deck.tariff), month, deck.rated(), tenants=[tenant])
    usage = bill.lines.filter(pl.col("type") == "usage")
    assert int(usage.get_column("amount_micros").sum()) == total
    # Rounded as invoiced: each line within half a cent of its records.
    rounded = bill_period(deck.tariff, month, deck.rated(), tenants=[tenant]).lines
    lines = rounded.filter(pl.col("type") == "usage")
    step = 10 ** (6 - deck.tariff.plans[deck.tariff.tenants[tenant].plan_id].invoice_decimals)
    assert abs(int(lines.get_column("amount_micros").sum()) - total) <= lines.height * step
    if deck.tariff.tenants[tenant].billing == "prepaid":
        request = _request(deck, "activity", tenant, month, tmp_path)
        with RecordStore(open_dataset(deck.rated_dir)) as store:
            activity = build_activity(store, request)
        lines = activity.lines
        record_debits = lines.filter(~pl.col("reference").str.starts_with("adj-"))
        assert -int(record_debits.get_column("amount_micros").sum()) == total
        assert activity.closing_micros == (
            activity.opening_micros + activity.credits_micros - activity.debits_micros
        )


@pytest.mark.parametrize("tenant", [t for t, _, billing, _ in TENANTS if billing == "prepaid"])
def test_balances_chain_from_month_to_month_and_end_at_the_rater_balance(
    deck: Deck, tmp_path: Path, tenant: str
) -> None:
    with RecordStore(open_dataset(deck.rated_dir)) as store:
        october = build_activity(store, _request(deck, "activity", tenant, "2026-10", tmp_path))
        november = build_activity(store, _request(deck, "activity", tenant, "2026-11", tmp_path))
        whole = build_activity(
            store,
            build_request(
                deck.tariff,
                "activity",
                tenant_id=tenant,
                output=tmp_path / "a.csv",
                format="csv",
                start="2026-01-01",
                end="2026-12-31",
                now_us=NOW_US,
            ),
        )
    opening = deck.tariff.tenants[tenant].opening_balance_micros
    assert october.opening_micros == opening  # nothing before the traffic
    assert november.opening_micros == october.closing_micros
    assert whole.opening_micros == opening and whole.closing_micros == november.closing_micros
    balances = pl.read_parquet(deck.rated_dir / "balances.parquet")
    final = balances.filter(pl.col("tenant_id") == tenant).get_column("balance_micros")
    assert whole.closing_micros == int(final[0])
    # Every debit and credit the rater applied is a line, once.
    applied = deck.applied().filter(pl.col("tenant_id") == tenant).height
    charged = (
        deck.rated()
        .filter(
            (pl.col("tenant_id") == tenant)
            & (pl.col("status") == "rated")
            & (pl.col("charge_micros") != 0)
        )
        .height
    )
    assert whole.moves == applied + charged


@pytest.mark.parametrize("tenant", [t for t, _, billing, _ in TENANTS if billing == "prepaid"])
def test_in_rating_order_every_balance_is_the_one_the_rater_recorded(
    deck: Deck, tmp_path: Path, tenant: str
) -> None:
    """Records rated in the order the statement lists them: the running balance of each
    line is exactly the balance the rater recorded after that move."""
    request = build_request(
        deck.tariff,
        "activity",
        tenant_id=tenant,
        output=tmp_path / "a.csv",
        format="csv",
        start="2026-10-15",
        end="2026-11-30",
        now_us=NOW_US,
    )
    with RecordStore(open_dataset(deck.ordered_dir)) as store:
        activity = build_activity(store, request)
    lines = activity.lines
    assert lines.height > 10
    assert lines.get_column("balance_after_micros").equals(
        lines.get_column("recorded_balance_after_micros")
    )
    first = lines.row(0, named=True)
    assert (
        activity.opening_micros == first["recorded_balance_after_micros"] - first["amount_micros"]
    )


@pytest.fixture(scope="module")
def invoiced(deck: Deck, tmp_path_factory: pytest.TempPathFactory) -> dict[str, pl.DataFrame]:
    """The usage lines of ``rater invoice`` (its files only) over the reports' source,
    for each month: ``"<month>"`` with the plans' rounding, ``"<month> exact"`` with
    every line kept to the micro."""
    root = tmp_path_factory.mktemp("invoices")
    lines = {}
    for month in MONTHS:
        for name, tariff in ((month, deck.tariff), (f"{month} exact", _exact(deck.tariff))):
            out = root / name.replace(" ", "-")
            terms = InvoiceSettings(
                rated=deck.rated_dir, output=out, period=month, documents="none"
            )
            invoice_period(tariff, terms)
            frame = pl.read_parquet(out / "invoice_lines.parquet")
            lines[name] = frame.filter(pl.col("type") == "usage")
    return lines


def _by_line(frame: pl.DataFrame, column: str) -> dict[tuple[object, ...], int]:
    """Amounts per usage line key, zero amounts left out (a line may have a quantity
    and no charge; records whose charge is 0 make no difference to a line)."""
    sums = frame.group_by(LINE_KEY).agg(pl.col(column).sum())
    return {tuple(row[:-1]): int(row[-1]) for row in sums.iter_rows() if row[-1] != 0}


@pytest.mark.parametrize(("tenant", "month"), CASES)
def test_the_invoice_command_bills_the_records_of_the_report_line_by_line(
    deck: Deck, invoiced: dict[str, pl.DataFrame], tmp_path: Path, tenant: str, month: str
) -> None:
    consumption, records = _consumption(deck, tenant, month, tmp_path)
    exact = invoiced[f"{month} exact"].filter(pl.col("tenant_id") == tenant)
    # Before rounding: each usage line is the sum of the report's records of that line.
    expected = _by_line(records, "charge_micros")
    assert _by_line(exact, "amount_micros") == expected
    assert int(exact.get_column("amount_micros").sum()) == consumption.charge_micros
    # As invoiced: each line is that sum rounded once, with the plan's decimals and method.
    plan = deck.tariff.plans[deck.tariff.tenants[tenant].plan_id]
    rounded = invoiced[month].filter(pl.col("tenant_id") == tenant)
    assert _by_line(rounded, "amount_micros") == {
        key: amount
        for key, micros in expected.items()
        if (amount := round_amount(micros, plan.invoice_decimals, plan.rounding)) != 0
    }
