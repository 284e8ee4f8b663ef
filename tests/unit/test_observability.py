"""Request ids on every response and log line, JSON logs, Prometheus metrics (issue 5.8)."""

from __future__ import annotations

import json
import logging

from gateway.observability import JsonFormatter, RequestIdFilter
from tests.helpers import paid_order


def test_every_response_carries_a_request_id_and_keeps_a_sane_incoming_one(client, portal):
    generated = client.get("/healthz").headers["X-Request-Id"]
    assert len(generated) == 32
    kept = client.get("/healthz", headers={"X-Request-Id": "portal-req-12345678"})
    assert kept.headers["X-Request-Id"] == "portal-req-12345678"
    # An id that is unsafe to log or echo is replaced.
    replaced = client.get("/healthz", headers={"X-Request-Id": "<script>x</script> %0d"})
    assert replaced.headers["X-Request-Id"] != "<script>x</script> %0d"
    assert client.get("/api/v1/orders/x", headers=portal.headers).headers["X-Request-Id"]


def test_log_lines_are_json_with_the_request_id(app, caplog):
    record = logging.LogRecord("gateway.test", logging.WARNING, __file__, 1, "paid %s", ("ord_1",), None)
    with app.test_request_context("/x", headers={"X-Request-Id": "abc-request-0001"}):
        app.preprocess_request()
        RequestIdFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "paid ord_1"
    assert line["request_id"] == "abc-request-0001"
    assert line["level"] == "warning"
    assert line["ts"].endswith("Z")


def test_metrics_expose_orders_events_failures_and_backlog(client, portal):
    paid_order(client, portal)
    client.get("/callbacks/vnpay?vnp_TxnRef=GW1&vnp_SecureHash=00")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'gateway_orders{status="paid"} 1.0' in text
    assert 'gateway_callback_verification_failures_total{provider="vnpay"} 1.0' in text
    assert 'gateway_webhook_events{status="pending"} 1.0' in text
    assert "gateway_webhook_delivery_latency_seconds_bucket" in text
    assert "gateway_janitor_backlog" in text


def test_api_rate_limit_answers_429_with_retry_after(app, client, portal):
    # the app under test is built with the contract's default, 600 per minute per client
    for _ in range(600):
        assert client.get("/api/v1/providers", headers=portal.headers).status_code == 200
    limited = client.get("/api/v1/providers", headers=portal.headers)
    assert limited.status_code == 429
    assert limited.mimetype == "application/problem+json"
    assert int(limited.headers["Retry-After"]) > 0


def test_unverified_callbacks_are_limited_per_source(client):
    for _ in range(30):
        assert client.get("/callbacks/vnpay?vnp_TxnRef=GW1&vnp_SecureHash=00").status_code == 200
    limited = client.get("/callbacks/vnpay?vnp_TxnRef=GW1&vnp_SecureHash=00")
    assert limited.status_code == 429
    assert "Retry-After" in limited.headers
