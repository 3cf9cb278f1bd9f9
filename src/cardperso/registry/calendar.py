"""The working-day calendar behind the time targets.

A day is a working day when it is Monday to Friday and not a holiday, or when it is a make-up
working day (调休: a weekend day worked to bridge a holiday). The holidays and make-up days
come from a small text file, one entry per line::

    # China, National Day 2026 (a comment)
    holiday 2026-10-01..2026-10-07   National Day and Mid-Autumn
    workday 2026-09-20               make-up working day (Sunday)
    workday 2026-10-10               make-up working day (Saturday)

``holiday`` / ``workday``, then a date or an inclusive range ``FIRST..LAST`` (``YYYY-MM-DD`` or
``YYYYMMDD``), then an optional note. A date listed both ways is an error.

Time targets (2019 notice of the Ministry of Human Resources and Social Security, seed
document): from accepting the application to notifying the cardholder to collect the card,
batch issuance within **30 working days**, sporadic issuance within **5 working days**. The
day of acceptance is day 0; the deadline is the target-th working day after it.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cardperso.errors import DataError
from cardperso.registry.files import read_text

#: Working days from acceptance to notification of collection, per application type.
#: A calendar lists a few dozen days a year: a larger file is not one.
MAX_CALENDAR_BYTES: Final = 1024 * 1024
TARGETS: Final[dict[str, int]] = {"batch": 30, "sporadic": 5}
#: An application is "at risk" when this few working days (or fewer) are left.
AT_RISK: Final[dict[str, int]] = {"batch": 5, "sporadic": 1}


def parse_day(text: str, field: str = "date") -> datetime.date:
    """``YYYY-MM-DD`` or ``YYYYMMDD``."""
    s = text.strip()
    try:
        if len(s) == 8 and s.isdigit():
            return datetime.date(int(s[:4]), int(s[4:6]), int(s[6:]))
        return datetime.date.fromisoformat(s)
    except ValueError:
        raise DataError(f"{text!r} is not a date (YYYY-MM-DD or YYYYMMDD)", field=field) from None


@dataclass(frozen=True, slots=True)
class Calendar:
    """Weekends off, plus ``holidays`` off and ``workdays`` (make-up days) on."""

    holidays: frozenset[datetime.date] = frozenset()
    workdays: frozenset[datetime.date] = frozenset()
    source: str = "weekends only"

    def is_working_day(self, day: datetime.date) -> bool:
        if day in self.workdays:
            return True
        if day in self.holidays:
            return False
        return day.weekday() < 5

    def working_days_between(self, start: datetime.date, end: datetime.date) -> int:
        """Working days in (start, end]: 0 on the same day; negative when end is before start."""
        if end < start:
            return -self.working_days_between(end, start)
        n = 0
        day = start
        one = datetime.timedelta(days=1)
        while day < end:
            day += one
            n += self.is_working_day(day)
        return n

    def add_working_days(self, start: datetime.date, n: int) -> datetime.date:
        """The n-th working day after ``start`` (n ≥ 0; n = 0 is ``start`` itself)."""
        day = start
        one = datetime.timedelta(days=1)
        while n > 0:
            day += one
            if self.is_working_day(day):
                n -= 1
        return day


def parse_calendar(lines: Iterable[str], source: str = "<calendar>") -> Calendar:
    holidays: set[datetime.date] = set()
    workdays: set[datetime.date] = set()
    for number, raw in enumerate(lines, 1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        parts = text.split(None, 2)
        where = f"{source}:{number}"
        if len(parts) < 2 or parts[0] not in ("holiday", "workday"):
            raise DataError(
                f"{where}: expected 'holiday DATE[..DATE] [note]' or 'workday DATE[..DATE] [note]'",
                field="calendar",
            )
        first, _, last = parts[1].partition("..")
        start = parse_day(first, f"calendar line {number}")
        end = parse_day(last, f"calendar line {number}") if last else start
        if end < start:
            raise DataError(f"{where}: range ends before it starts", field="calendar")
        target = holidays if parts[0] == "holiday" else workdays
        day = start
        while day <= end:
            target.add(day)
            day += datetime.timedelta(days=1)
    both = holidays & workdays
    if both:
        raise DataError(
            f"{source}: {min(both).isoformat()} is listed both as a holiday and as a workday",
            field="calendar",
        )
    return Calendar(frozenset(holidays), frozenset(workdays), source)


def load_calendar(path: str | Path | None) -> Calendar:
    """The calendar file at ``path``; weekends only when ``path`` is None or empty."""
    if not path:
        return Calendar()
    p = Path(path)
    text = read_text(p, "calendar", limit=MAX_CALENDAR_BYTES)
    return parse_calendar(text.splitlines(), str(p))


@dataclass(frozen=True, slots=True)
class Deadline:
    """Where one application stands against its time target on ``as_of``."""

    target: int
    deadline: datetime.date
    used: int
    days_left: int

    @property
    def late(self) -> bool:
        return self.days_left < 0


@functools.lru_cache(maxsize=4096)
def deadline(
    cal: Calendar, accepted: datetime.date, application_type: str, as_of: datetime.date
) -> Deadline:
    """Where an application accepted on ``accepted`` stands on ``as_of`` (remembered: a
    registry's applications share a few dozen acceptance days, and a report asks for each)."""
    target = TARGETS.get(application_type, TARGETS["batch"])
    due = cal.add_working_days(accepted, target)
    used = cal.working_days_between(accepted, as_of)
    return Deadline(target, due, used, target - used)
