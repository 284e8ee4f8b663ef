"""The little SQL portability layer the engine needs (PostgreSQL and SQLite).

Matching is set-based SQL on temporary tables; the few places where the two databases differ
(local dates, JSON building, temporary-table lifetime, how parameters of type date/datetime are
bound in raw SQL) live here.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, CursorResult, bindparam, text

__all__ = ["Db", "as_date", "as_datetime"]

log = logging.getLogger(__name__)
_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def as_date(value: Any) -> date | None:
    """A date from either database (SQLite hands back ``'YYYY-MM-DD'`` strings)."""
    if value is None or isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, datetime):
        return value.date()
    return date.fromisoformat(str(value)[:10])


def as_datetime(value: Any) -> datetime | None:
    """An aware UTC datetime from either database (SQLite stores naive UTC text)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class Db:
    """A connection plus the dialect-specific spellings used by the engine."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.pg = conn.dialect.name == "postgresql"
        self._temps: list[str] = []

    # -- parameters -------------------------------------------------------------------------------

    def bind(self, value: Any) -> Any:
        if self.pg:
            return value
        if isinstance(value, datetime):
            # SQLAlchemy's SQLite DateTime storage format, in UTC (gateway.storage.types.UTCDateTime).
            return value.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, bool):
            return int(value)
        return value

    def x(self, sql: str, params: dict[str, Any] | None = None, /, **kw: Any) -> CursorResult[Any]:
        merged = {**(params or {}), **kw}
        if not log.isEnabledFor(logging.DEBUG):
            return self.conn.execute(text(sql), {k: self.bind(v) for k, v in merged.items()})
        started = time.perf_counter()
        result = self.conn.execute(text(sql), {k: self.bind(v) for k, v in merged.items()})
        log.debug("%.3f s  %s", time.perf_counter() - started, " ".join(sql.split())[:120])
        return result

    def xin(self, sql: str, name: str, values: list[Any], /, **kw: Any) -> CursorResult[Any]:
        """``sql`` with ``IN :name`` expanded to ``values`` (callers chunk long lists)."""
        stmt = text(sql).bindparams(bindparam(name, expanding=True))
        params = {k: self.bind(v) for k, v in kw.items()}
        params[name] = [self.bind(v) for v in values]
        return self.conn.execute(stmt, params)

    def many(self, sql: str, rows: list[dict[str, Any]]) -> None:
        if rows:
            self.conn.execute(text(sql), [{k: self.bind(v) for k, v in row.items()} for row in rows])

    # -- spellings --------------------------------------------------------------------------------

    def local_date(self, column: str) -> str:
        """The Asia/Ho_Chi_Minh calendar day of a UTC timestamp column (UTC+7, no DST since 1975)."""
        if self.pg:
            return f"CAST(({column} AT TIME ZONE 'Asia/Ho_Chi_Minh') AS DATE)"
        return f"date({column}, '+7 hours')"

    def json_object(self, pairs: dict[str, str]) -> str:
        """SQL building a JSON object (for a JSON column) from ``{key: sql expression}``; PostgreSQL drops
        the null members, SQLite keeps them (readers drop them: runs.item_view)."""
        args = ", ".join(f"'{k}', {v}" for k, v in pairs.items())
        if self.pg:
            return f"json_strip_nulls(json_build_object({args}))"
        return f"json_object({args})"

    @property
    def fence(self) -> str:
        """Appended to a subquery: stops PostgreSQL from inlining it, so a CASE computed there is
        evaluated once per row instead of once per use (SQLite evaluates it once anyway)."""
        return " OFFSET 0" if self.pg else ""

    def json_param(self, placeholder: str) -> str:
        return f"CAST({placeholder} AS JSON)" if self.pg else placeholder

    def text_of(self, expr: str) -> str:
        return f"CAST({expr} AS TEXT)"

    # -- temporary tables -------------------------------------------------------------------------

    def temp(self, name: str, columns: str) -> None:
        """A temporary table for this transaction (dropped by :meth:`drop_temps` or at commit)."""
        if not _NAME.fullmatch(name):
            raise ValueError(name)
        if self.pg:
            self.x(f"CREATE TEMP TABLE {name} ({columns}) ON COMMIT DROP")
        else:
            self.x(f"DROP TABLE IF EXISTS temp.{name}")
            self.x(f"CREATE TEMP TABLE {name} ({columns})")
        self._temps.append(name)

    def index(self, table: str, columns: str) -> None:
        name = f"{table}_{re.sub(r'[^a-z0-9]+', '_', columns)}_ix"
        self.x(f"CREATE INDEX {name} ON {table} ({columns})")

    def analyze(self, *tables: str) -> None:
        if self.pg:
            for table in tables:
                self.x(f"ANALYZE {table}")

    def drop_temps(self) -> None:
        for name in reversed(self._temps):
            self.x(f"DROP TABLE IF EXISTS {name}")
        self._temps = []
