"""Alembic environment: online migrations only, with lock timeouts and an advisory lock on PostgreSQL."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection, text

from gateway.storage.db import make_engine
from gateway.storage.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Let only one migrator run per schema (several app processes may start at once), then fail
        # fast instead of queueing DDL behind a long transaction.
        connection.execute(text("SELECT pg_advisory_lock(hashtext('alembic:' || current_schema()))"))
        connection.execute(text("SET lock_timeout = '4s'"))
        connection.execute(text("SET statement_timeout = '60s'"))
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        compare_server_default=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    if connection.dialect.name == "postgresql":
        # The connection goes back to the application's pool: undo the migration-only settings.
        connection.execute(text("RESET lock_timeout"))
        connection.execute(text("RESET statement_timeout"))
        connection.execute(text("SELECT pg_advisory_unlock(hashtext('alembic:' || current_schema()))"))
        connection.commit()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or os.environ.get(
        "DATABASE_URL", "sqlite:///instance/gateway.db"
    )
    engine = make_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


run_migrations_online()
