"""Instants in UTC, business dates in Asia/Ho_Chi_Minh (reconciliation.md §4, §5.2).

A payment at 06:30 on Sunday in Hanoi is 23:30 on Saturday in UTC: the business date must come from
the local clock, never from the UTC date, or the line lands in the wrong session.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, tzinfo
from zoneinfo import ZoneInfo

__all__ = [
    "VN_TZ",
    "business_date_of",
    "parse_date",
    "parse_instant",
    "to_utc",
]

VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")

#: Day-first, as Vietnamese exports write dates, then ISO. Never month-first: 03/04 is 3 April.
DATE_FORMATS: tuple[str, ...] = ("%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%Y-%m-%d", "%Y/%m/%d")
DATETIME_FORMATS: tuple[str, ...] = tuple(f"{d} {t}" for d in DATE_FORMATS for t in ("%H:%M:%S", "%H:%M"))
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def to_utc(moment: datetime, naive_tz: tzinfo | None = VN_TZ) -> datetime:
    """An aware UTC datetime; a naive one is taken to be in ``naive_tz`` (an error when None)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        if naive_tz is None:
            raise ValueError("time has no UTC offset")
        moment = moment.replace(tzinfo=naive_tz)
    return moment.astimezone(UTC)


def business_date_of(instant: datetime) -> date:
    """The Asia/Ho_Chi_Minh calendar day of an aware instant."""
    return instant.astimezone(VN_TZ).date()


def parse_date(text: str, formats: Sequence[str] = DATE_FORMATS) -> date:
    """``"14/10/2025"`` or ``"2025-10-14"`` -> ``date(2025, 10, 14)``."""
    s = text.strip()
    if "%Y-%m-%d" in formats and _ISO_DATE.fullmatch(s):
        return date.fromisoformat(s)  # the common case, ten times faster than strptime
    for fmt in formats:
        try:
            return datetime.strptime(s, fmt).date()  # noqa: DTZ007 - a date has no zone
        except ValueError:
            continue
    raise ValueError(f"not a date: {text!r}")


def parse_instant(
    text: str,
    formats: Sequence[str] = DATETIME_FORMATS,
    *,
    naive_tz: tzinfo | None = VN_TZ,
) -> datetime | date:
    """A timestamp as an aware UTC datetime, or a bare date when the text carries no time.

    ISO-8601 (``2025-10-14T10:15:00+07:00``, ``...Z``) is tried first, then ``formats``. A time
    without an offset is local to ``naive_tz``; with ``naive_tz=None`` it is an error (the default
    provider settlement layout demands an offset).
    """
    s = text.strip()
    if _ISO_DATE.fullmatch(s):
        return date.fromisoformat(s)
    try:
        return to_utc(datetime.fromisoformat(s), naive_tz)
    except ValueError as exc:
        if "offset" in str(exc):
            raise
    for fmt in formats:
        try:
            parsed = datetime.strptime(s, fmt)  # noqa: DTZ007 - zone applied by to_utc below
        except ValueError:
            continue
        # A format without a time of day names a day, not an instant.
        return to_utc(parsed, naive_tz) if "%H" in fmt else parsed.date()
    try:
        return parse_date(s)
    except ValueError:
        raise ValueError(f"not a date or time: {text!r}") from None
