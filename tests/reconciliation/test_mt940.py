"""MT940 import: year of the entry date across Dec/Jan, :86: remittance, balances, many statements."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from reconciliation.importing import read_statement
from reconciliation.mt940 import resolve_entry_date
from reconciliation.records import FileRejected
from tests.reconciliation.builders import DOC_EXAMPLE, write

# A statement over the new year: opened 30 Dec 2025, closed 2 Jan 2026. The :61: entry dates carry
# no year; 1231 belongs to 2025 and 0102 to 2026, including the line whose value date is still 2025.
DEC_JAN = """\
:20:STMT20260102
:25:0071000123456
:28C:00001/001
:60F:C251230VND1000000,
:61:2512311231C100000,NTRFHS-1//FT-1
:86:LE PHI HS-1
:61:2601020102C200000,NTRFHS-2//FT-2
:86:LE PHI HS-2
:61:2512310102D50000,NCHGNONREF//FT-3
:86:PHI
:62F:C260102VND1250000,
"""


def test_reads_the_documented_example(tmp_path: Path) -> None:
    result = read_statement(write(tmp_path, "s.sta", DOC_EXAMPLE))
    assert result.source == "mt940"
    header = result.header
    assert header is not None
    assert (header.opening_balance, header.closing_balance) == (125_000_000, 125_146_700)
    assert header.account == "0071000123456"
    assert header.statement_id == "STMT20251014/00287/001"
    credit, fee = result.lines()
    assert credit.row == 5  # the line of its :61:
    assert (credit.direction, credit.gross, credit.end_to_end_id, credit.bank_reference) == (
        "credit",
        150_000,
        "HS2025-000123",
        "FT2528712345",
    )
    assert credit.remittance == "LE PHI HO SO HS2025-000123 NGUYEN VAN A"
    assert credit.raw["61"] == "2510141014C150000,NTRFHS2025-000123//FT2528712345"
    assert (fee.direction, fee.gross, fee.end_to_end_id) == ("debit", 3_300, None)
    assert type(credit.value_date) is date


def test_december_january_statement_gets_the_right_years(tmp_path: Path) -> None:
    result = read_statement(write(tmp_path, "s.sta", DEC_JAN))
    lines = list(result.lines())
    assert [(x.business_date, x.value_date) for x in lines] == [
        (date(2025, 12, 31), date(2025, 12, 31)),
        (date(2026, 1, 2), date(2026, 1, 2)),
        (date(2026, 1, 2), date(2025, 12, 31)),
    ]
    assert result.header is not None
    assert result.header.closing_date == date(2026, 1, 2)


@pytest.mark.parametrize(
    ("mmdd", "value", "opening", "closing", "expected"),
    [
        ("1231", date(2026, 1, 2), date(2025, 12, 30), date(2026, 1, 2), date(2025, 12, 31)),
        ("0102", date(2025, 12, 31), date(2025, 12, 30), date(2026, 1, 2), date(2026, 1, 2)),
        ("1230", date(2026, 1, 1), None, None, date(2025, 12, 30)),
        ("0102", date(2025, 12, 31), None, None, date(2026, 1, 2)),
        ("1014", date(2025, 10, 14), date(2025, 10, 13), date(2025, 10, 14), date(2025, 10, 14)),
        ("0229", date(2028, 2, 29), None, None, date(2028, 2, 29)),
    ],
)
def test_resolve_entry_date(
    mmdd: str, value: date, opening: date | None, closing: date | None, expected: date
) -> None:
    assert resolve_entry_date(mmdd, value, opening, closing) == expected


def test_broken_balance_is_rejected(tmp_path: Path) -> None:
    broken = DOC_EXAMPLE.replace(":62F:C251014VND125146700,", ":62F:C251014VND125146000,")
    with pytest.raises(FileRejected) as caught:
        read_statement(write(tmp_path, "s.sta", broken))
    (error,) = caught.value.errors
    assert (error.row, error.field) == (9, ":62F:")
    assert "= 125.146.700 ≠ closing 125.146.000" in error.reason


def test_every_bad_line_is_listed(tmp_path: Path) -> None:
    bad = (
        DOC_EXAMPLE.replace(":61:2510141014C150000,", ":61:2510141014C150000,50")
        .replace(":61:2510141014D3300,NCHG", ":61:garbage")
        .replace(":60F:C251013VND", ":60F:C251013USD")
    )
    with pytest.raises(FileRejected) as caught:
        read_statement(write(tmp_path, "s.sta", bad))
    assert [(e.row, e.field) for e in caught.value.errors] == [(4, ":60F:"), (5, ":61:"), (7, ":61:")]
    assert "VND has no minor unit" in caught.value.errors[1].reason


def test_missing_closing_balance_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(FileRejected) as caught:
        read_statement(write(tmp_path, "s.sta", DOC_EXAMPLE.replace(":62F:C251014VND125146700,\n", "")))
    assert caught.value.errors[0].reason == "missing closing balance"


def test_several_statements_in_an_envelope(tmp_path: Path) -> None:
    second = (
        DOC_EXAMPLE.replace("STMT20251014", "STMT20251015")
        .replace(":60F:C251013VND125000000,", ":60F:C251014VND125146700,")
        .replace(":62F:C251014VND125146700,", ":62F:C251015VND125293400,")
        .replace("2510141014", "2510151015")
    )
    text = "{1:F01BANKVNVXAXXX0000000000}{2:O9400000000000BANKVNVXAXXX00000000000000000000N}{4:\n"
    text += DOC_EXAMPLE + "-}\n" + "{1:F01BANKVNVXAXXX0000000000}{4:\n" + second + "-}\n"
    result = read_statement(write(tmp_path, "s.sta", text))
    assert [h.statement_id for h in result.headers] == ["STMT20251014/00287/001", "STMT20251015/00287/001"]
    lines = list(result.lines())
    assert [x.business_date for x in lines] == [date(2025, 10, 14)] * 2 + [date(2025, 10, 15)] * 2
    assert len({x.key for x in lines}) == 4


def test_multiline_86_and_statement_level_86(tmp_path: Path) -> None:
    wrapped = "X" * 65
    text = (
        DOC_EXAMPLE.replace(
            ":86:LE PHI HO SO HS2025-000123 NGUYEN VAN A",
            f":86:{wrapped}\nHS2025-000123 LE PHI\nNGUYEN VAN A",
        )
        + ":86:SO DU CUOI NGAY\n"
    )
    credit, fee = read_statement(write(tmp_path, "s.sta", text)).lines()
    # A full 65-character line was wrapped mid-word; a shorter one ended a phrase.
    assert credit.remittance == f"{wrapped}HS2025-000123 LE PHI NGUYEN VAN A"
    assert fee.remittance == "PHI DICH VU THANG 10"  # the statement's :86: is not glued to the last line


def test_reversal_marks(tmp_path: Path) -> None:
    text = DOC_EXAMPLE.replace("2510141014D3300,NCHG", "2510141014RC3300,NCHG")
    lines = list(read_statement(write(tmp_path, "s.sta", text)).lines())
    assert [(x.direction, x.reversal) for x in lines] == [("credit", False), ("debit", True)]


def test_identical_lines_are_both_kept(tmp_path: Path) -> None:
    line = ":61:2510141014C150000,NTRFHS-1//FT-1\n:86:LE PHI HS-1\n"
    text = ":20:S\n:25:0071000123456\n:28C:1/1\n:60F:C251013VND0,\n" + line * 2 + ":62F:C251014VND300000,\n"
    lines = list(read_statement(write(tmp_path, "s.sta", text)).lines())
    assert [x.row for x in lines] == [5, 7]
    assert lines[0].raw["61"] == lines[1].raw["61"]
