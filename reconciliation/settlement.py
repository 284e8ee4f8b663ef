"""Provider settlement files (reconciliation.md §3: no provider publishes its layout).

Every provider uses :data:`DEFAULT_SETTLEMENT_LAYOUT` unless a mapping file says otherwise::

    provider,provider_txn_id,reference,amount,fee,net,status,transacted_at,settlement_date,batch_id

``reference`` is our attempt reference; ``status`` is ``success`` or ``refund``; ``transacted_at`` is
ISO-8601 with an offset; money is integer VND. A refund is money going back, so it becomes a debit
line (§4 "fees/refunds netted out": gross, fee, refund and net stay explicit), and every row must
satisfy ``amount − fee == net``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime, tzinfo
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from reconciliation.money import AmountError, parse_integer_vnd, parse_vnd, vnd_from_cell
from reconciliation.records import Direction, LineStatus, RowError, ScanEvent, StatementLine
from reconciliation.tabular import (
    Cell,
    RawRow,
    Table,
    TableError,
    TableKind,
    bind_columns,
    cell_text,
    is_blank,
    open_table,
)
from reconciliation.textnorm import fold
from reconciliation.timeutil import business_date_of, parse_date, parse_instant, to_utc

__all__ = [
    "DEFAULT_SETTLEMENT_LAYOUT",
    "SETTLEMENT_COLUMNS",
    "SettlementLayout",
    "load_settlement_layout",
    "scan_settlement",
]

SETTLEMENT_COLUMNS: tuple[str, ...] = (
    "provider",
    "provider_txn_id",
    "reference",
    "amount",
    "fee",
    "net",
    "status",
    "transacted_at",
    "settlement_date",
    "batch_id",
)
#: A mapping may leave out only these; fee then counts as 0 and net as the amount ("fee unknown").
OPTIONAL_COLUMNS = frozenset({"provider", "fee", "net", "settlement_date", "batch_id"})

_STATUS: dict[str, tuple[LineStatus, Direction]] = {
    "success": ("success", "credit"),
    "refund": ("refund", "debit"),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class SettlementLayout:
    """How one provider's settlement file is laid out. The default is the documented CSV."""

    name: str = "default"
    columns: Mapping[str, str] = field(default_factory=lambda: {c: c for c in SETTLEMENT_COLUMNS})
    #: file value (compared folded) -> "success" | "refund"
    status_values: Mapping[str, str] = field(
        default_factory=lambda: {"success": "success", "refund": "refund"}
    )
    amount_format: Literal["integer", "grouped"] = "integer"  # "grouped" accepts 1.234.567 / 1,234,567
    amount_scale: int = 1  # e.g. 100 for a provider that sends VND x 100 (VNPAY, §5.1)
    naive_timezone: str | None = None  # None: a time without offset is an error (the default layout)
    datetime_formats: tuple[str, ...] = ()  # tried after ISO-8601
    date_formats: tuple[str, ...] = ("%Y-%m-%d",)
    delimiter: str | None = None
    encoding: str = "utf-8-sig"
    sheet: str | None = None
    header_search_rows: int = 1  # the default file starts with its header

    def __post_init__(self) -> None:
        unknown = set(self.columns) - set(SETTLEMENT_COLUMNS)
        missing = set(SETTLEMENT_COLUMNS) - OPTIONAL_COLUMNS - set(self.columns)
        if unknown or missing:
            raise ValueError(
                f"layout {self.name}: unknown columns {sorted(unknown)}, missing {sorted(missing)}"
            )
        bad = {v for v in self.status_values.values() if v not in _STATUS}
        if bad:
            raise ValueError(f"layout {self.name}: statuses map to success or refund, not {sorted(bad)}")
        if self.amount_scale < 1:
            raise ValueError(f"layout {self.name}: amount_scale must be a positive integer")
        if self.amount_format not in ("integer", "grouped"):
            raise ValueError(f"layout {self.name}: amount_format is integer or grouped")
        # File values are compared folded (case and accents ignored), so the keys are folded once here.
        object.__setattr__(self, "status_values", {fold(k): v for k, v in self.status_values.items()})

    @property
    def timezone(self) -> tzinfo | None:
        return ZoneInfo(self.naive_timezone) if self.naive_timezone else None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = (
                list(value)
                if isinstance(value, tuple)
                else (dict(value) if isinstance(value, Mapping) else value)
            )
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SettlementLayout:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown layout keys {sorted(unknown)}")
        kwargs: dict[str, Any] = dict(data)
        for key in ("datetime_formats", "date_formats"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)


DEFAULT_SETTLEMENT_LAYOUT = SettlementLayout()


def load_settlement_layout(path: str | Path) -> SettlementLayout:
    """Read a provider's layout file (JSON, UTF-8); see the README for its keys."""
    with Path(path).open(encoding="utf-8") as fh:
        return SettlementLayout.from_json(json.load(fh))


def scan_settlement(
    path: Path,
    *,
    file_sha256: str,
    provider: str,
    kind: TableKind = "csv",
    layout: SettlementLayout = DEFAULT_SETTLEMENT_LAYOUT,
) -> Iterator[ScanEvent]:
    """Yield one line per settlement row, and every error found (row = line number, header = 1)."""
    aliases = {name: (header,) for name, header in layout.columns.items()}
    required = set(layout.columns)

    def is_header(cells: list[str]) -> bool:
        return required <= set(bind_columns(cells, aliases))

    try:
        with open_table(
            path,
            kind=kind,
            is_header=is_header,
            encoding=layout.encoding,
            delimiter=layout.delimiter,
            sheet=layout.sheet,
            search_rows=max(layout.header_search_rows, 1),
        ) as table:
            yield from _Rows(
                file_sha256, provider, layout, table, bind_columns(table.headers, aliases)
            ).scan()
    except TableError as exc:
        expected = ",".join(layout.columns.values())
        yield RowError(None, "header", f"{exc}; expected the columns {expected} (layout {layout.name})")


@dataclass
class _Rows:
    sha: str
    provider: str
    layout: SettlementLayout
    table: Table
    cols: dict[str, int]
    _naive_tz: tzinfo | None = field(init=False)
    raw: RawRow = field(init=False)

    def __post_init__(self) -> None:
        self._naive_tz = self.layout.timezone
        self.raw = RawRow(self.table.headers)

    def scan(self) -> Iterator[ScanEvent]:
        try:
            for row_no, cells in self.table.rows:
                if is_blank(cells):
                    continue
                errors: list[RowError] = []
                line = self._line(row_no, cells, errors)
                if errors:
                    yield from errors
                elif line is not None:
                    yield line
        except UnicodeDecodeError as exc:
            yield RowError(None, "encoding", f"not {self.layout.encoding} text: {exc.reason}")
        except csv.Error as exc:
            yield RowError(None, "file", f"not CSV: {exc}")

    def values(self, cells: Sequence[Cell]) -> dict[str, Cell]:
        """Field -> cell (strings stripped), read once per row."""
        width = len(cells)
        return {
            name: (value.strip() if isinstance(value := cells[index], str) else value)
            for name, index in self.cols.items()
            if index < width
        }

    def money(self, v: Mapping[str, Cell], name: str, row: int, errors: list[RowError]) -> int | None:
        value = v.get(name)
        if value is None or value == "":
            if name in self.cols:
                errors.append(RowError(row, name, "missing"))
            return None
        try:
            if isinstance(value, str):
                amount = (
                    parse_integer_vnd(value) if self.layout.amount_format == "integer" else parse_vnd(value)
                )
            else:
                amount = vnd_from_cell(value)
        except AmountError as exc:
            errors.append(RowError(row, name, str(exc)))
            return None
        scale = self.layout.amount_scale
        if amount % scale:
            errors.append(RowError(row, name, f"{amount} is not a whole number of VND at scale {scale}"))
            return None
        return amount // scale

    def _line(self, row: int, cells: Sequence[Cell], errors: list[RowError]) -> StatementLine | None:
        v = self.values(cells)
        named = _text(v, "provider")
        if "provider" in self.cols and fold(named or "") != fold(self.provider):
            errors.append(RowError(row, "provider", f"{named!r} in a file imported for {self.provider!r}"))
        txn_id = _text(v, "provider_txn_id")
        if txn_id is None:
            errors.append(RowError(row, "provider_txn_id", "missing"))
        reference = _text(v, "reference")
        if reference is None:
            errors.append(RowError(row, "reference", "missing"))
        amount = self.money(v, "amount", row, errors)
        fee = self.money(v, "fee", row, errors) if "fee" in self.cols else 0
        net = self.money(v, "net", row, errors) if "net" in self.cols else None
        if amount is not None and amount <= 0:
            errors.append(RowError(row, "amount", "must be positive (a refund is told by its status)"))
        if fee is not None and fee < 0:
            errors.append(RowError(row, "fee", "cannot be negative"))
        if amount is not None and fee is not None and net is not None and amount - fee != net:
            errors.append(RowError(row, "net", f"amount {amount} − fee {fee} = {amount - fee}, not {net}"))
        word = _text(v, "status") or ""
        mapped = self.layout.status_values.get(fold(word))
        if mapped is None:
            allowed = ", ".join(sorted(self.layout.status_values))
            errors.append(RowError(row, "status", f"{word!r} is not one of {allowed}"))
        transacted = self._instant(v, row, errors)
        settled = self._date(v, row, errors)
        if errors or amount is None or fee is None or mapped is None or transacted is None:
            return None
        status, direction = _STATUS[mapped]
        return StatementLine(
            source=f"settlement:{self.provider}",
            file_sha256=self.sha,
            row=row,
            direction=direction,
            gross=amount,
            fee=fee,
            net=amount - fee if net is None else net,
            currency="VND",
            booked_at=transacted,
            business_date=business_date_of(transacted),
            value_date=settled,
            provider_txn_id=txn_id,
            our_reference=reference,
            batch_id=_text(v, "batch_id"),
            status=status,
            raw=self.raw(cells),
        )

    def _instant(self, v: Mapping[str, Cell], row: int, errors: list[RowError]) -> datetime | None:
        value = v.get("transacted_at")
        if value is None or value == "":
            errors.append(RowError(row, "transacted_at", "missing"))
            return None
        try:
            if isinstance(value, datetime):  # an XLSX cell: naive, so only with naive_timezone
                return to_utc(value, self._naive_tz)
            parsed = parse_instant(str(value), self.layout.datetime_formats, naive_tz=self._naive_tz)
        except ValueError as exc:
            reason = str(exc)
            if "offset" in reason:
                reason = f"{value!s} has no UTC offset (ISO-8601 with offset expected)"
            errors.append(RowError(row, "transacted_at", reason))
            return None
        if not isinstance(parsed, datetime):
            errors.append(
                RowError(row, "transacted_at", f"{value!s} is a date, a time with offset is expected")
            )
            return None
        return parsed

    def _date(self, v: Mapping[str, Cell], row: int, errors: list[RowError]) -> date | None:
        if "settlement_date" not in self.cols:
            return None
        value = v.get("settlement_date")
        if value is None or value == "":
            errors.append(RowError(row, "settlement_date", "missing"))
            return None
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        try:
            return parse_date(str(value), self.layout.date_formats)
        except ValueError as exc:
            errors.append(RowError(row, "settlement_date", str(exc)))
            return None


def _text(v: Mapping[str, Cell], name: str) -> str | None:
    value = v.get(name)
    if value is None:
        return None
    return (value if isinstance(value, str) else cell_text(value).strip()) or None
