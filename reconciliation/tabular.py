"""Bank and treasury statements exported as CSV or XLSX, read through a column mapping.

No Vietnamese bank or KBNN publishes a statement file format (reconciliation.md §3), so each
bank/treasury gets a small JSON mapping naming its columns; :data:`DEFAULT_BANK_MAPPING` covers the
usual Vietnamese export headers ("Ngày giao dịch", "Số tham chiếu", "Số tiền ghi có", "Số tiền ghi nợ",
"Nội dung", "Số dư"). Headers are matched without regard to case, accents, spacing or notes in
parentheses, and the header row may sit below a title block. Amounts are parsed exactly (both
``1.234.567`` and ``1,234,567``, never floats, §5.1). When a balance column is mapped, every row's
balance must follow from the previous one (§5.3c continuity, row by row).

Both formats stream: CSV through the ``csv`` module, XLSX through openpyxl's read-only mode
(``iter_rows(values_only=True)``), one row at a time. :func:`open_table` is shared with the provider
settlement reader.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from gateway.domain.money import format_vnd
from reconciliation.money import AmountError, vnd_from_cell
from reconciliation.records import Direction, RowError, ScanEvent, StatementHeader, StatementLine
from reconciliation.textnorm import fold, header_key
from reconciliation.timeutil import DATE_FORMATS, DATETIME_FORMATS, business_date_of, parse_instant, to_utc

__all__ = [
    "DEFAULT_BANK_MAPPING",
    "Cell",
    "ColumnMapping",
    "RawRow",
    "Table",
    "TableError",
    "cell_text",
    "load_mapping",
    "open_table",
    "scan_table",
]

Cell = str | int | float | Decimal | datetime | date | time | bool | None
TableKind = Literal["csv", "xlsx"]

#: Fields a bank mapping may name. ``date`` is required, and either ``credit`` + ``debit`` (two
#: columns) or ``amount`` (one signed column, or unsigned with a ``direction`` column).
BANK_FIELDS: tuple[str, ...] = (
    "date",
    "value_date",
    "reference",
    "end_to_end_id",
    "our_reference",
    "description",
    "credit",
    "debit",
    "amount",
    "direction",
    "fee",
    "balance",
    "counterparty",
    "account",
    "currency",
    "batch_id",
)

_CREDIT_WORDS = frozenset({"c", "cr", "credit", "co", "ghi co", "+"})
_DEBIT_WORDS = frozenset({"d", "dr", "debit", "no", "ghi no", "-"})
_DELIMITERS = (",", ";", "\t", "|")


class TableError(Exception):
    """The table cannot be read at all (no header found, not a spreadsheet, undecodable...)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ColumnMapping:
    """How to read one bank's or treasury's export. Load one with :func:`load_mapping`.

    ``columns`` maps each field of :data:`BANK_FIELDS` to the header texts it may appear under;
    any one of them matches, compared by :func:`reconciliation.textnorm.header_key`.
    """

    name: str
    columns: Mapping[str, tuple[str, ...]]
    date_formats: tuple[str, ...] = DATE_FORMATS + DATETIME_FORMATS
    delimiter: str | None = None  # None: sniff , ; tab or | from the header row
    encoding: str = "utf-8-sig"  # a UTF-16 BOM is honoured whatever this says
    sheet: str | None = None  # XLSX: None is the active sheet
    account: str | None = None  # when the file has no account column
    currency: str = "VND"
    row_order: Literal["oldest_first", "newest_first"] = "oldest_first"  # for the balance check
    footer_markers: tuple[str, ...] = ("tong cong", "cong phat sinh", "tong so", "so du cuoi ky")
    header_search_rows: int = 30

    def __post_init__(self) -> None:
        unknown = set(self.columns) - set(BANK_FIELDS)
        if unknown:
            raise ValueError(f"mapping {self.name}: unknown fields {sorted(unknown)}")
        if "date" not in self.columns:
            raise ValueError(f"mapping {self.name}: the date column is required")
        if not ({"credit", "debit"} <= set(self.columns) or "amount" in self.columns):
            raise ValueError(f"mapping {self.name}: needs credit and debit columns, or an amount column")
        if self.row_order not in ("oldest_first", "newest_first"):
            raise ValueError(f"mapping {self.name}: row_order is oldest_first or newest_first")

    def to_json(self) -> dict[str, Any]:
        """The JSON form :func:`load_mapping` reads (the README documents it)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "columns":
                value = {k: list(v) for k, v in value.items()}
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ColumnMapping:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:  # a typo in a mapping file must not silently fall back to a default
            raise ValueError(f"unknown mapping keys {sorted(unknown)}")
        kwargs: dict[str, Any] = dict(data)
        columns = data.get("columns")
        if not isinstance(columns, Mapping):
            raise ValueError("a mapping needs a columns object")
        kwargs["columns"] = {k: (v,) if isinstance(v, str) else tuple(v) for k, v in columns.items()}
        for key in ("date_formats", "footer_markers"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        kwargs.setdefault("name", "custom")
        return cls(**kwargs)


#: Typical Vietnamese bank exports (Vietcombank, VietinBank, BIDV, Agribank-style headers) and
#: their English variants. The header names are taken from exports seen in the wild, not from a
#: published spec [INF, reconciliation.md §3]: give each bank/treasury its own mapping file once its
#: real export is in hand.
DEFAULT_BANK_MAPPING = ColumnMapping(
    name="vn-bank-default",
    columns={
        "date": (
            "Ngày giao dịch",
            "Ngày GD",
            "Ngày hạch toán",
            "Ngày",
            "Transaction date",
            "Posting date",
            "Date",
        ),
        "value_date": ("Ngày hiệu lực", "Ngày giá trị", "Value date"),
        "reference": (
            "Số tham chiếu",
            "Số bút toán",
            "Mã giao dịch",
            "Mã GD",
            "Số chứng từ",
            "Số CT",
            "Reference",
            "Reference number",
        ),
        "description": (
            "Nội dung",
            "Nội dung giao dịch",
            "Nội dung chi tiết",
            "Diễn giải",
            "Mô tả",
            "Mô tả giao dịch",
            "Description",
            "Details",
        ),
        "credit": ("Số tiền ghi có", "Ghi có", "Phát sinh có", "Có", "Tiền vào", "Credit", "Credit amount"),
        "debit": ("Số tiền ghi nợ", "Ghi nợ", "Phát sinh nợ", "Nợ", "Tiền ra", "Debit", "Debit amount"),
        "fee": ("Phí", "Phí giao dịch", "Fee"),
        "balance": ("Số dư", "Số dư cuối", "Balance", "Running balance"),
        "counterparty": ("Tên người chuyển", "Người chuyển", "Đơn vị chuyển", "Đối tác", "Counterparty"),
        "account": ("Số tài khoản", "Account number"),
        "currency": ("Loại tiền", "Tiền tệ", "Currency"),
    },
)


def load_mapping(path: str | Path) -> ColumnMapping:
    """Read a mapping file (JSON, UTF-8); see the README for its keys."""
    with Path(path).open(encoding="utf-8") as fh:
        return ColumnMapping.from_json(json.load(fh))


# -- reading rows ------------------------------------------------------------------------------------


@dataclass
class Table:
    """A table positioned just after its header row."""

    kind: TableKind
    header_row: int
    headers: list[str]
    rows: Iterator[tuple[int, list[Cell]]]  # (1-based row/line number, cells)


def cell_text(value: Cell) -> str:
    """A cell as the string kept in the raw row."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _encoding(path: Path, default: str) -> str:
    with path.open("rb") as fh:
        head = fh.read(4)
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "utf-16"  # Excel's "Unicode text" export
    return default


def _sniff_delimiter(path: Path, encoding: str, is_header: Callable[[list[str]], bool], limit: int) -> str:
    with path.open(encoding=encoding, newline="") as fh:
        sample = "".join(line for _, line in zip(range(limit), fh, strict=False))
    for delimiter in _DELIMITERS:
        for cells in csv.reader(io.StringIO(sample), delimiter=delimiter):
            if is_header(cells):
                return delimiter
    raise TableError(f"no header row found in the first {limit} lines")


def _csv_rows(reader: Any) -> Iterator[tuple[int, list[Cell]]]:
    last = 0
    for cells in reader:
        start, last = last + 1, reader.line_num
        yield start, list(cells)


@contextmanager
def open_table(
    path: Path,
    *,
    kind: TableKind,
    is_header: Callable[[list[str]], bool],
    encoding: str = "utf-8-sig",
    delimiter: str | None = None,
    sheet: str | None = None,
    search_rows: int = 30,
) -> Iterator[Table]:
    """Open a CSV or XLSX table and find its header row among the first ``search_rows`` rows.

    Raises :class:`TableError` when the file is not a readable table or has no such header row.
    Iterating ``Table.rows`` may raise ``UnicodeDecodeError`` or ``csv.Error`` on a damaged file.
    """
    if kind == "csv":
        encoding = _encoding(path, encoding)
        try:
            if delimiter is None:
                delimiter = _sniff_delimiter(path, encoding, is_header, search_rows)
        except UnicodeDecodeError as exc:
            raise TableError(f"not {encoding} text: {exc.reason}") from exc
        except csv.Error as exc:
            raise TableError(f"not CSV: {exc}") from exc
        with path.open(encoding=encoding, newline="") as fh:
            rows = _csv_rows(csv.reader(fh, delimiter=delimiter))
            yield _position(kind, rows, is_header, search_rows)
        return
    import zipfile

    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as exc:
        raise TableError(f"not an XLSX workbook: {exc}") from exc
    try:
        if sheet is not None:
            if sheet not in workbook.sheetnames:
                raise TableError(f"no sheet named {sheet!r}")
            worksheet = workbook[sheet]
        else:
            worksheet = workbook.active or workbook.worksheets[0]
        # Exporters often write a wrong <dimension>; read-only mode would trust it and cut rows off.
        worksheet.reset_dimensions()
        rows = ((n, list(values)) for n, values in enumerate(worksheet.iter_rows(values_only=True), start=1))
        yield _position(kind, rows, is_header, search_rows)
    finally:
        workbook.close()


def _position(
    kind: TableKind,
    rows: Iterator[tuple[int, list[Cell]]],
    is_header: Callable[[list[str]], bool],
    search_rows: int,
) -> Table:
    for row_no, cells in rows:
        texts = [cell_text(c).strip() for c in cells]
        if is_header(texts):
            return Table(kind, row_no, texts, rows)
        if row_no >= search_rows:
            break
    raise TableError(f"no header row found in the first {search_rows} rows")


def bind_columns(headers: Sequence[str], aliases: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Field -> column index, for the fields whose header is present (first match wins)."""
    keys = [header_key(h) for h in headers]
    bound: dict[str, int] = {}
    taken: set[int] = set()
    for name, accepted in aliases.items():
        wanted = {header_key(a) for a in accepted}
        for index, key in enumerate(keys):
            if key in wanted and index not in taken:
                bound[name] = index
                taken.add(index)
                break
    return bound


def _has_required(bound: Mapping[str, int]) -> bool:
    return "date" in bound and ({"credit", "debit"} <= set(bound) or "amount" in bound)


class RawRow:
    """Builds the raw row (header -> cell text) of each data row.

    Unnamed or repeated headers get a column suffix so nothing is lost; the keys are worked out once
    per table, since this runs on every row of a 200 000-row file.
    """

    def __init__(self, headers: Sequence[str]) -> None:
        self.headers = list(headers)
        self.keys = self._keys(len(self.headers))

    def _keys(self, width: int) -> list[str]:
        keys: list[str] = []
        seen: set[str] = set()
        for index in range(width):
            name = (
                self.headers[index]
                if index < len(self.headers) and self.headers[index]
                else f"column {index + 1}"
            )
            if name in seen:
                name = f"{name} ({index + 1})"
            seen.add(name)
            keys.append(name)
        return keys

    def __call__(self, cells: Sequence[Cell]) -> dict[str, str]:
        keys = self.keys if len(cells) <= len(self.keys) else self._keys(len(cells))
        raw = dict.fromkeys(keys, "")
        raw.update(zip(keys, [c if isinstance(c, str) else cell_text(c) for c in cells], strict=False))
        return raw


def is_blank(cells: Sequence[Cell]) -> bool:
    return all(c is None or (isinstance(c, str) and not c.strip()) for c in cells)


# -- the bank statement importer ---------------------------------------------------------------------


def scan_table(
    path: Path, *, file_sha256: str, kind: TableKind, mapping: ColumnMapping
) -> Iterator[ScanEvent]:
    """Yield the statement's lines, a header when a balance column allows one, and every error."""

    def is_header(cells: list[str]) -> bool:
        return _has_required(bind_columns(cells, mapping.columns))

    try:
        with open_table(
            path,
            kind=kind,
            is_header=is_header,
            encoding=mapping.encoding,
            delimiter=mapping.delimiter,
            sheet=mapping.sheet,
            search_rows=mapping.header_search_rows,
        ) as table:
            yield from _BankRows(file_sha256, kind, mapping, table).scan()
    except TableError as exc:
        yield RowError(None, "file", f"{exc} (mapping {mapping.name})")


@dataclass
class _Continuity:
    """Row-by-row balance check: balance[i] = balance[i-1] ± amount[i] (file order per row_order)."""

    newest_first: bool
    first: tuple[int, int] | None = None  # (balance, signed amount) of the first row
    last: tuple[int, int] | None = None
    previous: tuple[int, int] | None = None

    def check(self, balance: int, signed: int) -> str | None:
        problem = None
        if self.previous is not None:
            prev_balance, prev_signed = self.previous
            if self.newest_first:
                expected, before, moved = balance + prev_signed, balance, prev_signed
                ok = expected == prev_balance
                shown = prev_balance
            else:
                expected, before, moved = prev_balance + signed, prev_balance, signed
                ok = expected == balance
                shown = balance
            if not ok:
                problem = (
                    f"balance {format_vnd(before)} {'+' if moved >= 0 else '−'} {format_vnd(abs(moved))}"
                    f" = {format_vnd(expected)} ≠ {format_vnd(shown)}"
                )
        if self.first is None:
            self.first = (balance, signed)
        self.previous = self.last = (balance, signed)
        return problem

    def balances(self) -> tuple[int, int] | None:
        """(opening, closing) of the whole file."""
        if self.first is None or self.last is None:
            return None
        oldest, newest = (self.last, self.first) if self.newest_first else (self.first, self.last)
        return oldest[0] - oldest[1], newest[0]


@dataclass
class _BankRows:
    sha: str
    kind: TableKind
    mapping: ColumnMapping
    table: Table
    cols: dict[str, int] = field(init=False)
    raw: RawRow = field(init=False)

    def __post_init__(self) -> None:
        self.raw = RawRow(self.table.headers)
        self.cols = bind_columns(self.table.headers, self.mapping.columns)
        if {"credit", "debit"} <= set(self.cols):
            self.cols.pop("amount", None)  # two columns say more than one

    def cell(self, cells: Sequence[Cell], name: str) -> Cell:
        index = self.cols.get(name)
        if index is None or index >= len(cells):
            return None
        value = cells[index]
        return value.strip() if isinstance(value, str) else value

    def text(self, cells: Sequence[Cell], name: str) -> str | None:
        value = self.cell(cells, name)
        text = cell_text(value).strip()
        return text or None

    def scan(self) -> Iterator[ScanEvent]:
        continuity = _Continuity(newest_first=self.mapping.row_order == "newest_first")
        broken = False
        count = credit = debit = 0
        markers = tuple(fold(m) for m in self.mapping.footer_markers)
        try:
            for row_no, cells in self.table.rows:
                if is_blank(cells):
                    continue
                first = next((cell_text(c) for c in cells if not is_blank([c])), "")
                if markers and fold(first).startswith(markers):
                    break  # a totals block ends the table (bank exports close with "Tổng cộng")
                errors: list[RowError] = []
                line = self._line(row_no, cells, errors)
                balance = self._amount(cells, "balance", row_no, errors) if "balance" in self.cols else None
                if line is not None and balance is not None:
                    problem = continuity.check(balance, line.signed_gross)
                    if problem is not None:
                        errors.append(RowError(row_no, "balance", problem))
                elif "balance" in self.cols:
                    broken = True  # cannot chain balances past an unreadable row
                    continuity.previous = None
                if errors:
                    yield from errors
                    continue
                assert line is not None
                count += 1
                if line.direction == "credit":
                    credit += line.gross
                else:
                    debit += line.gross
                yield line
        except UnicodeDecodeError as exc:
            yield RowError(None, "encoding", f"not {self.mapping.encoding} text: {exc.reason}")
            return
        except csv.Error as exc:
            yield RowError(None, "file", f"not CSV: {exc}")
            return
        balances = continuity.balances()
        if balances is not None and not broken:
            yield StatementHeader(
                source=self.kind,
                file_sha256=self.sha,
                statement_id=None,
                account=self.mapping.account,
                currency=self.mapping.currency,
                opening_balance=balances[0],
                closing_balance=balances[1],
                entry_count=count,
                total_credit=credit,
                total_debit=debit,
            )

    def _amount(self, cells: Sequence[Cell], name: str, row: int, errors: list[RowError]) -> int | None:
        value = self.cell(cells, name)
        if value is None or value == "":
            return None
        try:
            return vnd_from_cell(value)
        except AmountError as exc:
            errors.append(RowError(row, name, str(exc)))
            return None

    def _when(
        self, cells: Sequence[Cell], name: str, row: int, errors: list[RowError]
    ) -> datetime | date | None:
        value = self.cell(cells, name)
        if value is None or value == "":
            return None
        if isinstance(value, datetime):
            # An Excel date cell is a datetime at midnight: that is a day, not an instant.
            return value.date() if value.time() == time(0) else to_utc(value)
        if isinstance(value, date):
            return value
        try:
            return parse_instant(str(value), self.mapping.date_formats)
        except ValueError as exc:
            errors.append(RowError(row, name, str(exc)))
            return None

    def _direction(
        self, cells: Sequence[Cell], row: int, errors: list[RowError]
    ) -> tuple[Direction, int] | None:
        if "amount" in self.cols:
            amount = self._amount(cells, "amount", row, errors)
            if amount is None:
                if not any(e.field == "amount" for e in errors):
                    errors.append(RowError(row, "amount", "missing"))
                return None
            word = self.text(cells, "direction")
            if word is None:
                return ("credit", amount) if amount >= 0 else ("debit", -amount)
            folded = fold(word)
            if amount < 0:
                errors.append(RowError(row, "amount", "negative amount next to a direction column"))
                return None
            if folded in _CREDIT_WORDS:
                return ("credit", amount)
            if folded in _DEBIT_WORDS:
                return ("debit", amount)
            errors.append(RowError(row, "direction", f"neither credit nor debit: {word!r}"))
            return None
        credit = self._amount(cells, "credit", row, errors)
        debit = self._amount(cells, "debit", row, errors)
        if any(e.field in ("credit", "debit") for e in errors):
            return None
        if credit is not None and credit < 0:
            errors.append(RowError(row, "credit", "a credit cannot be negative"))
            return None
        debit = abs(debit) if debit is not None else None  # some banks print debits as "-3.300"
        if credit and debit:
            errors.append(RowError(row, "credit", "both a credit and a debit on one row"))
            return None
        if credit:
            return ("credit", credit)
        if debit:
            return ("debit", debit)
        errors.append(RowError(row, "credit", "no amount: credit and debit are both empty or zero"))
        return None

    def _line(self, row: int, cells: Sequence[Cell], errors: list[RowError]) -> StatementLine | None:
        moved = self._direction(cells, row, errors)
        when = self._when(cells, "date", row, errors)
        if when is None and not any(e.field == "date" for e in errors):
            errors.append(RowError(row, "date", "missing"))
        value = self._when(cells, "value_date", row, errors) if "value_date" in self.cols else None
        fee = self._amount(cells, "fee", row, errors) if "fee" in self.cols else None
        currency = (self.text(cells, "currency") or self.mapping.currency).upper()
        if currency not in ("VND", "VNĐ"):
            errors.append(RowError(row, "currency", f"currency {currency} is not VND"))
        if fee is not None and fee < 0:
            errors.append(RowError(row, "fee", "a fee cannot be negative"))
        if errors or moved is None or when is None:
            return None
        direction, gross = moved
        fee = fee or 0
        booked_at = when if isinstance(when, datetime) else None
        business_date = business_date_of(when) if isinstance(when, datetime) else when
        value_date = business_date_of(value) if isinstance(value, datetime) else value
        return StatementLine(
            source=self.kind,
            file_sha256=self.sha,
            row=row,
            account=self.text(cells, "account") or self.mapping.account,
            direction=direction,
            gross=gross,
            fee=fee,
            net=gross - fee,  # the row's amount is what moved; a fee column is informational
            currency="VND",
            booked_at=booked_at,
            business_date=business_date,
            value_date=value_date,
            bank_reference=self.text(cells, "reference"),
            end_to_end_id=self.text(cells, "end_to_end_id"),
            our_reference=self.text(cells, "our_reference"),
            batch_id=self.text(cells, "batch_id"),
            counterparty=self.text(cells, "counterparty"),
            remittance=self.text(cells, "description"),
            status="booked",
            raw=self.raw(cells),
        )
