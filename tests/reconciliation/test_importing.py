"""Entry points: format detection, file identity, re-import, a changed file, constant memory."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from pathlib import Path

import openpyxl
import pytest

from reconciliation.importing import detect_format, file_sha256, read_settlement, read_statement
from reconciliation.records import AlreadyImported, FileChanged, FileRejected
from tests.reconciliation.builders import DOC_EXAMPLE, SETTLEMENT_HEADER, Entry, camt, settlement_row, write


def test_detect_format(tmp_path: Path) -> None:
    assert detect_format(write(tmp_path, "a.xml", camt([Entry("1")]))) == "camt053"
    assert detect_format(write(tmp_path, "a.sta", DOC_EXAMPLE)) == "mt940"
    assert detect_format(write(tmp_path, "a.txt", "{1:F01X}{4:\n" + DOC_EXAMPLE + "-}")) == "mt940"
    assert detect_format(write(tmp_path, "a.csv", "Ngày giao dịch;Số tiền\n")) == "csv"
    workbook = openpyxl.Workbook()
    workbook.save(tmp_path / "a.bin")
    assert detect_format(tmp_path / "a.bin") == "xlsx"
    with pytest.raises(FileRejected, match="legacy .xls"):
        detect_format(write(tmp_path, "a.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100))
    with pytest.raises(FileRejected, match="PDF"):
        detect_format(write(tmp_path, "a.pdf", b"%PDF-1.7\n"))
    with pytest.raises(FileRejected, match="empty"):
        detect_format(write(tmp_path, "e.csv", "\n \n"))


def test_sha256_identifies_the_file_and_known_files_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "s.sta", DOC_EXAMPLE)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert file_sha256(path) == sha
    result = read_statement(path)
    assert result.file_sha256 == sha
    assert {line.file_sha256 for line in result.lines()} == {sha}

    with pytest.raises(AlreadyImported) as caught:
        read_statement(path, known_hashes={sha})
    assert caught.value.file_sha256 == sha
    # Identity is the content, not the name.
    copy = write(tmp_path, "other-name.txt", DOC_EXAMPLE)
    with pytest.raises(AlreadyImported):
        read_statement(copy, known_hashes={sha})
    assert read_statement(copy, known_hashes=set()).file_sha256 == sha


def test_lines_can_be_read_again_and_a_changed_file_is_caught(tmp_path: Path) -> None:
    path = write(tmp_path, "s.sta", DOC_EXAMPLE)
    result = read_statement(path)
    assert list(result.lines()) == list(result.lines())

    path.write_text(DOC_EXAMPLE.replace("NGUYEN VAN A", "SOMEONE ELSE"), encoding="utf-8")
    os.utime(path, ns=(1, 1))
    with pytest.raises(FileChanged):
        list(result.lines())


def test_mapping_is_for_tables_only(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="csv and xlsx"):
        read_statement(write(tmp_path, "s.sta", DOC_EXAMPLE), mapping=tmp_path / "m.json")
    with pytest.raises(ValueError, match="unknown statement format"):
        read_statement(write(tmp_path, "s.sta", DOC_EXAMPLE), format="ofx")
    with pytest.raises(ValueError, match="provider code"):
        read_settlement(write(tmp_path, "s.csv", SETTLEMENT_HEADER + "\n"), "../etc")


def test_error_list_is_capped_but_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("reconciliation.importing.MAX_LISTED_ERRORS", 5)
    rows = [settlement_row(str(n), f"R{n}", 100, status="unknown") for n in range(12)]
    with pytest.raises(FileRejected) as caught:
        read_settlement(write(tmp_path, "s.csv", "\n".join([SETTLEMENT_HEADER, *rows])), "vnpay")
    assert len(caught.value.errors) == 5
    assert caught.value.error_count == 12
    assert "and 9 more" in str(caught.value)


def test_streaming_a_large_settlement_file_keeps_memory_flat(tmp_path: Path) -> None:
    # 60 000 lines (~6 MB) already dwarf the 4 MB bound below if lines were kept; tracemalloc makes
    # every allocation slow, so a bigger file would only lengthen CI (bench/reconcile.py does 1M lines).
    rows = 60_000
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8") as fh:
        fh.write(SETTLEMENT_HEADER + "\n")
        for n in range(rows):
            fee = 1_100 if n % 7 else 0
            status = "refund" if n % 1000 == 999 else "success"
            fh.write(settlement_row(f"T{n:09d}", f"HS2025-{n:06d}-A1", 100_000, fee, status=status) + "\n")
    assert path.stat().st_size > 6_000_000

    tracemalloc.start()
    try:
        result = read_settlement(path, "vnpay")
        count = total = 0
        for line in result.lines():
            count += 1
            total += line.signed_net
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == result.line_count == rows
    assert result.total_debit == 60 * 100_000
    assert total != 0
    assert peak < 4 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
