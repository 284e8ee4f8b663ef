"""Bank CSV/XLSX exports: Vietnamese headers, both amount styles, mappings, row errors, continuity."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from pathlib import Path

import openpyxl
import pytest

from reconciliation.importing import read_statement
from reconciliation.records import FileRejected
from reconciliation.tabular import DEFAULT_BANK_MAPPING, ColumnMapping, load_mapping
from tests.reconciliation.builders import write

README = Path(__file__).resolve().parents[2] / "reconciliation" / "README.md"

# A typical Vietnamese export: a title block, the header, rows oldest first, a totals footer.
VCB_STYLE = """\
SAO KÊ TÀI KHOẢN;;;;;;
Số tài khoản: 0071000123456;;;;;;
Từ ngày 14/10/2025 đến ngày 14/10/2025;;;;;;
STT;Ngày giao dịch;Số tham chiếu;Số tiền ghi nợ;Số tiền ghi có;Số dư;Nội dung
1;14/10/2025;FT2528712345;;150.000;125.150.000;LỆ PHÍ HỒ SƠ HS2025-000123 Nguyễn Văn A
2;14/10/2025;FT2528712399;3.300;;125.146.700;Phí dịch vụ tháng 10
3;14/10/2025 06:30:00;FT2528712400;;1.234.567;126.381.267;LE PHI HS2025-000124
Tổng cộng;;;3.300;1.384.567;;
"""


def _mapping(tmp_path: Path, **changes: object) -> Path:
    data = DEFAULT_BANK_MAPPING.to_json() | changes
    return write(tmp_path, "mapping.json", json.dumps(data, ensure_ascii=False))


def test_vietnamese_export_with_semicolons_and_dot_thousands(tmp_path: Path) -> None:
    result = read_statement(write(tmp_path, "sao-ke.csv", VCB_STYLE))
    assert result.source == "csv"
    lines = list(result.lines())
    assert [(x.row, x.direction, x.gross) for x in lines] == [
        (5, "credit", 150_000),
        (6, "debit", 3_300),
        (7, "credit", 1_234_567),
    ]
    first = lines[0]
    assert first.bank_reference == "FT2528712345"
    assert first.remittance == "LỆ PHÍ HỒ SƠ HS2025-000123 Nguyễn Văn A"
    assert first.business_date == date(2025, 10, 14)
    assert first.booked_at is None
    assert first.raw["Số tiền ghi có"] == "150.000"
    assert first.raw["STT"] == "1"
    # A time of day is local (Asia/Ho_Chi_Minh): 06:30 on the 14th is 23:30 UTC on the 13th.
    assert lines[2].booked_at == datetime(2025, 10, 13, 23, 30, tzinfo=UTC)
    assert lines[2].business_date == date(2025, 10, 14)
    header = result.header
    assert header is not None
    assert (header.opening_balance, header.closing_balance) == (125_000_000, 126_381_267)


def test_comma_export_with_comma_thousands_and_unaccented_upper_case_headers(tmp_path: Path) -> None:
    text = (
        "NGAY GIAO DICH,SO THAM CHIEU,SO TIEN GHI NO,SO TIEN GHI CO (VND),NOI DUNG\n"
        '2025-10-14,FT1,,"1,234,567",LE PHI\n'
        '14/10/2025,FT2,"3,300",,PHI\n'
    )
    lines = list(read_statement(write(tmp_path, "s.csv", text)).lines())
    assert [(x.direction, x.gross, x.bank_reference) for x in lines] == [
        ("credit", 1_234_567, "FT1"),
        ("debit", 3_300, "FT2"),
    ]


def test_identical_legitimate_rows_are_both_kept(tmp_path: Path) -> None:
    text = (
        "Ngày giao dịch;Số tham chiếu;Số tiền ghi nợ;Số tiền ghi có;Nội dung\n"
        "14/10/2025;FT1;;50.000;LE PHI BAN SAO\n"
        "14/10/2025;FT1;;50.000;LE PHI BAN SAO\n"
    )
    result = read_statement(write(tmp_path, "s.csv", text))
    first, second = result.lines()
    assert (first.row, second.row) == (2, 3)
    assert first.key != second.key
    assert (first.gross, first.remittance, first.raw) == (second.gross, second.remittance, second.raw)
    assert result.line_count == 2
    assert result.header is None  # no balance column, so no balances to state


def test_malformed_rows_are_all_listed(tmp_path: Path) -> None:
    text = (
        "Ngày giao dịch;Số tham chiếu;Số tiền ghi nợ;Số tiền ghi có;Nội dung\n"
        "14/10/2025;FT1;;150.000;ok\n"
        "31/02/2025;FT2;;150.000;bad date\n"
        "14/10/2025;FT3;;1,234.5;ambiguous amount\n"
        "14/10/2025;FT4;3.300;150.000;both sides\n"
        "14/10/2025;FT5;;;no amount\n"
        ";FT6;;150.000;no date\n"
    )
    with pytest.raises(FileRejected) as caught:
        read_statement(write(tmp_path, "s.csv", text))
    assert [(e.row, e.field) for e in caught.value.errors] == [
        (3, "date"),
        (4, "credit"),
        (5, "credit"),
        (6, "credit"),
        (7, "date"),
    ]
    assert caught.value.error_count == 5
    assert "both a credit and a debit" in caught.value.errors[2].reason


def test_balance_that_does_not_follow_is_rejected(tmp_path: Path) -> None:
    broken = VCB_STYLE.replace("125.146.700", "125.146.000")
    with pytest.raises(FileRejected) as caught:
        read_statement(write(tmp_path, "s.csv", broken))
    # Row 6 is off; row 7 is checked against row 6's printed balance, so it is off too.
    assert [(e.row, e.field) for e in caught.value.errors] == [(6, "balance"), (7, "balance")]
    assert "= 125.146.700 ≠ 125.146.000" in caught.value.errors[0].reason


def test_newest_first_export(tmp_path: Path) -> None:
    text = (
        "Ngày giao dịch;Số tham chiếu;Số tiền ghi nợ;Số tiền ghi có;Số dư\n"
        "14/10/2025;FT2;3.300;;125.146.700\n"
        "14/10/2025;FT1;;150.000;125.150.000\n"
    )
    with pytest.raises(FileRejected):
        read_statement(write(tmp_path, "s.csv", text))
    result = read_statement(
        write(tmp_path, "s.csv", text), mapping=_mapping(tmp_path, row_order="newest_first")
    )
    assert result.header is not None
    assert (result.header.opening_balance, result.header.closing_balance) == (125_000_000, 125_146_700)


def test_header_not_found_is_a_file_error(tmp_path: Path) -> None:
    with pytest.raises(FileRejected) as caught:
        read_statement(write(tmp_path, "s.csv", "a,b,c\n1,2,3\n"))
    (error,) = caught.value.errors
    assert error.row is None
    assert "no header row" in error.reason


def test_custom_mapping_with_signed_amount_and_direction(tmp_path: Path) -> None:
    mapping = {
        "name": "kbnn-tinh",
        "columns": {
            "date": "Ngày hạch toán",
            "reference": "Số chứng từ",
            "amount": "Số tiền",
            "direction": "Nợ/Có",
            "description": "Diễn giải",
            "our_reference": "Mã hồ sơ",
        },
        "account": "3511.0.1234567",
        "delimiter": "\t",
    }
    map_path = write(tmp_path, "kbnn.json", json.dumps(mapping, ensure_ascii=False))
    text = (
        "Ngày hạch toán\tSố chứng từ\tSố tiền\tNợ/Có\tDiễn giải\tMã hồ sơ\n"
        "14/10/2025\tCT1\t150.000\tCó\tThu lệ phí\tHS-1\n"
        "14/10/2025\tCT2\t2.000\tNợ\tPhí\t\n"
    )
    lines = list(read_statement(write(tmp_path, "kbnn.csv", text), mapping=map_path).lines())
    assert [(x.direction, x.gross, x.account, x.our_reference) for x in lines] == [
        ("credit", 150_000, "3511.0.1234567", "HS-1"),
        ("debit", 2_000, "3511.0.1234567", None),
    ]


def test_mapping_file_typos_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown mapping keys"):
        load_mapping(
            write(tmp_path, "m.json", json.dumps({"columns": {"date": "x", "amount": "y"}, "delimter": ";"}))
        )
    with pytest.raises(ValueError, match="unknown fields"):
        ColumnMapping(name="x", columns={"date": ("d",), "amount": ("a",), "amout": ("b",)})


def test_default_mapping_is_the_one_documented(tmp_path: Path) -> None:
    block = re.search(
        r"<!-- default-bank-mapping -->\s*```json\n(.*?)```", README.read_text(encoding="utf-8"), re.S
    )
    assert block is not None, "README lost its default mapping block"
    assert ColumnMapping.from_json(json.loads(block.group(1))) == DEFAULT_BANK_MAPPING
    assert load_mapping(_mapping(tmp_path)) == DEFAULT_BANK_MAPPING


def test_utf16_export_is_read(tmp_path: Path) -> None:
    text = "Ngày giao dịch\tSố tham chiếu\tSố tiền ghi nợ\tSố tiền ghi có\n14/10/2025\tFT1\t\t150.000\n"
    path = write(tmp_path, "s.csv", text.encode("utf-16"))
    (line,) = read_statement(path, format="csv").lines()
    assert line.gross == 150_000


# -- XLSX --------------------------------------------------------------------------------------------


def _workbook(path: Path, rows: list[list[object]]) -> Path:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "Sao kê"
    for row in rows:
        sheet.append(row)
    workbook.save(path)
    return path


def test_xlsx_export(tmp_path: Path) -> None:
    path = _workbook(
        tmp_path / "sao-ke.xlsx",
        [
            ["SAO KÊ TÀI KHOẢN 0071000123456"],
            [],
            ["Ngày giao dịch", "Số tham chiếu", "Số tiền ghi nợ", "Số tiền ghi có", "Số dư", "Nội dung"],
            [datetime(2025, 10, 14), "FT1", None, 150000, 125150000, "LỆ PHÍ HS-1"],
            [datetime(2025, 10, 14, 6, 30), "FT2", 3300, None, 125146700, "PHÍ"],
            ["14/10/2025", "FT3", None, "1.234.567", "126.381.267", "LE PHI HS-3"],
            [date(2025, 10, 14), "FT4", None, 1000.0, 126382267, "float but whole"],
        ],
    )
    result = read_statement(path)
    assert result.source == "xlsx"
    lines = list(result.lines())
    assert [(x.row, x.direction, x.gross) for x in lines] == [
        (4, "credit", 150_000),
        (5, "debit", 3_300),
        (6, "credit", 1_234_567),
        (7, "credit", 1_000),
    ]
    assert lines[0].booked_at is None  # a date cell at midnight is a day, not an instant
    assert lines[1].booked_at == datetime(2025, 10, 13, 23, 30, tzinfo=UTC)
    assert lines[0].raw["Ngày giao dịch"] == "2025-10-14T00:00:00"
    assert result.header is not None
    assert result.header.closing_balance == 126_382_267


def test_xlsx_fractional_amount_is_refused(tmp_path: Path) -> None:
    path = _workbook(
        tmp_path / "s.xlsx",
        [["Ngày giao dịch", "Số tiền ghi nợ", "Số tiền ghi có"], ["14/10/2025", None, 1234.5]],
    )
    with pytest.raises(FileRejected) as caught:
        read_statement(path)
    assert [(e.row, e.field) for e in caught.value.errors] == [(2, "credit")]


def test_xlsx_named_sheet(tmp_path: Path) -> None:
    path = _workbook(tmp_path / "s.xlsx", [["Ngày giao dịch", "Ghi nợ", "Ghi có"], ["14/10/2025", None, 5]])
    (line,) = read_statement(path, mapping=_mapping(tmp_path, sheet="Sao kê")).lines()
    assert line.gross == 5
    with pytest.raises(FileRejected, match="no sheet named"):
        read_statement(path, mapping=_mapping(tmp_path, sheet="Sheet9"))
