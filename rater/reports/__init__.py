"""Customer reports from the rater's dataset: ``rater report consumption|activity|usage``.

- :mod:`~rater.reports.request`: the flags checked, dates read in the tenant plan's zone;
- :mod:`~rater.reports.store`: DuckDB over the Parquet files, parameterized queries, one
  tenant at a time;
- :mod:`~rater.reports.consumption`, :mod:`~rater.reports.activity`,
  :mod:`~rater.reports.usage`: the three reports' numbers (exact integer micros);
- :mod:`~rater.reports.naming`, :mod:`~rater.reports.countries`: what a customer reads
  (debit and credit names, masked numbers, countries of rate prefixes);
- :mod:`~rater.reports.charts`, :mod:`~rater.reports.pages`: inline SVG charts and HTML
  pages (PDF printed from the same HTML); :mod:`~rater.reports.exports`: CSV and Parquet;
- :mod:`~rater.reports.run`: one report written atomically; the demo's reports.

May import :mod:`rater.batch` (atomic outputs), :mod:`rater.documents`,
:mod:`rater.tariff_files` and :mod:`rater.core`; never billing (its sibling), the
streaming job or the CLI (``make lint`` checks).
"""

from rater.reports.request import FORMATS, REPORTS, SHOW, ReportRequest, build_request
from rater.reports.run import ReportResult, make_report, write_demo_reports, write_report

__all__ = [
    "FORMATS",
    "REPORTS",
    "SHOW",
    "ReportRequest",
    "ReportResult",
    "build_request",
    "make_report",
    "write_demo_reports",
    "write_report",
]
