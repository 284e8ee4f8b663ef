"""Schema by Alembic only: empty -> head -> base -> head, and the models agree with the migrations."""

from __future__ import annotations

import os
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from gateway.storage.db import make_engine
from gateway.storage.migrate import downgrade, upgrade
from gateway.storage.models import Base

TABLES = {
    "portal_clients",
    "orders",
    "order_items",
    "payment_attempts",
    "inbound_notifications",
    "outbox_events",
    "audit_log",
    "idempotency_records",
    "refunds",
    "webhook_deliveries",
}


def _check_round_trip(url: str) -> None:
    engine = make_engine(url)
    try:
        upgrade(engine)
        assert set(inspect(engine).get_table_names()) >= TABLES
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], f"models and migrations disagree: {diff}"
        downgrade(engine, "base")
        assert not TABLES & set(inspect(engine).get_table_names())
        upgrade(engine)
        assert set(inspect(engine).get_table_names()) >= TABLES
        cols = {c["name"]: c for c in inspect(engine).get_columns("orders")}
        assert "INT" in str(cols["amount"]["type"]).upper()  # money is an integer column
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_round_trip_on_postgresql() -> None:
    base = os.environ["DATABASE_URL"]
    schema = f"mig_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        _check_round_trip(url.render_as_string(hide_password=False))
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_round_trip_on_sqlite(tmp_path) -> None:
    _check_round_trip(f"sqlite:///{tmp_path / 'm.db'}")
