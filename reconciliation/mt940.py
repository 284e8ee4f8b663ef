"""SWIFT MT940 customer statements, read with the ``mt-940`` package (reconciliation.md §2.2, §2.3).

The file is streamed statement by statement (a statement starts at ``:20:``), so memory is bounded
by the largest statement, not the file. Each tag is handed to ``mt940.models.Transactions.parse``
on its own, which keeps the package's field grammar and Decimal amounts while letting us report
*every* bad line with its line number instead of stopping at the first.

Three things are done here rather than by the package:

* the entry date's year. ``:61:`` carries the entry date as MMDD with no year, the classic MT940 bug
  (§4 "MT940 year guess"). The year is taken from the statement's own dates, the ``:60F:`` and
  ``:62F:`` balance dates: the entry date must fall inside the statement period, so a statement
  running from 30 Dec to 2 Jan books ``1231`` in the old year and ``0102`` in the new one;
* ``:86:`` is attached to the ``:61:`` right before it and kept as the remittance text; a ``:86:``
  elsewhere describes the statement (the package would glue it onto the last transaction);
* balance continuity, ``opening + Σ lines == closing``, else the statement is rejected (§5.3c).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from mt940.models import Transactions
from mt940.options import Options

from gateway.domain.money import format_vnd
from reconciliation.money import AmountError, decimal_to_vnd
from reconciliation.records import Direction, RowError, ScanEvent, StatementHeader, StatementLine

__all__ = ["SOURCE", "resolve_entry_date", "scan_mt940"]

SOURCE = "mt940"

_TAG = re.compile(r"^:(?P<tag>[0-9]{2}[A-Z]?|NS):(?P<value>.*)$")
# Tags fed to the package. Others (:21:, :34F:, :13D:, :64:, :65:, :90C:, :NS:...) are kept in the
# raw text only: they do not move the balance.
_PARSED = frozenset({"20", "25", "28", "28C", "60F", "60M", "60", "61", "62F", "62M", "62"})
_OPENING = ("final_opening_balance", "intermediate_opening_balance", "opening_balance")
_CLOSING = ("final_closing_balance", "intermediate_closing_balance", "closing_balance")
# C credit, D debit, RC reversal of a credit (money leaves), RD reversal of a debit (money returns).
_MARKS: dict[str, tuple[Direction, bool]] = {
    "C": ("credit", False),
    "D": ("debit", False),
    "RC": ("debit", True),
    "RD": ("credit", True),
}
_SWIFT_LINE = 65  # :86: is 6*65x; a line of exactly 65 characters was wrapped, not ended


@dataclass
class _Tag:
    tag: str
    line: int
    lines: list[str]

    @property
    def value(self) -> str:
        return "\n".join(self.lines)


@dataclass
class _Block:
    """One statement's tags, in order, as read from the file."""

    tags: list[_Tag] = field(default_factory=list)


@dataclass(frozen=True)
class _Context:
    statement_id: str | None
    sequence: str | None
    account: str | None
    opening_amount: int | None
    closing_amount: int | None
    opening_date: date | None
    closing_date: date | None


def _find(block: _Block, names: tuple[str, ...]) -> _Tag | None:
    return next((t for t in block.tags if t.tag in names), None)


def resolve_entry_date(mmdd: str, value_date: date, opening: date | None, closing: date | None) -> date:
    """The full entry date for a ``:61:`` MMDD, using the statement's own period.

    Candidate years come from the value date and the balance dates; the candidate that lies inside
    ``[opening date, closing date]`` wins, otherwise the one nearest the value date (entries of a
    statement lie in its period; the value date may be back- or forward-dated across a weekend).
    """
    month, day = int(mmdd[:2]), int(mmdd[2:])
    years = {value_date.year - 1, value_date.year, value_date.year + 1}
    years |= {d.year for d in (opening, closing) if d is not None}
    candidates = []
    for year in sorted(years):
        try:
            candidates.append(date(year, month, day))
        except ValueError:  # 29 Feb in a common year
            continue
    if not candidates:
        raise ValueError(f"no such entry date {mmdd}")
    if opening is not None and closing is not None:
        inside = [c for c in candidates if opening <= c <= closing]
        if inside:
            return min(inside, key=lambda c: abs((c - value_date).days))
    return min(candidates, key=lambda c: abs((c - value_date).days))


def scan_mt940(path: Path, *, file_sha256: str, encoding: str = "utf-8-sig") -> Iterator[ScanEvent]:
    """Yield every statement's lines, then its header, and every error found (row = file line)."""
    scanner = _Scanner(file_sha256)
    block = _Block()
    line_no = 0
    try:
        with path.open(encoding=encoding, newline=None) as fh:
            for line_no, raw_line in enumerate(fh, start=1):
                line = raw_line.rstrip("\r\n")
                # Block 4 may come wrapped in its envelope: "{1:...}{2:...}{4:" ... "-}" (§2.2).
                if line.startswith("{"):
                    start = line.find("{4:")
                    if start < 0:
                        continue
                    line = line[start + 3 :]
                    if not line.strip():
                        continue
                if line.strip() in ("-", "-}") or line.startswith("-}"):
                    if block.tags:
                        yield from scanner.statement(block)
                    block = _Block()
                    continue
                match = _TAG.match(line)
                if match is not None:
                    if match["tag"] == "20" and any(t.tag == "20" for t in block.tags):
                        yield from scanner.statement(block)
                        block = _Block()
                    block.tags.append(_Tag(match["tag"], line_no, [match["value"]]))
                elif not line.strip():
                    continue
                elif block.tags:
                    block.tags[-1].lines.append(line)  # continuation of a multi-line field
                else:
                    yield RowError(line_no, "mt940", "text outside any tag")
    except UnicodeDecodeError as exc:
        yield RowError(line_no + 1, "encoding", f"not {encoding}: {exc.reason}")
        return
    if block.tags:
        yield from scanner.statement(block)
    if scanner.statements == 0:
        yield RowError(None, "mt940", "the file holds no statement (no :20: tag)")


class _Scanner:
    def __init__(self, file_sha256: str) -> None:
        self.sha = file_sha256
        self.statements = 0

    def statement(self, block: _Block) -> Iterator[ScanEvent]:
        self.statements += 1
        errors: list[RowError] = []
        trs, entries = self._parse_tags(block, errors)
        ctx = self._context(trs, block, errors)
        lines: list[StatementLine] = []
        total_credit = total_debit = 0
        unreadable = False
        for tag, data, remittance in entries:
            line = self._line(tag, data, remittance, errors, ctx)
            if line is None:
                unreadable = True
                continue
            if line.direction == "credit":
                total_credit += line.gross
            else:
                total_debit += line.gross
            lines.append(line)
        opening, closing = ctx.opening_amount, ctx.closing_amount
        if opening is not None and closing is not None and not unreadable:
            expected = opening + total_credit - total_debit
            if expected != closing:
                tag = _find(block, ("62F", "62M", "62")) or block.tags[-1]
                errors.append(
                    RowError(
                        tag.line,
                        f":{tag.tag}:",
                        f"statement {ctx.statement_id or self.statements}: opening {format_vnd(opening)}"
                        f" + credits {format_vnd(total_credit)} − debits {format_vnd(total_debit)}"
                        f" = {format_vnd(expected)} ≠ closing {format_vnd(closing)}",
                    )
                )
        if errors or opening is None or closing is None:
            yield from errors
            return
        # A statement is bounded (one day's bookings), so its lines are held until it checks out.
        yield from lines
        yield StatementHeader(
            source=SOURCE,
            file_sha256=self.sha,
            statement_id=ctx.statement_id,
            account=ctx.account,
            currency="VND",
            opening_balance=opening,
            closing_balance=closing,
            opening_date=ctx.opening_date,
            closing_date=ctx.closing_date,
            sequence=ctx.sequence,
            entry_count=len(lines),
            total_credit=total_credit,
            total_debit=total_debit,
        )

    @staticmethod
    def _parse_tags(
        block: _Block, errors: list[RowError]
    ) -> tuple[Transactions, list[tuple[_Tag, dict[str, Any], list[str]]]]:
        """Feed the tags to the package one by one; pair each :61: with the :86: right after it."""
        trs = Transactions(options=Options(case_insensitive_marks=True))
        entries: list[tuple[_Tag, dict[str, Any], list[str]]] = []  # (tag, parsed :61:, remittance)
        previous = ""
        for tag in block.tags:
            if tag.tag == "86":
                if previous == "61" and entries:
                    entries[-1][2].extend(tag.lines)
                # else: a :86: about the whole statement, not about a line
            elif tag.tag in _PARSED:
                try:
                    trs.parse(f":{tag.tag}:{tag.value}")
                except (RuntimeError, ValueError, ArithmeticError, KeyError, TypeError) as exc:
                    errors.append(RowError(tag.line, f":{tag.tag}:", _reason(exc, tag.value)))
                    previous = ""
                    continue
                if tag.tag == "61":
                    # Taken out at once: the package merges a :61: without a type code into the
                    # next one, so each is read on its own.
                    entries.append((tag, dict(trs.transactions[-1].data), []))
                    trs.transactions.clear()
            previous = tag.tag
        return trs, entries

    def _context(self, trs: Transactions, block: _Block, errors: list[RowError]) -> _Context:
        ref = trs.data.get("transaction_reference")
        if ref is None:
            errors.append(RowError(block.tags[0].line, ":20:", "statement without a :20: reference"))
        number = trs.data.get("statement_number")
        sequence = f"{number}/{trs.data['sequence_number']}" if trs.data.get("sequence_number") else number
        opening = next((trs.data[k] for k in _OPENING if k in trs.data), None)
        closing = next((trs.data[k] for k in _CLOSING if k in trs.data), None)
        return _Context(
            statement_id=f"{ref}/{sequence}" if ref and sequence else ref,
            sequence=sequence,
            account=trs.data.get("account_identification"),
            opening_amount=self._balance(opening, _find(block, ("60F", "60M", "60")), block, ":60F:", errors),
            closing_amount=self._balance(closing, _find(block, ("62F", "62M", "62")), block, ":62F:", errors),
            opening_date=_plain(opening.date) if opening is not None else None,
            closing_date=_plain(closing.date) if closing is not None else None,
        )

    @staticmethod
    def _balance(
        balance: Any, tag_found: _Tag | None, block: _Block, tag: str, errors: list[RowError]
    ) -> int | None:
        line = tag_found.line if tag_found is not None else block.tags[0].line
        if tag_found is not None:
            tag = f":{tag_found.tag}:"
        if balance is None:
            errors.append(
                RowError(line, tag, f"missing {'opening' if tag == ':60F:' else 'closing'} balance")
            )
            return None
        amount = balance.amount
        if amount.currency != "VND":
            errors.append(RowError(line, tag, f"currency {amount.currency} is not VND"))
            return None
        try:
            return decimal_to_vnd(Decimal(amount.amount))
        except AmountError as exc:
            errors.append(RowError(line, tag, str(exc)))
            return None

    def _line(
        self,
        tag: _Tag,
        data: dict[str, Any],
        remittance: list[str],
        errors: list[RowError],
        ctx: _Context,
    ) -> StatementLine | None:
        mark = str(data.get("status") or "").upper()
        if mark not in _MARKS:
            errors.append(RowError(tag.line, ":61:", f"unknown debit/credit mark {mark!r}"))
            return None
        direction, reversal = _MARKS[mark]
        try:
            gross = abs(decimal_to_vnd(Decimal(data["amount"].amount)))
        except AmountError as exc:
            errors.append(RowError(tag.line, ":61:", str(exc)))
            return None
        currency = data.get("currency")
        if currency not in (None, "VND"):
            errors.append(RowError(tag.line, ":61:", f"currency {currency} is not VND"))
            return None
        value_date = _plain(data["date"])
        # The entry date is the 4 digits after the 6-digit value date, when present (§2.2 grammar).
        mmdd = tag.lines[0][6:10]
        business_date = value_date
        if mmdd.isdigit():
            try:
                business_date = resolve_entry_date(mmdd, value_date, ctx.opening_date, ctx.closing_date)
            except ValueError as exc:
                errors.append(RowError(tag.line, ":61:", str(exc)))
                return None
        customer_ref = (data.get("customer_reference") or "").strip()
        text = _join_swift_lines(remittance)
        raw = {"line": str(tag.line), "61": tag.value}
        if remittance:
            raw["86"] = "\n".join(remittance)
        if ctx.statement_id:
            raw["20"] = ctx.statement_id
        return StatementLine(
            source=SOURCE,
            file_sha256=self.sha,
            row=tag.line,
            account=ctx.account,
            statement_id=ctx.statement_id,
            direction=direction,
            gross=gross,
            net=gross,
            currency="VND",
            business_date=business_date,
            value_date=value_date,
            bank_reference=(data.get("bank_reference") or "").strip() or None,
            end_to_end_id=customer_ref if customer_ref and customer_ref.upper() != "NONREF" else None,
            remittance=text or (data.get("extra_details") or "").strip() or None,
            status="booked",
            reversal=reversal,
            raw=raw,
        )


def _plain(day: date) -> date:
    """The package's ``Date`` subclass as a plain ``datetime.date`` (for storage adapters)."""
    return date(day.year, day.month, day.day)


def _join_swift_lines(lines: list[str]) -> str:
    """``:86:`` lines as one text: a full 65-character line was wrapped mid-word, a shorter one ended."""
    out = ""
    for i, line in enumerate(lines):
        if i and len(lines[i - 1]) < _SWIFT_LINE:
            out += " "
        out += line
    return " ".join(out.split())


def _reason(exc: BaseException, value: str) -> str:
    if isinstance(exc, RuntimeError):
        return f"does not follow the MT940 grammar: {value!r}"
    return f"{type(exc).__name__}: {exc}"
