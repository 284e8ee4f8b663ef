"""The one status model (contract §8).

:func:`transition` is the only code that writes ``status`` on an order or a payment attempt. It
consults one explicit table per entity, makes a repeat of the same final transition a no-op and
raises :class:`IllegalTransition` for anything the table does not allow. It returns the audit
entry the caller must persist; services do that in ``gateway.services.transitions``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from gateway.domain.errors import IllegalTransition


class OrderStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    PAID = "paid"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


class AttemptStatus(StrEnum):
    CREATED = "created"
    REDIRECTED = "redirected"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"


class RefundStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"


O, A, R = OrderStatus, AttemptStatus, RefundStatus  # noqa: E741 - short aliases keep the tables readable

ORDER_TRANSITIONS: Mapping[OrderStatus, frozenset[OrderStatus]] = {
    # An attempt starts: the order waits for the provider.
    O.PENDING: frozenset({O.PROCESSING, O.PAID, O.EXPIRED, O.CANCELLED}),
    # processing -> pending: the attempt failed and the citizen may choose again.
    O.PROCESSING: frozenset({O.PENDING, O.PAID, O.EXPIRED, O.CANCELLED}),
    O.PAID: frozenset({O.PARTIALLY_REFUNDED, O.REFUNDED}),
    # A second partial refund keeps the order partially refunded.
    O.PARTIALLY_REFUNDED: frozenset({O.PARTIALLY_REFUNDED, O.REFUNDED}),
    O.EXPIRED: frozenset(),
    O.CANCELLED: frozenset(),
    O.REFUNDED: frozenset(),
}

ATTEMPT_TRANSITIONS: Mapping[AttemptStatus, frozenset[AttemptStatus]] = {
    # created -> failed/unknown: the provider refused or did not answer the create call.
    A.CREATED: frozenset({A.REDIRECTED, A.FAILED, A.UNKNOWN}),
    A.REDIRECTED: frozenset({A.SUCCEEDED, A.FAILED, A.UNKNOWN}),
    # unknown is never failed by guessing: only a provider answer resolves it.
    A.UNKNOWN: frozenset({A.SUCCEEDED, A.FAILED}),
    A.SUCCEEDED: frozenset(),
    A.FAILED: frozenset(),
}

REFUND_TRANSITIONS: Mapping[RefundStatus, frozenset[RefundStatus]] = {
    # pending: sent and accepted but not final (ZaloPay return_code 3), or a manual bank transfer to make.
    R.PENDING: frozenset({R.SUCCEEDED, R.FAILED, R.UNKNOWN}),
    # unknown: no usable answer; only a later provider answer (or staff) resolves it.
    R.UNKNOWN: frozenset({R.SUCCEEDED, R.FAILED, R.PENDING}),
    R.SUCCEEDED: frozenset(),
    R.FAILED: frozenset(),
}

OPEN_ORDER_STATUSES = frozenset({O.PENDING, O.PROCESSING})
PAID_ORDER_STATUSES = frozenset({O.PAID, O.PARTIALLY_REFUNDED, O.REFUNDED})
OPEN_ATTEMPT_STATUSES = frozenset({A.CREATED, A.REDIRECTED, A.UNKNOWN})

# A self-loop that the table lists (partially_refunded -> partially_refunded) is a real change.
_TABLES: Mapping[str, Mapping[str, frozenset[str]]] = {
    "order": {k.value: frozenset(v.value for v in vs) for k, vs in ORDER_TRANSITIONS.items()},
    "attempt": {k.value: frozenset(v.value for v in vs) for k, vs in ATTEMPT_TRANSITIONS.items()},
    "refund": {k.value: frozenset(v.value for v in vs) for k, vs in REFUND_TRANSITIONS.items()},
}


class HasStatus(Protocol):
    id: str
    status: str


@dataclass(frozen=True)
class AuditEntry:
    entity: str
    entity_id: str
    from_status: str
    to_status: str
    actor: str
    source: str
    reason: str
    at: datetime


def is_allowed(entity: str, current: str, target: str) -> bool:
    return target in _TABLES[entity][current]


def transition(
    entity: str,
    obj: HasStatus,
    target: str,
    *,
    actor: str,
    source: str,
    reason: str,
    at: datetime,
) -> AuditEntry | None:
    """Move ``obj`` to ``target``; return the audit entry, or ``None`` for an idempotent repeat.

    Args:
        entity: ``"order"``, ``"attempt"`` or ``"refund"``, selecting the table.
        obj: anything with ``id`` and ``status``.
        target: the new status.
        actor: who caused it (a client id, a staff e-mail, ``"vnpay"``, ``"system"``).
        source: through which path (``api``, ``ipn``, ``return``, ``janitor``, ``console``...).
        reason: a human-readable why, kept in the audit trail.
        at: the instant of the change (UTC).

    Raises:
        IllegalTransition: the table does not allow ``current -> target``.
    """
    table = _TABLES[entity]
    current = obj.status
    if target not in table:
        raise IllegalTransition(entity, current, target)
    if current == target and target not in table[current]:
        return None  # a repeat (duplicate IPN, second cancel...): nothing to do, nothing to audit
    if target not in table[current]:
        raise IllegalTransition(entity, current, target)
    obj.status = target
    return AuditEntry(entity, obj.id, current, target, actor, source, reason, at)
