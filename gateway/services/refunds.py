"""Refunds (contract §4; issue 4.5).

The headroom (paid amount − every refund that is not failed) is computed under the order's row lock, so
concurrent requests can never over-refund (HS #13182 in orchestrators.md §3). The provider is called with
no transaction open; its answer is recorded under the lock again.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.domain.errors import Conflict, NotFound, ValidationProblem
from gateway.domain.references import new_id, new_reference
from gateway.domain.status import AttemptStatus, OrderStatus, RefundStatus
from gateway.services.audit import change_status
from gateway.services.orders import lock_order
from gateway.services.outbox import emit
from gateway.services.registry import ProviderRegistry
from gateway.storage.db import get_for_update, transaction
from gateway.storage.models import Order, PaymentAttempt, Refund, RefundApproval
from providers.base import Outcome, RefundRequest, RefundResult

log = logging.getLogger(__name__)

REFUNDABLE = frozenset({OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED})
_COMMITTED = (RefundStatus.PENDING, RefundStatus.SUCCEEDED, RefundStatus.UNKNOWN)
_OUTCOME_STATUS = {
    Outcome.SUCCEEDED: RefundStatus.SUCCEEDED,
    Outcome.FAILED: RefundStatus.FAILED,
    Outcome.PENDING: RefundStatus.PENDING,
    Outcome.UNKNOWN: RefundStatus.UNKNOWN,
}


def committed_amount(session: Session, order_id: str) -> int:
    """Σ of what may still take money out of a paid order: refunds pending, unknown or succeeded, and
    console refund requests still waiting for their second approver (four-eyes, issue 7.4)."""
    refunds = session.scalar(
        select(func.coalesce(func.sum(Refund.amount), 0)).where(
            Refund.order_id == order_id, Refund.status.in_([s.value for s in _COMMITTED])
        )
    )
    awaiting = session.scalar(
        select(func.coalesce(func.sum(RefundApproval.amount), 0)).where(
            RefundApproval.order_id == order_id, RefundApproval.status == "pending"
        )
    )
    return int(refunds or 0) + int(awaiting or 0)


def _paying_attempt(order: Order) -> PaymentAttempt:
    paid = [a for a in order.attempts if a.status == AttemptStatus.SUCCEEDED]
    if not paid:  # pragma: no cover - a paid order always has its succeeded attempt
        raise Conflict(f"order {order.id} has no succeeded payment to refund")
    # The attempt that paid the order is the first success; a later one is a double payment.
    return min(paid, key=lambda a: (a.paid_at or a.updated_at, a.created_at))


def reserve_refund(
    session: Session, order: Order, *, amount: int, reason: str, actor: str, now: datetime
) -> Refund:
    """Check the headroom under the lock the caller holds and insert a pending refund."""
    if order.status not in REFUNDABLE:
        raise Conflict(f"order {order.id} is {order.status}; only a paid order can be refunded")
    if amount <= 0:
        raise ValidationProblem("amount must be positive", errors={"amount": ["must be a positive integer"]})
    available = order.paid_amount - committed_amount(session, order.id)
    if amount > available:
        raise Conflict(
            f"refund of {amount} VND exceeds the refundable balance of {available} VND",
            errors={"amount": [f"must be at most {available} VND"]},
        )
    attempt = _paying_attempt(order)
    refund = Refund(
        id=new_id("ref"),
        order_id=order.id,
        attempt_id=attempt.id,
        provider=attempt.provider,
        reference=new_reference(now).replace("GW", "RF", 1),
        amount=amount,
        reason=reason,
        status=RefundStatus.PENDING.value,
        requested_by=actor,
        created_at=now,
        updated_at=now,
    )
    session.add(refund)
    session.flush()
    return refund


def request_refund(
    factory: sessionmaker[Session],
    registry: ProviderRegistry,
    *,
    client_id: str | None,
    order_id: str,
    amount: int,
    reason: str,
    actor: str,
    now: datetime,
    base_url: str,
) -> Refund:
    """Reserve, send to the provider (outside any transaction), record the answer."""
    with transaction(factory) as session:
        order = lock_order(session, client_id, order_id)
        refund = reserve_refund(session, order, amount=amount, reason=reason, actor=actor, now=now)
        attempt = session.get(PaymentAttempt, refund.attempt_id)
        assert attempt is not None
        provider = registry.get(refund.provider)
        already = order.refunded_amount
        request = RefundRequest(
            reference=refund.reference,
            payment_reference=attempt.reference,
            payment_txn_id=attempt.provider_txn_id,
            amount=amount,
            payment_amount=attempt.amount,
            already_refunded=already,
            reason=reason,
            actor=actor,
            created_at=now,
            payment_created_at=attempt.created_at,
            payment_provider_data=dict(attempt.provider_data or {}),
        )

    if provider.manual_refunds:
        # A bank transfer: stays pending until staff record the transfer (issue 4.5, 7.4).
        return refund

    try:
        result = provider.refund(request)
    except Exception:  # a bug in an adapter must not lose the reservation: record it as unknown
        log.exception("refund %s: the %s adapter raised", refund.id, provider.code)
        result = RefundResult(outcome=Outcome.UNKNOWN, result_code="adapter_error")

    with transaction(factory) as session:
        return record_refund_result(
            session, refund.id, result, actor=provider.code, now=now, base_url=base_url
        )


def record_refund_result(
    session: Session, refund_id: str, result: RefundResult, *, actor: str, now: datetime, base_url: str
) -> Refund:
    """Apply a provider's answer to a refund, under the order's row lock."""
    refund = session.get(Refund, refund_id)
    assert refund is not None
    order = get_for_update(session, Order, refund.order_id)
    refund = get_for_update(session, Refund, refund_id)
    assert order is not None
    assert refund is not None
    target = _OUTCOME_STATUS[result.outcome]
    refund.result_code = result.result_code
    refund.provider_reference = result.provider_reference or refund.provider_reference
    if target == RefundStatus.PENDING and refund.status == RefundStatus.PENDING:
        return refund
    changed = change_status(
        session,
        refund,
        target,
        actor=actor,
        source="refund",
        reason=f"provider answered {result.result_code} {result.message}".strip(),
        at=now,
    )
    if changed and target == RefundStatus.SUCCEEDED:
        complete_refund(session, order, refund, actor=actor, now=now, base_url=base_url)
    return refund


def complete_refund(
    session: Session, order: Order, refund: Refund, *, actor: str, now: datetime, base_url: str
) -> None:
    """Money has left: move the order to partially_refunded / refunded and tell the portal."""
    refund.completed_at = now
    order.refunded_amount += refund.amount
    target = (
        OrderStatus.REFUNDED if order.refunded_amount >= order.paid_amount else OrderStatus.PARTIALLY_REFUNDED
    )
    change_status(
        session,
        order,
        target,
        actor=actor,
        source="refund",
        reason=f"refund {refund.id} of {refund.amount} VND succeeded",
        at=now,
    )
    emit(session, order, "order.refunded", at=now, base_url=base_url)


def complete_manual_refund(
    factory: sessionmaker[Session],
    refund_id: str,
    *,
    bank_transfer_ref: str,
    actor: str,
    now: datetime,
    base_url: str,
) -> Refund:
    """Staff record the bank transfer that paid a manual (VietQR) refund back."""
    if not bank_transfer_ref.strip():
        raise ValidationProblem(
            "the bank transfer reference is required", errors={"bank_transfer_ref": ["must not be empty"]}
        )
    with transaction(factory) as session:
        refund = session.get(Refund, refund_id)
        if refund is None:
            raise NotFound(f"refund {refund_id} not found")
        order = get_for_update(session, Order, refund.order_id)
        refund = get_for_update(session, Refund, refund_id)
        assert order is not None
        assert refund is not None
        if refund.status == RefundStatus.SUCCEEDED:
            return refund
        refund.bank_transfer_ref = bank_transfer_ref.strip()
        change_status(
            session,
            refund,
            RefundStatus.SUCCEEDED,
            actor=actor,
            source="console",
            reason=f"bank transfer {bank_transfer_ref.strip()} recorded",
            at=now,
        )
        complete_refund(session, order, refund, actor=actor, now=now, base_url=base_url)
        return refund
