"""``Idempotency-Key`` on ``POST /api/v1/orders`` (contract §4): replays, conflicts, per-client scope."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import count_rows, order_body

ORDERS = "/api/v1/orders"


def post(client, portal, key: str | None, body: Any = None, *, raw: str | None = None):
    headers = dict(portal.headers)
    if key is not None:
        headers["Idempotency-Key"] = key
    data = raw if raw is not None else json.dumps(order_body() if body is None else body, ensure_ascii=False)
    return client.post(ORDERS, data=data, content_type="application/json", headers=headers)


def test_same_key_same_body_replays_the_first_response_byte_for_byte(client, portal, engine, clock):
    first = post(client, portal, "create-H12-0001")
    assert first.status_code == 201, first.get_data(as_text=True)
    after_first = count_rows(engine)
    assert after_first["orders"] == 1
    assert after_first["idempotency_records"] == 1

    clock.advance(minutes=10)
    second = post(client, portal, "create-H12-0001")
    assert second.status_code == 201
    assert second.get_data() == first.get_data()
    assert second.mimetype == first.mimetype == "application/json"
    # the same JSON with its members in another order and other whitespace is the same body
    reordered = json.dumps(dict(reversed(list(order_body().items()))), indent=2, ensure_ascii=False)
    third = post(client, portal, "create-H12-0001", raw=reordered)
    assert third.status_code == 201
    assert third.get_data() == first.get_data()
    assert count_rows(engine) == after_first


def test_the_replay_is_the_first_response_even_after_the_order_changed(client, portal, engine, clock):
    first = post(client, portal, "k-changed")
    order_id = first.get_json()["id"]
    assert (
        client.post(f"{ORDERS}/{order_id}/cancel", headers=portal.headers).get_json()["status"] == "cancelled"
    )
    clock.advance(hours=24, minutes=1)  # keys are kept at least 24 h
    replay = post(client, portal, "k-changed")
    assert replay.status_code == 201
    assert replay.get_data() == first.get_data()
    assert replay.get_json()["status"] == "pending"
    assert count_rows(engine)["orders"] == 1


def test_same_key_different_body_is_409_and_creates_nothing(client, portal, engine):
    first = post(client, portal, "k-1")
    assert first.status_code == 201
    before = count_rows(engine)
    for changed in (
        order_body(dossier_code="H-OTHER"),
        order_body(items=[{"code": "LP-01", "kind": "fee", "amount": 50001}]),
        order_body(expires_in=7200),
    ):
        r = post(client, portal, "k-1", changed)
        assert r.status_code == 409, r.get_data(as_text=True)
        assert r.mimetype == "application/problem+json"
        problem = r.get_json()
        assert {"type", "title", "status", "detail", "errors"} <= problem.keys()
        assert "Idempotency-Key" in problem["errors"]
    assert count_rows(engine) == before
    # and the original still replays
    assert post(client, portal, "k-1").get_data() == first.get_data()


def test_keys_are_scoped_per_client(client, portal, other_portal, engine):
    mine = post(client, portal, "shared-key")
    theirs = post(client, other_portal, "shared-key")
    assert mine.status_code == theirs.status_code == 201
    assert mine.get_json()["id"] != theirs.get_json()["id"]
    assert count_rows(engine)["orders"] == 2
    # each replays its own
    assert post(client, portal, "shared-key").get_data() == mine.get_data()
    assert post(client, other_portal, "shared-key").get_data() == theirs.get_data()
    # and a different body under the other client's key is that client's business only
    different = post(client, other_portal, "shared-key", order_body(dossier_code="H-THEIRS"))
    assert different.status_code == 409
    assert post(client, portal, "shared-key").status_code == 201


def test_a_dossier_conflict_under_a_key_is_replayed_as_the_same_409(client, portal, engine):
    existing = post(client, portal, None)
    assert existing.status_code == 201
    existing_id = existing.get_json()["id"]

    refused = post(client, portal, "retry-me")
    assert refused.status_code == 409
    assert refused.mimetype == "application/problem+json"
    assert refused.get_json()["order_id"] == existing_id

    # even once the blocking order is gone, this key keeps answering its first response
    assert client.post(f"{ORDERS}/{existing_id}/cancel", headers=portal.headers).status_code == 200
    before = count_rows(engine)
    retry = post(client, portal, "retry-me")
    assert retry.status_code == 409
    assert retry.get_data() == refused.get_data()
    assert retry.mimetype == "application/problem+json"
    assert count_rows(engine) == before
    # a new key creates the order now
    assert post(client, portal, "fresh-key").status_code == 201


def test_without_a_key_each_request_is_new(client, portal, engine):
    first = post(client, portal, None)
    assert first.status_code == 201
    second = post(client, portal, None)
    assert second.status_code == 409  # the dossier is open: not a replay
    assert second.get_json()["order_id"] == first.get_json()["id"]
    third = post(client, portal, None, order_body(dossier_code="H-2"))
    assert third.status_code == 201
    assert third.get_json()["id"] != first.get_json()["id"]
    rows = count_rows(engine)
    assert (rows["orders"], rows["idempotency_records"]) == (2, 0)


def test_a_255_character_key_is_accepted(client, portal, engine):
    key = "k" * 255
    first = post(client, portal, key)
    assert first.status_code == 201, first.get_data(as_text=True)
    assert post(client, portal, key).get_data() == first.get_data()
    assert count_rows(engine)["orders"] == 1


def test_unicode_keys_are_distinct(client, portal, engine):
    a = post(client, portal, "khoá-1", order_body(dossier_code="H-A"))
    b = post(client, portal, "khoa-1", order_body(dossier_code="H-B"))
    assert a.status_code == b.status_code == 201
    assert count_rows(engine)["orders"] == 2
