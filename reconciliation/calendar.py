"""Business days in Vietnam: weekends, public holidays and make-up working days (issue 6.3).

Settlement windows ("pending for 2 business days") and the matching date window ("±2 business days")
count *business* days in Asia/Ho_Chi_Minh. A day is a business day when it is Monday–Friday and not a
public holiday, or when it is a weekend day the government declared a make-up working day.

Sources: fixed-date holidays by law (Labour Code 45/2019/QH14 Art. 112: 1/1, 30/4, 1/5, 2/9 plus one
adjacent day; Tết 5 days and Hùng Kings 10/3 by the lunar calendar; a holiday falling on a weekend is
made up on the next working day); lunar dates and day swaps as announced each year by the Prime
Minister / Ministry of Home Affairs. The default list below covers 2025–2027: 2025 as announced,
2026 as announced where known, 2027 computed from the rules and marked *provisional*. Keep it
editable: ``RECON_HOLIDAYS`` names a file in this format, which replaces the default list::

    # one date per line; anything after '#' is a comment
    2025-01-27            # Tết
    2025-04-26 work       # a Saturday declared a working day (swapped for 2 May)

A date alone is a day off; ``work`` marks a weekend day that is a working day.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

__all__ = ["DEFAULT_HOLIDAYS_TEXT", "BusinessCalendar", "load_calendar", "parse_calendar"]

DEFAULT_HOLIDAYS_TEXT = """\
# Vietnamese public holidays (weekdays off) and make-up working days.
# Sources: fixed-date holidays by law (Labour Code 2019 Art. 112); lunar dates as announced.
# 2025
2025-01-01  # Tết Dương lịch
2025-01-27  # Tết Ất Tỵ (25/1 - 2/2/2025)
2025-01-28
2025-01-29
2025-01-30
2025-01-31
2025-04-07  # Giỗ Tổ Hùng Vương (10/3 âm lịch)
2025-04-30  # Giải phóng miền Nam
2025-05-01  # Quốc tế Lao động
2025-05-02  # swapped with Saturday 26/4
2025-04-26 work
2025-09-01  # Quốc khánh (adjacent day)
2025-09-02  # Quốc khánh
# 2026
2026-01-01  # Tết Dương lịch
2026-02-16  # Tết Bính Ngọ (14/2 - 22/2/2026)
2026-02-17
2026-02-18
2026-02-19
2026-02-20
2026-04-27  # Giỗ Tổ Hùng Vương falls on Sunday 26/4: made up on Monday
2026-04-30  # Giải phóng miền Nam
2026-05-01  # Quốc tế Lao động
2026-09-01  # Quốc khánh (adjacent day: confirm with the year's decision)
2026-09-02  # Quốc khánh
# 2027 (provisional: computed from the rules, confirm when announced)
2027-01-01  # Tết Dương lịch
2027-02-05  # Tết Đinh Mùi (30 Tết - mùng 4; Sat/Sun made up on 10-11/2)
2027-02-08
2027-02-09
2027-02-10
2027-02-11
2027-04-16  # Giỗ Tổ Hùng Vương (10/3 âm lịch)
2027-04-30  # Giải phóng miền Nam
2027-05-03  # Quốc tế Lao động falls on Saturday 1/5: made up on Monday
2027-09-02  # Quốc khánh
2027-09-03  # Quốc khánh (adjacent day)
"""


@dataclass(frozen=True)
class BusinessCalendar:
    """Which days are business days. Immutable; build one with :func:`parse_calendar`."""

    holidays: frozenset[date] = field(default_factory=frozenset)
    working_weekend_days: frozenset[date] = field(default_factory=frozenset)
    source: str = "default"

    def is_business_day(self, day: date) -> bool:
        if day in self.working_weekend_days:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def add_business_days(self, day: date, n: int) -> date:
        """The ``n``-th business day after ``day`` (before it for a negative ``n``); ``n=0`` is ``day``."""
        step = 1 if n >= 0 else -1
        remaining = abs(n)
        current = day
        while remaining:
            current += timedelta(days=step)
            if self.is_business_day(current):
                remaining -= 1
        return current

    def business_days_between(self, start: date, end: date) -> int:
        """Business days ``d`` with ``start < d <= end`` (negative when ``end`` is before ``start``).

        Friday → Monday is 1, Friday → Saturday is 0: a weekend payment is as close to Friday as to Monday.
        """
        if end == start:
            return 0
        sign = 1 if end > start else -1
        low, high = (start, end) if sign > 0 else (end, start)
        count = 0
        current = low
        while current < high:
            current += timedelta(days=1)
            if self.is_business_day(current):
                count += 1
        return sign * count

    def distance(self, a: date, b: date) -> int:
        """Business days between two dates, whichever comes first (for the ±N date window)."""
        return abs(self.business_days_between(a, b))

    def previous_business_day(self, day: date) -> date:
        return self.add_business_days(day, -1)

    @property
    def digest(self) -> str:
        """A short fingerprint, stored with each run (a changed calendar can change a run's result)."""
        text = ",".join(sorted(d.isoformat() for d in self.holidays))
        text += "|" + ",".join(sorted(d.isoformat() for d in self.working_weekend_days))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_calendar(lines: Iterable[str], *, source: str = "text") -> BusinessCalendar:
    """Read the holiday file format (see the module docstring). Raises ValueError naming the line."""
    holidays: set[date] = set()
    working: set[date] = set()
    for number, raw in enumerate(lines, start=1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        parts = text.split()
        try:
            day = date.fromisoformat(parts[0])
        except ValueError:
            raise ValueError(f"{source} line {number}: {parts[0]!r} is not a YYYY-MM-DD date") from None
        if len(parts) == 1:
            holidays.add(day)
        elif len(parts) == 2 and parts[1].lower() == "work":
            if day.weekday() < 5:
                raise ValueError(
                    f"{source} line {number}: {day} is a weekday; only weekend days can be 'work'"
                )
            working.add(day)
        else:
            raise ValueError(f"{source} line {number}: expected 'YYYY-MM-DD' or 'YYYY-MM-DD work'")
    return BusinessCalendar(frozenset(holidays), frozenset(working), source)


DEFAULT_CALENDAR = parse_calendar(DEFAULT_HOLIDAYS_TEXT.splitlines(), source="default")


def load_calendar(path: str | Path | None) -> BusinessCalendar:
    """The calendar in ``path`` (``RECON_HOLIDAYS``), or the default list when ``path`` is None."""
    if path is None:
        return DEFAULT_CALENDAR
    p = Path(path)
    return parse_calendar(p.read_text(encoding="utf-8").splitlines(), source=str(p))
