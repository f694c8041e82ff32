"""``rater invoice``: one period invoiced into an output directory.

Steps: (1) load the tariff and check the flags, (2) read the period's rated records and
the adjustments, (3) bill (:func:`rater.core.billing.bill_period`), (4) render the
documents, (5) write everything atomically: documents first, then ``invoice_lines`` and
last ``invoices`` (Parquet and CSV), each under a temporary name renamed into place once
all are written, so a reader who finds ``invoices.parquet`` finds everything it names.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from rater.batch.adjustment_files import read_adjustments
from rater.batch.output_dir import path_exists, prepare_output_dir, write_atomically
from rater.billing.documents import document_name, invoice_documents
from rater.billing.sources import open_source
from rater.core.billing import USAGE_COLUMNS, Bill, bill_period, parse_period
from rater.core.billing.accounts import accounts_of
from rater.core.money import format_micros
from rater.core.tariff import Tariff
from rater.errors import UsageError
from rater.settings import InvoiceSettings

__all__ = ["DATA_FILES", "InvoiceRun", "invoice_period", "load_for_period"]

DATA_FILES = ("invoice_lines.parquet", "invoice_lines.csv", "invoices.parquet", "invoices.csv")
# The outputs whose interrupted temporary files a later run may remove.
_OUTPUT_NAMES = re.compile(
    "|".join(re.escape(n) for n in DATA_FILES) + r"|[A-Za-z0-9][A-Za-z0-9._-]*\.(?:html|pdf)"
)


@dataclass
class InvoiceRun:
    """What one ``rater invoice`` run wrote."""

    period: str
    output_dir: Path
    bill: Bill
    documents: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The human summary the command prints."""
        inv = self.bill.invoices
        out = [f"{inv.height} invoices for {self.period} -> {self.output_dir}"]
        totals = inv.group_by("currency").agg(
            pl.col("total_micros").sum(), pl.col("amount_due_micros").sum(), pl.len()
        )
        for currency, total, due, n in totals.sort("currency").iter_rows():
            out.append(
                f"  {currency}: {n} invoices, total {format_micros(total, 2)}, "
                f"amount due {format_micros(due, 2)}"
            )
        if self.bill.debits.height:
            out.append(f"  prepaid debits: {self.bill.debits.height} charges")
        if self.documents:
            out.append(f"  documents: {len(self.documents)} files (HTML and PDF)")
        return out


def load_for_period(
    tariff: Tariff,
    period: str,
    rated: Path,
    adjustments: Path | None,
    tenants: Sequence[str] | None,
    *,
    callee: bool = False,
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """(the rated records that can fall in ``period`` for ``tenants``, the adjustments):
    records in input order with the columns billing reads (and the callee, for the
    allowance use of the preview)."""
    accounts = accounts_of(tariff, period, tenants)
    source = open_source(rated)
    if not accounts:
        return pl.DataFrame(schema=USAGE_COLUMNS), None
    start = min(a.period.start_us for a in accounts)
    end = max(a.period.end_us for a in accounts)
    records = source.rated(start, end, [*USAGE_COLUMNS, *(["callee"] if callee else [])])
    if tenants is not None:
        records = records.filter(pl.col("tenant_id").is_in(list(tenants)))
    given = read_adjustments(adjustments) if adjustments is not None else source.adjustments()
    return records, given


def invoice_period(
    tariff: Tariff,
    terms: InvoiceSettings,
    *,
    tenants: Sequence[str] | None = None,
) -> InvoiceRun:
    """Invoice ``terms.period`` from ``terms.rated`` into ``terms.output``."""
    period, rated, output = _required(terms)
    tenants = _known(tariff, tenants)
    if terms.adjustments is not None and not path_exists(terms.adjustments):
        raise UsageError(f"--adjustments {terms.adjustments}: no such file. Fix: pass a file")
    open_source(rated)  # a bad --rated fails before the output directory is touched
    prepare_output_dir(output, _OUTPUT_NAMES)
    records, adjustments = load_for_period(tariff, period, rated, terms.adjustments, tenants)
    bill = bill_period(tariff, period, records, adjustments, tenants=tenants)
    writers: dict[str, Callable[[Path], None]] = {}
    if terms.documents != "none":
        for name, data in invoice_documents(bill, terms, pdf=terms.documents == "all"):
            writers[name] = _bytes(data)
    documents = list(writers)
    invoices = bill.invoices.with_columns(
        pl.col("invoice_id").map_elements(document_name, return_dtype=pl.String).alias("document")
    )
    writers["invoice_lines.parquet"] = _parquet(bill.lines)
    writers["invoice_lines.csv"] = _csv(bill.lines)
    writers["invoices.parquet"] = _parquet(invoices)
    writers["invoices.csv"] = _csv(invoices)
    write_atomically(output, writers)
    return InvoiceRun(period, output, bill, documents)


def _required(terms: InvoiceSettings) -> tuple[str, Path, Path]:
    if terms.period is None:
        raise UsageError("invoice needs --period YYYY-MM (or RATER_INVOICE__PERIOD)")
    parse_period(terms.period)  # the settings pattern already checked it
    if terms.rated is None:
        raise UsageError("invoice needs --rated PATH (or RATER_INVOICE__RATED)")
    if terms.output is None:
        raise UsageError("invoice needs --output DIR (or RATER_INVOICE__OUTPUT)")
    return terms.period, terms.rated, terms.output


def _known(tariff: Tariff, tenants: Sequence[str] | None) -> list[str] | None:
    if not tenants:
        return None
    unknown = [t for t in tenants if t not in tariff.tenants]
    if unknown:
        raise UsageError(
            f"--tenant {unknown[0]!r}: not a tenant of tenants.csv. "
            "Fix: use a tenant_id listed there"
        )
    return list(dict.fromkeys(tenants))


def _bytes(data: bytes) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        path.write_bytes(data)

    return write


def _parquet(frame: pl.DataFrame) -> Callable[[Path], None]:
    return lambda path: frame.write_parquet(path, compression="zstd", statistics=True)


def _csv(frame: pl.DataFrame) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        buffer = io.BytesIO()
        frame.write_csv(buffer)
        path.write_bytes(buffer.getvalue())

    return write
