"""What became of a record: one code per outcome, read as a status and a reason."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["REASONS", "STATUSES", "Outcome"]


class Outcome(IntEnum):
    """One code per outcome of a record; its status and reason are read from it."""

    RATED = 0
    UNKNOWN_TENANT = 1
    BAD_TIMES = 2
    BAD_HOLD = 3
    BAD_SEGMENTS = 4
    BAD_NUMBER = 5
    BAD_KIND = 6  # kind or direction is not a contract value (an extension of rule 1)
    DUPLICATE = 7
    NO_RATE = 8

    @property
    def status(self) -> str:
        if self is Outcome.RATED:
            return "rated"
        if self is Outcome.DUPLICATE:
            return "duplicate"
        return "unrated" if self is Outcome.NO_RATE else "invalid"

    @property
    def reason(self) -> str | None:
        return None if self is Outcome.RATED else self.name.lower()


STATUSES = tuple(o.status for o in Outcome)


REASONS = tuple(o.reason for o in Outcome)
