"""A run's items as CSV or XLSX, Vietnamese column labels by default (English selectable) — issue 6.6.

    export_run_csv(session, run_id, out, lang="vi", category=None)
    export_run_xlsx(session, run_id, out, lang="vi", category=None)

Both stream the items in ``seq`` order into the binary stream ``out`` (a million items never sit in
memory: CSV row by row, XLSX through openpyxl's write-only mode) and raise ``NotFound`` for an unknown
run. Money is an integer number of VND: a plain integer in CSV; in XLSX an integer *number* cell whose
number format spells the dots out (``#"."###"."##0``, chosen per cell by its size), so every
spreadsheet shows ``1.234.567`` whatever its locale and the column still sums (a ``#,##0`` format
would show ``1,234,567`` outside a vi-VN locale; the staff console's order export does the same).
Dates are Asia/Ho_Chi_Minh. CSV is UTF-8 with a byte-order mark (Excel then reads Vietnamese
correctly); text a spreadsheet would run as a formula gets a leading apostrophe (OWASP CSV injection).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, BinaryIO, Final

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from sqlalchemy import text
from sqlalchemy.orm import Session

from gateway.domain.errors import NotFound, ValidationProblem
from gateway.storage.models import ReconRun
from reconciliation.runs import CATEGORIES
from reconciliation.sqlkit import as_date, as_datetime
from reconciliation.timeutil import VN_TZ
from reconciliation.views import ITEM_SELECT, item_detail

__all__ = ["CATEGORY_LABELS", "export_run_csv", "export_run_xlsx", "vnd_number_format"]

LANGS: Final = ("vi", "en")
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")
XLSX_DATE: Final = "dd/mm/yyyy"
XLSX_DATETIME: Final = "dd/mm/yyyy hh:mm:ss"

CATEGORY_LABELS: Final[dict[str, dict[str, str]]] = {
    "vi": {
        "matched": "Khớp",
        "pending": "Đang chờ đối ứng",
        "missing_in_statement": "Thiếu trên sao kê",
        "unexpected_in_statement": "Tiền chưa rõ hồ sơ",
        "amount_mismatch": "Lệch số tiền",
        "duplicate": "Trùng lặp",
        "status_conflict": "Lệch trạng thái",
        "fee_variance": "Lệch phí",
    },
    "en": {
        "matched": "Matched",
        "pending": "Pending",
        "missing_in_statement": "Missing in statement",
        "unexpected_in_statement": "Unexpected in statement",
        "amount_mismatch": "Amount mismatch",
        "duplicate": "Duplicate",
        "status_conflict": "Status conflict",
        "fee_variance": "Fee variance",
    },
}
STATUS_LABELS: Final[dict[str, dict[str, str]]] = {
    "vi": {"closed": "Đã khớp", "open": "Cần xử lý", "resolved": "Đã xử lý"},
    "en": {"closed": "Closed", "open": "Open", "resolved": "Resolved"},
}
LEVEL_LABELS: Final[dict[str, dict[str, str]]] = {
    "vi": {
        "provider": "Giao dịch ↔ nhà cung cấp",
        "payout": "Quyết toán ↔ sao kê",
        "bank": "Sao kê ↔ giao dịch",
    },
    "en": {"provider": "Payment ↔ provider", "payout": "Payout ↔ statement", "bank": "Statement ↔ payment"},
}


@dataclass(frozen=True)
class Column:
    vi: str
    en: str
    value: Callable[[dict[str, Any], str], Any]
    kind: str = "text"  # text | money | int | date | datetime
    width: int = 18


def _refs(item: dict[str, Any], _lang: str) -> str:
    return "; ".join(f"{k}={v}" for k, v in item["references"].items())


COLUMNS: Final[tuple[Column, ...]] = (
    Column("STT", "No.", lambda i, _l: i["seq"], "int", 8),
    Column("Mã mục", "Item ID", lambda i, _l: i["id"], "int", 10),
    Column("Cấp đối soát", "Level", lambda i, lang: LEVEL_LABELS[lang].get(i["level"], i["level"]), width=24),
    Column(
        "Kết quả",
        "Category",
        lambda i, lang: CATEGORY_LABELS[lang].get(i["category"], i["category"]),
        width=22,
    ),
    Column("Mã kết quả", "Category code", lambda i, _l: i["category"], width=24),
    Column("Lý do", "Reason", lambda i, _l: i["reason"], width=40),
    Column("Chi tiết", "Detail", lambda i, _l: i["detail"], width=30),
    Column("Quy tắc khớp", "Rule", lambda i, _l: i["rule"], width=22),
    Column("Số tiền (VND)", "Amount (VND)", lambda i, _l: i["amount"], "money", 16),
    Column("Số tiền của cổng (VND)", "Our amount (VND)", lambda i, _l: i["expected_amount"], "money", 18),
    Column("Ngày nghiệp vụ", "Business date", lambda i, _l: i["business_date"], "date", 14),
    Column("Mã đơn", "Order ID", lambda i, _l: i["order_id"], width=38),
    Column("Mã hồ sơ", "Dossier code", lambda i, _l: i["references"].get("dossier_code"), width=22),
    Column("Nhà cung cấp", "Provider", lambda i, _l: i["provider"], width=12),
    Column("Tham chiếu", "References", _refs, width=60),
    Column(
        "Trạng thái", "Status", lambda i, lang: STATUS_LABELS[lang].get(i["status"], i["status"]), width=14
    ),
    Column("Người xử lý", "Resolved by", lambda i, _l: i["resolved_by"], width=24),
    Column("Thời điểm xử lý (GMT+7)", "Resolved at (GMT+7)", lambda i, _l: i["resolved_at"], "datetime", 20),
    Column("Ghi chú xử lý", "Resolution", lambda i, _l: i["resolution"], width=40),
)


def _lang(lang: str) -> str:
    if lang not in LANGS:
        raise ValidationProblem("unknown language", errors={"lang": ["vi or en"]})
    return lang


def vnd_number_format(amount: int) -> str:
    """A number format showing ``amount`` with dots between thousands in any spreadsheet locale."""
    digits = len(str(abs(amount)))
    if digits <= 3:
        return "0"
    groups = (digits + 2) // 3
    return '"."'.join(["#"] + ["###"] * (groups - 2) + ["##0"])


def defuse(value: str) -> str:
    return f"'{value}" if value.startswith(_FORMULA_START) else value


def _items(session: Session, run_id: str, category: str | None) -> Iterator[dict[str, Any]]:
    if session.get(ReconRun, run_id) is None:
        raise NotFound(f"no reconciliation run {run_id}")
    if category is not None and category not in CATEGORIES:
        raise ValidationProblem("unknown category", errors={"category": [f"one of: {', '.join(CATEGORIES)}"]})
    sql = ITEM_SELECT + "WHERE i.run_id = :run" + (" AND i.category = :category" if category else "")
    params: dict[str, Any] = {"run": run_id}
    if category:
        params["category"] = category
    stmt = text(sql + " ORDER BY i.seq").execution_options(yield_per=2000)
    for row in session.execute(stmt, params):
        yield item_detail(row)


def _local(value: Any) -> datetime | None:
    if value is None:
        return None
    moment = as_datetime(value.replace("Z", "+00:00") if isinstance(value, str) else value)
    return moment.astimezone(VN_TZ) if moment else None


def _day(value: Any) -> date | None:
    return as_date(value)


def export_run_csv(
    session: Session, run_id: str, out: BinaryIO, *, lang: str = "vi", category: str | None = None
) -> int:
    """Write the run's items as CSV to ``out``; returns the number of items written."""
    lang = _lang(lang)
    items = _items(session, run_id, category)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    out.write("\ufeff".encode())
    writer.writerow([getattr(c, lang) for c in COLUMNS])
    count = 0
    for item in items:
        cells: list[Any] = []
        for column in COLUMNS:
            value = column.value(item, lang)
            if value is None:
                cells.append("")
            elif column.kind in ("money", "int"):
                cells.append(int(value))
            elif column.kind == "date":
                day = _day(value)
                cells.append(day.isoformat() if day else "")
            elif column.kind == "datetime":
                local = _local(value)
                cells.append(local.strftime("%Y-%m-%d %H:%M:%S") if local else "")
            else:
                cells.append(defuse(str(value)))
        writer.writerow(cells)
        count += 1
        if count % 1000 == 0:
            out.write(buffer.getvalue().encode())
            buffer.seek(0)
            buffer.truncate()
    out.write(buffer.getvalue().encode())
    return count


def export_run_xlsx(
    session: Session, run_id: str, out: BinaryIO, *, lang: str = "vi", category: str | None = None
) -> int:
    """Write the run's items as an XLSX workbook to ``out``; returns the number of items written."""
    lang = _lang(lang)
    items = _items(session, run_id, category)
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=("Đối soát " if lang == "vi" else "Reconciliation ") + run_id[-8:])
    for index, column in enumerate(COLUMNS, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = column.width
    sheet.freeze_panes = "A2"
    bold = Font(bold=True)
    header = []
    for column in COLUMNS:
        cell = WriteOnlyCell(sheet, value=getattr(column, lang))
        cell.font = bold
        header.append(cell)
    sheet.append(header)
    count = 0
    for item in items:
        row = []
        for column in COLUMNS:
            value = column.value(item, lang)
            if value is None:
                row.append(WriteOnlyCell(sheet, value=None))
                continue
            if column.kind == "money":
                cell = WriteOnlyCell(sheet, value=int(value))
                cell.number_format = vnd_number_format(int(value))
            elif column.kind == "int":
                cell = WriteOnlyCell(sheet, value=int(value))
            elif column.kind == "date":
                cell = WriteOnlyCell(sheet, value=_day(value))
                cell.number_format = XLSX_DATE
            elif column.kind == "datetime":
                local = _local(value)
                cell = WriteOnlyCell(sheet, value=local.replace(tzinfo=None) if local else None)
                cell.number_format = XLSX_DATETIME
            else:
                cell = WriteOnlyCell(sheet, value=defuse(str(value)))
            row.append(cell)
        sheet.append(row)
        count += 1
    workbook.save(out)
    return count
