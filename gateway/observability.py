"""Request ids, structured JSON logs and Prometheus metrics (issue 5.8)."""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, g, has_request_context, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.storage.models import InboundNotification, Order, OutboxEvent, PaymentAttempt, WebhookDelivery

REQUEST_ID_HEADER = "X-Request-Id"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


def current_request_id() -> str | None:
    if has_request_context():
        return g.get("request_id")
    return None


class RequestIdFilter(logging.Filter):
    """Stamps every log record with the current request id (or ``-`` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id() or "-"
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        return None


def configure_logging(level: int = logging.INFO) -> None:
    """One JSON line per record on stderr, each with its request id. Idempotent."""
    root = logging.getLogger()
    if any(isinstance(h, _StderrHandler) for h in root.handlers):
        return
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root.addHandler(handler)
    root.setLevel(level)


def init_request_ids(app: Flask) -> None:
    @app.before_request
    def _assign() -> None:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        # Keep a caller's id only if it is harmless to log and echo back.
        g.request_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex

    @app.after_request
    def _echo(response: Response) -> Response:
        response.headers[REQUEST_ID_HEADER] = g.get("request_id") or uuid.uuid4().hex
        return response


LATENCY_BUCKETS_MS = (50, 100, 250, 500, 1000, 2500, 5000, 10000, 15000)


class DatabaseCollector(Collector):
    """Metrics read from the database at scrape time: correct across every worker process and restart."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def collect(self) -> Iterator[Any]:
        with self.sessions() as session:
            orders = GaugeMetricFamily("gateway_orders", "Orders by status", labels=["status"])
            for status, count in session.execute(select(Order.status, func.count()).group_by(Order.status)):
                orders.add_metric([status], count)
            yield orders

            failures = CounterMetricFamily(
                "gateway_callback_verification_failures",
                "Provider callbacks whose signature failed",
                labels=["provider"],
            )
            rows = session.execute(
                select(InboundNotification.provider, func.count())
                .where(InboundNotification.outcome == "bad_signature")
                .group_by(InboundNotification.provider)
            )
            for provider, count in rows:
                failures.add_metric([provider], count)
            yield failures

            backlog = GaugeMetricFamily(
                "gateway_janitor_backlog", "Attempts waiting for a provider answer", labels=["state"]
            )
            open_rows = session.execute(
                select(PaymentAttempt.needs_review, func.count())
                .where(PaymentAttempt.status.in_(["redirected", "unknown"]))
                .group_by(PaymentAttempt.needs_review)
            )
            for needs_review, count in open_rows:
                backlog.add_metric(["needs_review" if needs_review else "open"], count)
            yield backlog

            events = GaugeMetricFamily("gateway_webhook_events", "Outbox events by status", labels=["status"])
            for status, count in session.execute(
                select(OutboxEvent.status, func.count()).group_by(OutboxEvent.status)
            ):
                events.add_metric([status], count)
            yield events

            columns = [
                func.sum(case((WebhookDelivery.latency_ms <= bound, 1), else_=0))
                for bound in LATENCY_BUCKETS_MS
            ]
            row = session.execute(
                select(func.count(), func.coalesce(func.sum(WebhookDelivery.latency_ms), 0), *columns)
            ).one()
            total, total_ms, *cumulative = row
            histogram = HistogramMetricFamily(
                "gateway_webhook_delivery_latency_seconds", "Latency of webhook delivery attempts"
            )
            buckets = [
                (str(b / 1000), int(c or 0)) for b, c in zip(LATENCY_BUCKETS_MS, cumulative, strict=True)
            ]
            buckets.append(("+Inf", int(total)))
            histogram.add_metric([], buckets, sum_value=int(total_ms) / 1000)
            yield histogram


def init_metrics(app: Flask, sessions: sessionmaker[Session]) -> None:
    registry = CollectorRegistry()
    registry.register(DatabaseCollector(sessions))

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
