"""Applying a verified provider statement to an attempt and its order, exactly once.

Used by the IPN pipeline (and later by the janitor's query answers): the same rules whichever
path brings the news. The caller holds no lock; this module takes the order's row lock.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.domain.status import (
    OPEN_ATTEMPT_STATUSES,
    OPEN_ORDER_STATUSES,
    PAID_ORDER_STATUSES,
    AttemptStatus,
    OrderStatus,
)
from gateway.services.audit import change_status, record_action
from gateway.services.outbox import emit
from gateway.storage.models import Order, PaymentAttempt
from providers.base import Ack, Notification, Outcome


def find_attempt(session: Session, provider: str, reference: str) -> PaymentAttempt | None:
    return session.scalars(
        select(PaymentAttempt).where(
            PaymentAttempt.reference == reference, PaymentAttempt.provider == provider
        )
    ).first()


def lock_by_reference(session: Session, provider: str, reference: str) -> tuple[PaymentAttempt, Order] | None:
    """The attempt and its order, under the ORDER's row lock (the one lock every path that changes an
    order or its attempts takes).

    Two statements on purpose: the first waits for the order's lock; the second reads the attempt with a
    snapshot taken *after* the lock was granted (READ COMMITTED), so it sees what the previous holder
    committed. A single join would re-read only the locked order row after the wait and could hand back
    the attempt as it was before — and apply a payment twice.
    """
    order = session.scalars(
        select(Order)
        .join(PaymentAttempt, PaymentAttempt.order_id == Order.id)
        .where(PaymentAttempt.reference == reference, PaymentAttempt.provider == provider)
        .with_for_update(of=Order)
        .execution_options(populate_existing=True)
    ).first()
    if order is None:
        return None
    attempt = session.scalars(
        select(PaymentAttempt)
        .where(PaymentAttempt.reference == reference, PaymentAttempt.provider == provider)
        .execution_options(populate_existing=True)
    ).one()
    return attempt, order


def reopen_if_idle(session: Session, order: Order, *, actor: str, source: str, at: datetime) -> None:
    """After a failed attempt, give the order back to the citizen unless another attempt is open."""
    if order.status != OrderStatus.PROCESSING:
        return
    if any(a.status in OPEN_ATTEMPT_STATUSES for a in order.attempts):
        return
    change_status(
        session,
        order,
        OrderStatus.PENDING,
        actor=actor,
        source=source,
        reason="payment attempt failed; the citizen may try again",
        at=at,
    )


def apply_notification(
    session: Session,
    provider: str,
    note: Notification,
    *,
    source: str,
    now: datetime,
    base_url: str,
) -> Ack:
    """Apply ``note``; return how to answer the provider (contract §6, VNPAY's check order §1.5).

    Order of checks: attempt exists -> amount -> still open -> write. A success for an order that is
    no longer payable is kept and raised for finance, never dropped and never flipping the order.
    """
    locked = lock_by_reference(session, provider, note.reference)
    if locked is None:
        return Ack.NOT_FOUND
    attempt, order = locked

    if note.amount is not None and note.amount != attempt.amount:
        record_action(
            session,
            entity_type="attempt",
            entity_id=attempt.id,
            action="amount_mismatch",
            actor=provider,
            source=source,
            reason=f"provider reported {note.amount} VND, attempt is {attempt.amount} VND",
            at=now,
        )
        return Ack.BAD_AMOUNT

    if note.outcome is Outcome.SUCCEEDED:
        return _succeeded(session, provider, order, attempt, note, source=source, now=now, base_url=base_url)
    if note.outcome is Outcome.FAILED:
        if attempt.status not in OPEN_ATTEMPT_STATUSES:
            return Ack.ALREADY
        attempt.result_code = note.result_code
        change_status(
            session,
            attempt,
            AttemptStatus.FAILED,
            actor=provider,
            source=source,
            reason=f"provider result {note.result_code}",
            at=now,
        )
        if order.status in OPEN_ORDER_STATUSES:
            reopen_if_idle(session, order, actor=provider, source=source, at=now)
            emit(session, order, "order.failed", at=now, base_url=base_url)
        return Ack.OK
    # PENDING / UNKNOWN: nothing final; an unknown result is re-queried later, never guessed.
    if attempt.status in OPEN_ATTEMPT_STATUSES and note.outcome is Outcome.UNKNOWN:
        attempt.result_code = note.result_code
        change_status(
            session,
            attempt,
            AttemptStatus.UNKNOWN,
            actor=provider,
            source=source,
            reason=f"provider result {note.result_code} is not final",
            at=now,
        )
    return Ack.OK


def _succeeded(
    session: Session,
    provider: str,
    order: Order,
    attempt: PaymentAttempt,
    note: Notification,
    *,
    source: str,
    now: datetime,
    base_url: str,
) -> Ack:
    if attempt.status == AttemptStatus.SUCCEEDED:
        return Ack.ALREADY
    paid_at = note.paid_at or now
    if attempt.status == AttemptStatus.FAILED:
        # The provider reports money for an attempt it earlier said failed. The transition table
        # does not allow failed -> succeeded: keep the news for finance instead of dropping it.
        record_action(
            session,
            entity_type="attempt",
            entity_id=attempt.id,
            action="success_after_failure",
            actor=provider,
            source=source,
            reason=f"{provider} reports {note.amount} VND paid (txn {note.provider_txn_id})",
            at=now,
        )
        emit(session, order, "order.late_payment", at=now, base_url=base_url)
        return Ack.OK

    attempt.provider_txn_id = note.provider_txn_id or attempt.provider_txn_id
    attempt.result_code = note.result_code
    attempt.paid_at = paid_at
    change_status(
        session,
        attempt,
        AttemptStatus.SUCCEEDED,
        actor=provider,
        source=source,
        reason=f"paid, provider transaction {note.provider_txn_id}",
        at=now,
    )

    if order.status in OPEN_ORDER_STATUSES and paid_at > order.expires_at:
        # Paid at the provider after our deadline: the order expires, the money is raised below.
        change_status(
            session,
            order,
            OrderStatus.EXPIRED,
            actor="system",
            source=source,
            reason="expires_at passed before the payment",
            at=now,
        )
        emit(session, order, "order.expired", at=now, base_url=base_url)

    if order.status in OPEN_ORDER_STATUSES:
        order.paid_amount = attempt.amount
        order.paid_at = paid_at
        change_status(
            session,
            order,
            OrderStatus.PAID,
            actor=provider,
            source=source,
            reason=f"attempt {attempt.reference} paid",
            at=now,
        )
        emit(session, order, "order.paid", at=now, base_url=base_url)
        return Ack.OK

    event = "order.double_payment" if order.status in PAID_ORDER_STATUSES else "order.late_payment"
    record_action(
        session,
        entity_type="order",
        entity_id=order.id,
        action=event.removeprefix("order."),
        actor=provider,
        source=source,
        reason=f"{attempt.amount} VND paid by attempt {attempt.reference} while the order is {order.status}",
        at=now,
    )
    emit(session, order, event, at=now, base_url=base_url)
    return Ack.OK
