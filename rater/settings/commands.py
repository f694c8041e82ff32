"""The settings groups of the commands: rate-file, invoice, report, simulate, broker."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from rater.settings.groups import Frozen

__all__ = [
    "DevBrokerSettings",
    "InvoiceSettings",
    "RateFileSettings",
    "ReportSettings",
    "SimulateSettings",
]


class RateFileSettings(Frozen):
    input: Path | None = Field(default=None, description="`rater rate-file --input`: the CDR file.")
    output: Path | None = Field(
        default=None, description="`rater rate-file --output`: the output directory."
    )
    batch_size: int = Field(
        default=100_000,
        ge=1,
        description="`rater rate-file --batch-size`: records rated per slice (the output "
        "does not depend on it).",
    )


class InvoiceSettings(Frozen):
    rated: Path | None = Field(
        default=None,
        description="`rater invoice --rated`: a rate-file output directory, the streaming "
        "job's dataset directory or a rated .parquet file.",
    )
    output: Path | None = Field(
        default=None, description="`rater invoice --output`: the output directory."
    )
    period: str | None = Field(
        default=None,
        pattern=r"^20[0-9]{2}-(0[1-9]|1[0-2])$",
        description="`rater invoice --period`: the month invoiced, YYYY-MM.",
    )
    adjustments: Path | None = Field(
        default=None,
        description="`rater invoice --adjustments`: balance adjustments (.csv or .parquet) "
        "whose refunds become credits; empty = those recorded with the rated records.",
    )
    documents: Literal["all", "html", "none"] = Field(
        default="all",
        description="`--documents`: the HTML and PDF of each invoice (`all`), the HTML only, "
        "or `none` (the Parquet and CSV files only).",
    )
    pdf_workers: int = Field(
        default=0,
        ge=0,
        le=64,
        description="Processes rendering PDFs in parallel; 0 = one per CPU.",
    )
    issuer_name: str = Field(
        default="", max_length=200, description="Who issues the invoices (document header)."
    )
    issuer_address: str = Field(
        default="", max_length=500, description="The issuer's address; lines split on `;`."
    )
    issuer_tax_id: str = Field(default="", max_length=60, description="The issuer's tax id.")
    issuer_email: str = Field(default="", max_length=200, description="The issuer's email.")
    payment_terms_days: int = Field(
        default=30,
        ge=0,
        le=365,
        description="Days from the issue date (the day after the period) to the due date.",
    )


class ReportSettings(Frozen):
    detail_rows: int = Field(
        default=1000,
        ge=0,
        le=1_000_000,
        description="`rater report`: most records (or account lines) listed on an HTML or PDF "
        "page; totals count them all, and the CSV and Parquet exports list them all.",
    )
    mask_callee: bool = Field(
        default=False, description="`rater report --mask-callee`: mask the numbers called."
    )
    issuer_name: str = Field(
        default="", max_length=200, description="Who issues the reports (page header)."
    )


class SimulateSettings(Frozen):
    count: int = Field(default=10_000, ge=0, description="`rater simulate --count`: CDRs.")
    rate: float = Field(
        default=0.0, ge=0, description="`--rate`: records per second, 0 = as fast as possible."
    )
    seed: int = Field(default=1, description="`--seed`: the same seed gives the same records.")
    bad_fraction: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="`--bad-fraction`: share of broken records (half undecodable messages, "
        "half invalid fields; in a file, all invalid fields).",
    )
    duplicate_fraction: float = Field(
        default=0.0, ge=0, le=1, description="`--duplicate-fraction`: share of resent CDRs."
    )
    schema_id: int | None = Field(
        default=None,
        description="`--schema-id`: frame messages with this schema id (registered "
        "automatically when a schema registry is set).",
    )
    output: Path | None = Field(
        default=None, description="`--output`: write a .csv, .parquet or .avro file instead."
    )


class DevBrokerSettings(Frozen):
    home: Path | None = Field(
        default=None,
        description="Where the development broker's jars are cached (empty = "
        "`.cache/kafka` in the repository, else `~/.cache/rater/kafka`).",
    )
    dir: Path | None = Field(
        default=None,
        description="`rater broker --dir`: data and state directory (empty = `<home>/run`).",
    )
    port: int = Field(
        default=9092,
        ge=0,
        le=65535,
        description="`rater broker start --port`: listener port (taken or 0 = a free one).",
    )
