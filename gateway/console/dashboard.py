"""The dashboard (issue 7.2): what was collected, where orders stand, what needs attention."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask_babel import gettext
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from gateway.console.base import DISPLAY_TZ, bp, render
from gateway.console.charts import DayTotal, collections_chart
from gateway.console.reconciliation import category_label, iso_day
from gateway.container import services
from gateway.domain.status import AttemptStatus
from gateway.storage.models import Order, OutboxEvent, PaymentAttempt
from reconciliation.service import open_exceptions_by_age

CHART_DAYS = 30


@dataclass(frozen=True)
class Total:
    key: str
    label: str
    count: int
    amount: int


@dataclass(frozen=True)
class DeadLetter:
    id: str
    type: str
    order_id: str | None
    attempts: int
    last_error: str | None
    created_at: datetime


def _local_midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=DISPLAY_TZ).astimezone(UTC)


def _collected(session: Session, group: Any, start: datetime, end: datetime) -> list[tuple[str, int, int]]:
    """(key, count, amount) of succeeded payments between ``start`` and ``end``, grouped by ``group``."""
    stmt = (
        select(group, func.count(PaymentAttempt.id), func.coalesce(func.sum(PaymentAttempt.amount), 0))
        .join(Order, Order.id == PaymentAttempt.order_id)
        .where(
            PaymentAttempt.status == AttemptStatus.SUCCEEDED.value,
            PaymentAttempt.paid_at >= start,
            PaymentAttempt.paid_at < end,
        )
        .group_by(group)
        .order_by(group)
    )
    return [(str(key), int(count), int(amount)) for key, count, amount in session.execute(stmt)]


def _local_day(session: Session) -> ColumnElement[Any]:
    """The Vietnam calendar day of ``paid_at`` in SQL (Vietnam has had no daylight saving since 1975)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone(DISPLAY_TZ.key, PaymentAttempt.paid_at))
    return func.date(PaymentAttempt.paid_at, "+7 hours")


def daily_collections(session: Session, today: date, days: int = CHART_DAYS) -> list[DayTotal]:
    first = today - timedelta(days=days - 1)
    day = _local_day(session)
    stmt = (
        select(day, func.count(PaymentAttempt.id), func.coalesce(func.sum(PaymentAttempt.amount), 0))
        .where(
            PaymentAttempt.status == AttemptStatus.SUCCEEDED.value,
            PaymentAttempt.paid_at >= _local_midnight(first),
            PaymentAttempt.paid_at < _local_midnight(today + timedelta(days=1)),
        )
        .group_by(day)
    )
    found: dict[date, tuple[int, int]] = {}
    for key, count, amount in session.execute(stmt):
        parsed = key if isinstance(key, date) else date.fromisoformat(str(key))
        found[parsed] = (int(count), int(amount))
    totals = []
    for offset in range(days):
        day_ = first + timedelta(days=offset)
        count, amount = found.get(day_, (0, 0))
        totals.append(DayTotal(day_, amount, count))
    return totals


def _totals(rows: list[tuple[str, int, int]], labels: dict[str, str]) -> list[Total]:
    return [Total(key, labels.get(key, key), count, amount) for key, count, amount in rows]


@bp.get("/")
def dashboard() -> Response:
    svc = services()
    now = svc.clock()
    today = now.astimezone(DISPLAY_TZ).date()
    day_start = _local_midnight(today)
    month_start = _local_midnight(today.replace(day=1))
    end = _local_midnight(today + timedelta(days=1))
    providers = {p.code: p.display_name for p in svc.providers}
    with svc.sessions() as db:
        today_provider = _totals(_collected(db, PaymentAttempt.provider, day_start, end), providers)
        month_provider = _totals(_collected(db, PaymentAttempt.provider, month_start, end), providers)
        today_agency = _totals(_collected(db, Order.agency_code, day_start, end), {})
        month_agency = _totals(_collected(db, Order.agency_code, month_start, end), {})
        statuses = [
            (str(status), int(count))
            for status, count in db.execute(
                select(Order.status, func.count(Order.id)).group_by(Order.status).order_by(Order.status)
            )
        ]
        dead_count = int(
            db.scalar(select(func.count(OutboxEvent.id)).where(OutboxEvent.status == "dead")) or 0
        )
        dead = [
            DeadLetter(e.id, e.type, e.order_id, e.attempts, e.last_error, e.created_at)
            for e in db.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.status == "dead")
                .order_by(OutboxEvent.created_at.desc(), OutboxEvent.id.desc())
                .limit(10)
            )
        ]
        days = daily_collections(db, today)
        # Open exceptions of the newest run by category and age (0-1, 2-7, >7 days); None before any run.
        reconciliation = open_exceptions_by_age(db, today)
    chart = collections_chart(
        days,
        title=gettext("Collections over the last %(days)s days", days=CHART_DAYS),
        empty_label=gettext("No payments in this period"),
    )
    return render(
        "console_dashboard.html",
        today=today,
        today_provider=today_provider,
        month_provider=month_provider,
        today_agency=today_agency,
        month_agency=month_agency,
        statuses=statuses,
        dead_count=dead_count,
        dead=dead,
        chart=chart,
        chart_total=sum(d.amount for d in days),
        reconciliation=reconciliation,
        category_label=category_label,
        day=iso_day,
    )
