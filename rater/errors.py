"""One exception hierarchy for the whole rater.

Transient errors may succeed when retried (a broker that is restarting, a
timeout, a full disk); terminal errors will not (a bad tariff, a bad flag, topics
whose partition counts differ): the command stops with one line and exit status 2.
A fenced producer is neither: it is a Kafka error after which the streaming job
starts over with new clients (its new producer fences the old one in turn).
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "InputError",
    "RaterError",
    "TerminalError",
    "TransientError",
    "UsageError",
]


class RaterError(Exception):
    """Base of every error the rater raises on purpose."""


class TransientError(RaterError):
    """May succeed if retried: the caller backs off and tries again."""


class TerminalError(RaterError):
    """Will not succeed if retried: the caller stops and reports."""


class UsageError(TerminalError):
    """A bad flag or argument; the CLI prints it and exits with status 2."""


class ConfigError(TerminalError):
    """A bad configuration file; names the file, the line (or item) and the fix.

    The CLI prints ``str(err)`` and exits with status 2.
    """

    def __init__(self, file: str, line: int | str | None, problem: str, fix: str) -> None:
        self.file = file
        self.line = line
        self.problem = problem
        self.fix = fix
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {problem}. Fix: {fix}")


class InputError(TerminalError):
    """An input file that cannot be read at all (missing, unknown format)."""
