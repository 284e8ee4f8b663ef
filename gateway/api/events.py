"""``/api/v1/events``: what was sent to the portal, for catching up and for replays (contract §7)."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select

from gateway.api.auth import current_client, require_client
from gateway.api.parsing import Blueprint
from gateway.api.schemas import EventListArgs, EventOut, EventPage
from gateway.container import services
from gateway.domain.errors import NotFound, ValidationProblem
from gateway.services.presenters import iso
from gateway.services.relay import redeliver
from gateway.storage.db import get_for_update, transaction
from gateway.storage.models import OutboxEvent

blp = Blueprint("events", __name__, url_prefix="/api/v1/events", description="Events sent to the portal")


def event_view(event: OutboxEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.type,
        "created_at": iso(event.created_at),
        "status": event.status,
        "attempts": event.attempts,
        "next_attempt_at": iso(event.next_attempt_at) if event.status == "pending" else None,
        "delivered_at": iso(event.delivered_at),
        "last_error": event.last_error,
        "data": event.payload.get("data", {}),
    }


def _cursor(event: OutboxEvent) -> str:
    return (
        base64.urlsafe_b64encode(f"{event.created_at.isoformat()}|{event.id}".encode()).decode().rstrip("=")
    )


def _decode(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, event_id = raw.split("|", 1)
        return datetime.fromisoformat(created), event_id
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise ValidationProblem("invalid cursor", errors={"cursor": ["is not a valid cursor"]}) from exc


@blp.route("", methods=["GET"])
@require_client()
@blp.arguments(EventListArgs, location="query")
@blp.response(200, EventPage)
def list_events(args: dict[str, Any]) -> dict[str, Any]:
    """This client's events, oldest first (the order a portal applies them), with cursor pagination."""
    svc = services()
    stmt = select(OutboxEvent).where(OutboxEvent.client_id == current_client().id)
    if args.get("type"):
        stmt = stmt.where(OutboxEvent.type == args["type"])
    if args.get("status"):
        stmt = stmt.where(OutboxEvent.status == args["status"])
    if args.get("order_id"):
        stmt = stmt.where(OutboxEvent.order_id == args["order_id"])
    if args.get("cursor"):
        created, last_id = _decode(args["cursor"])
        stmt = stmt.where(
            or_(
                OutboxEvent.created_at > created,
                and_(OutboxEvent.created_at == created, OutboxEvent.id > last_id),
            )
        )
    limit = args["limit"]
    stmt = stmt.order_by(OutboxEvent.created_at, OutboxEvent.id).limit(limit + 1)
    with transaction(svc.sessions) as session:
        rows = list(session.scalars(stmt))
        next_cursor = _cursor(rows[limit - 1]) if len(rows) > limit else None
        return {"items": [event_view(e) for e in rows[:limit]], "next_cursor": next_cursor}


@blp.route("/<string:event_id>/redeliver", methods=["POST"])
@require_client()
@blp.response(202, EventOut)
@blp.alt_response(404, description="No such event for this client")
def redeliver_event(event_id: str) -> dict[str, Any]:
    """Send an event again from now on, with a fresh retry ladder (also after it was dead-lettered)."""
    svc = services()
    with transaction(svc.sessions) as session:
        event = get_for_update(session, OutboxEvent, event_id)
        if event is None or event.client_id != current_client().id:
            raise NotFound(f"event {event_id} not found")
        redeliver(session, event, now=svc.clock())
        return event_view(event)
