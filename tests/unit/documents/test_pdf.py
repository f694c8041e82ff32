"""Invoice PDFs: printed from the HTML, offline, the same bytes for the same input."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from invoicedeck import Kit, build_invoice, long_invoice_lines, pdf_info, pdf_text

from rater.documents import ExternalResourceError, format_money, html_to_pdf

_RENDER_IN_A_NEW_PROCESS = (
    "import sys; from rater.documents import html_to_pdf; "
    "sys.stdout.buffer.write(html_to_pdf(sys.stdin.read()))"
)


def _collapsed(text: str) -> str:
    return " ".join(text.split())


def test_the_pdf_shows_the_invoice_id_every_line_and_the_totals(kit: Kit) -> None:
    text = _collapsed(pdf_text(html_to_pdf(kit.html())))
    assert "Invoice" in text and "acme-2026-04" in text
    for row in kit.lines[:-1]:  # every line but tax (shown with the totals)
        assert row["description"] in text, row["description"]
    invoice = kit.invoice
    for label, key in (
        ("Subtotal", "subtotal_micros"),
        ("VAT 20%", "tax_micros"),
        ("Total", "total_micros"),
        ("Amount due", "amount_due_micros"),
    ):
        assert f"{label} {format_money(invoice[key], 'EUR', 2)}" in text, label
    assert "Subtotal 748.92 EUR" in text and "Amount due 898.70 EUR" in text
    assert "ADVANCED license 1 unit 49.07 49.07 Prorated: 23 of 30 days" in text
    assert "-5.00" in text  # the credit


def test_the_pdf_is_a4_with_title_author_and_the_issue_date_only(kit: Kit) -> None:
    info = pdf_info(html_to_pdf(kit.html()))
    assert "(A4)" in info
    assert "Title:           Invoice acme-2026-04" in info
    assert "Author:          Telco SAS" in info
    assert "CreationDate:    Fri May  1 00:00:00 2026 UTC" in info  # the issue date
    assert "ModDate" not in info


def test_without_an_issue_date_the_pdf_has_no_date_at_all() -> None:
    info = pdf_info(html_to_pdf(build_invoice(long_invoice_lines(3)).html()))
    assert "CreationDate" not in info and "ModDate" not in info


def test_the_same_html_gives_the_same_pdf_bytes(kit: Kit) -> None:
    html = kit.html()
    first = html_to_pdf(html)
    assert first.startswith(b"%PDF-") and html_to_pdf(html) == first
    assert html_to_pdf(kit.html()) == first


def test_the_same_html_gives_the_same_pdf_bytes_in_other_processes(kit: Kit) -> None:
    """Across interpreter runs, with different hash seeds (set and dict orders)."""
    html = kit.html()
    expected = hashlib.sha256(html_to_pdf(html)).hexdigest()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", _RENDER_IN_A_NEW_PROCESS],
            input=html.encode("utf-8"),
            capture_output=True,
            env=env,
            check=True,
            timeout=120,
        )
        assert hashlib.sha256(done.stdout).hexdigest() == expected, seed


def test_a_long_invoice_numbers_its_pages_and_repeats_the_table_header() -> None:
    kit = build_invoice(long_invoice_lines(120))
    text = pdf_text(html_to_pdf(kit.html()))
    pages = text.split("\f")[:-1]
    count = len(pages)
    assert count >= 3
    for number, page in enumerate(pages, 1):
        assert f"Page {number} of {count}" in page
        assert "Invoice acme-2026-04" in page  # the footer
        assert "Unit price (EUR)" in page  # the table's header, on every page
    assert "Outbound calls to prefix 33120" in pages[-1]
    assert f"Amount due {format_money(kit.invoice['amount_due_micros'], 'EUR', 2)}" in (
        _collapsed(pages[-1])
    )


def _recording_handler(requests: list[str]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/css")
            self.end_headers()
            self.wfile.write(b"body { color: red }")

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def local_server() -> Iterator[tuple[str, list[str]]]:
    """An HTTP server on 127.0.0.1 that records every request it gets."""
    requests: list[str] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _recording_handler(requests))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_nothing_is_fetched_and_external_references_are_refused(
    local_server: tuple[str, list[str]],
) -> None:
    base, requests = local_server
    html = f"""<!DOCTYPE html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="{base}/linked.css">
<style>
@import url("{base}/imported.css");
@font-face {{ font-family: Remote; src: url("{base}/font.woff2"); }}
body {{ font-family: Remote; background: url("file:///etc/hostname"); }}
</style></head>
<body><p>Invoice x</p><img src="{base}/logo.png"></body></html>"""
    with pytest.raises(ExternalResourceError) as err:
        html_to_pdf(html)
    assert requests == []  # the server was never asked for anything
    assert set(err.value.urls) == {
        f"{base}/linked.css",
        f"{base}/imported.css",
        f"{base}/font.woff2",
        f"{base}/logo.png",
        "file:///etc/hostname",
    }


def test_the_local_server_does_answer_so_the_test_above_means_something(
    local_server: tuple[str, list[str]],
) -> None:
    import urllib.request

    base, requests = local_server
    with urllib.request.urlopen(f"{base}/probe.css", timeout=10) as response:
        assert response.status == 200
    assert requests == ["/probe.css"]


def test_inline_data_urls_are_allowed() -> None:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'
    src = "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")
    html = f'<!DOCTYPE html><html><body><p>Logo</p><img src="{src}"></body></html>'
    pdf = html_to_pdf(html)
    assert "Logo" in pdf_text(pdf)


def test_html_must_be_a_string() -> None:
    with pytest.raises(TypeError):
        html_to_pdf(b"<html></html>")  # type: ignore[arg-type]
