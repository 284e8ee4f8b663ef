"""Orders (issue 7.3): search, the detail page, exports (7.6) and redelivering an event."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final
from urllib.parse import urlencode

from flask import Response as FlaskResponse
from flask import flash, redirect, request, url_for
from flask_babel import gettext
from sqlalchemy import Select, and_, func, or_, select, tuple_
from sqlalchemy.orm import Session, selectinload
from werkzeug.wrappers import Response

from gateway.console.base import DISPLAY_TZ, bp, console_config, mask, me, render, safe_next, status_label
from gateway.console.exports import ExportRow, to_csv, to_xlsx
from gateway.console.forms import BankTransferForm, RefundForm, RejectForm
from gateway.console.redact import redact_body, redact_headers, redact_query
from gateway.container import Services, services
from gateway.domain.errors import NotFound
from gateway.domain.status import AttemptStatus, OrderStatus
from gateway.services.audit import record_action
from gateway.services.refunds import REFUNDABLE
from gateway.services.relay import redeliver
from gateway.services.staff import SOURCE, ApprovalStatus, Role, refundable_balance
from gateway.storage.db import get_for_update, transaction
from gateway.storage.models import (
    AuditLog,
    InboundNotification,
    Order,
    OutboxEvent,
    PaymentAttempt,
    Refund,
    RefundApproval,
    WebhookDelivery,
)

PAGE_SIZE: Final = 50
MAX_EXPORT_ROWS: Final = 100_000
_STATUSES: Final = tuple(s.value for s in OrderStatus)


# ---- search --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderSearch:
    """The search form; the same query parameters drive the list, its pages and the exports."""

    dossier_code: str = ""
    payer_name: str = ""
    phone_or_id: str = ""
    status: str = ""
    provider: str = ""
    agency_code: str = ""
    date_from: date | None = None
    date_to: date | None = None
    page: int = 1
    errors: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> OrderSearch:
        errors: dict[str, str] = {}

        def text(name: str, limit: int = 200) -> str:
            return (args.get(name) or "").strip()[:limit]

        def day(name: str) -> date | None:
            raw = text(name, 10)
            if not raw:
                return None
            try:
                return date.fromisoformat(raw)
            except ValueError:
                errors[name] = gettext("Use the format YYYY-MM-DD.")
                return None

        status = text("status", 32)
        if status and status not in _STATUSES:
            errors["status"] = gettext("Unknown status.")
            status = ""
        try:
            page = max(1, min(int(args.get("page") or 1), 100_000))
        except ValueError:
            page = 1
        return cls(
            dossier_code=text("dossier_code"),
            payer_name=text("payer_name"),
            phone_or_id=text("phone_or_id", 50),
            status=status,
            provider=text("provider", 32),
            agency_code=text("agency_code", 100),
            date_from=day("date_from"),
            date_to=day("date_to"),
            page=page,
            errors=errors,
        )

    def params(self, **changes: Any) -> dict[str, str]:
        """Non-empty filters as query parameters (for pages and export links)."""
        values = {
            "dossier_code": self.dossier_code,
            "payer_name": self.payer_name,
            "phone_or_id": self.phone_or_id,
            "status": self.status,
            "provider": self.provider,
            "agency_code": self.agency_code,
            "date_from": self.date_from.isoformat() if self.date_from else "",
            "date_to": self.date_to.isoformat() if self.date_to else "",
        }
        values.update({k: str(v) for k, v in changes.items()})
        return {k: v for k, v in values.items() if v}

    def query_string(self, **changes: Any) -> str:
        return urlencode(self.params(**changes))


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=DISPLAY_TZ).astimezone(UTC)


def search_statement(search: OrderSearch) -> Select[Order]:
    stmt = select(Order)
    if search.dossier_code:
        stmt = stmt.where(Order.dossier_code.icontains(search.dossier_code, autoescape=True))
    if search.payer_name:
        stmt = stmt.where(Order.payer_name.icontains(search.payer_name, autoescape=True))
    if search.phone_or_id:
        stmt = stmt.where(
            or_(
                Order.payer_phone.contains(search.phone_or_id, autoescape=True),
                Order.payer_id_number.contains(search.phone_or_id, autoescape=True),
            )
        )
    if search.status:
        stmt = stmt.where(Order.status == search.status)
    if search.agency_code:
        stmt = stmt.where(Order.agency_code == search.agency_code)
    if search.provider:
        stmt = stmt.where(
            Order.id.in_(select(PaymentAttempt.order_id).where(PaymentAttempt.provider == search.provider))
        )
    if search.date_from:
        stmt = stmt.where(Order.created_at >= _midnight(search.date_from))
    if search.date_to:
        stmt = stmt.where(Order.created_at < _midnight(search.date_to + timedelta(days=1)))
    return stmt


def _paying_attempt(order: Order) -> PaymentAttempt | None:
    paid = [a for a in order.attempts if a.status == AttemptStatus.SUCCEEDED]
    if paid:
        return min(paid, key=lambda a: (a.paid_at or a.updated_at, a.created_at))
    return order.attempts[-1] if order.attempts else None


@dataclass(frozen=True)
class OrderRow:
    id: str
    created_at: datetime
    dossier_code: str
    agency_code: str
    payer_name: str
    payer_phone: str
    payer_id_number: str
    amount: int
    status: str
    provider: str


def _provider_name(svc: Services, code: str | None) -> str:
    if not code:
        return ""
    return svc.providers.get(code).display_name if code in svc.providers else code


def _row(svc: Services, order: Order) -> OrderRow:
    attempt = _paying_attempt(order)
    return OrderRow(
        id=order.id,
        created_at=order.created_at,
        dossier_code=order.dossier_code,
        agency_code=order.agency_code,
        payer_name=order.payer_name,
        payer_phone=mask(order.payer_phone),
        payer_id_number=mask(order.payer_id_number),
        amount=order.amount,
        status=order.status,
        provider=_provider_name(svc, attempt.provider if attempt else None),
    )


@bp.get("/orders")
def orders() -> Response:
    svc = services()
    search = OrderSearch.from_args(request.args)
    stmt = search_statement(search)
    with svc.sessions() as db:
        total = int(db.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0)
        pages = max(1, math.ceil(total / PAGE_SIZE))
        search = replace(search, page=min(search.page, pages))
        found = db.scalars(
            stmt.options(selectinload(Order.attempts))
            .order_by(Order.created_at.desc(), Order.id.desc())
            .offset((search.page - 1) * PAGE_SIZE)
            .limit(PAGE_SIZE)
        )
        rows = [_row(svc, order) for order in found]
    return render(
        "console_orders.html",
        status=422 if search.errors else 200,
        search=search,
        rows=rows,
        total=total,
        pages=pages,
        statuses=_STATUSES,
        providers=[(p.code, p.display_name) for p in svc.providers],
    )


# ---- exports -------------------------------------------------------------------------------------------


def _export_rows(svc: Services, search: OrderSearch) -> list[ExportRow] | None:
    stmt = search_statement(search)
    with svc.sessions() as db:
        total = int(db.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0)
        if total > MAX_EXPORT_ROWS:
            return None
        found = db.scalars(
            stmt.options(selectinload(Order.attempts)).order_by(Order.created_at.desc(), Order.id.desc())
        )
        rows = []
        for order in found:
            attempt = _paying_attempt(order)
            rows.append(
                ExportRow(
                    order_id=order.id,
                    created_at=order.created_at,
                    dossier_code=order.dossier_code,
                    agency_code=order.agency_code,
                    payer_name=order.payer_name,
                    payer_id_number=mask(order.payer_id_number),
                    payer_phone=mask(order.payer_phone),
                    amount=order.amount,
                    paid_amount=order.paid_amount,
                    refunded_amount=order.refunded_amount,
                    status=status_label(order.status),
                    provider=_provider_name(svc, attempt.provider if attempt else None),
                    provider_txn_id=(attempt.provider_txn_id or "") if attempt else "",
                    paid_at=order.paid_at,
                )
            )
    return rows


def _search_url(search: OrderSearch) -> str:
    query = search.query_string()
    return url_for("console.orders") + (f"?{query}" if query else "")


def _export(kind: str) -> Response:
    svc = services()
    search = OrderSearch.from_args(request.args)
    if search.errors:
        return redirect(_search_url(search))
    rows = _export_rows(svc, search)
    if rows is None:
        flash(gettext("Too many orders to export at once. Please narrow the search."), "error")
        return redirect(_search_url(search))
    now = svc.clock()
    staff = me()
    with transaction(svc.sessions) as db:
        record_action(
            db,
            entity_type="export",
            entity_id="orders",
            action=f"export_{kind}",
            actor=staff.email,
            source=SOURCE,
            reason=f"{len(rows)} orders; filters: {search.query_string() or '-'}",
            at=now,
        )
    stamp = now.astimezone(DISPLAY_TZ).strftime("%Y%m%d-%H%M")
    if kind == "csv":
        body, mimetype = to_csv(rows), "text/csv; charset=utf-8"
    else:
        body = to_xlsx(rows, sheet_title=gettext("Orders"))
        mimetype = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    response = FlaskResponse(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="orders-{stamp}.{kind}"'
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/orders/export.csv")
def export_csv() -> Response:
    return _export("csv")


@bp.get("/orders/export.xlsx")
def export_xlsx() -> Response:
    return _export("xlsx")


# ---- detail --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NotificationView:
    id: int
    provider: str
    channel: str
    method: str
    path: str
    received_at: datetime
    verified: bool
    outcome: str | None
    ack_code: str | None
    error: str | None
    source_ip: str | None
    query: list[tuple[str, str]]
    headers: list[tuple[str, str]]
    body: str


@dataclass(frozen=True)
class EventView:
    id: str
    type: str
    status: str
    attempts: int
    created_at: datetime
    delivered_at: datetime | None
    next_attempt_at: datetime | None
    last_error: str | None
    deliveries: list[dict[str, Any]]


@dataclass(frozen=True)
class OrderDetail:
    order: dict[str, Any]
    items: list[dict[str, Any]]
    attempts: list[dict[str, Any]]
    refunds: list[dict[str, Any]]
    approvals: list[dict[str, Any]]
    notifications: list[NotificationView]
    events: list[EventView]
    audit: list[dict[str, Any]]
    refundable: bool
    balance: int


def load_detail(svc: Services, order_id: str) -> OrderDetail:
    with svc.sessions() as db:
        order = db.scalars(
            select(Order)
            .where(Order.id == order_id)
            .options(selectinload(Order.items), selectinload(Order.attempts))
        ).first()
        if order is None:
            raise NotFound(f"order {order_id} not found")
        return _detail(svc, db, order)


def _detail(svc: Services, db: Session, order: Order) -> OrderDetail:
    references = [a.reference for a in order.attempts]
    refunds = list(
        db.scalars(select(Refund).where(Refund.order_id == order.id).order_by(Refund.created_at, Refund.id))
    )
    approvals = list(
        db.scalars(
            select(RefundApproval)
            .where(RefundApproval.order_id == order.id)
            .order_by(RefundApproval.created_at, RefundApproval.id)
        )
    )
    notes = (
        list(
            db.scalars(
                select(InboundNotification)
                .where(
                    or_(
                        InboundNotification.reference.in_(references),
                        # A rejected message is linked to nothing; show those whose query names an attempt
                        # (never trusted, but finance should see what claimed to be about this order).
                        and_(
                            InboundNotification.reference.is_(None),
                            or_(*[InboundNotification.query_string.contains(r) for r in references]),
                        ),
                    )
                )
                .order_by(InboundNotification.received_at, InboundNotification.id)
            )
        )
        if references
        else []
    )
    events = list(
        db.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.order_id == order.id)
            .order_by(OutboxEvent.created_at, OutboxEvent.id)
        )
    )
    deliveries: dict[str, list[dict[str, Any]]] = {}
    if events:
        for d in db.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.event_id.in_([e.id for e in events]))
            .order_by(WebhookDelivery.event_id, WebhookDelivery.attempt_no)
        ):
            deliveries.setdefault(d.event_id, []).append(
                {
                    "attempt_no": d.attempt_no,
                    "url": d.url,
                    "status_code": d.status_code,
                    "latency_ms": d.latency_ms,
                    "outcome": d.outcome,
                    "error": d.error,
                    "response_excerpt": d.response_excerpt,
                    "created_at": d.created_at,
                }
            )
    entities = [("order", order.id)]
    entities += [("attempt", a.id) for a in order.attempts]
    entities += [("refund", r.id) for r in refunds]
    entities += [("event", e.id) for e in events]
    audit = [
        {
            "at": row.created_at,
            "entity_type": row.entity_type,
            "entity_id": row.entity_id,
            "action": row.action,
            "from_status": row.from_status,
            "to_status": row.to_status,
            "actor": row.actor,
            "source": row.source,
            "reason": row.reason,
        }
        for row in db.scalars(
            select(AuditLog)
            .where(tuple_(AuditLog.entity_type, AuditLog.entity_id).in_(entities))
            .order_by(AuditLog.created_at, AuditLog.id)
        )
    ]
    provider_codes = {a.id: a.provider for a in order.attempts}
    return OrderDetail(
        order={
            "id": order.id,
            "client_id": order.client_id,
            "status": order.status,
            "dossier_code": order.dossier_code,
            "agency_code": order.agency_code,
            "payer_name": order.payer_name,
            "payer_id_number": mask(order.payer_id_number),
            "payer_phone": mask(order.payer_phone),
            "payer_email": order.payer_email or "",
            "amount": order.amount,
            "paid_amount": order.paid_amount,
            "refunded_amount": order.refunded_amount,
            "created_at": order.created_at,
            "expires_at": order.expires_at,
            "paid_at": order.paid_at,
            "return_url": order.return_url or "",
        },
        items=[
            {
                "code": i.code or "",
                "kind": i.kind,
                "description": i.description or "",
                "amount": i.amount,
                "revenue_code": i.revenue_code or "",
                "chapter_code": i.chapter_code or "",
            }
            for i in order.items
        ],
        attempts=[
            {
                "id": a.id,
                "provider": _provider_name(svc, a.provider),
                "reference": a.reference,
                "status": a.status,
                "amount": a.amount,
                "provider_txn_id": a.provider_txn_id or "",
                "result_code": a.result_code or "",
                "created_at": a.created_at,
                "paid_at": a.paid_at,
                "needs_review": a.needs_review,
            }
            for a in order.attempts
        ],
        refunds=[
            {
                "id": r.id,
                "provider": _provider_name(svc, r.provider),
                "manual": r.provider in svc.providers and svc.providers.get(r.provider).manual_refunds,
                "reference": r.reference,
                "amount": r.amount,
                "reason": r.reason,
                "status": r.status,
                "provider_reference": r.provider_reference or "",
                "bank_transfer_ref": r.bank_transfer_ref or "",
                "requested_by": r.requested_by,
                "created_at": r.created_at,
                "completed_at": r.completed_at,
                "attempt_provider": provider_codes.get(r.attempt_id, ""),
            }
            for r in refunds
        ],
        approvals=[
            {
                "id": a.id,
                "amount": a.amount,
                "reason": a.reason,
                "status": a.status,
                "needs_approval": a.needs_approval,
                "requested_by": a.requested_by,
                "decided_by": a.decided_by or "",
                "decided_at": a.decided_at,
                "refund_id": a.refund_id or "",
                "error": a.error or "",
                "created_at": a.created_at,
            }
            for a in approvals
        ],
        notifications=[
            NotificationView(
                id=n.id,
                provider=n.provider,
                channel=n.channel,
                method=n.method,
                path=n.path,
                received_at=n.received_at,
                verified=n.verified,
                outcome=n.outcome,
                ack_code=n.ack_code,
                error=n.error,
                source_ip=n.source_ip,
                query=redact_query(n.query_string or ""),
                headers=redact_headers(n.headers),
                body=redact_body(n.body),
            )
            for n in notes
        ],
        events=[
            EventView(
                id=e.id,
                type=e.type,
                status=e.status,
                attempts=e.attempts,
                created_at=e.created_at,
                delivered_at=e.delivered_at,
                next_attempt_at=e.next_attempt_at if e.status == "pending" else None,
                last_error=e.last_error,
                deliveries=deliveries.get(e.id, []),
            )
            for e in events
        ],
        audit=audit,
        refundable=order.status in REFUNDABLE,
        balance=refundable_balance(db, order) if order.status in REFUNDABLE else 0,
    )


def order_page(
    order_id: str,
    *,
    status: int = 200,
    refund_form: RefundForm | None = None,
    error: str | None = None,
) -> Response:
    svc = services()
    detail = load_detail(svc, order_id)
    return render(
        "console_order.html",
        status=status,
        d=detail,
        refund_form=refund_form or RefundForm(formdata=None),
        reject_form=RejectForm(formdata=None),
        transfer_form=BankTransferForm(formdata=None),
        threshold=console_config().refund_approval_threshold,
        error=error,
        pending_status=ApprovalStatus.PENDING.value,
        can_finance=me().can(Role.FINANCE.value),
    )


@bp.get("/orders/<string:order_id>")
def order_detail(order_id: str) -> Response:
    return order_page(order_id)


# ---- events --------------------------------------------------------------------------------------------


@bp.post("/events/<string:event_id>/redeliver")
def redeliver_event(event_id: str) -> Response:
    """Replay an event (also a dead-lettered one) from now with a fresh retry ladder (contract §7)."""
    svc = services()
    staff = me()
    now = svc.clock()
    with transaction(svc.sessions) as db:
        event = get_for_update(db, OutboxEvent, event_id)
        if event is None:
            raise NotFound(f"event {event_id} not found")
        previous = event.status
        redeliver(db, event, now=now)
        record_action(
            db,
            entity_type="event",
            entity_id=event.id,
            action="redeliver",
            actor=staff.email,
            source=SOURCE,
            reason=f"{event.type} redelivered from the console (was {previous})",
            at=now,
        )
        order_id = event.order_id
    flash(gettext("The event will be delivered again shortly."), "success")
    destination = safe_next(request.form.get("next"))
    if destination is None:
        destination = (
            url_for("console.order_detail", order_id=order_id) if order_id else url_for("console.dashboard")
        )
    return redirect(destination, code=303)
