"""Levels (b) and bank: statement lines ↔ provider payouts and ↔ single payments (the matching ladder).

Each candidate statement line (booked, in the run's window) ends in exactly one item. Credits climb
the ladder, rung by rung over all lines, in a fixed order (business date, file, row, sub-row), and
each rung records itself as the item's ``rule``:

1. ``batch_id`` — a provider payout's batch id appears in the remittance text (as a whole word, case
   and diacritics ignored): the credit must equal Σgross − Σfee − Σrefund of that batch's settlement
   lines (contract §9, level b), else ``amount_mismatch``;
2. ``exact_reference`` — the line's end-to-end id / creditor reference *is* an attempt reference;
3. ``remittance_reference`` — an attempt reference appears in the remittance text;
4. ``remittance_dossier`` — a dossier code appears in the remittance text;
5. ``batch_amount_window`` — a payout of exactly this amount settles within ±N business days;
6. ``amount_date_window`` — a paid bank-transfer attempt of exactly this amount, paid within ±N
   business days (nearest first, then earliest; identical legitimate lines pair with distinct
   attempts);
7. otherwise ``unexpected_in_statement`` (money with no dossier).

A reference or dossier code that names an order the gateway holds as unpaid is a
``status_conflict`` — or ``matched`` when the line confirms that order's open bank-transfer attempt
(same amount), which is then paid through the normal transition (``apply_notification``, source
``reconciliation``). Debits are matched to refunds made by bank transfer (a debit naming a refund
another debit — of this run or an earlier one — already answered is a ``duplicate``); other debits and
reversals are ``unexpected_in_statement``. Paid bank-transfer attempts, succeeded bank-transfer refunds
and payouts left without a line are ``pending`` inside the settlement window, ``missing_in_statement``
after it.

Only the candidate statement lines, payouts, bank-transfer attempts and bank-transfer refunds of the
window are held in memory (not the provider transactions, which stay in SQL).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from gateway.domain.status import OPEN_ATTEMPT_STATUSES, PAID_ORDER_STATUSES
from reconciliation.calendar import BusinessCalendar
from reconciliation.matching import Window, lookback, refund_answered_before
from reconciliation.sqlkit import Db, as_date, as_datetime
from reconciliation.textnorm import fold

__all__ = ["BankLadder", "Item"]

CHUNK = 500
_REFERENCE = re.compile(r"(gw|rf)([0-9]{6}[0-9a-hjkmnp-tv-z]{6})")
_TOKEN = re.compile(r"[0-9a-z][0-9a-z.\-/_]*[0-9a-z]")
_OPEN = frozenset(s.value for s in OPEN_ATTEMPT_STATUSES)
_PAID = frozenset(s.value for s in PAID_ORDER_STATUSES)


@dataclass
class Item:
    level: str
    category: str
    reason: str
    amount: int
    bd: date
    rule: str | None = None
    expected_amount: int | None = None
    order_id: str | None = None
    attempt_id: str | None = None
    refund_id: str | None = None
    line_id: int | None = None
    batch_key: str | None = None
    provider: str | None = None
    refs: dict[str, Any] = field(default_factory=dict)
    detail: str | None = None


@dataclass
class Line:
    id: int
    file_id: int
    row: int
    sub_row: int
    direction: str
    gross: int
    bd: date
    value_date: date | None
    booked_at: datetime | None
    bank_reference: str | None
    end_to_end_id: str | None
    our_reference: str | None
    batch_id: str | None
    text: str
    reversal: bool

    def refs(self) -> dict[str, Any]:
        return {
            "bank_reference": self.bank_reference,
            "end_to_end_id": self.end_to_end_id,
            "reference": self.our_reference,
        }


@dataclass
class Batch:
    provider: str
    key: str
    batch_id: str | None
    gross: int
    fees: int
    refunds: int
    settle_date: date
    count: int

    @property
    def expected(self) -> int:
        return self.gross - self.fees - self.refunds

    def detail(self) -> str:
        return (
            f"{self.count} lines: gross {self.gross} − fee {self.fees} − refunds {self.refunds} "
            f"= {self.expected} VND"
        )


@dataclass
class Attempt:
    id: str
    order_id: str
    reference: str
    provider: str
    amount: int
    status: str
    bd: date | None
    paid_at: datetime | None
    order_status: str
    order_amount: int
    dossier_code: str
    order_created_at: datetime | None = None


@dataclass
class RefundDue:
    """A succeeded bank-transfer refund of the window (or carried): a debit should show it."""

    id: str
    order_id: str
    reference: str
    provider: str
    amount: int
    bd: date
    bank_transfer_ref: str | None


#: confirm(attempt, line) pays the open attempt through the normal transition and returns the
#: attempt's and the order's statuses afterwards.
Confirm = Callable[[Attempt, Line], tuple[str, str]]


def _chunks(values: list[Any]) -> Iterable[list[Any]]:
    for i in range(0, len(values), CHUNK):
        yield values[i : i + CHUNK]


def _word(pattern: str) -> re.Pattern[str]:
    return re.compile(r"(?<![0-9a-z])" + re.escape(pattern) + r"(?![0-9a-z])")


_ATTEMPT_SQL = (
    "SELECT a.id, a.order_id, a.reference, a.provider, a.amount, a.status, a.paid_at, "
    "o.status AS order_status, o.amount AS order_amount, o.dossier_code, o.created_at AS order_created_at "
    "FROM payment_attempts a JOIN orders o ON o.id = a.order_id "
)


class BankLadder:
    def __init__(
        self,
        db: Db,
        *,
        window: Window,
        business_date: date,
        calendar: BusinessCalendar,
        date_window: int,
        settlement_window: int,
        direct_providers: Iterable[str],
        confirm: Confirm,
    ) -> None:
        self.db = db
        self.window = window
        self.d = business_date
        self.calendar = calendar
        self.date_window = date_window
        self.settlement_window = settlement_window
        self.direct = frozenset(direct_providers)
        self.confirm = confirm
        self.items: list[Item] = []
        self.lines: list[Line] = []
        self.batches: list[Batch] = []
        self.candidates: dict[str, Attempt] = {}  # paid bank-transfer attempts of the window
        self.refunds: dict[str, RefundDue] = {}  # succeeded bank-transfer refunds of the window
        self.used_refunds: set[str] = set()
        self.used_lines: set[int] = set()
        self.used_batches: set[tuple[str, str]] = set()
        self.used_attempts: set[str] = set()

    # -- loading ----------------------------------------------------------------------------------

    def load(self) -> None:
        db = self.db
        for r in db.x(
            "SELECT l.id, l.file_id, l.row, l.sub_row, l.direction, l.gross, l.business_date, l.value_date, "
            "l.booked_at, l.bank_reference, l.end_to_end_id, l.our_reference, l.batch_id, l.remittance_norm, "
            "l.reversal FROM rc_bl c JOIN statement_lines l ON l.id = c.line_id "
            "ORDER BY l.business_date, l.file_id, l.row, l.sub_row"
        ):
            bd = as_date(r.business_date)
            assert bd is not None
            parts = [r.remittance_norm, fold(r.end_to_end_id or ""), fold(r.our_reference or "")]
            self.lines.append(
                Line(
                    id=int(r.id),
                    file_id=int(r.file_id),
                    row=int(r.row),
                    sub_row=int(r.sub_row),
                    direction=r.direction,
                    gross=int(r.gross),
                    bd=bd,
                    value_date=as_date(r.value_date),
                    booked_at=as_datetime(r.booked_at),
                    bank_reference=r.bank_reference,
                    end_to_end_id=r.end_to_end_id,
                    our_reference=r.our_reference,
                    batch_id=r.batch_id,
                    text=" ".join(p for p in parts if p),
                    reversal=bool(r.reversal),
                )
            )
        # Payouts: every batch with a line in the window or carried open, minus those already closed;
        # a batch's lines are summed over the lookback range (a payout covers a session, not a season).
        lo, hi = lookback(db, self.window)
        db.temp("rc_bk", "provider VARCHAR(32), batch_key TEXT")
        db.x("INSERT INTO rc_bk SELECT DISTINCT provider, batch_key FROM rc_sl")
        db.x(
            "INSERT INTO rc_bk SELECT DISTINCT p.provider, p.batch_key FROM rc_prev p "
            "WHERE p.level = 'payout' AND NOT EXISTS (SELECT 1 FROM rc_bk k "
            "WHERE k.provider = p.provider AND k.batch_key = p.batch_key)"
        )
        db.x(
            "DELETE FROM rc_bk WHERE EXISTS (SELECT 1 FROM recon_items i "
            "JOIN recon_runs r ON r.id = i.run_id "
            "WHERE i.batch_key = rc_bk.batch_key AND i.provider = rc_bk.provider AND i.level = 'payout' "
            "AND i.status = 'closed' AND r.business_date < :d)",
            d=self.d,
        )
        for r in db.x(
            "SELECT s.provider, s.batch_key, MIN(s.batch_id) AS batch_id, "
            "SUM(CASE WHEN s.status = 'success' THEN s.gross ELSE 0 END) AS gross, SUM(s.fee) AS fees, "
            "SUM(CASE WHEN s.status = 'refund' THEN s.gross ELSE 0 END) AS refunds, "
            "MAX(COALESCE(s.value_date, s.business_date)) AS settle_date, COUNT(*) AS n "
            "FROM statement_lines s JOIN rc_bk k ON s.provider = k.provider AND s.batch_key = k.batch_key "
            "WHERE s.kind = 'settlement' AND s.status IN ('success', 'refund') "
            "AND s.business_date >= :lo AND s.business_date <= :hi "
            "GROUP BY s.provider, s.batch_key ORDER BY s.provider, s.batch_key",
            lo=lo,
            hi=hi,
        ):
            settle = as_date(r.settle_date)
            assert settle is not None
            self.batches.append(
                Batch(
                    provider=r.provider,
                    key=r.batch_key,
                    batch_id=r.batch_id,
                    gross=int(r.gross),
                    fees=int(r.fees),
                    refunds=int(r.refunds),
                    settle_date=settle,
                    count=int(r.n),
                )
            )
        for r in db.x(
            "SELECT t.attempt_id, t.order_id, t.reference, t.provider, t.amount, t.bd, t.paid_at, "
            "o.status AS order_status, o.amount AS order_amount, o.dossier_code "
            "FROM rc_att t JOIN orders o ON o.id = t.order_id WHERE t.direct = 1 "
            "ORDER BY t.paid_at, t.attempt_id"
        ):
            self.candidates[r.attempt_id] = Attempt(
                id=r.attempt_id,
                order_id=r.order_id,
                reference=r.reference,
                provider=r.provider,
                amount=int(r.amount),
                status="succeeded",
                bd=as_date(r.bd),
                paid_at=as_datetime(r.paid_at),
                order_status=r.order_status,
                order_amount=int(r.order_amount),
                dossier_code=r.dossier_code,
            )
        for r in db.x(
            "SELECT f.refund_id, f.order_id, f.reference, f.provider, f.amount, f.bd, r.bank_transfer_ref "
            "FROM rc_rf f JOIN refunds r ON r.id = f.refund_id WHERE f.direct = 1 "
            "ORDER BY f.completed_at, f.refund_id"
        ):
            bd = as_date(r.bd)
            assert bd is not None
            self.refunds[r.refund_id] = RefundDue(
                id=r.refund_id,
                order_id=r.order_id,
                reference=r.reference,
                provider=r.provider,
                amount=int(r.amount),
                bd=bd,
                bank_transfer_ref=r.bank_transfer_ref,
            )

    # -- helpers ----------------------------------------------------------------------------------

    def _attempt(self, r: Any) -> Attempt:
        return Attempt(
            id=r.id,
            order_id=r.order_id,
            reference=r.reference,
            provider=r.provider,
            amount=int(r.amount),
            status=r.status,
            bd=None,
            paid_at=as_datetime(r.paid_at),
            order_status=r.order_status,
            order_amount=int(r.order_amount),
            dossier_code=r.dossier_code,
            order_created_at=as_datetime(r.order_created_at),
        )

    def _attempts_by_reference(self, refs: set[str]) -> dict[str, Attempt]:
        found: dict[str, Attempt] = {}
        for chunk in _chunks(sorted(refs)):
            for r in self.db.xin(_ATTEMPT_SQL + "WHERE a.reference IN :refs", "refs", chunk):
                found[r.reference.upper()] = self._attempt(r)
        return found

    def _attempts_by_dossier(self, codes: set[str]) -> dict[str, list[Attempt]]:
        found: dict[str, list[Attempt]] = defaultdict(list)
        for chunk in _chunks(sorted(codes)):
            for r in self.db.xin(
                _ATTEMPT_SQL
                + "WHERE o.dossier_code IN :codes ORDER BY o.created_at, o.id, a.created_at, a.id",
                "codes",
                chunk,
            ):
                found[r.dossier_code].append(self._attempt(r))
        return found

    def _orders_by_dossier(self, codes: set[str]) -> dict[str, list[Any]]:
        found: dict[str, list[Any]] = defaultdict(list)
        for chunk in _chunks(sorted(codes)):
            for r in self.db.xin(
                "SELECT id, status, amount, dossier_code FROM orders WHERE dossier_code IN :codes "
                "ORDER BY created_at, id",
                "codes",
                chunk,
            ):
                found[r.dossier_code].append(r)
        return found

    def _matched_before(self, attempt_id: str) -> bool:
        row = self.db.x(
            "SELECT 1 FROM recon_items i JOIN recon_runs r ON r.id = i.run_id WHERE i.attempt_id = :a "
            "AND i.level = 'bank' AND i.category IN ('matched', 'amount_mismatch') AND r.business_date < :d",
            a=attempt_id,
            d=self.d,
        ).first()
        return row is not None

    def _refund_answered_before(self, refund_id: str) -> bool:
        """An earlier run's debit answered this refund (one that is not among this run's refunds)."""
        if refund_id in self.refunds:
            return False  # taken by this run: nothing before answered it (matching.build_candidates)
        sql = f"SELECT 1 WHERE {refund_answered_before(':rf')}"  # noqa: S608
        return self.db.x(sql, rf=refund_id, d=self.d).first() is not None

    def _emit(self, line: Line | None, **kw: Any) -> None:
        if line is not None:
            self.used_lines.add(line.id)
            refs = line.refs()
            refs.update(kw.pop("refs", {}))
            kw["refs"] = refs
            kw.setdefault("line_id", line.id)
            kw.setdefault("bd", line.bd)
            kw.setdefault("amount", line.gross)
        self.items.append(Item(**kw))

    def _free(self) -> list[Line]:
        return [ln for ln in self.lines if ln.id not in self.used_lines]

    def _credits(self) -> list[Line]:
        return [ln for ln in self._free() if ln.direction == "credit" and not ln.reversal]

    def _missing(self, day: date) -> bool:
        return self.calendar.business_days_between(day, self.d) > self.settlement_window

    # -- the ladder -------------------------------------------------------------------------------

    def run(self) -> list[Item]:
        self.load()
        self._batch_ids()
        self._references()
        self._dossiers()
        self._batch_amounts()
        self._amount_window()
        self._debits()
        self._leftovers()
        return self.items

    def _batch_ids(self) -> None:
        for batch in self.batches:
            if not batch.batch_id:
                continue
            norm = fold(batch.batch_id)
            pattern = _word(norm)
            for line in self._credits():
                if fold(line.batch_id or "") == norm or pattern.search(line.text):
                    self._payout(line, batch, "batch_id")
                    break

    def _payout(self, line: Line, batch: Batch, rule: str) -> None:
        self.used_batches.add((batch.provider, batch.key))
        ok = line.gross == batch.expected
        self._emit(
            line,
            level="payout",
            category="matched" if ok else "amount_mismatch",
            reason="payout matches the settlement batch"
            if ok
            else (
                "credit above the settlement batch"
                if line.gross > batch.expected
                else "credit below the settlement batch"
            ),
            rule=rule,
            expected_amount=None if ok else batch.expected,
            batch_key=batch.key,
            provider=batch.provider,
            refs={"batch_id": batch.batch_id, "provider": batch.provider},
            detail=batch.detail(),
        )

    def _references(self) -> None:
        wanted: dict[int, list[tuple[str, str]]] = {}
        keys: set[str] = set()
        for line in self._credits():
            found: list[tuple[str, str]] = []
            for value in (line.end_to_end_id, line.our_reference):
                if value and value.strip():
                    found.append((value.strip().upper(), "exact_reference"))
            for m in _REFERENCE.finditer(line.text):
                found.append(((m.group(1) + m.group(2)).upper(), "remittance_reference"))
            if found:
                wanted[line.id] = found
                keys.update(k for k, _ in found)
        if not keys:
            return
        attempts = self._attempts_by_reference(keys)
        for line in self._credits():
            for key, rule in wanted.get(line.id, []):
                attempt = attempts.get(key)
                if attempt is not None:
                    self._for_attempt(line, attempt, rule)
                    break

    def _for_attempt(self, line: Line, a: Attempt, rule: str) -> None:
        """Decide the item for a credit naming attempt ``a`` (by reference or through its dossier)."""
        refs = {"attempt_reference": a.reference, "dossier_code": a.dossier_code, "provider": a.provider}
        base = {"level": "bank", "rule": rule, "order_id": a.order_id, "provider": a.provider, "refs": refs}
        if a.provider in self.direct:
            if a.status == "succeeded":
                candidate = self.candidates.get(a.id)
                if a.id in self.used_attempts or (candidate is None and self._matched_before(a.id)):
                    self._emit(line, category="duplicate", reason="bank transfer already matched", **base)
                    return
                self.used_attempts.add(a.id)
                if line.gross == a.amount:
                    self._emit(
                        line, category="matched", reason=self._matched_reason(a.id), attempt_id=a.id, **base
                    )
                else:
                    self._emit(
                        line,
                        category="amount_mismatch",
                        reason="transfer above the attempt"
                        if line.gross > a.amount
                        else "transfer below the attempt",
                        expected_amount=a.amount,
                        attempt_id=a.id,
                        **base,
                    )
                return
            if a.status in _OPEN:
                if line.gross != a.amount:
                    self._emit(
                        line,
                        category="status_conflict",
                        reason="amount differs from the open bank transfer",
                        expected_amount=a.amount,
                        attempt_id=a.id,
                        **base,
                    )
                    return
                attempt_status, order_status = self.confirm(a, line)
                a.status, a.order_status = attempt_status, order_status  # a second line now sees it paid
                if attempt_status == "succeeded":
                    self.used_attempts.add(a.id)
                if attempt_status == "succeeded" and order_status in _PAID:
                    self._emit(
                        line,
                        category="matched",
                        reason="confirmed by bank statement",
                        attempt_id=a.id,
                        **base,
                    )
                else:
                    self._emit(
                        line,
                        category="status_conflict",
                        reason=f"transfer received while the order is {order_status}",
                        attempt_id=a.id,
                        **base,
                    )
                return
            self._emit(
                line,
                category="status_conflict",
                reason=f"attempt {a.status} at the gateway",
                attempt_id=a.id,
                **base,
            )
            return
        # The reference of a card/wallet attempt arrived as a bank transfer.
        if a.order_status in _PAID:
            self._emit(line, category="duplicate", reason=f"order already paid through {a.provider}", **base)
        else:
            self._emit(
                line,
                category="status_conflict",
                reason="order not paid at the gateway",
                expected_amount=a.order_amount if a.order_amount != line.gross else None,
                **base,
            )

    def _matched_reason(self, attempt_id: str) -> str:
        via = self.db.x("SELECT via FROM recon_confirmations WHERE attempt_id = :a", a=attempt_id).scalar()
        return {"query": "confirmed by query", "statement": "confirmed by bank statement"}.get(
            via or "", "exact match"
        )

    def _dossiers(self) -> None:
        tokens_by_line: dict[int, list[str]] = {}
        codes: set[str] = set()
        for line in self._credits():
            tokens = []
            for token in _TOKEN.findall(line.text):
                if len(token) >= 5 and any(ch.isdigit() for ch in token):
                    tokens.append(token.upper())
            if tokens:
                tokens_by_line[line.id] = tokens
                codes.update(tokens)
        if not codes:
            return
        # Codes as stored are looked up exactly (upper case); the dossiers of the window's bank
        # transfers are also compared folded, so a code written with diacritics ("ĐB") still matches.
        aliases = self._folded_direct_dossiers()
        codes |= {aliases[c] for c in codes if c in aliases}
        attempts = self._attempts_by_dossier(codes)
        orders = self._orders_by_dossier(codes)
        for line in self._credits():
            for token in tokens_by_line.get(line.id, []):
                code = token if token in orders else aliases.get(token, token)
                if code in orders and self._for_dossier(line, code, attempts.get(code, []), orders[code]):
                    break

    def _folded_direct_dossiers(self) -> dict[str, str]:
        """fold(code).upper() -> code, for orders of the window's bank-transfer attempts (paid or open)."""
        out: dict[str, str] = {
            a.dossier_code and fold(a.dossier_code).upper(): a.dossier_code for a in self.candidates.values()
        }
        direct = sorted(self.direct)
        if direct:
            lowest = min((a.bd for a in self.candidates.values() if a.bd), default=self.d)
            for r in self.db.xin(
                "SELECT DISTINCT o.dossier_code FROM payment_attempts a JOIN orders o ON o.id = a.order_id "
                "WHERE a.provider IN :providers AND a.status IN ('created', 'redirected', 'unknown') "
                "AND a.created_at >= :since",
                "providers",
                direct,
                since=datetime.combine(lowest - timedelta(days=31), time(0), tzinfo=UTC),
            ):
                out[fold(r.dossier_code).upper()] = r.dossier_code
        return {k: v for k, v in out.items() if k and k != v.upper()}

    def _for_dossier(self, line: Line, code: str, attempts: list[Attempt], orders: list[Any]) -> bool:
        rule = "remittance_dossier"
        direct = [a for a in attempts if a.provider in self.direct]
        free = [a for a in direct if a.id in self.candidates and a.id not in self.used_attempts]
        for group in (
            [a for a in free if a.amount == line.gross],
            [a for a in direct if a.status in _OPEN and a.amount == line.gross],
            free,
        ):
            if group:
                self._for_attempt(line, group[0], rule)
                return True
        unpaid = [o for o in orders if o.status not in _PAID]
        refs = {"dossier_code": code}
        if unpaid:
            order = unpaid[0]
            self._emit(
                line,
                level="bank",
                category="status_conflict",
                reason="order not paid at the gateway",
                rule=rule,
                expected_amount=int(order.amount) if int(order.amount) != line.gross else None,
                order_id=order.id,
                refs=refs,
            )
            return True
        paid_direct = [a for a in direct if a.status == "succeeded" and a.id not in self.used_attempts]
        if paid_direct:
            self._for_attempt(line, paid_direct[0], rule)
            return True
        self._emit(
            line,
            level="bank",
            category="duplicate",
            reason="order already paid",
            rule=rule,
            order_id=orders[0].id,
            refs=refs,
        )
        return True

    def _batch_amounts(self) -> None:
        for batch in self.batches:
            if (batch.provider, batch.key) in self.used_batches:
                continue
            best: tuple[int, date, int] | None = None
            chosen: Line | None = None
            for line in self._credits():
                if line.gross != batch.expected:
                    continue
                dist = self.calendar.distance(line.bd, batch.settle_date)
                if dist > self.date_window:
                    continue
                key = (dist, line.bd, line.id)
                if best is None or key < best:
                    best, chosen = key, line
            if chosen is not None:
                self._payout(chosen, batch, "batch_amount_window")

    def _amount_window(self) -> None:
        by_amount: dict[int, list[Attempt]] = defaultdict(list)
        for a in self.candidates.values():
            by_amount[a.amount].append(a)
        for line in self._credits():
            best: tuple[int, str, str] | None = None
            chosen: Attempt | None = None
            for a in by_amount.get(line.gross, []):
                if a.id in self.used_attempts or a.bd is None:
                    continue
                dist = self.calendar.distance(line.bd, a.bd)
                if dist > self.date_window:
                    continue
                key = (dist, a.paid_at.isoformat() if a.paid_at else "", a.id)
                if best is None or key < best:
                    best, chosen = key, a
            if chosen is not None:
                self._for_attempt(line, chosen, "amount_date_window")

    def _debits(self) -> None:
        debits = [ln for ln in self._free() if ln.direction == "debit" and not ln.reversal]
        keys: dict[int, list[tuple[str, str]]] = {}
        wanted: set[str] = set()
        for line in debits:
            found = [
                (v.strip().upper(), "exact_reference")
                for v in (line.end_to_end_id, line.our_reference, line.bank_reference)
                if v and v.strip()
            ]
            found += [
                ((m.group(1) + m.group(2)).upper(), "remittance_reference")
                for m in _REFERENCE.finditer(line.text)
            ]
            if found:
                keys[line.id] = found
                wanted.update(k for k, _ in found)
        if not wanted:
            return
        refunds: dict[str, Any] = {}
        for chunk in _chunks(sorted(wanted)):
            for r in self.db.xin(
                "SELECT id, order_id, reference, bank_transfer_ref, amount, status, provider FROM refunds "
                "WHERE reference IN :keys OR bank_transfer_ref IN :keys ORDER BY id",
                "keys",
                chunk,
            ):
                for key in (r.reference, r.bank_transfer_ref):
                    if key:
                        refunds.setdefault(key.upper(), r)
        used = self.used_refunds
        for line in debits:
            named = [(refunds[k], rule) for k, rule in keys.get(line.id, []) if k in refunds]
            free = next(
                (
                    (r, rule)
                    for r, rule in named
                    if r.id not in used and not self._refund_answered_before(r.id)
                ),
                None,
            )
            if named and free is None:
                # Every refund it names was already answered: its money is not counted twice.
                r, rule = named[0]
                self._emit(
                    line,
                    level="bank",
                    category="duplicate",
                    reason="refund already matched by another debit",
                    rule=rule,
                    order_id=r.order_id,
                    provider=r.provider,
                    refs={"refund_reference": r.reference},
                )
                continue
            if free is not None:
                r, rule = free
                used.add(r.id)
                amount = int(r.amount)
                if r.status != "succeeded":
                    category, reason = "status_conflict", f"refund {r.status} at the gateway"
                elif amount != line.gross:
                    category = "amount_mismatch"
                    reason = "debit above the refund" if line.gross > amount else "debit below the refund"
                else:
                    category, reason = "matched", "refund paid by bank transfer"
                self._emit(
                    line,
                    level="bank",
                    category=category,
                    reason=reason,
                    rule=rule,
                    expected_amount=amount if amount != line.gross and category != "matched" else None,
                    order_id=r.order_id,
                    refund_id=r.id,
                    provider=r.provider,
                    refs={"refund_reference": r.reference},
                )

    def _leftovers(self) -> None:
        for line in self._free():
            if line.reversal:
                reason = "reversal of an earlier booking"
            elif line.direction == "credit":
                reason = "money with no dossier"
            else:
                reason = "debit not explained"
            self._emit(line, level="bank", category="unexpected_in_statement", reason=reason)
        for a in self.candidates.values():
            if a.id in self.used_attempts:
                continue
            assert a.bd is not None
            missing = self._missing(a.bd)
            self._emit(
                None,
                level="bank",
                category="missing_in_statement" if missing else "pending",
                reason="no bank credit within the settlement window"
                if missing
                else "awaiting the bank credit",
                amount=a.amount,
                bd=a.bd,
                order_id=a.order_id,
                attempt_id=a.id,
                provider=a.provider,
                refs={
                    "attempt_reference": a.reference,
                    "dossier_code": a.dossier_code,
                    "provider": a.provider,
                },
            )
        for refund in self.refunds.values():
            if refund.id in self.used_refunds:
                continue
            missing = self._missing(refund.bd)
            self._emit(
                None,
                level="bank",
                category="missing_in_statement" if missing else "pending",
                reason="refund not reflected in the bank statement"
                if missing
                else "awaiting the bank debit of the refund",
                amount=refund.amount,
                bd=refund.bd,
                order_id=refund.order_id,
                refund_id=refund.id,
                provider=refund.provider,
                refs={
                    "refund_reference": refund.reference,
                    "bank_transfer_ref": refund.bank_transfer_ref,
                    "provider": refund.provider,
                },
            )
        for batch in self.batches:
            if (batch.provider, batch.key) in self.used_batches:
                continue
            missing = self._missing(batch.settle_date)
            self._emit(
                None,
                level="payout",
                category="missing_in_statement" if missing else "pending",
                reason="payout not credited within the settlement window"
                if missing
                else "awaiting the payout credit",
                amount=batch.expected,
                bd=batch.settle_date,
                batch_key=batch.key,
                provider=batch.provider,
                refs={"batch_id": batch.batch_id, "provider": batch.provider},
                detail=batch.detail(),
            )
