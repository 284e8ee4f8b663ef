"""The floor for bench/create_order.py: bare Flask + SQLAlchemy, parse JSON, one INSERT.

It is what "create an order" costs with no auth, no validation, no domain model and no
serialisation beyond a tiny JSON answer, served the same way as the gateway (gunicorn gthread):

    FLOOR_DATABASE_URL=postgresql+psycopg://root@127.0.0.1:5432/gateway_bench \\
        .venv/bin/gunicorn -w 2 -k gthread --threads 4 -b 127.0.0.1:8001 'bench.floor_app:app'

The table is created by :func:`create_schema` (called by the benchmark before the servers start),
never at import time, so that two gunicorn workers do not race on ``CREATE TABLE``.
"""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime
from typing import Any

from flask import Flask, request
from sqlalchemy import Engine, create_engine, text

TABLE = "floor_orders"
DDL = (
    f"DROP TABLE IF EXISTS {TABLE}",
    f"""
    CREATE TABLE {TABLE} (
        id text PRIMARY KEY,
        dossier_code text NOT NULL,
        amount bigint NOT NULL,
        payload json NOT NULL,
        created_at timestamptz NOT NULL
    )
    """,
)
INSERT = text(
    f"INSERT INTO {TABLE} (id, dossier_code, amount, payload, created_at) "
    "VALUES (:id, :dossier_code, :amount, CAST(:payload AS json), :created_at)"
)


def database_url() -> str:
    url = os.environ.get("FLOOR_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if not url:
        raise RuntimeError("set FLOOR_DATABASE_URL (or DATABASE_URL) to a PostgreSQL URL")
    return url


def make_engine(url: str) -> Engine:
    # The same pool size as gateway.storage.db.make_engine, so neither side waits on connections.
    return create_engine(url, pool_size=10, max_overflow=20)


def create_schema(url: str) -> None:
    """(Re)create the floor table with plain SQL."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            for statement in DDL:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def create_app(url: str | None = None) -> Flask:
    engine = make_engine(url or database_url())
    flask_app = Flask(__name__)

    @flask_app.get("/healthz")
    def healthz() -> Any:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok", "database": "ok"}

    @flask_app.post("/api/v1/orders")
    def create_order() -> Any:
        data = request.get_json()
        raw = request.get_data(as_text=True)
        row = {
            "id": "ord_" + secrets.token_hex(12),
            "dossier_code": data["dossier_code"],
            "amount": sum(int(item["amount"]) for item in data["items"]),
            "payload": raw,
            "created_at": datetime.now(UTC),
        }
        with engine.begin() as conn:
            conn.execute(INSERT, row)
        return {
            "id": row["id"],
            "dossier_code": row["dossier_code"],
            "amount": row["amount"],
            "created_at": row["created_at"].isoformat(),
        }, 201

    return flask_app


def __getattr__(name: str) -> Any:
    # ``bench.floor_app:app`` for gunicorn, built on first access so that importing this module
    # (the benchmark does, for create_schema) needs no environment.
    if name == "app":
        built = create_app()
        globals()["app"] = built
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
