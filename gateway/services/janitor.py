"""Stuck-payment recovery and the expiry sweep (issue 5.4, 5.5; Kill Bill's Janitor, orchestrators.md §2).

The janitor re-queries attempts left ``redirected`` or ``unknown`` on a ladder of delays after the attempt's
last change (``JANITOR_SCHEDULE``). A definite answer is applied through the same path as a verified IPN
(:func:`gateway.services.payments.apply_notification`). An attempt still unresolved after the last step is
flagged for finance (``needs_review``) — except one the provider positively reports as never completed for
an order that has expired, which is an abandoned checkout and is closed as failed.

Provider queries run with no transaction open; each answer is applied under the order's row lock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.domain.status import OPEN_ATTEMPT_STATUSES, OPEN_ORDER_STATUSES, AttemptStatus, OrderStatus
from gateway.services.audit import change_status, record_action
from gateway.services.outbox import emit
from gateway.services.payments import apply_notification
from gateway.services.registry import ProviderRegistry
from gateway.storage.db import get_for_update, transaction
from gateway.storage.models import Order, PaymentAttempt
from providers.base import Notification, Outcome, QueryRequest

log = logging.getLogger(__name__)

# While a janitor run queries an attempt, other runs leave it alone for this long.
CLAIM_LEASE = timedelta(minutes=2)
# An order waiting on a provider that cannot be reached is expired anyway after this long past its
# deadline; the janitor keeps querying its attempt and a late success is raised as order.late_payment.
UNREACHABLE_EXPIRY_GRACE = timedelta(minutes=15)
_QUERYABLE = (AttemptStatus.REDIRECTED.value, AttemptStatus.UNKNOWN.value)


@dataclass(frozen=True)
class _Due:
    attempt_id: str
    provider: str
    query: QueryRequest


def _query_request(attempt: PaymentAttempt, order: Order) -> QueryRequest:
    return QueryRequest(
        reference=attempt.reference,
        amount=attempt.amount,
        created_at=attempt.created_at,
        order_info=f"Thanh toan ho so {order.dossier_code}",
        provider_txn_id=attempt.provider_txn_id,
        provider_data=dict(attempt.provider_data or {}),
    )


def _claim_due(
    factory: sessionmaker[Session], registry: ProviderRegistry, *, now: datetime, first_step: int, limit: int
) -> list[_Due]:
    # Only providers that can answer a query (a plain bank transfer cannot: reconciliation settles it).
    codes = [p.code for p in registry if p.supports_query]
    if not codes:
        return []
    with transaction(factory) as session:
        stmt = (
            select(PaymentAttempt)
            .where(PaymentAttempt.status.in_(_QUERYABLE), PaymentAttempt.needs_review.is_(False))
            .where(PaymentAttempt.provider.in_(codes))
            .where(
                or_(
                    PaymentAttempt.next_check_at <= now,
                    and_(
                        PaymentAttempt.next_check_at.is_(None),
                        PaymentAttempt.updated_at <= now - timedelta(seconds=first_step),
                    ),
                )
            )
            .order_by(PaymentAttempt.updated_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        due = []
        for attempt in session.scalars(stmt):
            attempt.next_check_at = now + CLAIM_LEASE
            attempt.last_checked_at = now
            due.append(_Due(attempt.id, attempt.provider, _query_request(attempt, attempt.order)))
        return due


def run_janitor(
    factory: sessionmaker[Session],
    registry: ProviderRegistry,
    *,
    now: datetime,
    schedule: tuple[int, ...],
    base_url: str,
    limit: int = 100,
) -> int:
    """One janitor pass; returns how many attempts were queried."""
    due = _claim_due(factory, registry, now=now, first_step=schedule[0], limit=limit)
    for item in due:
        note = registry.get(item.provider).query(item.query)
        try:
            with transaction(factory) as session:
                _apply_answer(session, item, note, now=now, schedule=schedule, base_url=base_url)
        except Exception:
            log.exception("janitor: could not apply the answer for attempt %s", item.attempt_id)
    return len(due)


def _apply_answer(
    session: Session,
    item: _Due,
    note: Notification,
    *,
    now: datetime,
    schedule: tuple[int, ...],
    base_url: str,
) -> None:
    if note.outcome in (Outcome.SUCCEEDED, Outcome.FAILED):
        apply_notification(session, item.provider, note, source="janitor", now=now, base_url=base_url)
        attempt = session.get(PaymentAttempt, item.attempt_id)
        if attempt is not None and attempt.status in _QUERYABLE:
            # The answer could not be applied (e.g. an amount mismatch): a person must look.
            _flag(session, attempt, f"janitor answer {note.result_code} not applicable", now)
        return

    attempt = session.get(PaymentAttempt, item.attempt_id)
    assert attempt is not None
    order = get_for_update(session, Order, attempt.order_id)
    attempt = get_for_update(session, PaymentAttempt, item.attempt_id)
    assert order is not None
    assert attempt is not None
    if attempt.status not in _QUERYABLE:
        return  # an IPN settled it while we were asking
    attempt.check_count += 1
    if attempt.check_count < len(schedule):
        attempt.next_check_at = attempt.updated_at + timedelta(seconds=schedule[attempt.check_count])
        if attempt.next_check_at <= now:
            attempt.next_check_at = now + timedelta(seconds=schedule[0])
        return
    if note.outcome is Outcome.PENDING and order.status not in OPEN_ORDER_STATUSES:
        # The provider says the citizen never completed it and the order is closed: abandoned checkout.
        attempt.result_code = note.result_code
        change_status(
            session,
            attempt,
            AttemptStatus.FAILED,
            actor="janitor",
            source="janitor",
            reason=f"never completed at the provider ({note.result_code}) and the order is {order.status}",
            at=now,
        )
        return
    _flag(
        session,
        attempt,
        f"still {note.outcome.value} ({note.result_code}) after {attempt.check_count} queries",
        now,
    )


def _flag(session: Session, attempt: PaymentAttempt, reason: str, now: datetime) -> None:
    attempt.needs_review = True
    attempt.next_check_at = None
    record_action(
        session,
        entity_type="attempt",
        entity_id=attempt.id,
        action="flagged_for_review",
        actor="janitor",
        source="janitor",
        reason=reason,
        at=now,
    )
    log.warning("attempt %s flagged for finance: %s", attempt.id, reason)


def sweep_expired(
    factory: sessionmaker[Session],
    registry: ProviderRegistry,
    *,
    now: datetime,
    base_url: str,
    limit: int = 200,
) -> int:
    """Expire open orders past ``expires_at``, asking the provider first about any open attempt."""
    with transaction(factory) as session:
        rows = session.execute(
            select(Order.id)
            .where(Order.status.in_([s.value for s in OPEN_ORDER_STATUSES]), Order.expires_at <= now)
            .order_by(Order.expires_at)
            .limit(limit)
        ).all()
    expired = 0
    for (order_id,) in rows:
        expired += _sweep_one(factory, registry, order_id, now=now, base_url=base_url)
    return expired


def _sweep_one(
    factory: sessionmaker[Session], registry: ProviderRegistry, order_id: str, *, now: datetime, base_url: str
) -> int:
    with transaction(factory) as session:
        order = session.get(Order, order_id)
        if order is None or order.status not in OPEN_ORDER_STATUSES:
            return 0
        open_attempts = [
            _Due(a.id, a.provider, _query_request(a, order))
            for a in order.attempts
            if a.status in OPEN_ATTEMPT_STATUSES
            and a.provider in registry
            and registry.get(a.provider).supports_query
        ]
    unreachable = False
    for item in open_attempts:
        note = registry.get(item.provider).query(item.query)  # no transaction open
        if note.outcome in (Outcome.SUCCEEDED, Outcome.FAILED):
            with transaction(factory) as session:
                apply_notification(session, item.provider, note, source="expiry", now=now, base_url=base_url)
        elif note.outcome is Outcome.UNKNOWN:
            unreachable = True
    with transaction(factory) as session:
        order = get_for_update(session, Order, order_id)
        assert order is not None
        if order.status not in OPEN_ORDER_STATUSES:
            return 0  # paid at the last second, or cancelled meanwhile
        if unreachable and now < order.expires_at + UNREACHABLE_EXPIRY_GRACE:
            return 0  # ask again on the next sweep before giving up on the payment
        change_status(
            session,
            order,
            OrderStatus.EXPIRED,
            actor="system",
            source="expiry",
            reason="expires_at passed (swept)",
            at=now,
        )
        emit(session, order, "order.expired", at=now, base_url=base_url)
        return 1
