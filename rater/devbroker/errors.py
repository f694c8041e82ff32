"""The development broker's one error."""

from __future__ import annotations

from rater.errors import TerminalError

__all__ = ["BrokerError"]


class BrokerError(TerminalError):
    """The local broker could not be prepared, started or stopped."""
