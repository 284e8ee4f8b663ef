"""ISO 20022 camt.053 (Bank-to-Customer Statement, versions 001.02 to 001.08), streamed.

reconciliation.md §2.1 and §2.3: there is no dependable camt library, so this is a small parser on
``lxml.etree.iterparse``. It matches elements by local name inside the one namespace the document
declares (so V02..V08 all work), reads amounts as Decimal and insists they are whole VND, splits
batch bookings into their ``TxDtls`` with the Σ check OCA/bank-statement-import#157 lacked, and checks
``opening + Σ booked entries == closing`` per statement.

Hardening follows defusedxml's rules (no DTD, no entities, no network). ``defusedxml.lxml`` itself is
deprecated and warns on import, so the same rules are applied here: the prolog is scanned before
lxml sees a byte and any ``<!DOCTYPE``/``<!ENTITY`` rejects the file, then the parser runs with
entity resolution, DTD loading and network access off and libxml2's size limits on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, BinaryIO

from lxml import etree

from gateway.domain.money import format_vnd
from reconciliation.money import AmountError, parse_decimal_vnd
from reconciliation.records import (
    Direction,
    LineStatus,
    RowError,
    ScanEvent,
    StatementHeader,
    StatementLine,
)
from reconciliation.timeutil import business_date_of, to_utc

__all__ = ["NAMESPACES", "SOURCE", "check_prolog", "scan_camt053"]

SOURCE = "camt053"

NAMESPACES: frozenset[str] = frozenset(
    f"urn:iso:std:iso:20022:tech:xsd:camt.053.001.{version:02d}" for version in range(2, 9)
)

#: The XML declaration, comments and whitespace before the root element must fit in this much.
PROLOG_LIMIT = 64 * 1024

# defusedxml's forbid_dtd / forbid_entities / forbid_external, expressed as libxml2 options; the
# prolog check below already refused any DTD, these are the second line of defence.
_PARSER_OPTIONS: dict[str, Any] = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "attribute_defaults": False,
    "huge_tree": False,
    "remove_comments": True,
    "remove_pis": True,
}

_STATUS: dict[str, LineStatus] = {"BOOK": "booked", "PDNG": "pending", "INFO": "info", "FUTR": "future"}
_DIRECTION: dict[str, Direction] = {"CRDT": "credit", "DBIT": "debit"}
_ENCODING_DECL = re.compile(rb"""encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_ISO_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})(?:Z|[+-]\d{2}:\d{2})?")
_NAME_START = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_:")


def check_prolog(head: bytes) -> str | None:
    """Why the start of an XML file is refused, or None when it may be parsed.

    Only an XML declaration, comments, processing instructions and whitespace may come before the
    root element; ``<!`` anything else there is a DOCTYPE, which is where entity bombs and external
    entities live, so it is refused before any parser expands it. The encoding must be UTF-8 (ISO
    20022 messages are UTF-8), which also keeps this byte-level scan honest: a UTF-16 document could
    hide a DOCTYPE from it.
    """
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    i, n = 0, len(head)
    while True:
        while i < n and head[i] in b" \t\r\n":
            i += 1
        if i >= n:
            return "no root element" if n < PROLOG_LIMIT - 3 else "prolog longer than 64 KiB"
        if head.startswith(b"<?", i):
            end = head.find(b"?>", i + 2)
            if end < 0:
                return "unterminated processing instruction"
            declared = _ENCODING_DECL.search(head, i, end)
            if head.startswith(b"<?xml", i) and declared and declared.group(1).lower() not in (b"utf-8", b"utf8"):
                return f"encoding {declared.group(1).decode()} refused: ISO 20022 messages are UTF-8"
            i = end + 2
        elif head.startswith(b"<!--", i):
            end = head.find(b"-->", i + 4)
            if end < 0:
                return "unterminated comment"
            i = end + 3
        elif head.startswith(b"<!", i):
            return "DOCTYPE/ENTITY declarations are refused (no DTD, no entities, no network)"
        elif head[i] == ord("<") and i + 1 < n and head[i + 1] in _NAME_START:
            return None
        else:
            return "content before the root element is not UTF-8 XML"


def scan_camt053(path: Path, *, file_sha256: str) -> Iterator[ScanEvent]:
    """Yield the file's lines, each statement's header after its lines, and every error found."""
    with path.open("rb") as fh:
        reason = check_prolog(fh.read(PROLOG_LIMIT))
        if reason is not None:
            yield RowError(None, "xml", reason)
            return
        fh.seek(0)
        yield from _Scanner(file_sha256).run(fh)


@dataclass
class _Statement:
    number: int
    stmt_id: str | None = None
    sequence: str | None = None
    account: str | None = None
    currency: str | None = None
    period_start: date | None = None
    period_end: date | None = None
    opening: tuple[int, date | None, str] | None = None  # (signed amount, date, code)
    closing: tuple[int, date | None] | None = None
    summary_credit: int | None = None
    summary_debit: int | None = None
    credit: int = 0
    debit: int = 0
    count: int = 0
    unreadable: bool = False  # an entry's amount could not be read: continuity would only add noise
    errors: list[RowError] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"Stmt[{self.number}]" + (f" {self.stmt_id}" if self.stmt_id else "")


def _local(tag: object) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _release(elem: Any) -> None:
    """Drop a processed element and its earlier siblings so memory stays flat (lxml FAQ idiom)."""
    elem.clear(keep_tail=False)
    parent = elem.getparent()
    if parent is not None:
        while elem.getprevious() is not None:
            del parent[0]


class _Scanner:
    def __init__(self, file_sha256: str) -> None:
        self.sha = file_sha256
        self.ns = ""
        self.entry_no = 0
        self.stmt_no = 0
        self._paths: dict[str, str] = {}

    # -- element helpers: paths are written with local names and qualified once, here --------------
    def _q(self, path: str) -> str:
        qualified = self._paths.get(path)
        if qualified is None:
            qualified = "/".join(f"{{{self.ns}}}{part}" for part in path.split("/"))
            self._paths[path] = qualified
        return qualified

    def find(self, elem: Any, path: str) -> Any:
        return elem.find(self._q(path))

    def text(self, elem: Any, *paths: str) -> str | None:
        """Stripped text of the first of ``paths`` that is present and non-empty."""
        for path in paths:
            found = elem.find(self._q(path))
            if found is not None and found.text and found.text.strip():
                return str(found.text).strip()
        return None

    # -- main loop ---------------------------------------------------------------------------------
    def run(self, fh: BinaryIO) -> Iterator[ScanEvent]:
        stmt: _Statement | None = None
        t_stmt = t_grphdr = ""
        try:
            for _event, elem in etree.iterparse(fh, events=("end",), **_PARSER_OPTIONS):
                if not self.ns:
                    problem = self._check_root(elem)
                    if problem is not None:
                        yield problem
                        return
                    t_stmt, t_grphdr = self._q("Stmt"), self._q("GrpHdr")
                parent = elem.getparent()
                if parent is None:
                    continue
                if parent.tag == t_stmt:
                    if stmt is None:
                        self.stmt_no += 1
                        stmt = _Statement(self.stmt_no)
                    yield from self._statement_child(stmt, elem)
                    _release(elem)
                elif elem.tag == t_stmt:
                    if stmt is None:
                        self.stmt_no += 1
                        stmt = _Statement(self.stmt_no)
                    yield from self._finish(stmt)
                    stmt = None
                    _release(elem)
                elif elem.tag == t_grphdr:
                    _release(elem)
        except etree.XMLSyntaxError as exc:
            yield RowError(None, "xml", f"not well-formed XML: {exc}")
            return
        if self.stmt_no == 0:
            yield RowError(None, "Stmt", "the file holds no statement")

    def _check_root(self, elem: Any) -> RowError | None:
        tree = elem.getroottree()
        if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
            return RowError(None, "xml", "DOCTYPE/ENTITY declarations are refused")
        root = tree.getroot()
        qname = etree.QName(root)
        if qname.localname != "Document" or qname.namespace not in NAMESPACES:
            return RowError(
                None,
                "xml",
                f"not a camt.053.001.02-08 document (root {{{qname.namespace}}}{qname.localname})",
            )
        self.ns = str(qname.namespace)
        return None

    def _statement_child(self, stmt: _Statement, elem: Any) -> Iterator[ScanEvent]:
        name = _local(elem.tag)
        if name == "Ntry":
            yield from self._entry(stmt, elem)
        elif name == "Bal":
            self._balance(stmt, elem)
        elif name == "Id":
            stmt.stmt_id = (elem.text or "").strip() or None
        elif name in ("ElctrncSeqNb", "LglSeqNb") and stmt.sequence is None:
            stmt.sequence = (elem.text or "").strip() or None
        elif name == "Acct":
            stmt.account = self.text(elem, "Id/IBAN", "Id/Othr/Id")
            stmt.currency = self.text(elem, "Ccy")
        elif name == "FrToDt":
            stmt.period_start = self._day(self.text(elem, "FrDtTm"))
            stmt.period_end = self._day(self.text(elem, "ToDtTm"))
        elif name == "TxsSummry":
            stmt.summary_credit = self._summary(stmt, elem, "TtlCdtNtries/Sum")
            stmt.summary_debit = self._summary(stmt, elem, "TtlDbtNtries/Sum")

    @staticmethod
    def _day(text: str | None) -> date | None:
        if text is None:
            return None
        try:
            return business_date_of(to_utc(datetime.fromisoformat(text)))
        except ValueError:
            return None

    def _summary(self, stmt: _Statement, elem: Any, path: str) -> int | None:
        text = self.text(elem, path)
        if text is None:
            return None
        try:
            return parse_decimal_vnd(text)
        except AmountError as exc:
            stmt.errors.append(RowError(None, f"{stmt.label}/TxsSummry/{path}", str(exc)))
            return None

    # -- balances ----------------------------------------------------------------------------------
    def _balance(self, stmt: _Statement, elem: Any) -> None:
        code = self.text(elem, "Tp/CdOrPrtry/Cd", "Tp/CdOrPrtry/Prtry") or ""
        if code not in ("OPBD", "PRCD", "CLBD"):
            return  # ITBD, CLAV, FWAV... are not part of the continuity check (§2.1)
        where = f"{stmt.label}/Bal[{code}]"
        amount_el = self.find(elem, "Amt")
        try:
            amount = parse_decimal_vnd(amount_el.text or "" if amount_el is not None else "")
        except AmountError as exc:
            stmt.errors.append(RowError(None, f"{where}/Amt", str(exc)))
            return
        currency = amount_el.get("Ccy") if amount_el is not None else None
        if currency != "VND":
            stmt.errors.append(RowError(None, f"{where}/Amt", f"currency {currency} is not VND"))
            return
        indicator = self.text(elem, "CdtDbtInd")
        if indicator not in _DIRECTION:
            stmt.errors.append(RowError(None, f"{where}/CdtDbtInd", f"expected CRDT or DBIT, got {indicator}"))
            return
        signed = amount if indicator == "CRDT" else -amount
        when = self._day(self.text(elem, "Dt/DtTm")) or self._date(self.text(elem, "Dt/Dt"))
        if code == "CLBD":
            stmt.closing = (signed, when)
        elif stmt.opening is None or code == "OPBD":  # OPBD wins over PRCD when a bank sends both
            stmt.opening = (signed, when, code)

    @staticmethod
    def _date(text: str | None) -> date | None:
        if text is None:
            return None
        match = _ISO_DATE.fullmatch(text)
        if match is None:
            return None
        try:
            return date.fromisoformat(match.group(1))
        except ValueError:
            return None

    def _when(self, elem: Any, path: str) -> tuple[datetime | None, date | None] | str:
        """(instant, day) of a camt ``DateAndDateTimeChoice``; a reason string when unreadable."""
        if self.find(elem, path) is None:
            return (None, None)
        if (text := self.text(elem, f"{path}/DtTm")) is not None:
            try:
                # A camt time without offset is the bank's local time; our banks are in Vietnam.
                instant = to_utc(datetime.fromisoformat(text))
            except ValueError:
                return f"not an ISO date-time: {text!r}"
            return (instant, business_date_of(instant))
        text = self.text(elem, f"{path}/Dt")
        day = self._date(text)
        if day is None:
            return f"not an ISO date: {text!r}"
        return (None, day)

    # -- entries -----------------------------------------------------------------------------------
    def _entry(self, stmt: _Statement, ntry: Any) -> Iterator[ScanEvent]:
        self.entry_no += 1
        row = self.entry_no
        errors: list[RowError] = []
        amount = self._amount(ntry, "Amt", row, "Amt", errors)
        if amount is None:
            stmt.unreadable = True
        indicator = self.text(ntry, "CdtDbtInd")
        direction = _DIRECTION.get(indicator or "")
        if direction is None:
            errors.append(RowError(row, "CdtDbtInd", f"expected CRDT or DBIT, got {indicator}"))
            stmt.unreadable = True
        # V02-V05 write <Sts>BOOK</Sts>, V06+ <Sts><Cd>BOOK</Cd></Sts>.
        code = self.text(ntry, "Sts/Cd", "Sts/Prtry", "Sts") or ""
        status = _STATUS.get(code)
        if status is None:
            errors.append(RowError(row, "Sts", f"unknown entry status {code!r}"))
        booking = self._when(ntry, "BookgDt")
        value = self._when(ntry, "ValDt")
        for name, got in (("BookgDt", booking), ("ValDt", value)):
            if isinstance(got, str):
                errors.append(RowError(row, name, got))
        booked_at: datetime | None = None
        business_date: date | None = None
        value_date = value[1] if isinstance(value, tuple) else None
        if isinstance(booking, tuple):
            booked_at, business_date = booking
        business_date = business_date or value_date
        if business_date is None and not isinstance(booking, str):
            errors.append(RowError(row, "BookgDt", "the entry has neither a booking nor a value date"))

        parts = self._split(ntry, row, amount, direction, errors)

        if amount is not None and direction is not None and status == "booked":
            stmt.count += 1
            if direction == "credit":
                stmt.credit += amount
            else:
                stmt.debit += amount
        if errors:
            yield from errors
            return
        assert amount is not None and direction is not None and status is not None
        assert business_date is not None
        reversal = (self.text(ntry, "RvslInd") or "").lower() == "true"
        entry_raw = _flatten(ntry, skip="NtryDtls")
        for sub_row, (tx, part_amount, part_direction, dtls) in enumerate(parts, start=1 if len(parts) > 1 else 0):
            raw = dict(entry_raw)
            if dtls is not None:
                raw.update(_flatten(dtls, prefix="NtryDtls/", skip="TxDtls"))
            if tx is not None:
                raw.update(_flatten(tx, prefix="NtryDtls/TxDtls/"))
            yield self._line(
                stmt,
                ntry,
                tx,
                dtls,
                row=row,
                sub_row=sub_row,
                amount=part_amount,
                direction=part_direction,
                status=status,
                reversal=reversal,
                booked_at=booked_at,
                business_date=business_date,
                value_date=value_date,
                split=len(parts) > 1,
                raw=raw,
            )

    def _amount(self, elem: Any, path: str, row: int, where: str, errors: list[RowError]) -> int | None:
        amount_el = self.find(elem, path)
        if amount_el is None:
            errors.append(RowError(row, where, "missing"))
            return None
        try:
            amount = parse_decimal_vnd(amount_el.text or "")
        except AmountError as exc:
            errors.append(RowError(row, where, str(exc)))
            return None
        currency = amount_el.get("Ccy")
        if currency != "VND":
            # contract.md §4: VND only; another currency has minor units we would silently drop.
            errors.append(RowError(row, where, f"currency {currency} is not VND"))
            return None
        return amount

    def _split(
        self,
        ntry: Any,
        row: int,
        amount: int | None,
        direction: Direction | None,
        errors: list[RowError],
    ) -> list[tuple[Any, int, Direction, Any]]:
        """One part per ``TxDtls`` of a batch entry, with Σ parts == entry amount (§2.1 pitfall).

        An entry with zero or one ``TxDtls`` stays one line carrying the entry amount; a batch with
        several becomes one line per transaction carrying that transaction's own amount.
        """
        details = ntry.findall(self._q("NtryDtls"))
        txs = [(tx, dtls) for dtls in details for tx in dtls.findall(self._q("TxDtls"))]
        for n, dtls in enumerate(details, start=1):
            batch = self.find(dtls, "Btch")
            declared = self.text(batch, "NbOfTxs") if batch is not None else None
            count = len(dtls.findall(self._q("TxDtls")))
            if declared is not None and count and declared != str(count):
                errors.append(
                    RowError(row, f"NtryDtls[{n}]/Btch/NbOfTxs", f"says {declared}, the entry lists {count}")
                )
            if batch is not None and amount is not None and self.find(batch, "TtlAmt") is not None:
                total = self._amount(batch, "TtlAmt", row, f"NtryDtls[{n}]/Btch/TtlAmt", errors)
                if total is not None and len(details) == 1 and total != amount:
                    errors.append(
                        RowError(
                            row,
                            f"NtryDtls[{n}]/Btch/TtlAmt",
                            f"batch total {format_vnd(total)} ≠ entry amount {format_vnd(amount)}",
                        )
                    )
        if amount is None or direction is None:
            return []
        if len(txs) <= 1:
            tx, dtls = txs[0] if txs else (None, details[0] if details else None)
            if tx is not None:
                own = self._tx_amount(tx, row, 1, errors, required=False)
                if own is not None and own != amount:
                    errors.append(
                        RowError(
                            row,
                            "NtryDtls/TxDtls/Amt",
                            f"transaction amount {format_vnd(own)} ≠ entry amount {format_vnd(amount)}",
                        )
                    )
            return [(tx, amount, direction, dtls)]
        parts: list[tuple[Any, int, Direction, Any]] = []
        total = 0
        for n, (tx, dtls) in enumerate(txs, start=1):
            own = self._tx_amount(tx, row, n, errors, required=True)
            indicator = self.text(tx, "CdtDbtInd")
            own_direction = _DIRECTION.get(indicator or "", direction) if indicator else direction
            if indicator and indicator not in _DIRECTION:
                errors.append(RowError(row, f"NtryDtls/TxDtls[{n}]/CdtDbtInd", f"expected CRDT or DBIT, got {indicator}"))
            if own is None:
                continue
            total += own if own_direction == direction else -own
            parts.append((tx, own, own_direction, dtls))
        if len(parts) == len(txs) and total != amount:
            errors.append(
                RowError(
                    row,
                    "NtryDtls/TxDtls/Amt",
                    f"Σ of {len(txs)} transactions {format_vnd(total)} ≠ entry amount {format_vnd(amount)}",
                )
            )
        return parts

    def _tx_amount(self, tx: Any, row: int, n: int, errors: list[RowError], *, required: bool) -> int | None:
        # V03+ carry TxDtls/Amt; V02 only AmtDtls (TxAmt, else InstdAmt) (§2.1).
        for path in ("Amt", "AmtDtls/TxAmt/Amt", "AmtDtls/InstdAmt/Amt"):
            if self.find(tx, path) is not None:
                return self._amount(tx, path, row, f"NtryDtls/TxDtls[{n}]/{path}", errors)
        if required:
            errors.append(RowError(row, f"NtryDtls/TxDtls[{n}]/Amt", "a batch transaction needs its own amount"))
        return None

    def _line(
        self,
        stmt: _Statement,
        ntry: Any,
        tx: Any,
        dtls: Any,
        *,
        row: int,
        sub_row: int,
        amount: int,
        direction: Direction,
        status: LineStatus,
        reversal: bool,
        booked_at: datetime | None,
        business_date: date,
        value_date: date | None,
        split: bool,
        raw: dict[str, str],
    ) -> StatementLine:
        end_to_end = our_ref = counterparty = remittance = tx_ref = None
        if tx is not None:
            end_to_end = self.text(tx, "Refs/EndToEndId")
            if end_to_end == "NOTPROVIDED":  # the ISO placeholder for "no id" is not an id
                end_to_end = None
            tx_ref = self.text(tx, "Refs/AcctSvcrRef")
            our_ref = self.text(tx, "RmtInf/Strd/CdtrRefInf/Ref")
            party = "Dbtr" if direction == "credit" else "Cdtr"
            counterparty = self.text(tx, f"RltdPties/{party}/Nm", f"RltdPties/{party}/Pty/Nm")
            ustrd = [str(u.text).strip() for u in tx.findall(self._q("RmtInf/Ustrd")) if u.text and u.text.strip()]
            remittance = " ".join(ustrd) or self.text(tx, "AddtlTxInf")
        remittance = remittance or self.text(ntry, "AddtlNtryInf")
        batch_id = None
        batch = self.find(dtls, "Btch") if dtls is not None else None
        if split or batch is not None:
            batch_id = (
                (self.text(batch, "PmtInfId", "MsgId") if batch is not None else None)
                or self.text(ntry, "AcctSvcrRef", "NtryRef")
                or f"entry-{row}"
            )
        return StatementLine(
            source=SOURCE,
            file_sha256=self.sha,
            row=row,
            sub_row=sub_row,
            account=stmt.account,
            statement_id=stmt.stmt_id,
            direction=direction,
            gross=amount,
            net=amount,
            currency="VND",
            booked_at=booked_at,
            business_date=business_date,
            value_date=value_date,
            bank_reference=tx_ref or self.text(ntry, "AcctSvcrRef"),
            end_to_end_id=end_to_end,
            our_reference=our_ref,
            batch_id=batch_id,
            counterparty=counterparty,
            remittance=remittance,
            status=status,
            reversal=reversal,
            raw=raw,
        )

    # -- end of statement --------------------------------------------------------------------------
    def _finish(self, stmt: _Statement) -> Iterator[ScanEvent]:
        errors = stmt.errors
        if stmt.currency not in (None, "VND"):
            errors.append(RowError(None, f"{stmt.label}/Acct/Ccy", f"currency {stmt.currency} is not VND"))
        if stmt.opening is None:
            errors.append(RowError(None, f"{stmt.label}/Bal", "no opening balance (OPBD or PRCD)"))
        if stmt.closing is None:
            errors.append(RowError(None, f"{stmt.label}/Bal", "no closing balance (CLBD)"))
        if stmt.opening is not None and stmt.closing is not None and not stmt.unreadable:
            opening, closing = stmt.opening[0], stmt.closing[0]
            expected = opening + stmt.credit - stmt.debit
            if expected != closing:
                # §5.3c: a statement that does not add up is rejected whole.
                errors.append(
                    RowError(
                        None,
                        f"{stmt.label}/Bal[CLBD]",
                        f"opening {format_vnd(opening)} + credits {format_vnd(stmt.credit)} − debits "
                        f"{format_vnd(stmt.debit)} = {format_vnd(expected)} ≠ closing {format_vnd(closing)}",
                    )
                )
            for name, declared, counted in (
                ("TtlCdtNtries/Sum", stmt.summary_credit, stmt.credit),
                ("TtlDbtNtries/Sum", stmt.summary_debit, stmt.debit),
            ):
                if declared is not None and declared != counted:
                    errors.append(
                        RowError(
                            None,
                            f"{stmt.label}/TxsSummry/{name}",
                            f"says {format_vnd(declared)}, the entries add up to {format_vnd(counted)}",
                        )
                    )
        if errors:
            yield from errors
            return
        assert stmt.opening is not None and stmt.closing is not None
        yield StatementHeader(
            source=SOURCE,
            file_sha256=self.sha,
            statement_id=stmt.stmt_id,
            account=stmt.account,
            currency="VND",
            opening_balance=stmt.opening[0],
            closing_balance=stmt.closing[0],
            opening_date=stmt.opening[1],
            closing_date=stmt.closing[1],
            period_start=stmt.period_start,
            period_end=stmt.period_end,
            sequence=stmt.sequence,
            entry_count=stmt.count,
            total_credit=stmt.credit,
            total_debit=stmt.debit,
        )


def _flatten(elem: Any, *, prefix: str = "", skip: str | None = None) -> dict[str, str]:
    """Leaf texts and attributes by local-name path: the raw row of a camt entry (§5.2 "raw row")."""
    out: dict[str, str] = {}

    def put(key: str, value: str) -> None:
        if key in out:
            n = 2
            while f"{key}[{n}]" in out:
                n += 1
            key = f"{key}[{n}]"
        out[key] = value

    def walk(node: Any, path: str) -> None:
        for child in node:
            name = _local(child.tag)
            if not name or (skip is not None and node is elem and name == skip):
                continue
            child_path = f"{path}{name}"
            for attr, value in child.attrib.items():
                put(f"{child_path}@{_local(attr)}", str(value))
            if len(child):
                walk(child, child_path + "/")
            else:
                put(child_path, (child.text or "").strip())

    walk(elem, prefix)
    return out
