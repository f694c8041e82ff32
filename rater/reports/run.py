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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

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

    @property
    def empty(self) -> bool:
        return self.items == 0

    def line(self) -> str:
        """What the command prints: the file written, or a friendly note when empty."""
        r = self.request
        what = {"consumption": "records", "activity": "debits and credits", "usage": "records"}
        if self.empty:
            return (
                f"no {what[r.report]} for tenant {r.tenant_id!r} from {r.range_text}: "
                f"wrote an empty {r.report} report ({r.format}) to {self.path}"
            )
        return f"wrote {r.report} report ({r.format}, {self.items} {what[r.report]}) to {self.path}"


def write_report(
    tariff: Tariff, source: DataSource, request: ReportRequest, progress: Callable[[str], None]
) -> ReportResult:
    """Compute and write ``request``'s report; the result names the file."""
    output = request.output
    _check_output(output)
    progress("reading records")
    with RecordStore(source) as store:
        items, html, frame = _compute(tariff, store, request, progress)
    data = b""
    if request.format == "pdf":
        assert html is not None
        progress("printing the PDF")
        data = html_to_pdf(html)
    elif request.format == "html":
        assert html is not None
        data = html.encode("utf-8")

    def writer(path: Path) -> None:
        if frame is None:
            path.write_bytes(data)
        else:
            write_frame(frame, path, request.format)

    progress("writing the file")
    write_atomically(output.parent, {output.name: writer}, flag="--output")
    return ReportResult(request, output, items)


def _compute(
    tariff: Tariff, store: RecordStore, request: ReportRequest, progress: Callable[[str], None]
) -> tuple[int, str | None, pl.DataFrame | None]:
    """(items, the HTML for page formats, the frame for data formats)."""
    page = request.format in ("html", "pdf")
    decimals = request.plan.invoice_decimals
    if request.report == "consumption":
        consumption = build_consumption(store, request)
        progress("drawing the charts" if page else "exporting the records")
        if page:
            return consumption.records, consumption_html(consumption), None
        return consumption.records, None, export_frame(store, request)
    if request.report == "activity":
        activity = build_activity(store, request)
        if page:
            return activity.moves, activity_html(activity), None
        return activity.moves, None, activity_export(activity.lines, decimals)
    usage = build_usage(store, request, tariff)
    if page:
        return usage.records, usage_html(usage), None
    return usage.records, None, usage_export(usage_rows(usage), decimals)


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
    config_dir: Path,
    dataset: Path,
    report: str,
    *,
    tenant_id: str,
    output: Path,
    format: str | None,
    start: str | None = None,
    end: str | None = None,
    teams: Sequence[str] = (),
    users: Sequence[str] = (),
    kinds: Sequence[str] = (),
    direction: str | None = None,
    show: str | None = None,
    mask_callee: bool = False,
    detail_rows: int = 1000,
    issuer_name: str = "",
    progress: bool = False,
    now_us: int | None = None,
) -> ReportResult:
    """Load the tariff, check the request, write the report (``rater report``)."""
    tariff = load_tariff(Path(config_dir))
    source = open_dataset(Path(dataset), flag="--dataset")
    request = build_request(
        tariff,
        report,
        tenant_id=tenant_id,
        output=output,
        format=format,
        start=start,
        end=end,
        teams=teams,
        users=users,
        kinds=kinds,
        direction=direction,
        show=show,
        mask_callee=mask_callee,
        detail_rows=detail_rows,
        issuer_name=issuer_name,
        now_us=now_us,
    )
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
