"""The canonical records every importer produces (reconciliation.md §5.2).

Whatever the source (camt.053, MT940, a bank's CSV/XLSX export, a provider's settlement file), each
booking becomes one :class:`StatementLine`, so matching never needs to know where a line came from.
Money is an integer number of VND (§5.1); instants are aware UTC datetimes and the business date is
the Asia/Ho_Chi_Minh calendar day (§4 "time zones & day boundaries").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Literal

Direction = Literal["credit", "debit"]

#: Line statuses. Bank statements say ``booked`` (camt ``Sts`` BOOK; MT940 and bank exports only list
#: booked entries) or, for camt entries that are not booked yet, ``pending``/``info``/``future``;
#: provider settlement files say ``success`` or ``refund``. Matching must count only ``booked``,
#: ``success`` and ``refund`` lines (reconciliation.md §2.1: "count only Sts = BOOK").
LineStatus = Literal["booked", "pending", "info", "future", "success", "refund"]

#: Σ of these statuses is what moved the account; the other statuses are informational.
COUNTED_STATUSES: frozenset[str] = frozenset({"booked", "success", "refund"})


@dataclass(frozen=True, slots=True, kw_only=True)
class StatementLine:
    """One booking, normalised.

    Provenance is ``(file_sha256, row, sub_row)``: it is unique inside a file and is the only dedupe
    key inside a file. Two identical legitimate rows keep distinct provenance and are both kept
    (reconciliation.md §4 "duplicates": never dedupe on content).

    ``row`` is the 1-based position in the file: the ``Ntry`` index for camt.053, the line number of
    the ``:61:`` tag for MT940, the physical line number for CSV (the header is line 1) and the sheet
    row number for XLSX. ``sub_row`` is 0 unless a camt batch entry was split into its ``TxDtls``
    (1..N), §2.1 ``NtryDtls/Btch``.
    """

    source: str  # "camt053", "mt940", "csv", "xlsx" or "settlement:<provider>"
    file_sha256: str
    row: int
    sub_row: int = 0
    account: str | None = None
    statement_id: str | None = None  # links the line to its StatementHeader (camt Stmt/Id, MT940 :20:)
    direction: Direction
    gross: int
    fee: int = 0  # 0 when the source does not say (bank statements)
    net: int
    currency: str = "VND"
    booked_at: datetime | None = None  # aware UTC instant, when the source gives a time
    business_date: date  # Asia/Ho_Chi_Minh day of booked_at, or the booking date the source gives
    value_date: date | None = None  # camt ValDt, MT940 value date, settlement_date for providers
    bank_reference: str | None = None  # camt AcctSvcrRef, MT940 //bank ref, "Số tham chiếu"
    end_to_end_id: str | None = None  # camt EndToEndId, MT940 customer reference (not NONREF)
    provider_txn_id: str | None = None
    our_reference: str | None = None  # our attempt reference (settlement) or camt CdtrRefInf/Ref
    batch_id: str | None = None
    counterparty: str | None = None
    remittance: str | None = None
    status: LineStatus
    reversal: bool = False  # camt RvslInd / MT940 RC, RD
    raw: Mapping[str, str] = field(default_factory=dict, hash=False)

    @property
    def key(self) -> tuple[str, int, int]:
        """Provenance: what identifies this line inside its file."""
        return (self.file_sha256, self.row, self.sub_row)

    @property
    def signed_gross(self) -> int:
        """Gross amount seen from the account: credits positive, debits negative."""
        return self.gross if self.direction == "credit" else -self.gross

    @property
    def signed_net(self) -> int:
        return self.net if self.direction == "credit" else -self.net


@dataclass(frozen=True, slots=True, kw_only=True)
class StatementHeader:
    """One statement's balances, already checked for continuity (reconciliation.md §5.3c).

    ``opening_balance + total_credit - total_debit == closing_balance`` holds for every header an
    importer returns; a statement where it does not is rejected whole. Balances are signed VND
    (an overdrawn account is negative). Totals count only booked entries.
    """

    source: str
    file_sha256: str
    statement_id: str | None
    account: str | None
    currency: str
    opening_balance: int
    closing_balance: int
    opening_date: date | None = None
    closing_date: date | None = None
    period_start: date | None = None
    period_end: date | None = None
    sequence: str | None = None  # camt ElctrncSeqNb, MT940 :28C:
    entry_count: int = 0
    total_credit: int = 0
    total_debit: int = 0


@dataclass(frozen=True, slots=True)
class RowError:
    """Why a row (or, with ``row`` None, the file or a statement) cannot be imported."""

    row: int | None
    field: str
    reason: str

    def __str__(self) -> str:
        where = "file" if self.row is None else f"row {self.row}"
        return f"{where}: {self.field}: {self.reason}"


class FileRejected(Exception):
    """The file is malformed; nothing from it may be stored (issue 6, acceptance 1).

    ``errors`` lists every problem found (row, field, reason), sorted by row, up to
    :data:`MAX_LISTED_ERRORS`; ``error_count`` is the true total.
    """

    def __init__(self, errors: Sequence[RowError], *, error_count: int | None = None) -> None:
        self.errors: list[RowError] = sorted(errors, key=lambda e: (e.row is not None, e.row or 0))
        self.error_count = len(self.errors) if error_count is None else error_count
        first = "; ".join(str(e) for e in self.errors[:3])
        more = f" (and {self.error_count - 3} more)" if self.error_count > 3 else ""
        super().__init__(f"file rejected: {first}{more}")


class FileChanged(FileRejected):
    """The file changed between validation and reading; whatever was read must be discarded."""


class AlreadyImported(Exception):
    """A file with this SHA-256 was imported before; importing it again must do nothing (§5.6)."""

    def __init__(self, file_sha256: str) -> None:
        self.file_sha256 = file_sha256
        super().__init__(f"file {file_sha256} was already imported")


#: Past this many, errors are counted but not listed: a 200 000-row file that is wrong on every row
#: must not hold 200 000 messages in memory (§5.9). The count stays exact.
MAX_LISTED_ERRORS = 10_000

#: What a format scanner yields, in file order.
ScanEvent = StatementLine | StatementHeader | RowError


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportResult:
    """A validated file, ready to be read line by line.

    The importer has already read the whole file once (streaming, constant memory) and found no
    error: ``headers`` hold each statement's checked balances, the totals count the lines.
    :meth:`lines` reads the file again and yields the lines, so the caller can store them in batches
    without ever holding the file in memory. Each call starts a fresh pass.
    """

    path: Path
    source: str
    file_sha256: str
    headers: tuple[StatementHeader, ...]
    line_count: int
    total_credit: int  # Σ gross of counted credit lines
    total_debit: int  # Σ gross of counted debit lines
    _reader: Callable[[], Iterator[StatementLine]] = field(repr=False, compare=False)

    @property
    def header(self) -> StatementHeader | None:
        """The statement's header when the file holds exactly one statement, else None."""
        return self.headers[0] if len(self.headers) == 1 else None

    def lines(self) -> Iterator[StatementLine]:
        """Yield every line in file order; raises :class:`FileChanged` if the file was modified."""
        return self._reader()
