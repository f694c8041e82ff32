"""A document's HTML printed to PDF with WeasyPrint: offline and byte-for-byte repeatable.

:func:`html_to_pdf` prints the very string the HTML file holds, so the PDF and the HTML
cannot disagree. Two guarantees:

- **Offline.** ``base_url`` is None and the URL fetcher refuses every URL (``http:``,
  ``https:``, ``file:``, ...) without opening it; only ``data:`` URLs, which carry their
  bytes inline, are decoded. A refused reference is a template bug:
  :class:`ExternalResourceError` names it after rendering.
- **Deterministic.** The PDF has no creation or modification date unless the HTML gives
  one (``<meta name="dcterms.created">``, which ``base.html`` takes from the document's
  own issue date), and its file identifier (``/ID``) is an MD5 of its own content
  (``pdf_identifier=True``), not a random or time-based one: the same HTML gives the same
  bytes, run after run and process after process, with the same WeasyPrint, fonts and
  HarfBuzz (pinned by ``constraints.txt`` and ``tools/system-packages.txt``).

WeasyPrint is imported on first use: importing :mod:`rater.documents` stays cheap.
"""

from __future__ import annotations

import functools
import urllib.request
from typing import Any

from rater.documents.errors import ExternalResourceError

__all__ = ["PDF_OPTIONS", "html_to_pdf"]

# The write_pdf options, fixed: an identifier derived from the content (PDF readers and
# archives expect one; a content hash keeps the bytes repeatable), compressed streams.
PDF_OPTIONS: dict[str, object] = {"pdf_identifier": True, "uncompressed_pdf": False}


@functools.cache
def _weasyprint() -> tuple[Any, type[Any]]:
    """WeasyPrint's HTML class and an offline URL fetcher class (imported once, lazily)."""
    import weasyprint
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class OfflineURLFetcher(URLFetcher):  # type: ignore[misc]
        """Opens nothing: decodes ``data:`` URLs, records and refuses every other one."""

        def __init__(self) -> None:
            super().__init__(allowed_protocols=("data",), fail_on_errors=False)
            self.refused: list[str] = []

        def fetch(self, url: str, headers: Any = None) -> Any:
            if url[:5].lower() == "data:":
                response = urllib.request.DataHandler().data_open(urllib.request.Request(url))
                return URLFetcherResponse(url, response.read(), response.headers)
            self.refused.append(url)
            raise ValueError(f"documents are rendered offline: {url} is not fetched")

    return weasyprint.HTML, OfflineURLFetcher


def html_to_pdf(html: str) -> bytes:
    """Print ``html`` (a whole document, styles inline) to PDF bytes: A4, offline, repeatable.

    Raises :class:`ExternalResourceError` when the HTML refers to anything outside itself
    (a stylesheet, image or font by URL or file path); nothing is fetched either way.
    """
    if not isinstance(html, str):
        raise TypeError(f"html must be a string, got {type(html).__name__}")
    html_class, fetcher_class = _weasyprint()
    fetcher = fetcher_class()
    document = html_class(string=html, base_url=None, url_fetcher=fetcher)
    pdf = document.write_pdf(**PDF_OPTIONS)
    if fetcher.refused:
        raise ExternalResourceError(sorted(set(fetcher.refused)))
    assert isinstance(pdf, bytes)
    return pdf
