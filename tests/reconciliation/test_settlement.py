"""Provider settlement files: the default layout, refunds and fees, a weekend session, overrides."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from pathlib import Path

import openpyxl
import pytest

from reconciliation.importing import read_settlement
from reconciliation.records import FileRejected
from reconciliation.settlement import DEFAULT_SETTLEMENT_LAYOUT, SETTLEMENT_COLUMNS, SettlementLayout
from tests.reconciliation.builders import SETTLEMENT_HEADER, settlement_row, write

README = Path(__file__).resolve().parents[2] / "reconciliation" / "README.md"


def _file(tmp_path: Path, *rows: str, name: str = "vnpay-20251015.csv") -> Path:
    return write(tmp_path, name, "\n".join([SETTLEMENT_HEADER, *rows]) + "\n")


def test_default_layout_with_fee_and_refund(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        settlement_row("14567890", "HS2025-000123-A1", 150_000, 1_650),
        settlement_row("14567891", "HS2025-000124-A1", 50_000, 550),
        settlement_row(
            "14567892", "HS2025-000123-A1", 150_000, 0, status="refund", at="2025-10-14T16:00:00Z"
        ),
    )
    result = read_settlement(path, "vnpay")
    assert result.source == "settlement:vnpay"
    assert result.headers == ()
    lines = list(result.lines())
    assert [(x.row, x.direction, x.status, x.gross, x.fee, x.net) for x in lines] == [
        (2, "credit", "success", 150_000, 1_650, 148_350),
        (3, "credit", "success", 50_000, 550, 49_450),
        (4, "debit", "refund", 150_000, 0, 150_000),
    ]
    first = lines[0]
    assert first.source == "settlement:vnpay"
    assert (first.provider_txn_id, first.our_reference, first.batch_id) == (
        "14567890",
        "HS2025-000123-A1",
        "B20251015",
    )
    assert first.booked_at == datetime(2025, 10, 14, 3, 15, tzinfo=UTC)
    assert first.value_date == date(2025, 10, 15)
    assert first.raw["status"] == "success"
    # 16:00 UTC is 23:00 in Hanoi, still the 14th.
    assert lines[2].business_date == date(2025, 10, 14)
    assert (result.total_credit, result.total_debit) == (200_000, 150_000)


def test_weekend_session_keeps_each_local_day(tmp_path: Path) -> None:
    # Saturday late evening and Sunday early morning (Hanoi time) settle together on Monday. Sunday
    # 06:30 +07:00 is Saturday 23:30 UTC: the business date must still say Sunday.
    path = _file(
        tmp_path,
        settlement_row("1", "R1", 10_000, at="2025-10-11T22:45:00+07:00", settled="2025-10-13"),
        settlement_row("2", "R2", 20_000, at="2025-10-12T06:30:00+07:00", settled="2025-10-13"),
        settlement_row("3", "R3", 30_000, at="2025-10-12T23:59:59+07:00", settled="2025-10-13"),
    )
    lines = list(read_settlement(path, "vnpay").lines())
    assert [x.business_date for x in lines] == [date(2025, 10, 11), date(2025, 10, 12), date(2025, 10, 12)]
    assert lines[1].booked_at == datetime(2025, 10, 11, 23, 30, tzinfo=UTC)
    assert {x.value_date for x in lines} == {date(2025, 10, 13)}


def test_identical_rows_are_both_kept(tmp_path: Path) -> None:
    row = settlement_row("14567890", "HS-1", 150_000, 1_650)
    lines = list(read_settlement(_file(tmp_path, row, row), "vnpay").lines())
    assert [x.row for x in lines] == [2, 3]
    assert lines[0].raw == lines[1].raw


def test_every_malformed_row_is_listed(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        settlement_row("1", "R1", 150_000, 1_650),
        settlement_row("2", "R2", 150_000, 1_650, net=148_000),
        settlement_row("3", "R3", 150_000, status="pending"),
        settlement_row("4", "R4", 150_000, at="2025-10-14T10:15:00"),
        settlement_row("5", "R5", 150_000, provider="momo"),
        settlement_row("6", "", 150_000),
        "vnpay,7,R7,150.000,0,150000,success,2025-10-14T10:15:00+07:00,2025-10-15,B",
        settlement_row("8", "R8", -5),
        settlement_row("9", "R9", 150_000, settled="15/10/2025"),
    )
    with pytest.raises(FileRejected) as caught:
        read_settlement(path, "vnpay")
    assert [(e.row, e.field) for e in caught.value.errors] == [
        (3, "net"),
        (4, "status"),
        (5, "transacted_at"),
        (6, "provider"),
        (7, "reference"),
        (8, "amount"),
        (9, "amount"),
        (10, "settlement_date"),
    ]
    reasons = {e.field: e.reason for e in caught.value.errors}
    assert reasons["net"] == "amount 150000 − fee 1650 = 148350, not 148000"
    assert "no UTC offset" in reasons["transacted_at"]


def test_missing_column_rejects_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "s.csv", SETTLEMENT_HEADER.replace(",batch_id", "") + "\n")
    with pytest.raises(FileRejected) as caught:
        read_settlement(path, "vnpay")
    (error,) = caught.value.errors
    assert (error.row, error.field) == (None, "header")
    assert SETTLEMENT_HEADER in error.reason


def test_header_only_file_is_an_empty_settlement(tmp_path: Path) -> None:
    result = read_settlement(_file(tmp_path), "vnpay")
    assert result.line_count == 0
    assert list(result.lines()) == []


def test_provider_mapping_overrides_the_layout(tmp_path: Path) -> None:
    layout = {
        "name": "vnpay-merchant-portal",
        "columns": {
            "provider_txn_id": "Mã GD VNPAY",
            "reference": "Mã tham chiếu",
            "amount": "Số tiền",
            "fee": "Phí",
            "status": "Trạng thái",
            "transacted_at": "Thời gian",
            "settlement_date": "Ngày đối soát",
        },
        "status_values": {"Thành công": "success", "Hoàn tiền": "refund"},
        "amount_scale": 100,
        "naive_timezone": "Asia/Ho_Chi_Minh",
        "datetime_formats": ["%d/%m/%Y %H:%M:%S"],
        "date_formats": ["%d/%m/%Y"],
        "delimiter": ";",
    }
    mapping = write(tmp_path, "vnpay.json", json.dumps(layout, ensure_ascii=False))
    text = (
        "Mã GD VNPAY;Mã tham chiếu;Số tiền;Phí;Trạng thái;Thời gian;Ngày đối soát\n"
        "14567890;HS-1;15000000;165000;THÀNH CÔNG;14/10/2025 10:15:00;15/10/2025\n"
        "14567891;HS-2;5000000;0;hoàn tiền;14/10/2025 23:30:00;15/10/2025\n"
        "14567892;HS-3;5000050;0;Thành công;14/10/2025 23:30:00;15/10/2025\n"
    )
    with pytest.raises(FileRejected) as caught:
        read_settlement(write(tmp_path, "s.csv", text), "vnpay", mapping)
    assert [(e.row, e.field) for e in caught.value.errors] == [(4, "amount")]  # 50 000,50 VND

    result = read_settlement(write(tmp_path, "s.csv", text.rsplit("14567892", 1)[0]), "vnpay", mapping)
    first, refund = result.lines()
    assert (first.gross, first.fee, first.net, first.status) == (150_000, 1_650, 148_350, "success")
    assert first.booked_at == datetime(2025, 10, 14, 3, 15, tzinfo=UTC)
    assert (refund.direction, refund.status, refund.business_date) == ("debit", "refund", date(2025, 10, 14))


def test_layout_validation() -> None:
    with pytest.raises(ValueError, match="missing"):
        SettlementLayout(columns={"amount": "a"})
    with pytest.raises(ValueError, match="success or refund"):
        SettlementLayout(status_values={"ok": "paid"})
    assert SettlementLayout.from_json(DEFAULT_SETTLEMENT_LAYOUT.to_json()) == DEFAULT_SETTLEMENT_LAYOUT


def test_settlement_xlsx(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(list(SETTLEMENT_COLUMNS))
    sheet.append(
        ["momo", "M1", "HS-1", 150000, 1500, 148500, "success", "2025-10-14T10:15:00+07:00", "2025-10-15", ""]
    )
    path = tmp_path / "momo.xlsx"
    workbook.save(path)
    (line,) = read_settlement(path, "MoMo").lines()
    assert (line.source, line.gross, line.fee, line.net, line.batch_id) == (
        "settlement:momo",
        150_000,
        1_500,
        148_500,
        None,
    )


def test_readme_documents_the_default_header() -> None:
    text = README.read_text(encoding="utf-8")
    assert re.search(rf"^{re.escape(SETTLEMENT_HEADER)}$", text, re.M)
    assert ",".join(SETTLEMENT_COLUMNS) == SETTLEMENT_HEADER
