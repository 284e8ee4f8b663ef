"""Rate limits (issue 5.8) on a real app: per client on the API, per source on rejected callbacks."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from flask.testing import FlaskClient

from gateway.app import create_app
from gateway.services.clients import create_client
from gateway.storage.db import transaction

BAD_CALLBACK = "/callbacks/vnpay?vnp_TxnRef=GW1&vnp_SecureHash=00"


@pytest.fixture
def strict(settings: Any, engine: Any) -> Any:
    """The app with API_RATE_LIMIT=3 per minute."""
    app = create_app(replace(settings, api_rate_limit="3 per minute"))
    yield app
    app.extensions["gateway"].engine.dispose()


def _key(sessions: Any, name: str) -> dict[str, str]:
    with transaction(sessions) as session:
        issued = create_client(session, name, webhook_url=None, now=datetime.now(UTC))
    return {"Authorization": f"Bearer {issued.api_key}"}


def test_each_client_has_its_own_window_and_the_window_reopens(strict: Any, sessions: Any) -> None:
    client: FlaskClient = strict.test_client()
    first, second = _key(sessions, "Cổng A"), _key(sessions, "Cổng B")
    with time_machine.travel("2026-11-26 03:00:05Z", tick=False) as clock:
        assert [client.get("/api/v1/providers", headers=first).status_code for _ in range(3)] == [200] * 3
        refused = client.get("/api/v1/providers", headers=first)
        assert refused.status_code == 429
        assert refused.mimetype == "application/problem+json"
        assert refused.get_json()["status"] == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        # Another client is not slowed down by the first one's traffic.
        assert client.get("/api/v1/providers", headers=second).status_code == 200
        clock.shift(60)
        assert client.get("/api/v1/providers", headers=first).status_code == 200


def test_the_citizen_pages_and_health_are_not_counted(strict: Any, sessions: Any) -> None:
    client: FlaskClient = strict.test_client()
    for _ in range(5):
        assert client.get("/healthz").status_code == 200
    headers = _key(sessions, "Cổng C")
    assert [client.get("/api/v1/providers", headers=headers).status_code for _ in range(3)] == [200] * 3


def test_only_rejected_callbacks_count_towards_the_callback_limit(client: FlaskClient) -> None:
    with time_machine.travel("2026-11-26 03:00:05Z", tick=False):
        for _ in range(30):
            assert client.get(BAD_CALLBACK).status_code == 200  # answered 97 (bad signature), counted
        limited = client.get(BAD_CALLBACK)
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) >= 1
        # The window is per source address: another one is still heard.
        other = client.get(BAD_CALLBACK, environ_base={"REMOTE_ADDR": "203.0.113.9"})
        assert other.status_code == 200


def test_a_broken_limiter_store_never_blocks_payments(settings: Any, engine: Any, sessions: Any) -> None:
    """Redis down (nothing listens on port 1): requests go through, the failure is logged."""
    app = create_app(replace(settings, broker_url="redis://127.0.0.1:1/0", api_rate_limit="1 per minute"))
    try:
        client = app.test_client()
        headers = _key(sessions, "Cổng D")
        assert [client.get("/api/v1/providers", headers=headers).status_code for _ in range(3)] == [200] * 3
        assert client.get(BAD_CALLBACK).status_code == 200
    finally:
        app.extensions["gateway"].engine.dispose()


def test_several_limits_at_once_all_apply(settings: Any, engine: Any, sessions: Any) -> None:
    app = create_app(replace(settings, api_rate_limit="5 per minute; 3 per hour"))
    try:
        client = app.test_client()
        headers = _key(sessions, "Cổng E")
        with time_machine.travel("2026-11-26 03:00:05Z", tick=False) as clock:
            assert [client.get("/api/v1/providers", headers=headers).status_code for _ in range(4)] == [
                200,
                200,
                200,
                429,
            ]
            clock.shift(120)  # a new minute, but the hour is spent
            refused = client.get("/api/v1/providers", headers=headers)
            assert refused.status_code == 429
            assert int(refused.headers["Retry-After"]) > 60
    finally:
        app.extensions["gateway"].engine.dispose()
