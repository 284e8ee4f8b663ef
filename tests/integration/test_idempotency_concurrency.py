"""Concurrent creates over real HTTP (issue 5.5): one key or one dossier never yields two orders.

Runs on SQLite (writers serialised by BEGIN IMMEDIATE) and on PostgreSQL (row locks and the
unique indexes on ``(client_id, key)`` and the open ``(client_id, dossier_key)``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier
from typing import Any

import requests

from tests.conftest import count_rows, order_body

N = 10


def fire_together(
    url: str, requests_to_send: list[tuple[dict[str, str], dict[str, Any]]]
) -> list[requests.Response]:
    """POST every (headers, body) at once: all threads are released by one barrier."""
    barrier = Barrier(len(requests_to_send))

    def one(item: tuple[dict[str, str], dict[str, Any]]) -> requests.Response:
        headers, body = item
        with requests.Session() as http:
            barrier.wait(timeout=30)
            return http.post(
                f"{url}/api/v1/orders",
                data=json.dumps(body, ensure_ascii=False).encode(),
                headers={**headers, "Content-Type": "application/json"},
                timeout=60,
            )

    with ThreadPoolExecutor(max_workers=len(requests_to_send)) as pool:
        return list(pool.map(one, requests_to_send))


def assert_shapes(responses: list[requests.Response], ok: Callable[[requests.Response], bool]) -> None:
    for r in responses:
        assert r.status_code in {201, 409}, (r.status_code, r.text)
        assert ok(r), (r.status_code, r.headers.get("Content-Type"), r.text)


def _is_problem(r: requests.Response) -> bool:
    return r.headers["Content-Type"].startswith("application/problem+json") and r.json()["status"] == 409


def test_same_key_and_body_at_once_creates_one_order(portal, live_server, engine):
    headers = {**portal.headers, "Idempotency-Key": "concurrent-1"}
    responses = fire_together(live_server.url, [(headers, order_body())] * N)

    assert_shapes(responses, lambda r: r.status_code == 201 or _is_problem(r))
    created = [r for r in responses if r.status_code == 201]
    assert created, [r.text for r in responses]
    # every 201 is the same response, byte for byte
    assert {r.content for r in created} == {created[0].content}
    order_id = created[0].json()["id"]
    for r in responses:
        if r.status_code == 409:
            # the loser either saw the open dossier (naming the winner) or the key in flight
            assert r.json().get("order_id", order_id) == order_id
    rows = count_rows(engine)
    assert rows["orders"] == 1
    assert rows["idempotency_records"] == 1

    # afterwards the key replays the winner's response
    with requests.Session() as http:
        again = http.post(f"{live_server.url}/api/v1/orders", json=order_body(), headers=headers, timeout=30)
    assert again.status_code == 201
    assert again.content == created[0].content
    assert count_rows(engine)["orders"] == 1


def test_same_key_with_different_bodies_at_once_creates_one_order(portal, live_server, engine):
    headers = {**portal.headers, "Idempotency-Key": "concurrent-2"}
    bodies = [(headers, order_body(dossier_code=f"H-RACE-{n}")) for n in range(N)]
    responses = fire_together(live_server.url, bodies)

    assert_shapes(responses, lambda r: r.status_code == 201 or _is_problem(r))
    assert [r.status_code for r in responses].count(201) == 1
    rows = count_rows(engine)
    assert rows["orders"] == 1
    assert rows["order_items"] == 2
    assert rows["idempotency_records"] == 1


def test_same_dossier_with_different_keys_at_once_creates_one_order(portal, live_server, engine):
    bodies = [({**portal.headers, "Idempotency-Key": f"dossier-race-{n}"}, order_body()) for n in range(N)]
    responses = fire_together(live_server.url, bodies)

    assert_shapes(responses, lambda r: r.status_code == 201 or _is_problem(r))
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 1, [r.text for r in responses]
    assert statuses.count(409) == N - 1
    winner = next(r for r in responses if r.status_code == 201).json()["id"]
    assert {r.json()["order_id"] for r in responses if r.status_code == 409} == {winner}
    rows = count_rows(engine)
    assert rows["orders"] == 1
    assert rows["order_items"] == 2


def test_same_dossier_without_keys_at_once_creates_one_order(portal, live_server, engine):
    responses = fire_together(live_server.url, [(portal.headers, order_body())] * N)

    assert_shapes(responses, lambda r: r.status_code == 201 or _is_problem(r))
    assert [r.status_code for r in responses].count(201) == 1
    rows = count_rows(engine)
    assert (rows["orders"], rows["idempotency_records"]) == (1, 0)
