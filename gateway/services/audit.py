"""Status changes go through :func:`change_status`: the domain table decides, the audit row is written."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from gateway.domain.status import AuditEntry, transition
from gateway.storage.models import AuditLog, Order, PaymentAttempt, Refund

_ENTITIES: dict[type, str] = {Order: "order", PaymentAttempt: "attempt", Refund: "refund"}


def change_status(
    session: Session,
    obj: Order | PaymentAttempt | Refund,
    target: str,
    *,
    actor: str,
    source: str,
    reason: str,
    at: datetime,
) -> bool:
    """Apply one transition and append its audit row. Returns ``False`` for an idempotent repeat."""
    entity = _ENTITIES[type(obj)]
    entry = transition(entity, obj, target, actor=actor, source=source, reason=reason, at=at)
    if entry is None:
        return False
    obj.updated_at = at
    session.add(_row(entry))
    return True


def record_action(
    session: Session,
    *,
    entity_type: str,
    entity_id: str,
    action: str,
    actor: str,
    source: str,
    reason: str,
    at: datetime,
) -> None:
    """An audit row for something that is not a status change (e.g. a late payment raised)."""
    session.add(
        AuditLog(
            entity_type=entity_type,
            entity_id=entity_id,
            action=action,
            from_status=None,
            to_status=None,
            actor=actor,
            source=source,
            reason=reason,
            created_at=at,
        )
    )


def _row(entry: AuditEntry) -> AuditLog:
    return AuditLog(
        entity_type=entry.entity,
        entity_id=entry.entity_id,
        action="transition",
        from_status=entry.from_status,
        to_status=entry.to_status,
        actor=entry.actor,
        source=entry.source,
        reason=entry.reason,
        created_at=entry.at,
    )
