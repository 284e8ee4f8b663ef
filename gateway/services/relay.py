"""The outbox relay: claim due events, deliver them to the portal, record every attempt (issue 5.2, 5.3).

Claiming is a short transaction that takes the due rows with ``FOR UPDATE SKIP LOCKED`` and pushes their
``next_attempt_at`` one lease ahead, so two relays never deliver the same event in the same attempt and a
relay that dies mid-delivery leaves the event to be picked up again when the lease runs out. The HTTP call
happens with no transaction open.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.services import webhooks
from gateway.storage.db import get_for_update, transaction
from gateway.storage.models import OutboxEvent, PortalClient, WebhookDelivery

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=120)
DELIVERY_TIMEOUT = 15.0  # seconds; a portal that needs longer should queue and answer 2xx at once
EXCERPT = 500


@dataclass(frozen=True)
class Claimed:
    event_id: str
    attempt_no: int
    lease_until: datetime
    url: str | None
    secrets: tuple[str, ...]
    body: bytes


def event_body(event: OutboxEvent) -> bytes:
    return json.dumps(event.payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def claim(factory: sessionmaker[Session], *, now: datetime, limit: int = 50) -> list[Claimed]:
    with transaction(factory) as session:
        stmt = (
            select(OutboxEvent)
            .where(OutboxEvent.status == "pending", OutboxEvent.next_attempt_at <= now)
            .order_by(OutboxEvent.next_attempt_at, OutboxEvent.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        events = list(session.scalars(stmt))
        claimed = []
        for event in events:
            client = session.get(PortalClient, event.client_id)
            event.attempts += 1
            event.next_attempt_at = now + LEASE
            claimed.append(
                Claimed(
                    event_id=event.id,
                    attempt_no=event.attempts,
                    lease_until=event.next_attempt_at,
                    url=client.webhook_url if client else None,
                    secrets=tuple(webhooks.split_secrets(client.webhook_secret)) if client else (),
                    body=event_body(event),
                )
            )
        return claimed


def backoff(schedule: tuple[int, ...], attempt_no: int, rng: random.Random | None = None) -> float | None:
    """Seconds until the next attempt after ``attempt_no`` failures, ±10 % jitter; None once exhausted."""
    if attempt_no > len(schedule):
        return None
    base = schedule[attempt_no - 1]
    jitter = (rng or random.SystemRandom()).uniform(-0.1, 0.1) * base
    return max(1.0, base + jitter)


def deliver(
    factory: sessionmaker[Session],
    http: requests.Session,
    *,
    now: datetime,
    schedule: tuple[int, ...],
    limit: int = 50,
) -> int:
    """Deliver what is due; returns how many events were attempted."""
    items = claim(factory, now=now, limit=limit)
    for item in items:
        _deliver_one(factory, http, item, now=now, schedule=schedule)
    return len(items)


def _deliver_one(
    factory: sessionmaker[Session],
    http: requests.Session,
    item: Claimed,
    *,
    now: datetime,
    schedule: tuple[int, ...],
) -> None:
    status_code: int | None = None
    excerpt: str | None = None
    error: str | None = None
    started = time.monotonic()
    if not item.url:
        error = "the client has no webhook URL"
    else:
        timestamp = int(now.timestamp())
        headers = {
            "Content-Type": "application/json",
            webhooks.SIGNATURE_HEADER: webhooks.sign(item.secrets, item.body, timestamp),
            "X-Gateway-Event-Id": item.event_id,
            "User-Agent": "dvc-payment-gateway/1",
        }
        try:
            resp = http.post(
                item.url, data=item.body, headers=headers, timeout=DELIVERY_TIMEOUT, allow_redirects=False
            )
            status_code = resp.status_code
            excerpt = resp.text[:EXCERPT]
        except requests.RequestException as exc:
            error = f"{exc.__class__.__name__}: {exc}"[:EXCERPT]
    latency_ms = int((time.monotonic() - started) * 1000)

    with transaction(factory) as session:
        event = get_for_update(session, OutboxEvent, item.event_id)
        if event is None or event.status != "pending" or event.next_attempt_at != item.lease_until:
            return  # redelivered, or re-claimed after our lease ran out: this attempt's result is stale
        if status_code is not None and 200 <= status_code < 300:
            outcome = "delivered"
            event.status = "delivered"
            event.delivered_at = now
            event.last_error = None
        elif not item.url:
            # Nothing to send to: the portal catches up with GET /api/v1/events and may redeliver once
            # it has registered a URL. Retrying would only keep the row due forever.
            outcome = "dead"
            event.status = "dead"
            event.last_error = error
        elif status_code == 410:
            # The portal says the endpoint is gone for good: stop, dead-letter (issue 5.3).
            outcome = "dead"
            event.status = "dead"
            event.last_error = "410 Gone"
        else:
            delay = backoff(schedule, item.attempt_no)
            event.last_error = error or f"HTTP {status_code}"
            if delay is None:
                outcome = "dead"
                event.status = "dead"
            else:
                outcome = "retry"
                event.next_attempt_at = now + timedelta(seconds=delay)
        session.add(
            WebhookDelivery(
                event_id=item.event_id,
                attempt_no=item.attempt_no,
                url=item.url or "",
                status_code=status_code,
                latency_ms=latency_ms,
                response_excerpt=excerpt,
                error=error,
                outcome=outcome,
                created_at=now,
            )
        )
    log.info("event %s attempt %s -> %s (%s ms)", item.event_id, item.attempt_no, outcome, latency_ms)


def redeliver(session: Session, event: OutboxEvent, *, now: datetime) -> None:
    """Replay an event (dead-lettered or not) from now, with a fresh retry ladder."""
    event.status = "pending"
    event.attempts = 0
    event.next_attempt_at = now
