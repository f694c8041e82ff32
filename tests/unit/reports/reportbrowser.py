"""A real browser for the reports' tests: Chromium headless (Debian's package, installed
by ``make setup`` from tools/system-packages.txt), run as a subprocess with its own
profile under the test's temporary directory and a time limit; and the DOM it dumps after
rendering, parsed by the standard library into a small tree to query."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

TIMEOUT_S = 180  # a limit for a stuck browser, not a measure: the suite may share the CPUs
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Elements HTML serializes without an end tag.
_VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "track",
    "wbr",
}


def chromium() -> str:
    """The browser's path; a failure (never a skip) when it is missing."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "chromium is missing: `make setup` installs it (tools/system-packages.txt)"
    return found


def run_chromium(page: Path, work: Path, *args: str) -> bytes:
    """Chromium headless on ``page`` (a file) with ``args``; its stdout."""
    home = work / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
    }
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
        "--hide-scrollbars",
        f"--user-data-dir={work / 'profile'}",
        *args,
        page.resolve().as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, timeout=TIMEOUT_S, env=env, check=False)
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")[-2000:]
    return done.stdout


def dump_dom(page: Path, work: Path) -> Node:
    """The page's DOM after the browser has loaded and rendered it."""
    html = run_chromium(page, work, "--dump-dom").decode("utf-8")
    assert "<html" in html, html[:500]
    return parse(html)


def screenshot(page: Path, work: Path, width: int, height: int) -> Path:
    """A PNG of the page's first ``width`` x ``height`` pixels."""
    path = work / "screenshot.png"
    run_chromium(page, work, f"--screenshot={path}", f"--window-size={width},{height}")
    return path


def print_to_pdf(page: Path, work: Path) -> Path:
    """The page as the browser prints it (no header or footer of its own)."""
    path = work / "printed.pdf"
    run_chromium(page, work, f"--print-to-pdf={path}", "--no-pdf-header-footer")
    return path


def pdf_text(path: Path) -> str:
    """A PDF's text as Poppler's pdftotext reads it (layout kept)."""
    tool = shutil.which("pdftotext")
    assert tool, "pdftotext is missing: `make setup` installs poppler-utils"
    done = subprocess.run(
        [tool, "-layout", "-enc", "UTF-8", str(path), "-"],
        capture_output=True,
        timeout=TIMEOUT_S,
        check=True,
    )
    return done.stdout.decode("utf-8")


@dataclass
class Node:
    """One element: its tag, attributes and children (elements and text)."""

    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[Node | str] = field(default_factory=list)

    def iter(self) -> Iterator[Node]:
        """This element and every element under it, in document order."""
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.iter()

    def all(self, tag: str, **attrs: str) -> list[Node]:
        """The elements under this one (itself included) with ``tag`` ("*": any) and
        these attribute values (``aria_label`` for ``aria-label``, ``class_`` for
        ``class``)."""
        wanted = {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()}
        return [
            node
            for node in self.iter()
            if tag in ("*", node.tag) and all(node.attrs.get(k) == v for k, v in wanted.items())
        ]

    def one(self, tag: str, **attrs: str) -> Node:
        found = self.all(tag, **attrs)
        assert len(found) == 1, f"{len(found)} <{tag}> with {attrs}"
        return found[0]

    def by_id(self, element_id: str) -> Node:
        return self.one("*", id=element_id)

    @property
    def text(self) -> str:
        """The text inside, whitespace collapsed as a browser shows it."""
        parts: list[str] = []
        stack: list[Node | str] = [self]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                parts.append(item)
            elif item.tag not in ("style", "script"):
                stack.extend(reversed(item.children))
        return " ".join("".join(parts).split())


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document")
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(html: str) -> Node:
    builder = _Builder()
    builder.feed(html)
    builder.close()
    return builder.root


def micros_of_text(text: str) -> int:
    """``"1,234.5678 EUR"`` -> 1234567800: a shown amount back to exact integer micros."""
    number = text.split()[0].replace(",", "")
    sign = -1 if number.startswith("-") else 1
    whole, _, frac = number.lstrip("-").partition(".")
    assert whole.isdigit() and (frac == "" or frac.isdigit()) and len(frac) <= 6, text
    return sign * (int(whole) * 1_000_000 + int(frac.ljust(6, "0") or "0"))
