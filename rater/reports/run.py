"""One report written: the request checked, its numbers read, rendered, and the file
written atomically (a temporary name in the same directory, then a rename), with
progress on stderr for a person watching a terminal.

:func:`make_report` is what ``rater report`` runs; :func:`write_demo_reports` is what
``rater demo`` ends with.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import polars as pl

from rater.batch.output_dir import prepare_output_dir, write_atomically
from rater.core.tariff import Tariff
from rater.documents import html_to_pdf
from rater.errors import UsageError
from rater.reports.activity import build_activity
from rater.reports.consumption import build_consumption, export_frame
from rater.reports.exports import activity_export, usage_export, write_frame
from rater.reports.pages import activity_html, consumption_html, usage_html
from rater.reports.request import ReportRequest, build_request
from rater.reports.store import DataSource, RecordStore, open_dataset
from rater.reports.usage import build_usage, usage_rows
from rater.tariff_files import load_tariff

__all__ = ["Progress", "ReportResult", "make_report", "write_demo_reports", "write_report"]


class Progress:
    """Stages of a report on ``stream`` (stderr), one line each with the time spent so
    far; silent unless ``enabled`` (a terminal)."""

    def __init__(self, enabled: bool, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.started = time.monotonic()

    def __call__(self, stage: str) -> None:
        if self.enabled:
            spent = time.monotonic() - self.started
            print(f"rater report: {stage}... ({spent:.1f} s)", file=self.stream, flush=True)


@dataclass(frozen=True)
class ReportResult:
    request: ReportRequest
    path: Path
    items: int  # records (consumption), moves (activity), records so far (usage)
    scope: str = ""  # what the items cover when it is not the request's range (usage)

    @property
    def empty(self) -> bool:
        return self.items == 0

    def line(self) -> str:
        """What the command prints: the file written, or a friendly note when empty."""
        r = self.request
        what = {"consumption": "records", "activity": "debits and credits", "usage": "records"}
        if self.empty:
            scope = self.scope or f"from {r.range_text}"
            written = (
                f"wrote its usage report ({r.format}, no usage yet)"
                if r.report == "usage"
                else f"wrote an empty {r.report} report ({r.format})"
            )
            return (
                f"no {what[r.report]} for tenant {r.tenant_id!r} {scope}: {written} to {self.path}"
            )
        return f"wrote {r.report} report ({r.format}, {self.items} {what[r.report]}) to {self.path}"


@dataclass(frozen=True)
class _Computed:
    items: int
    html: str | None  # the page formats
    frame: pl.DataFrame | None  # the data formats
    scope: str = ""


def write_report(
    tariff: Tariff, source: DataSource, request: ReportRequest, progress: Callable[[str], None]
) -> ReportResult:
    """Compute and write ``request``'s report; the result names the file."""
    output = request.output
    _check_output(output)
    progress("reading records")
    with RecordStore(source) as store:
        computed = _compute(tariff, store, request, progress)
    data = b""
    if request.format == "pdf":
        assert computed.html is not None
        progress("printing the PDF")
        data = html_to_pdf(computed.html)
    elif request.format == "html":
        assert computed.html is not None
        data = computed.html.encode("utf-8")
    frame = computed.frame

    def writer(path: Path) -> None:
        if frame is None:
            path.write_bytes(data)
        else:
            write_frame(frame, path, request.format)

    progress("writing the file")
    write_atomically(output.parent, {output.name: writer}, flag="--output")
    return ReportResult(request, output, computed.items, computed.scope)


def _compute(
    tariff: Tariff, store: RecordStore, request: ReportRequest, progress: Callable[[str], None]
) -> _Computed:
    """The report's numbers, then its page (HTML) or its data (a frame)."""
    page = request.format in ("html", "pdf")
    decimals = request.plan.invoice_decimals
    if request.report == "consumption":
        consumption = build_consumption(store, request)
        progress("drawing the charts" if page else "exporting the records")
        if page:
            return _Computed(consumption.records, consumption_html(consumption), None)
        return _Computed(consumption.records, None, export_frame(store, request))
    if request.report == "activity":
        activity = build_activity(store, request)
        progress("laying out the page" if page else "exporting the lines")
        if page:
            return _Computed(activity.moves, activity_html(activity), None)
        return _Computed(activity.moves, None, activity_export(activity.lines, decimals))
    usage = build_usage(store, request, tariff)
    progress("laying out the page" if page else "exporting the lines")
    scope = f"in period {usage.period.label} up to {usage.as_of_text} ({request.plan.timezone})"
    if page:
        return _Computed(usage.records, usage_html(usage), None, scope)
    return _Computed(usage.records, None, usage_export(usage_rows(usage), decimals), scope)


def _check_output(output: Path) -> None:
    try:
        is_dir = output.is_dir()
    except OSError:
        is_dir = False
    if is_dir or not output.name:
        raise UsageError(
            f"--output {output}: is a directory. Fix: give a file name, e.g. {output / 'report.html'}"
        )
    prepare_output_dir(output.parent, [output.name], flag="--output")


def make_report(
    config_dir: Path, dataset: Path, report: str, *, progress: bool = False, **flags: Any
) -> ReportResult:
    """Load the tariff, check the request (``flags``: the keywords of
    :func:`~rater.reports.request.build_request`), write the report (``rater report``)."""
    tariff = load_tariff(Path(config_dir))
    source = open_dataset(Path(dataset), flag="--dataset")
    request = build_request(tariff, report, **flags)
    return write_report(tariff, source, request, Progress(progress))


_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def write_demo_reports(
    config_dir: Path, dataset_dir: Path, out_dir: Path, tenant_id: str
) -> list[Path]:
    """The three reports of ``tenant_id`` as HTML pages in ``out_dir``, over the current
    month of its plan's zone; account activity only for a prepaid tenant. Returns the
    paths written."""
    tariff = load_tariff(Path(config_dir))
    tenant = tariff.tenants.get(tenant_id)
    reports = ["consumption", "usage"]
    if tenant is not None and tenant.billing == "prepaid":
        reports.insert(1, "activity")
    name = _SAFE.sub("_", tenant_id)[:80] or "tenant"
    paths = []
    for report in reports:
        result = make_report(
            config_dir,
            dataset_dir,
            report,
            tenant_id=tenant_id,
            output=Path(out_dir) / f"{report}-{name}.html",
            format="html",
        )
        paths.append(result.path)
    return paths
