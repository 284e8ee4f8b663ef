"""What the staff console and the API call: runs, items, and finance's actions on items.

Reads take an open :class:`~sqlalchemy.orm.Session`; actions take one too and leave the commit to the
caller (one unit of work), except :func:`request_provider_query`, which must not hold a transaction
while it waits for the provider and therefore takes the session factory.

Every action appends one ``recon_item_actions`` row (who, when, action, reason, state before and
after) and one ``audit_log`` row (entity ``recon_item``); nothing is ever updated in place except the
item's status fields, whose every change is in that trail (reconciliation.md §5.8). A reason is
required for every action.

Statuses: ``closed`` (matched), ``open`` (anything else, until finance acts or a later run finds the
counterpart), ``resolved`` (finance closed it: resolve or manual match). Open items are carried into
the next run; resolved ones are not, and a rerun inherits the resolution of the same subject.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from gateway.domain.errors import Conflict, NotFound, ValidationProblem
from gateway.services.audit import record_action
from gateway.services.payments import apply_notification
from gateway.storage.db import transaction
from gateway.storage.models import (
    Order,
    PaymentAttempt,
    ReconConfirmation,
    ReconItem,
    ReconItemAction,
    ReconRun,
)
from providers.base import Outcome, QueryRequest
from reconciliation.runs import CATEGORIES
from reconciliation.sqlkit import as_date, as_datetime
from reconciliation.views import ITEM_SELECT, item_detail, item_page_sql

__all__ = [
    "QUEUE_PRIORITY",
    "Page",
    "counterparts",
    "get_item",
    "get_run",
    "item_actions",
    "latest_run",
    "list_items",
    "list_runs",
    "manual_match",
    "open_exceptions_by_age",
    "exception_queue",
    "reopen_item",
    "request_provider_query",
    "resolve_item",
]

MAX_LIMIT = 500


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"items": self.items, "next_cursor": self.next_cursor}


def _iso(value: Any) -> str | None:
    moment = as_datetime(value)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z") if moment else None


def _encode(*parts: Any) -> str:
    return base64.urlsafe_b64encode("|".join(str(p) for p in parts).encode()).decode().rstrip("=")


def _decode(cursor: str, n: int) -> list[str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise ValidationProblem("invalid cursor", errors={"cursor": ["is not a valid cursor"]}) from exc
    parts = raw.split("|")
    if len(parts) != n:
        raise ValidationProblem("invalid cursor", errors={"cursor": ["is not a valid cursor"]})
    return parts


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationProblem(
            "limit out of range", errors={"limit": [f"must be between 1 and {MAX_LIMIT}"]}
        )
    return limit


# -- runs -------------------------------------------------------------------------------------------


def run_view(run: ReconRun) -> dict[str, Any]:
    totals = {c: (run.totals or {}).get(c, {"count": 0, "amount": 0}) for c in CATEGORIES}
    return {
        "id": run.id,
        "business_date": run.business_date.isoformat(),
        "window_from": run.window_from.isoformat(),
        "status": run.status,
        "trigger": run.trigger,
        "actor": run.actor,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "rule_version": run.rule_version,
        "settings": run.settings,
        "inputs": run.inputs,
        "totals": totals,
        "item_count": run.item_count,
        "digest": run.digest,
        "previous_run_id": run.previous_run_id,
    }


def list_runs(
    session: Session, *, limit: int = 50, cursor: str | None = None, business_date: date | None = None
) -> Page:
    """Runs, newest first (by start time), ``{items, next_cursor}``."""
    limit = _limit(limit)
    stmt = select(ReconRun)
    if business_date is not None:
        stmt = stmt.where(ReconRun.business_date == business_date)
    if cursor:
        started, run_id = _decode(cursor, 2)
        moment = datetime.fromisoformat(started)
        stmt = stmt.where(
            (ReconRun.started_at < moment) | ((ReconRun.started_at == moment) & (ReconRun.id < run_id))
        )
    rows = list(
        session.scalars(stmt.order_by(ReconRun.started_at.desc(), ReconRun.id.desc()).limit(limit + 1))
    )
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = _encode(last.started_at.isoformat(), last.id)
    return Page([run_view(r) for r in rows[:limit]], next_cursor)


def get_run(session: Session, run_id: str) -> dict[str, Any]:
    run = session.get(ReconRun, run_id)
    if run is None:
        raise NotFound(f"no reconciliation run {run_id}")
    return run_view(run)


def latest_run(session: Session) -> ReconRun | None:
    """The head of the chain: the newest run of the latest reconciled business date."""
    return session.scalars(
        select(ReconRun)
        .where(ReconRun.status == "completed")
        .order_by(ReconRun.business_date.desc(), ReconRun.started_at.desc(), ReconRun.id.desc())
        .limit(1)
    ).first()


# -- items ------------------------------------------------------------------------------------------


def list_items(
    session: Session,
    run_id: str,
    *,
    category: str | None = None,
    status: str | None = None,
    exceptions: bool = False,
    limit: int = 50,
    cursor: str | None = None,
) -> Page:
    """A run's items in ``seq`` order, optionally one category / status / only the exceptions (neither
    matched nor pending), ``{items, next_cursor}``."""
    limit = _limit(limit)
    if category is not None and category not in CATEGORIES:
        raise ValidationProblem("unknown category", errors={"category": [f"one of: {', '.join(CATEGORIES)}"]})
    if session.get(ReconRun, run_id) is None:
        raise NotFound(f"no reconciliation run {run_id}")
    where = ["i.run_id = :run"]
    params: dict[str, Any] = {"run": run_id, "limit": limit + 1}
    if category:
        where.append("i.category = :category")
        params["category"] = category
    if status:
        where.append("i.status = :status")
        params["status"] = status
    if exceptions:
        where.append("i.category NOT IN ('matched', 'pending')")
    if cursor:
        (after,) = _decode(cursor, 1)
        if not after.isdigit():
            raise ValidationProblem("invalid cursor", errors={"cursor": ["is not a valid cursor"]})
        where.append("i.seq > :after")
        params["after"] = int(after)
    params["offset"] = 0
    rows = session.execute(text(item_page_sql(" AND ".join(where), "i.seq")), params).all()
    next_cursor = _encode(rows[limit - 1].seq) if len(rows) > limit else None
    return Page([item_detail(r) for r in rows[:limit]], next_cursor)


def _item_row(session: Session, item_id: int) -> Any:
    row = session.execute(text(ITEM_SELECT + "WHERE i.id = :id"), {"id": item_id}).first()
    if row is None:
        raise NotFound(f"no reconciliation item {item_id}")
    return row


def get_item(session: Session, item_id: int) -> dict[str, Any]:
    """One item with its action trail."""
    out = item_detail(_item_row(session, item_id))
    out["actions"] = item_actions(session, item_id)
    return out


def item_actions(session: Session, item_id: int) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(ReconItemAction).where(ReconItemAction.item_id == item_id).order_by(ReconItemAction.id)
    )
    return [
        {
            "id": a.id,
            "action": a.action,
            "actor": a.actor,
            "reason": a.reason,
            "before": a.before,
            "after": a.after,
            "created_at": _iso(a.created_at),
        }
        for a in rows
    ]


def open_exceptions_by_age(session: Session, today: date) -> dict[str, Any] | None:
    """Open exceptions of the latest run by category and age (0-1, 2-7, >7 days since their business
    date), for the console dashboard; None before any run."""
    run = latest_run(session)
    if run is None:
        return None
    buckets: dict[str, dict[str, int]] = {}
    rows = session.execute(
        text(
            "SELECT category, business_date, COUNT(*) AS n FROM recon_items WHERE run_id = :run "
            "AND status = 'open' AND category NOT IN ('matched', 'pending') GROUP BY category, business_date"
        ),
        {"run": run.id},
    )
    for r in rows:
        day = as_date(r.business_date)
        assert day is not None
        age = (today - day).days
        bucket = "0-1" if age <= 1 else ("2-7" if age <= 7 else ">7")
        counts = buckets.setdefault(r.category, {"0-1": 0, "2-7": 0, ">7": 0})
        counts[bucket] += int(r.n)
    return {
        "run_id": run.id,
        "business_date": run.business_date.isoformat(),
        "categories": [(c, buckets[c]) for c in CATEGORIES if c in buckets],
    }


#: The order finance works through exceptions (issue 7.5): money nobody can attribute to a dossier
#: first (a citizen may have paid and be waiting), then wrong amounts, then payments whose status
#: disagrees, then payments the provider or bank has not reported, then the rest.
QUEUE_PRIORITY: tuple[str, ...] = (
    "unexpected_in_statement",
    "amount_mismatch",
    "status_conflict",
    "missing_in_statement",
    "duplicate",
    "fee_variance",
)


def exception_queue(
    session: Session, *, limit: int = 50, offset: int = 0
) -> tuple[ReconRun | None, int, list[dict[str, Any]]]:
    """The latest run's open exceptions by priority, then oldest first: ``(run, total, page)``.

    Open items are carried into every later run, so the latest run holds every exception still open.
    """
    limit = _limit(limit)
    run = latest_run(session)
    if run is None:
        return None, 0, []
    rank = " ".join(f"WHEN '{c}' THEN {n}" for n, c in enumerate(QUEUE_PRIORITY))
    where = "i.run_id = :run AND i.status = 'open' AND i.category NOT IN ('matched', 'pending')"
    count = text(f"SELECT COUNT(*) FROM recon_items i WHERE {where}")  # noqa: S608 - fixed fragments
    total = int(session.execute(count, {"run": run.id}).scalar_one())
    order = f"CASE i.category {rank} ELSE {len(QUEUE_PRIORITY)} END, i.business_date, i.seq"
    rows = session.execute(
        text(item_page_sql(where, order)), {"run": run.id, "limit": limit, "offset": max(0, offset)}
    ).all()
    return run, total, [item_detail(r) for r in rows]


def counterparts(session: Session, item_id: int, *, limit: int = 50) -> list[dict[str, Any]]:
    """Open exceptions of the same run on the other side (an external line for one of ours and the
    reverse) that a person may match ``item_id`` with by hand, nearest amount first."""
    item = session.get(ReconItem, item_id)
    if item is None:
        raise NotFound(f"no reconciliation item {item_id}")
    side = "i.line_id IS NULL" if item.line_id is not None else "i.line_id IS NOT NULL"
    where = (
        "i.run_id = :run AND i.id <> :id AND i.status = 'open' "
        f"AND i.category NOT IN ('matched', 'pending') AND {side}"
    )
    rows = session.execute(
        text(item_page_sql(where, "ABS(i.amount - :amount), i.seq")),
        {"run": item.run_id, "id": item_id, "amount": item.amount, "limit": _limit(limit), "offset": 0},
    ).all()
    return [item_detail(r) for r in rows]


# -- actions ----------------------------------------------------------------------------------------


def _state(item: ReconItem) -> dict[str, Any]:
    return {
        "category": item.category,
        "status": item.status,
        "resolved_by": item.resolved_by,
        "resolution": item.resolution,
    }


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ValidationProblem("a reason is required", errors={"reason": ["must not be empty"]})
    return reason


def _load(session: Session, item_id: int) -> ReconItem:
    item = session.get(ReconItem, item_id, with_for_update=True, populate_existing=True)
    if item is None:
        raise NotFound(f"no reconciliation item {item_id}")
    return item


def _trail(
    session: Session,
    item: ReconItem,
    action: str,
    *,
    actor: str,
    reason: str,
    before: dict[str, Any],
    after: dict[str, Any],
    now: datetime,
) -> None:
    session.add(
        ReconItemAction(
            item_id=item.id,
            run_id=item.run_id,
            action=action,
            actor=actor,
            reason=reason,
            before=before,
            after=after,
            created_at=now,
        )
    )
    record_action(
        session,
        entity_type="recon_item",
        entity_id=str(item.id),
        action=f"recon_{action}",
        actor=actor,
        source="console",
        reason=reason,
        at=now,
    )


def resolve_item(session: Session, item_id: int, *, actor: str, reason: str, now: datetime) -> dict[str, Any]:
    """Close an open exception (written off, explained, booked by hand…); the reason is kept."""
    reason = _reason(reason)
    item = _load(session, item_id)
    if item.status != "open":
        raise Conflict(f"item {item_id} is {item.status}, only an open item can be resolved")
    before = _state(item)
    item.status, item.resolved_by, item.resolved_at, item.resolution = "resolved", actor, now, reason
    _trail(session, item, "resolve", actor=actor, reason=reason, before=before, after=_state(item), now=now)
    session.flush()
    return get_item(session, item_id)


def reopen_item(session: Session, item_id: int, *, actor: str, reason: str, now: datetime) -> dict[str, Any]:
    """Undo a resolution: the item is open again and the next run carries it forward."""
    reason = _reason(reason)
    item = _load(session, item_id)
    if item.status != "resolved":
        raise Conflict(f"item {item_id} is {item.status}, only a resolved item can be reopened")
    before = _state(item)
    item.status, item.resolved_by, item.resolved_at, item.resolution = "open", None, None, None
    _trail(session, item, "reopen", actor=actor, reason=reason, before=before, after=_state(item), now=now)
    session.flush()
    return get_item(session, item_id)


def manual_match(
    session: Session, item_ids: Sequence[int], *, actor: str, reason: str, now: datetime
) -> list[dict[str, Any]]:
    """Match open items with each other by hand (e.g. money with no dossier ↔ a payment missing in the
    statement). Each item is resolved, naming the others; a difference of amounts is recorded."""
    reason = _reason(reason)
    ids = sorted(set(item_ids))
    if len(ids) < 2:
        raise ValidationProblem(
            "a manual match needs two items or more", errors={"item_ids": ["at least two"]}
        )
    items = [_load(session, i) for i in ids]
    closed = [i.id for i in items if i.status != "open"]
    if closed:
        raise Conflict(f"items {closed} are not open")
    external = sum(i.amount for i in items if i.line_id is not None)
    ours = sum(i.expected_amount or i.amount for i in items if i.line_id is None)
    for item in items:
        before = _state(item)
        others = [i.id for i in items if i.id != item.id]
        item.status, item.resolved_by, item.resolved_at = "resolved", actor, now
        item.resolution = f"manual match with item(s) {', '.join(map(str, others))}: {reason}"
        after = {**_state(item), "matched_with": others, "external_amount": external, "our_amount": ours}
        _trail(session, item, "manual_match", actor=actor, reason=reason, before=before, after=after, now=now)
    session.flush()
    return [get_item(session, i) for i in ids]


def request_provider_query(
    sessions: sessionmaker[Session],
    item_id: int,
    *,
    registry: Any,
    actor: str,
    reason: str,
    now: datetime,
    base_url: str,
) -> dict[str, Any]:
    """Ask the provider about the item's attempt now; a "paid" answer is applied through the normal
    transition (source ``reconciliation``) and resolves the item. Never holds a transaction while
    the provider answers."""
    reason = _reason(reason)
    with transaction(sessions) as session:
        item = session.get(ReconItem, item_id)
        if item is None:
            raise NotFound(f"no reconciliation item {item_id}")
        if item.attempt_id is None:
            raise Conflict(f"item {item_id} names no payment attempt to query")
        attempt = session.get(PaymentAttempt, item.attempt_id)
        assert attempt is not None
        order = session.get(Order, attempt.order_id)
        assert order is not None
        provider_code = attempt.provider
        request = QueryRequest(
            reference=attempt.reference,
            amount=attempt.amount,
            created_at=attempt.created_at,
            order_info=f"Thanh toan ho so {order.dossier_code}",
            provider_txn_id=attempt.provider_txn_id,
            provider_data=dict(attempt.provider_data or {}),
        )
    if registry is None or provider_code not in registry or not registry.get(provider_code).supports_query:
        raise Conflict(f"{provider_code} cannot be queried")
    note = registry.get(provider_code).query(request)
    with transaction(sessions) as session:
        item = _load(session, item_id)
        before = _state(item)
        after: dict[str, Any] = {"provider_outcome": note.outcome.value, "result_code": note.result_code}
        if note.outcome is Outcome.SUCCEEDED:
            apply_notification(
                session, provider_code, note, source="reconciliation", now=now, base_url=base_url
            )
            session.flush()
            attempt = session.get(PaymentAttempt, item.attempt_id, populate_existing=True)
            if attempt is not None and attempt.status == "succeeded":
                if session.get(ReconConfirmation, attempt.id) is None:
                    session.add(
                        ReconConfirmation(
                            attempt_id=attempt.id, run_id=None, via="query", line_id=None, created_at=now
                        )
                    )
                if item.status == "open":
                    item.status, item.resolved_by, item.resolved_at = "resolved", actor, now
                    item.resolution = f"confirmed by query: {reason}"
        after.update(_state(item))
        _trail(
            session, item, "request_query", actor=actor, reason=reason, before=before, after=after, now=now
        )
        session.flush()
        return get_item(session, item_id)
