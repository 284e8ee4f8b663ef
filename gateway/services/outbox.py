"""Events for the portal, written in the caller's transaction (contract §7); delivery is separate."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from gateway.domain.references import new_sortable_id
from gateway.services.presenters import iso, order_view
from gateway.storage.models import Order, OutboxEvent

EVENT_TYPES = frozenset(
    {
        "order.paid",
        "order.failed",
        "order.expired",
        "order.cancelled",
        "order.refunded",
        "order.late_payment",
        "order.double_payment",
        # Not about one order: a finished reconciliation run, sent to clients with the finance scope.
        "reconciliation.completed",
    }
)


def emit(session: Session, order: Order, event_type: str, *, at: datetime, base_url: str) -> OutboxEvent:
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type}")
    event_id = new_sortable_id("evt")
    event = OutboxEvent(
        id=event_id,
        client_id=order.client_id,
        order_id=order.id,
        type=event_type,
        payload={
            "id": event_id,
            "type": event_type,
            "created_at": iso(at),
            "data": {"order": order_view(order, base_url)},
        },
        status="pending",
        attempts=0,
        next_attempt_at=at,
        created_at=at,
    )
    session.add(event)
    return event


def emit_client_event(
    session: Session, client_id: str, event_type: str, data: dict[str, Any], *, at: datetime
) -> OutboxEvent:
    """An event about no single order (``reconciliation.completed``): ``{id, type, created_at, data}``,
    delivered and signed like the order events (contract §7), with ``order_id`` left empty."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type}")
    event_id = new_sortable_id("evt")
    event = OutboxEvent(
        id=event_id,
        client_id=client_id,
        order_id=None,
        type=event_type,
        payload={"id": event_id, "type": event_type, "created_at": iso(at), "data": data},
        status="pending",
        attempts=0,
        next_attempt_at=at,
        created_at=at,
    )
    session.add(event)
    return event
