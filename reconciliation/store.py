"""Storing imported files: one ``statement_files`` row and its ``statement_lines``, all or nothing.

The importers (:mod:`reconciliation.importing`) validate and stream; this module writes what they
yield inside the caller's transaction, so a file that turns out to be bad leaves nothing behind: the
caller rolls back (contract §3: exit 2, nothing written).

* PostgreSQL: lines are streamed with ``COPY statement_lines FROM STDIN`` on the transaction's own
  psycopg connection (about ten times faster than INSERTs; the database parses and indexes on the
  other core while Python parses the next rows).
* SQLite: ``executemany`` in batches of :data:`BATCH`.

A file whose SHA-256 is already stored is not read again: :func:`import_statement` and
:func:`import_settlement` answer ``already_imported=True`` with the stored file's id.

Statements go through :func:`reconciliation.importing.read_statement` (validate the whole file, then
stream it). Provider settlement files, which can hold a million rows, are read in **one** pass with
:func:`reconciliation.settlement.scan_settlement`: lines are written while the scan goes on and every
error is collected; any error rolls the transaction back, which gives the same all-or-nothing result
as validating first, for half the parsing time.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import date, datetime
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, insert, select, text, update

from gateway.storage.models import ReconFile, ReconLine
from reconciliation.importing import detect_format, file_sha256, read_statement
from reconciliation.records import (
    COUNTED_STATUSES,
    MAX_LISTED_ERRORS,
    AlreadyImported,
    FileChanged,
    FileRejected,
    RowError,
    StatementHeader,
    StatementLine,
)
from reconciliation.settlement import (
    DEFAULT_SETTLEMENT_LAYOUT,
    SettlementLayout,
    load_settlement_layout,
    scan_settlement,
)
from reconciliation.tabular import ColumnMapping, TableKind
from reconciliation.textnorm import fold

__all__ = ["ImportOutcome", "import_settlement", "import_statement", "known_file"]

BATCH = 5000
_PROVIDER = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")

LINE_COLUMNS: tuple[str, ...] = (
    "file_id",
    "row",
    "sub_row",
    "kind",
    "provider",
    "direction",
    "gross",
    "fee",
    "net",
    "currency",
    "booked_at",
    "business_date",
    "value_date",
    "bank_reference",
    "end_to_end_id",
    "provider_txn_id",
    "our_reference",
    "batch_id",
    "batch_key",
    "account",
    "statement_id",
    "counterparty",
    "remittance",
    "remittance_norm",
    "status",
    "reversal",
    "raw",
)


#: PostgreSQL types of LINE_COLUMNS, for the binary COPY (no text parsing on either side).
LINE_TYPES: tuple[str, ...] = (
    "bigint",
    "integer",
    "integer",
    "varchar",
    "varchar",
    "varchar",
    "bigint",
    "bigint",
    "bigint",
    "varchar",
    "timestamptz",
    "date",
    "date",
    *(["text"] * 11),
    "varchar",
    "bool",
    "json",
)
assert len(LINE_TYPES) == len(LINE_COLUMNS)


@dataclass(frozen=True)
class ImportOutcome:
    file_id: int
    sha256: str
    kind: str  # statement | settlement
    source: str
    line_count: int
    total_credit: int
    total_debit: int
    already_imported: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def known_file(conn: Connection, sha256: str) -> ReconFile | None:
    row = conn.execute(select(ReconFile.__table__).where(ReconFile.sha256 == sha256)).first()
    if row is None:
        return None
    return ReconFile(**row._asdict())


def _existing(conn: Connection, sha: str) -> ImportOutcome:
    stored = known_file(conn, sha)
    assert stored is not None
    return ImportOutcome(
        file_id=stored.id,
        sha256=sha,
        kind=stored.kind,
        source=stored.source,
        line_count=stored.line_count,
        total_credit=stored.total_credit,
        total_debit=stored.total_debit,
        already_imported=True,
    )


class _KnownHashes:
    """``in`` asks the database: the importer refuses a stored file before parsing it."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def __contains__(self, sha: object) -> bool:
        return isinstance(sha, str) and known_file(self.conn, sha) is not None


def _stamp(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _header_json(header: StatementHeader) -> dict[str, Any]:
    out = asdict(header)
    for key, value in out.items():
        if isinstance(value, date):
            out[key] = value.isoformat()
    return out


@dataclass
class _Tally:
    count: int = 0
    credit: int = 0
    debit: int = 0
    first: date | None = None
    last: date | None = None

    def add(self, line: StatementLine) -> None:
        self.count += 1
        if line.status in COUNTED_STATUSES:
            if line.direction == "credit":
                self.credit += line.gross
            else:
                self.debit += line.gross
        day = line.business_date
        if self.first is None or day < self.first:
            self.first = day
        if self.last is None or day > self.last:
            self.last = day


def _row(file_id: int, kind: str, provider: str | None, line: StatementLine) -> tuple[Any, ...]:
    remittance = line.remittance
    batch_key = None
    if kind == "settlement":
        batch_key = line.batch_id or f"date:{(line.value_date or line.business_date).isoformat()}"
    return (
        file_id,
        line.row,
        line.sub_row,
        kind,
        provider,
        line.direction,
        line.gross,
        line.fee,
        line.net,
        line.currency,
        line.booked_at,
        line.business_date,
        line.value_date,
        line.bank_reference,
        line.end_to_end_id,
        line.provider_txn_id,
        line.our_reference,
        line.batch_id,
        batch_key,
        line.account,
        line.statement_id,
        line.counterparty,
        remittance,
        fold(remittance) if remittance else None,
        line.status,
        line.reversal,
        dict(line.raw),
    )


_KEYS: dict[str, str] = {}


def _raw_json(raw: dict[str, Any]) -> str:
    """``json.dumps(raw)`` for the usual all-text row, twice as fast (a million rows: ~2 s saved)."""
    try:
        parts = []
        for key, value in raw.items():
            name = _KEYS.get(key)
            if name is None:
                name = encode_basestring(key)
                if len(_KEYS) < 4096:  # column headers repeat on every row; anything else is not kept
                    _KEYS[key] = name
            parts.append(f"{name}:{encode_basestring(value)}")
    except TypeError:  # a value that is not text: let json say how to write it
        return json.dumps(raw, ensure_ascii=False, separators=(",", ":"), default=str)
    return "{" + ",".join(parts) + "}"


class _LineWriter:
    """Writes lines of one file in the caller's transaction: COPY on PostgreSQL, batches elsewhere."""

    def __init__(self, conn: Connection, file_id: int, kind: str, provider: str | None) -> None:
        self.conn = conn
        self.file_id = file_id
        self.kind = kind
        self.provider = provider
        self.tally = _Tally()
        self._pg = conn.dialect.name == "postgresql"
        self._batch: list[dict[str, Any]] = []
        self._copy: Any = None
        self._cursor: Any = None
        self._copy_cm: Any = None

    def __enter__(self) -> _LineWriter:
        if self._pg:
            raw = self.conn.connection.dbapi_connection
            assert raw is not None
            self._cursor = raw.cursor()
            cols = ", ".join(f'"{c}"' for c in LINE_COLUMNS)
            self._copy_cm = self._cursor.copy(f"COPY statement_lines ({cols}) FROM STDIN (FORMAT BINARY)")
            self._copy = self._copy_cm.__enter__()
            self._copy.set_types(list(LINE_TYPES))
        return self

    def write(self, line: StatementLine) -> None:
        self.tally.add(line)
        values = _row(self.file_id, self.kind, self.provider, line)
        if self._pg:
            self._copy.write_row((*values[:-1], _raw_json(values[-1])))
            return
        self._batch.append(dict(zip(LINE_COLUMNS, values, strict=True)))
        if len(self._batch) >= BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._batch:
            self.conn.execute(insert(ReconLine), self._batch)
            self._batch = []

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._pg:
            try:
                self._copy_cm.__exit__(exc_type, exc, tb)
            finally:
                self._cursor.close()
        elif exc_type is None:
            self._flush()


def _new_file(
    conn: Connection,
    *,
    sha: str,
    kind: str,
    source: str,
    provider: str | None,
    fmt: str,
    path: Path,
    headers: list[dict[str, Any]],
    actor: str,
    now: datetime,
) -> int:
    stmt = (
        insert(ReconFile)
        .values(
            sha256=sha,
            kind=kind,
            source=source,
            provider=provider,
            format=fmt,
            filename=path.name[:500],
            imported_at=now,
            imported_by=actor,
            headers=headers,
            line_count=0,
            total_credit=0,
            total_debit=0,
        )
        .returning(ReconFile.id)
    )
    return int(conn.execute(stmt).scalar_one())


def _finish(
    conn: Connection, file_id: int, tally: _Tally, *, headers: list[dict[str, Any]] | None = None
) -> None:
    values: dict[str, Any] = {
        "line_count": tally.count,
        "total_credit": tally.credit,
        "total_debit": tally.debit,
        "first_business_date": tally.first,
        "last_business_date": tally.last,
    }
    if headers is not None:
        values["headers"] = headers
    conn.execute(update(ReconFile).where(ReconFile.id == file_id).values(**values))
    if conn.dialect.name == "postgresql" and tally.count >= 10_000:
        # A run usually follows a big import at once: give the planner fresh statistics.
        conn.execute(text("ANALYZE statement_lines"))


def import_statement(
    conn: Connection,
    path: str | Path,
    *,
    format: str = "auto",  # noqa: A002 - the CLI's name for it
    mapping: ColumnMapping | str | Path | None = None,
    actor: str,
    now: datetime,
) -> ImportOutcome:
    """Import a bank/treasury statement (camt.053, MT940, CSV/XLSX) in ``conn``'s transaction.

    Raises:
        FileRejected: every error found (continuity, rows); the caller must roll back.
    """
    path = Path(path)
    try:
        result = read_statement(path, format, mapping, known_hashes=_KnownHashes(conn))
    except AlreadyImported as exc:
        return _existing(conn, exc.file_sha256)
    headers = [_header_json(h) for h in result.headers]
    file_id = _new_file(
        conn,
        sha=result.file_sha256,
        kind="statement",
        source=result.source,
        provider=None,
        fmt=result.source,
        path=path,
        headers=headers,
        actor=actor,
        now=now,
    )
    with _LineWriter(conn, file_id, "statement", None) as writer:
        for line in result.lines():
            writer.write(line)
    _finish(conn, file_id, writer.tally)
    return ImportOutcome(
        file_id=file_id,
        sha256=result.file_sha256,
        kind="statement",
        source=result.source,
        line_count=writer.tally.count,
        total_credit=writer.tally.credit,
        total_debit=writer.tally.debit,
    )


def _layout(mapping: SettlementLayout | str | Path | None) -> SettlementLayout:
    if mapping is None:
        return DEFAULT_SETTLEMENT_LAYOUT
    return mapping if isinstance(mapping, SettlementLayout) else load_settlement_layout(mapping)


def import_settlement(
    conn: Connection,
    path: str | Path,
    provider: str,
    *,
    mapping: SettlementLayout | str | Path | None = None,
    actor: str,
    now: datetime,
) -> ImportOutcome:
    """Import a provider settlement file in ``conn``'s transaction, in a single streaming pass.

    Raises:
        FileRejected: every row-level error (up to MAX_LISTED_ERRORS listed); the caller must roll back.
        ValueError: ``provider`` is not a provider code.
    """
    path = Path(path)
    code = provider.strip().lower()
    if not _PROVIDER.fullmatch(code):
        raise ValueError(f"not a provider code: {provider!r}")
    layout = _layout(mapping)
    stamp = _stamp(path)
    sha = file_sha256(path)
    if known_file(conn, sha) is not None:
        return _existing(conn, sha)
    fmt: TableKind = "xlsx" if detect_format(path) == "xlsx" else "csv"
    source = f"settlement:{code}"
    file_id = _new_file(
        conn,
        sha=sha,
        kind="settlement",
        source=source,
        provider=code,
        fmt=fmt,
        path=path,
        headers=[],
        actor=actor,
        now=now,
    )
    errors: list[RowError] = []
    error_count = 0
    with _LineWriter(conn, file_id, "settlement", code) as writer:
        for event in scan_settlement(path, file_sha256=sha, provider=code, kind=fmt, layout=layout):
            if isinstance(event, RowError):
                error_count += 1
                if len(errors) < MAX_LISTED_ERRORS:
                    errors.append(event)
            elif isinstance(event, StatementLine) and not error_count:
                writer.write(event)
    if error_count:
        raise FileRejected(errors, error_count=error_count)
    if _stamp(path) != stamp:
        raise FileChanged([RowError(None, "file", f"{path} changed while it was being imported")])
    _finish(conn, file_id, writer.tally)
    return ImportOutcome(
        file_id=file_id,
        sha256=sha,
        kind="settlement",
        source=source,
        line_count=writer.tally.count,
        total_credit=writer.tally.credit,
        total_debit=writer.tally.debit,
    )


def iter_chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
