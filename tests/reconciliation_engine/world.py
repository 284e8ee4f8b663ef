"""Building blocks for reconciliation tests: paid attempts written straight into the database,
settlement files and statements generated into tmp_path (no data files are committed)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.domain.references import new_id
from gateway.services.clients import create_client
from gateway.storage.db import transaction
from gateway.storage.models import Order, PaymentAttempt, Refund
from reconciliation.calendar import load_calendar
from reconciliation.config import FeeSchedule, ReconConfig
from reconciliation.runs import RunOutcome, reconcile
from reconciliation.timeutil import VN_TZ
from tests.reconciliation.builders import SETTLEMENT_HEADER, Entry, Tx, camt_document, camt_statement

_SEQ = itertools.count(1)
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def vn(day: date, hour: int = 10, minute: int = 0) -> datetime:
    """An instant at ``hour:minute`` Vietnam time on ``day``, as aware UTC."""
    return datetime.combine(day, time(hour, minute), VN_TZ).astimezone(UTC)


def reference_for(day: date, n: int) -> str:
    tail = ""
    for _ in range(6):
        n, r = divmod(n, 32)
        tail = _ALPHABET[r] + tail
    return f"GW{day:%y%m%d}{tail}"


@dataclass
class Paid:
    order_id: str
    attempt_id: str
    reference: str
    amount: int
    dossier: str
    provider: str


@dataclass
class World:
    sessions: sessionmaker[Session]
    tmp: Path
    client_id: str = ""
    api_key: str = ""
    files: int = 0
    config: ReconConfig = field(default_factory=ReconConfig)

    def setup(self, *, finance: bool = True) -> World:
        with transaction(self.sessions) as session:
            issued = create_client(
                session,
                "Sở Tài chính",
                webhook_url=None,
                scopes=("orders", "finance") if finance else ("orders",),
                now=datetime(2025, 1, 1, tzinfo=UTC),
            )
        self.client_id = issued.client_id
        self.api_key = issued.api_key
        return self

    def attempt(
        self,
        *,
        provider: str = "vnpay",
        amount: int = 150_000,
        paid_on: date | None = date(2025, 10, 14),
        hour: int = 10,
        status: str = "succeeded",
        order_status: str | None = None,
        dossier: str | None = None,
        reference: str | None = None,
        provider_txn_id: str | None = None,
        expires_at: datetime | None = None,
    ) -> Paid:
        n = next(_SEQ)
        day = paid_on or date(2025, 10, 14)
        reference = reference or reference_for(day, n)
        dossier = dossier or f"H12.22-{day:%y%m%d}-{n:04d}"
        created = vn(day, max(hour - 1, 0))
        if order_status is None:
            order_status = "paid" if status == "succeeded" else "processing"
        paid_at = vn(day, hour) if status == "succeeded" and paid_on is not None else None
        with transaction(self.sessions) as session:
            order = Order(
                id=new_id("ord"),
                client_id=self.client_id,
                dossier_code=dossier,
                agency_code="SO-TU-PHAP",
                dossier_key=new_id("k")[:64],
                payer_name="Nguyễn Văn An",
                amount=amount,
                currency="VND",
                status=order_status,
                paid_amount=amount if order_status == "paid" else 0,
                refunded_amount=0,
                expires_at=expires_at or created + timedelta(days=3),
                paid_at=paid_at,
                created_at=created,
                updated_at=paid_at or created,
            )
            attempt = PaymentAttempt(
                id=new_id("att"),
                order_id=order.id,
                provider=provider,
                reference=reference,
                status=status,
                amount=amount,
                locale="vi",
                provider_txn_id=provider_txn_id or (f"T{n:08d}" if status == "succeeded" else None),
                paid_at=paid_at,
                expires_at=created + timedelta(minutes=15),
                created_at=created,
                updated_at=paid_at or created,
            )
            session.add_all([order, attempt])
        return Paid(order.id, attempt.id, reference, amount, dossier, provider)

    def refund(
        self,
        paid: Paid,
        amount: int,
        *,
        status: str = "succeeded",
        provider_reference: str | None = None,
        reference: str | None = None,
        completed_on: date = date(2025, 10, 14),
        hour: int = 15,
        bank_transfer_ref: str | None = None,
    ) -> str:
        """A refund of ``paid``; a succeeded one completed at ``hour`` Vietnam time on ``completed_on``."""
        completed = vn(completed_on, hour) if status == "succeeded" else None
        with transaction(self.sessions) as session:
            refund = Refund(
                id=new_id("ref"),
                order_id=paid.order_id,
                attempt_id=paid.attempt_id,
                provider=paid.provider,
                reference=reference or paid.reference.replace("GW", "RF", 1),
                amount=amount,
                reason="hoàn phí",
                status=status,
                provider_reference=provider_reference,
                requested_by="finance@example.vn",
                bank_transfer_ref=bank_transfer_ref,
                created_at=datetime(2025, 10, 14, tzinfo=UTC),
                updated_at=completed or datetime(2025, 10, 14, tzinfo=UTC),
                completed_at=completed,
            )
            session.add(refund)
        return refund.id

    # -- files ------------------------------------------------------------------------------------

    def write(self, name: str, content: str) -> Path:
        self.files += 1
        path = self.tmp / f"{self.files:02d}-{name}"
        path.write_text(content, encoding="utf-8")
        return path

    def settlement(self, rows: list[str], name: str = "vnpay.csv") -> Path:
        return self.write(name, "\n".join([SETTLEMENT_HEADER, *rows]) + "\n")

    def statement(self, entries: list[Entry], *, opening: int = 125_000_000, name: str = "stmt.xml") -> Path:
        return self.write(name, camt_document([camt_statement(entries, opening=opening)]))

    def import_settlement(self, path: Path, provider: str = "vnpay") -> Any:
        from reconciliation.store import import_settlement

        with self.sessions() as session:
            outcome = import_settlement(
                session.connection(), path, provider, actor="test", now=datetime(2025, 10, 16, tzinfo=UTC)
            )
            session.commit()
        return outcome

    def settle(self, rows: list[str], provider: str = "vnpay") -> Any:
        return self.import_settlement(self.settlement(rows, name=f"{provider}.csv"), provider)

    # -- runs -------------------------------------------------------------------------------------

    def with_config(self, **changes: Any) -> World:
        base = self.config
        values = {
            "settlement_window_days": base.settlement_window_days,
            "date_window_days": base.date_window_days,
            "calendar": base.calendar,
            "fee_schedule": base.fee_schedule,
            "inbox": base.inbox,
            "direct_providers": base.direct_providers,
            "query_limit": base.query_limit,
        }
        values.update(changes)
        self.config = ReconConfig(**values)
        return self

    def run(self, day: date, statement: Path | None = None, **kw: Any) -> RunOutcome:
        kw.setdefault("clock", lambda: datetime(2025, 10, 16, 2, 0, tzinfo=UTC))
        return reconcile(self.sessions, business_date=day, config=self.config, statement=statement, **kw)

    def items(self, run_id: str) -> list[dict[str, Any]]:
        from gateway.storage.models import ReconItem

        with transaction(self.sessions) as session:
            rows = session.scalars(
                select(ReconItem).where(ReconItem.run_id == run_id).order_by(ReconItem.seq)
            ).all()
            return [
                {
                    "category": r.category,
                    "reason": r.reason,
                    "rule": r.rule,
                    "level": r.level,
                    "amount": r.amount,
                    "expected_amount": r.expected_amount,
                    "business_date": r.business_date,
                    "order_id": r.order_id,
                    "attempt_id": r.attempt_id,
                    "refund_id": r.refund_id,
                    "line_id": r.line_id,
                    "batch_key": r.batch_key,
                    "status": r.status,
                    "carried_from": r.carried_from,
                    "references": r.references,
                    "id": r.id,
                }
                for r in rows
            ]

    def by_attempt(self, run_id: str) -> dict[str, dict[str, Any]]:
        return {i["attempt_id"]: i for i in self.items(run_id) if i["attempt_id"]}

    def by_refund(self, run_id: str) -> dict[str, list[dict[str, Any]]]:
        """Items naming each refund (a refund is accounted for when it has exactly one)."""
        out: dict[str, list[dict[str, Any]]] = {}
        for i in self.items(run_id):
            if i["refund_id"]:
                out.setdefault(i["refund_id"], []).append(i)
        return out

    def categories(self, run_id: str) -> list[tuple[str, str, str | None]]:
        return [(i["level"], i["category"], i["rule"]) for i in self.items(run_id)]

    def count(self, model: Any) -> int:
        with transaction(self.sessions) as session:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)


def fee_schedule(**rules: dict[str, Any]) -> FeeSchedule:
    from reconciliation.config import parse_fee_schedule

    return parse_fee_schedule(rules)


__all__ = ["Entry", "Paid", "Tx", "World", "fee_schedule", "load_calendar", "reference_for", "vn"]


class StubProvider:
    """Answers queries with a fixed outcome (the provider's word about a payment)."""

    supports_query = True

    def __init__(self, code: str, outcome: Any, paid_at: datetime | None = None) -> None:
        self.code = code
        self.outcome = outcome
        self.paid_at = paid_at
        self.asked: list[str] = []

    def query(self, request: Any) -> Any:
        from providers.base import Notification

        self.asked.append(request.reference)
        return Notification(
            reference=request.reference,
            outcome=self.outcome,
            amount=request.amount,
            provider_txn_id="Q" + request.reference[-6:],
            result_code="00",
            paid_at=self.paid_at,
        )


class StubRegistry:
    def __init__(self, *providers: StubProvider) -> None:
        self.providers = {p.code: p for p in providers}

    def __contains__(self, code: object) -> bool:
        return code in self.providers

    def get(self, code: str) -> StubProvider:
        return self.providers[code]
