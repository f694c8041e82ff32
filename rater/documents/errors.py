"""The one error the documents raise on purpose: a document that cannot be made right."""

from __future__ import annotations

from rater.errors import TerminalError

__all__ = ["DocumentError", "ExternalResourceError"]


class DocumentError(TerminalError):
    """Inputs that would make a wrong document (totals that disagree, a missing column).

    Terminal: rendering the same inputs again fails the same way. The message names the
    document and what is wrong.
    """


class ExternalResourceError(DocumentError):
    """A document referred to a resource outside itself (a URL or a file).

    Documents are self-contained: every style and image is inline, nothing is fetched at
    render time, so a reference to anything else is a template bug, not a warning.
    """

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        super().__init__(
            f"the document refers to {len(urls)} external resource(s), which are never "
            f"fetched: {', '.join(urls)}; inline them (data: URLs, <style>) instead"
        )
