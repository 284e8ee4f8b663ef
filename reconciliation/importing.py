"""Entry points: recognise a file, validate all of it, then hand its lines out as a stream.

Issue 6, acceptance 1: a malformed file is rejected whole, with every row-level error, and nothing
from it is stored. To give that guarantee without holding a file in memory, a file is read twice:

1. :func:`read_statement` / :func:`read_settlement` scan the whole file (streaming) and collect every
   error and each statement's checked balances; any error raises :class:`FileRejected` before the
   caller has seen a single line;
2. :meth:`ImportResult.lines` reads it again and yields the lines, which the caller stores in
   batches inside one transaction. If the file changed in between, :class:`FileChanged` is raised
   and the caller rolls back.

Files are identified by their SHA-256 (§5.6): pass the hashes already imported as ``known_hashes``
and the same file is refused with :class:`AlreadyImported` before it is even parsed. Inside a file,
lines are told apart by provenance only, never by content (§4 "duplicates"). Nothing here writes.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Container, Iterator
from pathlib import Path

from reconciliation.camt053 import scan_camt053
from reconciliation.mt940 import scan_mt940
from reconciliation.records import (
    COUNTED_STATUSES,
    MAX_LISTED_ERRORS,
    AlreadyImported,
    FileChanged,
    FileRejected,
    ImportResult,
    RowError,
    ScanEvent,
    StatementHeader,
    StatementLine,
)
from reconciliation.settlement import (
    DEFAULT_SETTLEMENT_LAYOUT,
    SettlementLayout,
    load_settlement_layout,
    scan_settlement,
)
from reconciliation.tabular import DEFAULT_BANK_MAPPING, ColumnMapping, TableKind, load_mapping, scan_table

__all__ = ["FORMATS", "detect_format", "file_sha256", "read_settlement", "read_statement"]

FORMATS: tuple[str, ...] = ("camt053", "mt940", "csv", "xlsx")

_CHUNK = 1 << 20
_MT940_START = re.compile(r"^(?:\{1:|:20:)", re.MULTILINE)
_PROVIDER = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")

Scan = Callable[[], Iterator[ScanEvent]]
_Stamp = tuple[int, int, int]


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of the file's bytes: the file's identity (§5.2 provenance, §5.6 idempotence)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def detect_format(path: str | Path) -> str:
    """``camt053``, ``mt940``, ``xlsx`` or ``csv``, from the file's first bytes (not its name).

    Any XML is handed to the camt.053 reader, which refuses what it does not accept (another
    message, a DOCTYPE) with a precise reason. Raises :class:`FileRejected` for legacy ``.xls``, PDF
    and empty files.
    """
    with Path(path).open("rb") as fh:
        head = fh.read(8192)
    if head.startswith(b"PK\x03\x04"):
        return "xlsx"
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise FileRejected([RowError(None, "format", "legacy .xls workbook: save it as .xlsx or CSV")])
    if head.startswith(b"%PDF"):
        raise FileRejected(
            [
                RowError(
                    None, "format", "PDF statements cannot be imported: ask for CSV, XLSX, camt.053 or MT940"
                )
            ]
        )
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if not text:
        raise FileRejected([RowError(None, "format", "empty file")])
    if text.startswith(b"<"):
        return "camt053"
    if _MT940_START.search(text.decode("utf-8", errors="replace")):
        return "mt940"
    return "csv"


def read_statement(
    path: str | Path,
    format: str = "auto",  # noqa: A002 - the brief's name for it
    mapping: ColumnMapping | str | Path | None = None,
    *,
    known_hashes: Container[str] | None = None,
) -> ImportResult:
    """Validate a bank/treasury statement and return it ready to stream.

    Args:
        path: the file.
        format: ``auto`` (see :func:`detect_format`) or one of :data:`FORMATS`.
        mapping: for CSV/XLSX, a :class:`ColumnMapping` or the path of its JSON file; the default
            is :data:`reconciliation.tabular.DEFAULT_BANK_MAPPING`.
        known_hashes: SHA-256 of files already imported (anything with ``in``).

    Raises:
        FileRejected: with every error found; nothing may be stored.
        AlreadyImported: the file's SHA-256 is in ``known_hashes``.
    """
    path = Path(path)
    kind = detect_format(path) if format == "auto" else format
    if kind not in FORMATS:
        raise ValueError(f"unknown statement format {format!r}; one of auto, {', '.join(FORMATS)}")
    if mapping is not None and kind not in ("csv", "xlsx"):
        raise ValueError(f"a column mapping applies to csv and xlsx files, not {kind}")
    stamp = _stamp(path)
    sha = _identify(path, known_hashes)
    scan: Scan
    if kind == "camt053":

        def scan() -> Iterator[ScanEvent]:
            return scan_camt053(path, file_sha256=sha)

    elif kind == "mt940":

        def scan() -> Iterator[ScanEvent]:
            return scan_mt940(path, file_sha256=sha)

    else:
        column_mapping = _bank_mapping(mapping)
        table_kind: TableKind = "xlsx" if kind == "xlsx" else "csv"

        def scan() -> Iterator[ScanEvent]:
            return scan_table(path, file_sha256=sha, kind=table_kind, mapping=column_mapping)

    return _validate(path, kind, sha, stamp, scan)


def read_settlement(
    path: str | Path,
    provider: str,
    mapping: SettlementLayout | str | Path | None = None,
    *,
    known_hashes: Container[str] | None = None,
) -> ImportResult:
    """Validate a provider settlement file (CSV, or XLSX by its content) and return it ready to stream.

    Args:
        path: the file.
        provider: the provider code (``vnpay``, ``momo``...); lines get source ``settlement:<provider>``
            and a ``provider`` column, when present, must name it.
        mapping: a :class:`SettlementLayout` or the path of its JSON file; default
            :data:`reconciliation.settlement.DEFAULT_SETTLEMENT_LAYOUT`.
        known_hashes: SHA-256 of files already imported.

    Raises:
        FileRejected: with every error found; nothing may be stored.
        AlreadyImported: the file's SHA-256 is in ``known_hashes``.
    """
    path = Path(path)
    code = provider.strip().lower()
    if not _PROVIDER.fullmatch(code):
        raise ValueError(f"not a provider code: {provider!r}")
    layout = _settlement_layout(mapping)
    kind: TableKind = "xlsx" if detect_format(path) == "xlsx" else "csv"
    stamp = _stamp(path)
    sha = _identify(path, known_hashes)

    def scan() -> Iterator[ScanEvent]:
        return scan_settlement(path, file_sha256=sha, provider=code, kind=kind, layout=layout)

    return _validate(path, f"settlement:{code}", sha, stamp, scan)


# -- internals ---------------------------------------------------------------------------------------


def _bank_mapping(mapping: ColumnMapping | str | Path | None) -> ColumnMapping:
    if mapping is None:
        return DEFAULT_BANK_MAPPING
    return mapping if isinstance(mapping, ColumnMapping) else load_mapping(mapping)


def _settlement_layout(mapping: SettlementLayout | str | Path | None) -> SettlementLayout:
    if mapping is None:
        return DEFAULT_SETTLEMENT_LAYOUT
    return mapping if isinstance(mapping, SettlementLayout) else load_settlement_layout(mapping)


def _stamp(path: Path) -> _Stamp:
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _identify(path: Path, known_hashes: Container[str] | None) -> str:
    sha = file_sha256(path)
    if known_hashes is not None and sha in known_hashes:
        raise AlreadyImported(sha)
    return sha


def _changed(path: Path) -> FileChanged:
    return FileChanged([RowError(None, "file", f"{path} changed while it was being imported")])


def _validate(path: Path, source: str, sha: str, stamp: _Stamp, scan: Scan) -> ImportResult:
    """Pass 1: read everything, keep only counts, headers and errors (memory stays flat)."""
    errors: list[RowError] = []
    error_count = 0
    headers: list[StatementHeader] = []
    count = credit = debit = 0
    for event in scan():
        if isinstance(event, RowError):
            error_count += 1
            if len(errors) < MAX_LISTED_ERRORS:
                errors.append(event)
        elif isinstance(event, StatementHeader):
            headers.append(event)
        else:
            count += 1
            if event.status in COUNTED_STATUSES:
                if event.direction == "credit":
                    credit += event.gross
                else:
                    debit += event.gross
    if error_count:
        raise FileRejected(errors, error_count=error_count)
    if _stamp(path) != stamp:
        raise _changed(path)

    def lines() -> Iterator[StatementLine]:
        """Pass 2: the same scan, lines only."""
        if _stamp(path) != stamp:
            raise _changed(path)
        for event in scan():
            if isinstance(event, RowError):  # cannot happen on an unchanged file
                raise _changed(path)
            if isinstance(event, StatementLine):
                yield event
        if _stamp(path) != stamp:
            raise _changed(path)

    return ImportResult(
        path=path,
        source=source,
        file_sha256=sha,
        headers=tuple(headers),
        line_count=count,
        total_credit=credit,
        total_debit=debit,
        _reader=lines,
    )
