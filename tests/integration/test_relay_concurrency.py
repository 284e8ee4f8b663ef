"""Two relays at once never deliver one event twice (FOR UPDATE SKIP LOCKED; issue 5.2)."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
import requests

from gateway.domain.references import new_sortable_id
from gateway.services.relay import deliver
from gateway.storage.db import transaction
from gateway.storage.models import OutboxEvent

N = 60


@pytest.mark.postgres
def test_two_relays_deliver_each_event_once(app, hooked_portal, receiver, clock, sessions):
    with transaction(sessions) as session:
        for i in range(N):
            event_id = new_sortable_id("evt")
            session.add(
                OutboxEvent(
                    id=event_id,
                    client_id=hooked_portal.client_id,
                    order_id=None,
                    type="order.paid",
                    payload={
                        "id": event_id,
                        "type": "order.paid",
                        "created_at": "2026-11-25T03:00:00Z",
                        "data": {"order": {"n": i}},
                    },
                    status="pending",
                    attempts=0,
                    next_attempt_at=clock(),
                    created_at=clock(),
                )
            )
    schedule = app.extensions["gateway"].settings.webhook_retry_schedule
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def relay() -> None:
        try:
            with requests.Session() as http:
                barrier.wait(timeout=10)
                while deliver(sessions, http, now=clock(), schedule=schedule, limit=5):
                    pass
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=relay) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    counts = Counter(body["id"] for body in receiver.bodies())
    assert len(counts) == N
    assert set(counts.values()) == {1}
    with sessions() as s:
        statuses = Counter(e.status for e in s.query(OutboxEvent))
    assert statuses == {"delivered": N}
