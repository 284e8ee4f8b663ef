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
            if (
                head.startswith(b"<?xml", i)
                and declared
                and declared.group(1).lower() not in (b"utf-8", b"utf8")
            ):
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

    def text(self, elem: Any, *paths: str) -> str | None:
        """Stripped text of the first of ``paths`` that is present and non-empty."""
        for path in paths:
            found = elem.find(self._q(path))
            if found is not None and found.text and found.text.strip():
                return str(found.text).strip()
        return None

    # -- main loop ---------------------------------------------------------------------------------
    def run(self, fh: BinaryIO) -> Iterator[ScanEvent]:
        problem = self._check_root(fh)
        if problem is not None:
            yield problem
            return
        stmt: _Statement | None = None
        t_stmt, t_grphdr = self._q("Stmt"), self._q("GrpHdr")
        # Only the statement's own children raise events (libxml2 still builds the rest, which is
        # released with its parent): a per-element Python callback would cost more than the parse.
        wanted = [self._q(name) for name in (*_STATEMENT_CHILDREN, "Stmt", "GrpHdr")]
        try:
            for _event, elem in etree.iterparse(fh, events=("end",), tag=wanted, **_PARSER_OPTIONS):
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

    def _check_root(self, fh: BinaryIO) -> RowError | None:
        """Read up to the root element's start tag: refuse a DTD and any root but a camt.053 Document."""
        try:
            root = next(
                (elem for _event, elem in etree.iterparse(fh, events=("start",), **_PARSER_OPTIONS)),
                None,
            )
        except etree.XMLSyntaxError as exc:
            return RowError(None, "xml", f"not well-formed XML: {exc}")
        finally:
            fh.seek(0)
        if root is None:
            return RowError(None, "xml", "no root element")
        docinfo = root.getroottree().docinfo
        if docinfo.doctype or docinfo.internalDTD is not None:
            return RowError(None, "xml", "DOCTYPE/ENTITY declarations are refused")
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
            stmt.period_start = _day(self.text(elem, "FrDtTm"))
            stmt.period_end = _day(self.text(elem, "ToDtTm"))
        elif name == "TxsSummry":
            stmt.summary_credit = self._summary(stmt, elem, "TtlCdtNtries/Sum")
            stmt.summary_debit = self._summary(stmt, elem, "TtlDbtNtries/Sum")

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
        bal = _flatten(elem)
        code = _get(bal, "Tp/CdOrPrtry/Cd", "Tp/CdOrPrtry/Prtry") or ""
        if code not in ("OPBD", "PRCD", "CLBD"):
            return  # ITBD, CLAV, FWAV... are not part of the continuity check (§2.1)
        where = f"{stmt.label}/Bal[{code}]"
        errors: list[RowError] = []
        amount = _amount(bal, "Amt", None, f"{where}/Amt", errors)
        indicator = _get(bal, "CdtDbtInd")
        if indicator not in _DIRECTION:
            errors.append(RowError(None, f"{where}/CdtDbtInd", f"expected CRDT or DBIT, got {indicator}"))
        if errors or amount is None:
            stmt.errors.extend(errors)
            return
        signed = amount if indicator == "CRDT" else -amount
        when = _day(_get(bal, "Dt/DtTm")) or _date(_get(bal, "Dt/Dt"))
        if code == "CLBD":
            stmt.closing = (signed, when)
        elif stmt.opening is None or code == "OPBD":  # OPBD wins over PRCD when a bank sends both
            stmt.opening = (signed, when, code)

    # -- entries -----------------------------------------------------------------------------------
    def _entry(self, stmt: _Statement, ntry: Any) -> Iterator[ScanEvent]:
        """One ``Ntry``: read once into flat path -> text maps, which also are the raw rows."""
        self.entry_no += 1
        row = self.entry_no
        errors: list[RowError] = []
        entry = _flatten(ntry, skip="NtryDtls")
        details = [
            (_flatten(dtls, skip="TxDtls"), [_flatten(tx) for tx in dtls.iterchildren(self._q("TxDtls"))])
            for dtls in ntry.iterchildren(self._q("NtryDtls"))
        ]
        amount = _amount(entry, "Amt", row, "Amt", errors)
        if amount is None:
            stmt.unreadable = True
        indicator = _get(entry, "CdtDbtInd")
        direction = _DIRECTION.get(indicator or "")
        if direction is None:
            errors.append(RowError(row, "CdtDbtInd", f"expected CRDT or DBIT, got {indicator}"))
            stmt.unreadable = True
        # V02-V05 write <Sts>BOOK</Sts>, V06+ <Sts><Cd>BOOK</Cd></Sts>.
        code = _get(entry, "Sts/Cd", "Sts/Prtry", "Sts") or ""
        status = _STATUS.get(code)
        if status is None:
            errors.append(RowError(row, "Sts", f"unknown entry status {code!r}"))
            stmt.unreadable = True  # booked or not is unknown, so the balance check cannot be done
        booking = _when(entry, "BookgDt")
        value = _when(entry, "ValDt")
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

        parts = _split(details, row, amount, direction, errors)

        if amount is not None and direction is not None and status == "booked":
            stmt.count += 1
            if direction == "credit":
                stmt.credit += amount
            else:
                stmt.debit += amount
        if errors or amount is None or direction is None or status is None or business_date is None:
            yield from errors
            return
        split = len(parts) > 1
        for sub_row, part in enumerate(parts, start=1 if split else 0):
            raw = dict(entry)
            if part.details is not None:
                raw.update({f"NtryDtls/{k}": v for k, v in part.details.items()})
            if part.tx is not None:
                raw.update({f"NtryDtls/TxDtls/{k}": v for k, v in part.tx.items()})
            yield self._line(
                stmt,
                entry,
                part,
                row=row,
                sub_row=sub_row,
                status=status,
                booked_at=booked_at,
                business_date=business_date,
                value_date=value_date,
                split=split,
                raw=raw,
            )

    def _line(
        self,
        stmt: _Statement,
        entry: Flat,
        part: _Part,
        *,
        row: int,
        sub_row: int,
        status: LineStatus,
        booked_at: datetime | None,
        business_date: date,
        value_date: date | None,
        split: bool,
        raw: dict[str, str],
    ) -> StatementLine:
        tx = part.tx or {}
        end_to_end = _get(tx, "Refs/EndToEndId")
        if end_to_end == "NOTPROVIDED":  # the ISO placeholder for "no id" is not an id
            end_to_end = None
        party = "Dbtr" if part.direction == "credit" else "Cdtr"
        ustrd = [tx[k] for k in _repeated(tx, "RmtInf/Ustrd") if tx[k]]
        details = part.details or {}
        batch_id = None
        if split or any(k.startswith("Btch/") for k in details):
            batch_id = _get(details, "Btch/PmtInfId", "Btch/MsgId") or _get(entry, "AcctSvcrRef", "NtryRef")
            batch_id = batch_id or f"entry-{row}"
        return StatementLine(
            source=SOURCE,
            file_sha256=self.sha,
            row=row,
            sub_row=sub_row,
            account=stmt.account,
            statement_id=stmt.stmt_id,
            direction=part.direction,
            gross=part.amount,
            net=part.amount,
            currency="VND",
            booked_at=booked_at,
            business_date=business_date,
            value_date=value_date,
            bank_reference=_get(tx, "Refs/AcctSvcrRef") or _get(entry, "AcctSvcrRef"),
            end_to_end_id=end_to_end,
            our_reference=_get(tx, "RmtInf/Strd/CdtrRefInf/Ref"),
            batch_id=batch_id,
            counterparty=_get(tx, f"RltdPties/{party}/Nm", f"RltdPties/{party}/Pty/Nm"),
            remittance=" ".join(ustrd) or _get(tx, "AddtlTxInf") or _get(entry, "AddtlNtryInf"),
            status=status,
            reversal=(_get(entry, "RvslInd") or "").lower() == "true",
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
        if errors or stmt.opening is None or stmt.closing is None:
            yield from errors
            return
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


Flat = dict[str, str]

#: Children of ``Stmt`` the scanner reads (reconciliation.md §2.1 tree).
_STATEMENT_CHILDREN = ("Id", "ElctrncSeqNb", "LglSeqNb", "Acct", "FrToDt", "Bal", "TxsSummry", "Ntry")


@dataclass(frozen=True)
class _Part:
    """What one line of an entry is made of: its TxDtls (if any) and its own amount."""

    details: Flat | None
    tx: Flat | None
    amount: int
    direction: Direction


def _flatten(elem: Any, *, skip: str | None = None) -> Flat:
    """Leaf texts and attributes by local-name path: the raw row of a camt entry (§5.2 "raw row").

    A repeated path gets a ``[2]``, ``[3]``... suffix, so nothing is lost and the first occurrence
    keeps the plain path.
    """
    out: Flat = {}

    def put(key: str, value: str) -> None:
        if key in out:
            n = 2
            while f"{key}[{n}]" in out:
                n += 1
            key = f"{key}[{n}]"
        out[key] = value

    def walk(node: Any, path: str, top: bool) -> None:
        # Hot path (every element of every entry): comments and PIs are stripped by the parser and
        # a DTD is refused, so every child is an element with a string tag.
        for child in node:
            name = child.tag.rpartition("}")[2]
            if top and name == skip:
                continue
            child_path = path + name
            for attr, value in child.items():
                put(f"{child_path}@{attr.rpartition('}')[2]}", str(value))
            if len(child):
                walk(child, child_path + "/", False)
            else:
                text = child.text
                put(child_path, text.strip() if text else "")

    walk(elem, "", True)
    return out


def _get(flat: Flat, *keys: str) -> str | None:
    """The first non-empty value among ``keys``."""
    for key in keys:
        value = flat.get(key)
        if value:
            return value
    return None


def _repeated(flat: Flat, key: str) -> Iterator[str]:
    """``key``, ``key[2]``, ``key[3]``... as long as they are present."""
    if key in flat:
        yield key
        n = 2
        while f"{key}[{n}]" in flat:
            yield f"{key}[{n}]"
            n += 1


def _amount(flat: Flat, key: str, row: int | None, where: str, errors: list[RowError]) -> int | None:
    text = flat.get(key)
    if text is None:
        errors.append(RowError(row, where, "missing"))
        return None
    try:
        amount = parse_decimal_vnd(text)
    except AmountError as exc:
        errors.append(RowError(row, where, str(exc)))
        return None
    currency = flat.get(f"{key}@Ccy")
    if currency != "VND":
        # contract.md §4: VND only; another currency has minor units we would silently drop.
        errors.append(RowError(row, where, f"currency {currency} is not VND"))
        return None
    return amount


def _split(
    details: list[tuple[Flat, list[Flat]]],
    row: int,
    amount: int | None,
    direction: Direction | None,
    errors: list[RowError],
) -> list[_Part]:
    """One part per ``TxDtls`` of a batch entry, with Σ parts == entry amount (§2.1 pitfall).

    An entry with zero or one ``TxDtls`` stays one line carrying the entry amount; a batch with
    several becomes one line per transaction carrying that transaction's own amount.
    """
    for n, (dtls, txs) in enumerate(details, start=1):
        declared = dtls.get("Btch/NbOfTxs")
        if declared is not None and txs and declared != str(len(txs)):
            errors.append(
                RowError(row, f"NtryDtls[{n}]/Btch/NbOfTxs", f"says {declared}, the entry lists {len(txs)}")
            )
        if amount is not None and "Btch/TtlAmt" in dtls:
            total = _amount(dtls, "Btch/TtlAmt", row, f"NtryDtls[{n}]/Btch/TtlAmt", errors)
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
    pairs = [(d, t) for d, t_list in details for t in t_list]
    if len(pairs) <= 1:
        only_details, only_tx = pairs[0] if pairs else (details[0][0] if details else None, None)
        if only_tx is not None:
            own = _tx_amount(only_tx, row, 1, errors, required=False)
            if own is not None and own != amount:
                errors.append(
                    RowError(
                        row,
                        "NtryDtls/TxDtls/Amt",
                        f"transaction amount {format_vnd(own)} ≠ entry amount {format_vnd(amount)}",
                    )
                )
        return [_Part(only_details, only_tx, amount, direction)]
    parts: list[_Part] = []
    total = 0
    for n, (part_details, part_tx) in enumerate(pairs, start=1):
        own = _tx_amount(part_tx, row, n, errors, required=True)
        indicator = part_tx.get("CdtDbtInd")
        own_direction = _DIRECTION.get(indicator or "", direction)
        if indicator and indicator not in _DIRECTION:
            errors.append(
                RowError(row, f"NtryDtls/TxDtls[{n}]/CdtDbtInd", f"expected CRDT or DBIT, got {indicator}")
            )
        if own is None:
            continue
        total += own if own_direction == direction else -own
        parts.append(_Part(part_details, part_tx, own, own_direction))
    if len(parts) == len(pairs) and total != amount:
        errors.append(
            RowError(
                row,
                "NtryDtls/TxDtls/Amt",
                f"Σ of {len(pairs)} transactions {format_vnd(total)} ≠ entry amount {format_vnd(amount)}",
            )
        )
    return parts


def _tx_amount(tx: Flat, row: int, n: int, errors: list[RowError], *, required: bool) -> int | None:
    # V03+ carry TxDtls/Amt; V02 only AmtDtls (TxAmt, else InstdAmt) (§2.1).
    for key in ("Amt", "AmtDtls/TxAmt/Amt", "AmtDtls/InstdAmt/Amt"):
        if key in tx:
            return _amount(tx, key, row, f"NtryDtls/TxDtls[{n}]/{key}", errors)
    if required:
        errors.append(RowError(row, f"NtryDtls/TxDtls[{n}]/Amt", "a batch transaction needs its own amount"))
    return None


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


def _day(text: str | None) -> date | None:
    """The Vietnam day of an ISO date-time (no offset = Vietnam time), None when unreadable."""
    if text is None:
        return None
    try:
        return business_date_of(to_utc(datetime.fromisoformat(text)))
    except ValueError:
        return None


def _when(flat: Flat, path: str) -> tuple[datetime | None, date | None] | str:
    """(instant, day) of a camt ``DateAndDateTimeChoice``; a reason string when unreadable."""
    if (text := flat.get(f"{path}/DtTm")) is not None:
        try:
            # A camt time without offset is the bank's local time; our banks are in Vietnam.
            instant = to_utc(datetime.fromisoformat(text))
        except ValueError:
            return f"not an ISO date-time: {text!r}"
        return (instant, business_date_of(instant))
    if (text := flat.get(f"{path}/Dt")) is not None:
        day = _date(text)
        return f"not an ISO date: {text!r}" if day is None else (None, day)
    if any(key.startswith(path) for key in flat):
        return f"{path} has neither Dt nor DtTm"
    return (None, None)
