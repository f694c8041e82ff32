"""Billing periods: calendar months in a plan's time zone (billing rule 1).

A period is [first day 00:00, first day of the next month 00:00) in the plan's zone; D is
its number of days, and the local calendar date of an instant is read in the same zone.
A local midnight that does not exist (a zone that skips it for daylight saving time) is
the first instant of that day.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

__all__ = ["Period", "parse_period"]

_LABEL = re.compile(r"(?P<year>20[0-9]{2})-(?P<month>0[1-9]|1[0-2])")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def parse_period(text: str) -> tuple[int, int]:
    """(year, month) of ``YYYY-MM`` (years 2000..2099); ValueError otherwise."""
    match = _LABEL.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"period {text!r} is not YYYY-MM within 2000-01..2099-12")
    return int(match["year"]), int(match["month"])


@dataclass(frozen=True)
class Period:
    """One calendar month of one time zone."""

    year: int
    month: int
    timezone: str

    @staticmethod
    def of(label: str, timezone: str) -> Period:
        year, month = parse_period(label)
        return Period(year, month, timezone)

    @staticmethod
    def containing(instant_us: int, timezone: str) -> Period:
        """The period of the local date of ``instant_us``."""
        local = (_EPOCH + instant_us * _US).astimezone(ZoneInfo(timezone))
        return Period(local.year, local.month, timezone)

    @property
    def label(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def days(self) -> int:
        """D: the number of days of the month."""
        return calendar.monthrange(self.year, self.month)[1]

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def last_day(self) -> date:
        return date(self.year, self.month, self.days)

    @property
    def start_us(self) -> int:
        """The instant the period starts (local midnight of its first day)."""
        return self._midnight_us(self.year, self.month)

    @property
    def end_us(self) -> int:
        """The instant the next period starts (exclusive end)."""
        year, month = (self.year + 1, 1) if self.month == 12 else (self.year, self.month + 1)
        return self._midnight_us(year, month)

    def next(self) -> Period:
        year, month = (self.year + 1, 1) if self.month == 12 else (self.year, self.month + 1)
        return Period(year, month, self.timezone)

    def contains(self, instant_us: int) -> bool:
        return self.start_us <= instant_us < self.end_us

    def local_day(self, instant_us: int) -> int:
        """The local day of the month of an instant of this period."""
        return (_EPOCH + instant_us * _US).astimezone(ZoneInfo(self.timezone)).day

    def _midnight_us(self, year: int, month: int) -> int:
        zone = ZoneInfo(self.timezone)
        local = datetime(year, month, 1, tzinfo=zone)
        # A skipped midnight: fold=0 reads it with the offset before the gap, which lands
        # on the first instant that exists that day.
        return (local.astimezone(UTC) - _EPOCH) // _US
