"""Engine and session factory. Built by the app factory, never at import time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

T = TypeVar("T")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create the engine with the per-dialect settings the gateway relies on."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            # Let us issue BEGIN ourselves (pysqlite's implicit transactions defer the write lock).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # SQLite has no SELECT ... FOR UPDATE: an IMMEDIATE transaction takes the single write
            # lock up front, which serialises writers exactly as a row lock would (and cannot
            # deadlock on a read-to-write upgrade).
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    # No pre-ping: it costs a round trip per unit of work on the hot path. A connection that died with a
    # database restart fails once; SQLAlchemy then invalidates the whole pool, and every caller of a
    # failed unit of work answers with a retryable error (503 / the provider's "retry" code).
    kwargs.setdefault("pool_recycle", 1800)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return create_engine(url, **kwargs)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any exception."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def get_for_update(session: Session, model: type[T], ident: Any) -> T | None:
    """Load one row under a row lock (``SELECT ... FOR UPDATE``; SQLite: its write lock).

    Every path that changes an order (IPN, return, janitor, cancel, refund) goes through this.
    """
    pk = model.__mapper__.primary_key[0]  # type: ignore[attr-defined]
    stmt = select(model).where(pk == ident).with_for_update().execution_options(populate_existing=True)
    return session.scalars(stmt).first()
