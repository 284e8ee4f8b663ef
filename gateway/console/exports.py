"""Order exports as CSV and XLSX (issue 7.6).

Column labels follow the user's language (Vietnamese by default). Money is an integer number of VND: a
plain integer in CSV, an integer cell displayed ``1.234.567`` in XLSX (the number format is chosen per
cell and spells the dots out, so it shows the same in any spreadsheet locale and still sums). Instants are
Asia/Ho_Chi_Minh local time. Text that a spreadsheet would run as a formula is defused with a leading
apostrophe (OWASP "CSV injection").
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from flask_babel import gettext
from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

DISPLAY_TZ: Final = ZoneInfo("Asia/Ho_Chi_Minh")
CSV_DATETIME: Final = "%Y-%m-%d %H:%M:%S"
XLSX_DATETIME: Final = "dd/mm/yyyy hh:mm:ss"
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class ExportRow:
    order_id: str
    created_at: datetime
    dossier_code: str
    agency_code: str
    payer_name: str
    payer_id_number: str
    payer_phone: str
    amount: int
    paid_amount: int
    refunded_amount: int
    status: str
    provider: str
    provider_txn_id: str
    paid_at: datetime | None


@dataclass(frozen=True)
class Column:
    label: Callable[[], str]
    value: Callable[[ExportRow], Any]
    kind: str = "text"  # text | money | datetime
    width: int = 18


COLUMNS: Final[Sequence[Column]] = (
    Column(lambda: gettext("Order ID"), lambda r: r.order_id, width=38),
    Column(lambda: gettext("Created (GMT+7)"), lambda r: r.created_at, "datetime", 20),
    Column(lambda: gettext("Dossier code"), lambda r: r.dossier_code, width=24),
    Column(lambda: gettext("Agency"), lambda r: r.agency_code),
    Column(lambda: gettext("Payer"), lambda r: r.payer_name, width=28),
    Column(lambda: gettext("ID number"), lambda r: r.payer_id_number, width=16),
    Column(lambda: gettext("Phone"), lambda r: r.payer_phone, width=14),
    Column(lambda: gettext("Amount (VND)"), lambda r: r.amount, "money", 16),
    Column(lambda: gettext("Paid (VND)"), lambda r: r.paid_amount, "money", 16),
    Column(lambda: gettext("Refunded (VND)"), lambda r: r.refunded_amount, "money", 16),
    Column(lambda: gettext("Status"), lambda r: r.status, width=20),
    Column(lambda: gettext("Provider"), lambda r: r.provider, width=20),
    Column(lambda: gettext("Provider transaction"), lambda r: r.provider_txn_id, width=20),
    Column(lambda: gettext("Paid at (GMT+7)"), lambda r: r.paid_at, "datetime", 20),
)


def defuse(text: str) -> str:
    """Keep a spreadsheet from evaluating user-supplied text (``=HYPERLINK(...)``) as a formula."""
    return f"'{text}" if text.startswith(_FORMULA_START) else text


def _local(instant: datetime | None) -> datetime | None:
    return None if instant is None else instant.astimezone(DISPLAY_TZ)


def to_csv(rows: Sequence[ExportRow]) -> bytes:
    """UTF-8 with a byte-order mark, so that Excel opens Vietnamese text correctly."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([c.label() for c in COLUMNS])
    for row in rows:
        cells: list[Any] = []
        for column in COLUMNS:
            value = column.value(row)
            if column.kind == "money":
                cells.append(int(value))
            elif column.kind == "datetime":
                local = _local(value)
                cells.append(local.strftime(CSV_DATETIME) if local else "")
            else:
                cells.append(defuse(str(value or "")))
        writer.writerow(cells)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def vnd_number_format(amount: int) -> str:
    """An Excel number format that shows ``amount`` with dots between thousands, whatever the locale."""
    digits = len(str(abs(amount)))
    if digits <= 3:
        return "0"
    groups = (digits + 2) // 3
    # 1234567 -> #"."###"."##0: the first placeholder takes the leading digits, each "." is a literal.
    return '"."'.join(["#"] + ["###"] * (groups - 2) + ["##0"])


def to_xlsx(rows: Sequence[ExportRow], *, sheet_title: str) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = sheet_title[:31]
    sheet.append([c.label() for c in COLUMNS])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows:
        values: list[Any] = []
        for column in COLUMNS:
            value = column.value(row)
            if column.kind == "money":
                values.append(int(value))
            elif column.kind == "datetime":
                local = _local(value)
                values.append(local.replace(tzinfo=None) if local else None)  # Excel has no time zones
            else:
                values.append(defuse(str(value or "")))
        sheet.append(values)
        for index, column in enumerate(COLUMNS, start=1):
            cell = sheet.cell(row=sheet.max_row, column=index)
            if column.kind == "money":
                cell.number_format = vnd_number_format(int(cell.value))
            elif column.kind == "datetime" and cell.value is not None:
                cell.number_format = XLSX_DATETIME
    for index, column in enumerate(COLUMNS, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = column.width
    sheet.freeze_panes = "A2"
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()
