"""Outbox relay to a live portal endpoint: signed, retried, dead-lettered, redelivered (issue 5.2-5.3)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from gateway.jobs.tasks import relay_outbox
from gateway.services.relay import backoff
from gateway.services.webhooks import verify_signature
from gateway.storage.models import OutboxEvent, WebhookDelivery
from tests.helpers import paid_order


def svc(app):
    return app.extensions["gateway"]


def test_paid_event_is_delivered_signed(app, client, hooked_portal, receiver, clock, sessions):
    order = paid_order(client, hooked_portal)
    assert relay_outbox(svc(app)) == 1
    assert len(receiver.received) == 1
    headers, body = receiver.received[0]
    event = receiver.bodies()[0]
    assert event["type"] == "order.paid"
    assert event["data"]["order"]["id"] == order["id"]
    assert event["data"]["order"]["status"] == "paid"
    assert set(event) == {"id", "type", "created_at", "data"}
    # the signature's timestamp is the gateway's clock; check it within a tolerance that covers it
    tolerance = abs(int(clock().timestamp()) - int(__import__("time").time())) + 300
    assert verify_signature(
        hooked_portal.webhook_secret, headers["X-Gateway-Signature"], body, tolerance=tolerance
    )
    assert headers["X-Gateway-Event-Id"] == event["id"]
    with sessions() as s:
        row = s.get(OutboxEvent, event["id"])
        assert (row.status, row.attempts) == ("delivered", 1)
        delivery = s.scalars(select(WebhookDelivery)).one()
        assert (delivery.status_code, delivery.outcome, delivery.response_excerpt) == (200, "delivered", "ok")
    # delivered events are not sent again
    assert relay_outbox(svc(app)) == 0


def test_failures_back_off_then_dead_letter_then_redeliver(
    app, client, hooked_portal, receiver, clock, sessions
):
    paid_order(client, hooked_portal)
    receiver.status = 503
    schedule = svc(app).settings.webhook_retry_schedule
    assert sum(schedule) >= 24 * 3600  # at least a day of retries (contract §7)
    relay_outbox(svc(app))
    with sessions() as s:
        event = s.scalars(select(OutboxEvent)).one()
        first_due = event.next_attempt_at
    wait = (first_due - clock()).total_seconds()
    assert 0.9 * schedule[0] <= wait <= 1.1 * schedule[0]
    # Nothing is due before the backoff has passed.
    clock.advance(seconds=wait / 2)
    assert relay_outbox(svc(app)) == 0
    for _ in range(len(schedule)):
        clock.advance(seconds=schedule[-1] * 1.2)
        assert relay_outbox(svc(app)) == 1
    with sessions() as s:
        event = s.scalars(select(OutboxEvent)).one()
        assert event.status == "dead"
        assert event.attempts == len(schedule) + 1
        outcomes = list(s.scalars(select(WebhookDelivery.outcome).order_by(WebhookDelivery.id)))
    assert outcomes == ["retry"] * len(schedule) + ["dead"]
    assert len(receiver.received) == len(schedule) + 1

    listed = client.get("/api/v1/events?status=dead", headers=hooked_portal.headers).get_json()
    assert [e["id"] for e in listed["items"]] == [event.id]

    receiver.status = 200
    r = client.post(f"/api/v1/events/{event.id}/redeliver", headers=hooked_portal.headers)
    assert r.status_code == 202
    assert r.get_json()["status"] == "pending"
    assert relay_outbox(svc(app)) == 1
    with sessions() as s:
        assert s.get(OutboxEvent, event.id).status == "delivered"


def test_410_stops_at_once(app, client, hooked_portal, receiver, sessions):
    paid_order(client, hooked_portal)
    receiver.status = 410
    relay_outbox(svc(app))
    with sessions() as s:
        assert s.scalars(select(OutboxEvent.status)).one() == "dead"


def test_events_api_filters_and_scoping(app, client, hooked_portal, other_portal):
    order = paid_order(client, hooked_portal)
    client.post(
        f"/api/v1/orders/{order['id']}/refunds",
        json={"amount": 1000, "reason": "thừa"},
        headers=hooked_portal.headers,
    )
    everything = client.get("/api/v1/events", headers=hooked_portal.headers).get_json()
    assert [e["type"] for e in everything["items"]] == ["order.paid", "order.refunded"]
    assert everything["next_cursor"] is None
    only = client.get("/api/v1/events?type=order.refunded", headers=hooked_portal.headers).get_json()
    assert [e["type"] for e in only["items"]] == ["order.refunded"]
    page = client.get("/api/v1/events?limit=1", headers=hooked_portal.headers).get_json()
    assert len(page["items"]) == 1
    assert page["next_cursor"]
    rest = client.get(
        f"/api/v1/events?limit=1&cursor={page['next_cursor']}", headers=hooked_portal.headers
    ).get_json()
    assert rest["items"][0]["type"] == "order.refunded"
    assert client.get("/api/v1/events", headers=other_portal.headers).get_json()["items"] == []
    foreign = client.post(f"/api/v1/events/{page['items'][0]['id']}/redeliver", headers=other_portal.headers)
    assert foreign.status_code == 404
    assert client.get("/api/v1/events?status=weird", headers=hooked_portal.headers).status_code == 422


def test_client_without_url_is_dead_lettered_not_retried_forever(app, client, other_portal, sessions):
    paid_order(client, other_portal)
    relay_outbox(svc(app))
    with sessions() as s:
        event = s.scalars(select(OutboxEvent)).one()
        assert event.status == "dead"
        assert "no webhook URL" in event.last_error


def test_backoff_has_jitter_and_ends():
    schedule = (60, 120)
    values = {round(backoff(schedule, 1), 3) for _ in range(20)}
    assert len(values) > 1
    assert all(54 <= v <= 66 for v in values)
    assert backoff(schedule, 3) is None


def test_a_stale_claim_does_not_overwrite_a_redelivery(app, client, hooked_portal, receiver, clock, sessions):
    from gateway.services import relay

    paid_order(client, hooked_portal)
    claimed = relay.claim(svc(app).sessions, now=clock())
    assert len(claimed) == 1
    # A relay that dies here leaves the event leased; after the lease it is due again.
    assert relay.claim(svc(app).sessions, now=clock()) == []
    clock.advance(seconds=relay.LEASE.total_seconds() + 1)
    assert relay_outbox(svc(app)) == 1
    assert len(receiver.received) == 1
    with sessions() as s:
        assert s.scalars(select(OutboxEvent.status)).one() == "delivered"
    assert timedelta(seconds=1) < relay.LEASE
