"""camt.053 import: versions, batch split, balances, continuity, and XML attacks refused."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from reconciliation.camt053 import _Scanner, check_prolog
from reconciliation.importing import read_statement
from reconciliation.records import FileRejected, RowError
from tests.reconciliation.builders import (
    Entry,
    Tx,
    camt,
    camt_document,
    camt_statement,
    write,
)

SIMPLE = [
    Entry(
        "150000",
        ref="FT2528712345",
        txs=[
            Tx(
                amount="150000",
                e2e="HS2025-000123",
                ustrd="LE PHI HO SO HS2025-000123",
                debtor="NGUYEN VAN A",
            )
        ],
    ),
    Entry("3300", "DBIT", ref="FT2528712399", info="PHI DICH VU THANG 10"),
]


@pytest.mark.parametrize("version", [2, 3, 5, 6, 8])
def test_versions_02_to_08_read_alike(tmp_path: Path, version: int) -> None:
    path = write(tmp_path, "s.xml", camt(SIMPLE, version=version))
    result = read_statement(path)

    assert result.source == "camt053"
    header = result.header
    assert header is not None
    assert (header.opening_balance, header.closing_balance) == (125_000_000, 125_146_700)
    assert (header.total_credit, header.total_debit, header.entry_count) == (150_000, 3_300, 2)
    assert header.account == "0071000123456"
    assert header.opening_date == date(2025, 10, 13)
    credit, fee = list(result.lines())
    assert (credit.row, credit.sub_row, credit.direction, credit.gross, credit.net) == (
        1,
        0,
        "credit",
        150_000,
        150_000,
    )
    assert credit.end_to_end_id == "HS2025-000123"
    assert credit.bank_reference == "FT2528712345"
    assert credit.remittance == "LE PHI HO SO HS2025-000123"
    assert credit.counterparty == "NGUYEN VAN A"
    assert credit.business_date == date(2025, 10, 14)
    assert credit.status == "booked"
    assert credit.raw["Amt"] == "150000"
    assert credit.raw["NtryDtls/TxDtls/Refs/EndToEndId"] == "HS2025-000123"
    assert (fee.direction, fee.gross, fee.remittance) == ("debit", 3_300, "PHI DICH VU THANG 10")
    assert credit.file_sha256 == result.file_sha256 == fee.file_sha256


def test_other_namespaces_are_refused(tmp_path: Path) -> None:
    doc = camt(SIMPLE).replace("camt.053.001.08", "camt.054.001.08")
    with pytest.raises(FileRejected) as caught:
        read_statement(write(tmp_path, "s.xml", doc))
    assert "not a camt.053" in caught.value.errors[0].reason


def test_amount_with_two_zero_decimals_is_whole_vnd_and_a_fraction_is_refused(tmp_path: Path) -> None:
    ok = read_statement(write(tmp_path, "ok.xml", camt([Entry("58000.00")], closing=125_058_000)))
    assert [line.gross for line in ok.lines()] == [58_000]

    with pytest.raises(FileRejected) as caught:
        read_statement(write(tmp_path, "bad.xml", camt([Entry("58000.50")], closing=125_058_000)))
    assert caught.value.errors == [RowError(1, "Amt", "VND has no minor unit: 58000.50")]


def test_batch_booking_is_split_into_its_transactions(tmp_path: Path) -> None:
    batch = Entry(
        "450000",
        ref="FT-BATCH-1",
        batch=("3", "450000"),
        batch_id="PMTINF-77",
        txs=[
            Tx(amount="150000", indicator="CRDT", e2e="HS-1", ustrd="LE PHI HS-1"),
            Tx(amount="200000", indicator="CRDT", e2e="HS-2", ustrd="LE PHI HS-2"),
            Tx(amount="100000", indicator="CRDT", e2e="HS-3", creditor_ref="HS-3"),
        ],
    )
    result = read_statement(write(tmp_path, "batch.xml", camt([batch])))

    lines = list(result.lines())
    assert [(x.row, x.sub_row, x.gross, x.end_to_end_id) for x in lines] == [
        (1, 1, 150_000, "HS-1"),
        (1, 2, 200_000, "HS-2"),
        (1, 3, 100_000, "HS-3"),
    ]
    assert {x.batch_id for x in lines} == {"PMTINF-77"}
    assert lines[2].our_reference == "HS-3"
    assert len({x.key for x in lines}) == 3
    # Each split line carries only its own transaction in its raw row (OCA #157: not the entry total).
    assert lines[1].raw["NtryDtls/TxDtls/Amt"] == "200000"
    assert "NtryDtls/TxDtls/Amt[2]" not in lines[1].raw
    assert result.header is not None
    assert result.header.total_credit == 450_000


def test_batch_whose_transactions_do_not_add_up_is_rejected(tmp_path: Path) -> None:
    batch = Entry(
        "450000",
        batch=("3", "450000"),
        txs=[
            Tx(amount="150000", e2e="HS-1"),
            Tx(amount="200000", e2e="HS-2"),
            Tx(amount="90000", e2e="HS-3"),
        ],
    )
    with pytest.raises(FileRejected) as caught:
        read_statement(write(tmp_path, "batch.xml", camt([batch])))
    assert [(e.row, e.field) for e in caught.value.errors] == [(1, "NtryDtls/TxDtls/Amt")]
    assert "440.000 ≠ entry amount 450.000" in caught.value.errors[0].reason


def test_batch_count_and_missing_transaction_amount_are_row_errors(tmp_path: Path) -> None:
    batch = Entry("300000", batch=("3", None), txs=[Tx(amount="150000"), Tx(e2e="no amount")])
    with pytest.raises(FileRejected) as caught:
        read_statement(write(tmp_path, "batch.xml", camt([batch])))
    fields = [e.field for e in caught.value.errors]
    assert fields == ["NtryDtls[1]/Btch/NbOfTxs", "NtryDtls/TxDtls[2]/Amt"]


def test_broken_continuity_rejects_the_statement(tmp_path: Path) -> None:
    path = write(tmp_path, "s.xml", camt(SIMPLE, closing=125_146_000))
    with pytest.raises(FileRejected) as caught:
        read_statement(path)
    (error,) = caught.value.errors
    assert error.row is None
    assert error.field.endswith("/Bal[CLBD]")
    assert "= 125.146.700 ≠ closing 125.146.000" in error.reason


def test_missing_balances_are_reported(tmp_path: Path) -> None:
    doc = camt(SIMPLE).replace("<Cd>CLBD</Cd>", "<Cd>CLAV</Cd>")
    with pytest.raises(FileRejected) as caught:
        read_statement(write(tmp_path, "s.xml", doc))
    assert [e.reason for e in caught.value.errors] == ["no closing balance (CLBD)"]


def test_previously_closed_balance_counts_as_opening(tmp_path: Path) -> None:
    doc = camt_document([camt_statement(SIMPLE, opening_code="PRCD")])
    result = read_statement(write(tmp_path, "s.xml", doc))
    assert result.header is not None
    assert result.header.opening_balance == 125_000_000


def test_all_row_errors_are_listed_not_just_the_first(tmp_path: Path) -> None:
    entries = [
        Entry("150000.50"),
        Entry("1000"),
        Entry("2000", "XXXX"),
        Entry("3000", booking=None, value=None),
        Entry("4000", currency="USD"),
    ]
    with pytest.raises(FileRejected) as caught:
        read_statement(write(tmp_path, "s.xml", camt(entries, closing=0)))
    assert [(e.row, e.field) for e in caught.value.errors] == [
        (1, "Amt"),
        (3, "CdtDbtInd"),
        (4, "BookgDt"),
        (5, "Amt"),
    ]


def test_pending_entries_are_kept_but_not_counted(tmp_path: Path) -> None:
    entries = [Entry("150000"), Entry("999", status="PDNG", ref="FT-PEND")]
    result = read_statement(write(tmp_path, "s.xml", camt(entries)))
    assert [line.status for line in result.lines()] == ["booked", "pending"]
    assert result.header is not None
    assert result.header.closing_balance == 125_150_000
    assert result.total_credit == 150_000


def test_booking_time_gives_utc_instant_and_local_business_date(tmp_path: Path) -> None:
    # 06:30 on Sunday in Hanoi is still Saturday in UTC: the business date is Sunday.
    entry = Entry("150000", booking_dttm="2025-10-12T06:30:00+07:00", value="2025-10-13")
    (line,) = read_statement(write(tmp_path, "s.xml", camt([entry]))).lines()
    assert line.booked_at == datetime(2025, 10, 11, 23, 30, tzinfo=UTC)
    assert line.business_date == date(2025, 10, 12)
    assert line.value_date == date(2025, 10, 13)


def test_reversal_is_flagged(tmp_path: Path) -> None:
    entries = [Entry("150000"), Entry("150000", "DBIT", reversal=True, ref="FT-RV")]
    lines = list(read_statement(write(tmp_path, "s.xml", camt(entries))).lines())
    assert [(x.direction, x.reversal) for x in lines] == [("credit", False), ("debit", True)]


def test_two_statements_in_one_file(tmp_path: Path) -> None:
    first = camt_statement([Entry("1000")], stmt_id="S1")
    second = camt_statement([Entry("2000"), Entry("500", "DBIT")], stmt_id="S2", opening=125_001_000)
    result = read_statement(write(tmp_path, "s.xml", camt_document([first, second])))
    assert [h.statement_id for h in result.headers] == ["S1", "S2"]
    assert result.header is None
    assert [(x.row, x.statement_id) for x in result.lines()] == [(1, "S1"), (2, "S2"), (3, "S2")]


def test_identical_entries_are_both_kept(tmp_path: Path) -> None:
    twin = Entry("150000", ref="FT-SAME", txs=[Tx(e2e="HS-1", ustrd="LE PHI")])
    lines = list(read_statement(write(tmp_path, "s.xml", camt([twin, twin]))).lines())
    assert len(lines) == 2
    assert lines[0].key != lines[1].key
    assert lines[0].gross == lines[1].gross


def test_truncated_xml_is_rejected(tmp_path: Path) -> None:
    doc = camt(SIMPLE)
    with pytest.raises(FileRejected) as caught:
        read_statement(write(tmp_path, "s.xml", doc[: len(doc) // 2]))
    assert caught.value.errors[-1].field == "xml"


# -- XML attacks: nothing is ever expanded or fetched ------------------------------------------------

BILLION_LAUGHS = """<!DOCTYPE Document [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
"""
XXE = '<!DOCTYPE Document [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'


def _attack(prolog: str, entity: str) -> str:
    return camt_document([camt_statement([Entry("150000", info=entity)])], prolog=prolog)


def test_entity_bomb_is_rejected_without_expanding(tmp_path: Path) -> None:
    path = write(tmp_path, "bomb.xml", _attack(BILLION_LAUGHS, "&lol9;"))
    started = time.perf_counter()
    with pytest.raises(FileRejected) as caught:
        read_statement(path)
    assert time.perf_counter() - started < 2
    assert [e.field for e in caught.value.errors] == ["xml"]
    assert "DOCTYPE" in caught.value.errors[0].reason
    assert "lollol" not in str(caught.value)


def test_external_entity_is_rejected_without_reading_it(tmp_path: Path) -> None:
    path = write(tmp_path, "xxe.xml", _attack(XXE, "&xxe;"))
    with pytest.raises(FileRejected) as caught:
        read_statement(path)
    assert "DOCTYPE" in caught.value.errors[0].reason
    assert "root:" not in str(caught.value)


@pytest.mark.parametrize("prolog", [BILLION_LAUGHS, XXE])
def test_parser_refuses_a_dtd_even_past_the_prolog_check(tmp_path: Path, prolog: str) -> None:
    # Second line of defence: with the byte-level check bypassed, lxml (entities unresolved, no DTD
    # loading, no network) still reports the DOCTYPE and nothing reaches a line.
    path = write(tmp_path, "bomb.xml", _attack(prolog, "&lol9;" if "lol" in prolog else "&xxe;"))
    with path.open("rb") as fh:
        events = list(_Scanner("0" * 64).run(fh))
    assert events == [RowError(None, "xml", "DOCTYPE/ENTITY declarations are refused")]


@pytest.mark.parametrize(
    ("head", "problem"),
    [
        (b'<?xml version="1.0"?><!-- a comment --><Document/>', None),
        (b"\xef\xbb\xbf<Document/>", None),
        (b"<!-- <!DOCTYPE inside a comment is harmless --><Document/>", None),
        (b'<?xml version="1.0"?>\n<!DOCTYPE x SYSTEM "http://evil/x.dtd"><Document/>', "DOCTYPE"),
        (b'<?xml version="1.0" encoding="UTF-16"?><Document/>', "encoding"),
        (b"\xff\xfe<\x00D\x00", "not UTF-8"),
        (b"<\x00!\x00", "not UTF-8"),
        (b"   ", "no root"),
    ],
)
def test_prolog_check(head: bytes, problem: str | None) -> None:
    reason = check_prolog(head)
    if problem is None:
        assert reason is None
    else:
        assert reason is not None
        assert problem in reason
