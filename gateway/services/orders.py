"""Payment orders: create, read, list, cancel, and lazy expiry."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import (
    Engine,
    Insert,
    Table,
    and_,
    bindparam,
    insert,
    or_,
    select,
)
from sqlalchemy.orm import Session, selectinload, sessionmaker

from gateway.domain.errors import Conflict, NotFound, ValidationProblem
from gateway.domain.references import new_id
from gateway.domain.status import OPEN_ORDER_STATUSES, OrderStatus
from gateway.services.audit import change_status
from gateway.services.outbox import emit
from gateway.storage.db import get_for_update, transaction
from gateway.storage.models import IdempotencyRecord, Order, OrderItem

# A redirected citizen may finish paying at the provider right at the deadline; the provider's
# notification then arrives a little later. An order waiting on an attempt is only expired on
# read after this grace, so that notification can still mark it paid (issue 5 replaces this with
# a query to the provider before expiring).
PROCESSING_EXPIRY_GRACE = timedelta(minutes=15)


@dataclass(frozen=True)
class NewItem:
    code: str | None
    kind: str
    description: str | None
    amount: int
    revenue_code: str | None = None
    chapter_code: str | None = None


@dataclass(frozen=True)
class NewOrder:
    dossier_code: str
    agency_code: str
    payer_name: str
    items: Sequence[NewItem]
    currency: str = "VND"
    payer_id_number: str | None = None
    payer_phone: str | None = None
    payer_email: str | None = None
    return_url: str | None = None
    expires_in: int | None = None
    expires_at: datetime | None = None
    metadata: Mapping[str, Any] | None = None


def dossier_key(dossier_code: str, item_codes: Sequence[str | None]) -> str:
    """Identity of "the same dossier and fees": the dossier code plus the sorted item codes."""
    material = "\x1f".join([dossier_code, *sorted(code or "" for code in item_codes)])
    return hashlib.sha256(material.encode()).hexdigest()


class ClientRef(Protocol):
    @property
    def id(self) -> str: ...


@dataclass(slots=True)
class DraftItem:
    order_id: str
    position: int
    code: str | None
    kind: str
    description: str | None
    amount: int
    revenue_code: str | None
    chapter_code: str | None


@dataclass(slots=True)
class DraftOrder:
    """A new order before it is written: plain attributes named like :class:`Order`'s, so the same
    view renders both, without the cost of instrumented ORM objects on the hot path."""

    id: str
    client_id: str
    dossier_code: str
    agency_code: str
    dossier_key: str
    payer_name: str
    payer_id_number: str | None
    payer_phone: str | None
    payer_email: str | None
    amount: int
    currency: str
    return_url: str | None
    metadata_json: dict[str, Any]
    status: str
    paid_amount: int
    refunded_amount: int
    expires_at: datetime
    paid_at: datetime | None
    created_at: datetime
    updated_at: datetime
    items: list[DraftItem]
    attempts: list[Any]


def build_order(client: ClientRef, data: NewOrder, *, now: datetime) -> DraftOrder:
    """A new pending order with its items, not yet written (its id and view are final already)."""
    if data.expires_at is not None:
        expires_at = data.expires_at
    else:
        expires_at = now + timedelta(seconds=data.expires_in or 86400)
    order_id = new_id("ord")
    return DraftOrder(
        id=order_id,
        client_id=client.id,
        dossier_code=data.dossier_code,
        agency_code=data.agency_code,
        dossier_key=dossier_key(data.dossier_code, [i.code for i in data.items]),
        payer_name=data.payer_name,
        payer_id_number=data.payer_id_number,
        payer_phone=data.payer_phone,
        payer_email=data.payer_email,
        amount=sum(item.amount for item in data.items),
        currency=data.currency,
        return_url=data.return_url,
        metadata_json=dict(data.metadata or {}),
        status=OrderStatus.PENDING.value,
        paid_amount=0,
        refunded_amount=0,
        expires_at=expires_at,
        paid_at=None,
        created_at=now,
        updated_at=now,
        items=[
            DraftItem(
                order_id=order_id,
                position=pos,
                code=item.code,
                kind=item.kind,
                description=item.description,
                amount=item.amount,
                revenue_code=item.revenue_code,
                chapter_code=item.chapter_code,
            )
            for pos, item in enumerate(data.items)
        ],
        attempts=[],
    )


def insert_order(
    engine: Engine,
    factory: sessionmaker[Session],
    order: DraftOrder,
    *,
    idempotency_row: Mapping[str, Any] | None = None,
) -> None:
    """Write a new order, its items and (optionally) its idempotency record, atomically.

    Creating orders is the hot path (bench/README.md). On PostgreSQL everything is ONE statement in
    autocommit mode: data-modifying CTEs insert the order and the idempotency record, the items come
    from one JSON array (``json_populate_recordset``); foreign keys are checked at the end of the
    statement. The one-open-order-per-dossier rule is the partial unique index
    ``uq_orders_open_dossier``: a duplicate raises :class:`~sqlalchemy.exc.IntegrityError`, which the
    caller resolves with :func:`open_dossier_conflict`.
    """
    # The ``metadata`` column is mapped as ``metadata_json`` (``metadata`` is reserved on models).
    params: dict[str, Any] = {
        f"o_{name}": getattr(order, "metadata_json" if name == "metadata" else name)
        for name in _ORDER_COLUMNS
    }
    if idempotency_row is not None:
        params.update({f"k_{name}": idempotency_row[name] for name in _IDEMPOTENCY_COLUMNS})
    if engine.dialect.name == "postgresql":
        # The items travel as one JSON document (json.dumps is C; adapting one list per column to a typed
        # array costs psycopg more per request than the whole document). Values go to the driver as they
        # are otherwise: no per-call compilation or bind processing on the hot path.
        params["i_items"] = json.dumps(
            [{name: getattr(item, name) for name in _ITEM_COLUMNS} for item in order.items],
            ensure_ascii=False,
        )
        params["o_metadata"] = json.dumps(params["o_metadata"], ensure_ascii=False)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(_pg_insert_order_sql(with_key=idempotency_row is not None), params)
        return
    with transaction(factory) as session:
        session.execute(_insert_values(_ORDERS, "o_", _ORDER_COLUMNS), params)
        items = [{name: getattr(item, name) for name in _ITEM_COLUMNS} for item in order.items]
        session.execute(insert(_ITEMS), items)
        if idempotency_row is not None:
            session.execute(_insert_values(_KEYS, "k_", _IDEMPOTENCY_COLUMNS), params)


_ORDERS: Table = Order.__table__  # type: ignore[assignment]
_ITEMS: Table = OrderItem.__table__  # type: ignore[assignment]
_KEYS: Table = IdempotencyRecord.__table__  # type: ignore[assignment]
_ORDER_COLUMNS = tuple(c.key for c in _ORDERS.columns)
_ITEM_COLUMNS = tuple(c.key for c in _ITEMS.columns if c.key != "id")
_IDEMPOTENCY_COLUMNS = tuple(c.key for c in _KEYS.columns if c.key != "id")


@functools.cache
def _insert_values(table: Table, prefix: str, columns: tuple[str, ...]) -> Insert:
    return insert(table).values(
        {name: bindparam(f"{prefix}{name}", type_=table.c[name].type) for name in columns}
    )


def _values_clause(table: Table, prefix: str, columns: tuple[str, ...]) -> str:
    # Built only from the models' own table and column names, never from input (S608 does not apply).
    values = ", ".join(f"%({prefix}{c})s" + ("::json" if c == "metadata" else "") for c in columns)
    return f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({values})"  # noqa: S608


@functools.cache
def _pg_insert_order_sql(*, with_key: bool) -> str:
    """One statement in psycopg's ``%(name)s`` style: the order and the idempotency record as CTEs, the
    items from one JSON array read as rows of the table's own type (exact: a JSON integer becomes the
    column's ``bigint``)."""
    columns = ", ".join(_ITEM_COLUMNS)
    ctes = [f"new_order AS ({_values_clause(_ORDERS, 'o_', _ORDER_COLUMNS)})"]
    if with_key:
        ctes.append(f"new_key AS ({_values_clause(_KEYS, 'k_', _IDEMPOTENCY_COLUMNS)})")
    # Table and column names come from the models only; every value is a bound parameter.
    items = (
        f"INSERT INTO {_ITEMS.name} ({columns}) SELECT {columns} "  # noqa: S608
        f"FROM json_populate_recordset(NULL::{_ITEMS.name}, %(i_items)s::json)"
    )
    return f"WITH {', '.join(ctes)} {items}"


def open_dossier_conflict(
    factory: sessionmaker[Session], client_id: str, data: NewOrder, *, now: datetime, base_url: str
) -> str | None:
    """After the open-dossier index refused an insert: expire the open order if its deadline passed
    (returns None: create again) or return its id (the caller answers 409 naming it)."""
    key = dossier_key(data.dossier_code, [i.code for i in data.items])
    with transaction(factory) as session:
        existing = session.scalars(
            select(Order)
            .where(Order.client_id == client_id, Order.dossier_key == key)
            .where(Order.status.in_([s.value for s in OPEN_ORDER_STATUSES]))
            .with_for_update()
        ).first()
        if existing is None:
            return None  # it closed meanwhile
        expire_if_due(session, existing, now=now, base_url=base_url)
        return existing.id if existing.status in OPEN_ORDER_STATUSES else None


def expire_if_due(session: Session, order: Order, *, now: datetime, base_url: str) -> bool:
    """Expire an open order whose deadline has passed (contract §8; issue 3.11). Caller holds the lock."""
    if order.status not in OPEN_ORDER_STATUSES:
        return False
    deadline = order.expires_at
    if order.status == OrderStatus.PROCESSING:
        deadline += PROCESSING_EXPIRY_GRACE
    if now < deadline:
        return False
    change_status(
        session,
        order,
        OrderStatus.EXPIRED,
        actor="system",
        source="expiry",
        reason="expires_at passed",
        at=now,
    )
    emit(session, order, "order.expired", at=now, base_url=base_url)
    return True


def is_past_deadline(order: Order, now: datetime) -> bool:
    """No new payment may start after ``expires_at``, whatever the grace for a running one."""
    return now >= order.expires_at


def _load(session: Session, client_id: str | None, order_id: str, *, lock: bool) -> Order:
    if lock:
        order = get_for_update(session, Order, order_id)
    else:
        order = session.scalars(
            select(Order).where(Order.id == order_id).options(selectinload(Order.items))
        ).first()
    # Another client's order is indistinguishable from a missing one (contract §4).
    if order is None or (client_id is not None and order.client_id != client_id):
        raise NotFound(f"order {order_id} not found")
    return order


def get_order(
    session: Session, client_id: str | None, order_id: str, *, now: datetime, base_url: str
) -> Order:
    """Read an order, expiring it first if its deadline passed (a write, under the row lock)."""
    order = _load(session, client_id, order_id, lock=False)
    if order.status in OPEN_ORDER_STATUSES and now >= order.expires_at:
        order = _load(session, client_id, order_id, lock=True)
        expire_if_due(session, order, now=now, base_url=base_url)
    return order


def lock_order(session: Session, client_id: str | None, order_id: str) -> Order:
    return _load(session, client_id, order_id, lock=True)


def cancel_order(
    session: Session, client: ClientRef, order_id: str, *, now: datetime, base_url: str
) -> Order:
    order = lock_order(session, client.id, order_id)
    expire_if_due(session, order, now=now, base_url=base_url)
    if order.status == OrderStatus.CANCELLED:
        return order  # a repeated cancel is a no-op
    if order.status not in OPEN_ORDER_STATUSES:
        raise Conflict(f"order {order.id} is {order.status} and cannot be cancelled")
    change_status(
        session,
        order,
        OrderStatus.CANCELLED,
        actor=client.id,
        source="api",
        reason="cancelled by the portal",
        at=now,
    )
    emit(session, order, "order.cancelled", at=now, base_url=base_url)
    return order


@dataclass(frozen=True)
class OrderFilter:
    dossier_code: str | None = None
    status: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


def encode_cursor(order: Order) -> str:
    raw = f"{order.created_at.isoformat()}|{order.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, order_id = raw.split("|", 1)
        instant = datetime.fromisoformat(created)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise ValidationProblem("invalid cursor", errors={"cursor": ["is not a valid cursor"]}) from exc
    if instant.tzinfo is None:
        raise ValidationProblem("invalid cursor", errors={"cursor": ["is not a valid cursor"]})
    return instant, order_id


def expire_due_orders(session: Session, client_id: str, *, now: datetime, base_url: str) -> None:
    """Expire this client's open orders whose deadline has passed, each under its row lock.

    A list is a read too (issue 3.11: "expired when read"): without this it showed a past-due
    order as ``pending`` and ``?status=pending`` / ``?status=expired`` filtered on the stale value.
    """
    due = session.scalars(
        select(Order.id)
        .where(
            Order.client_id == client_id,
            Order.status.in_([s.value for s in OPEN_ORDER_STATUSES]),
            Order.expires_at <= now,
        )
        # one lock order for every caller, so two concurrent lists cannot deadlock
        .order_by(Order.id)
    ).all()
    for order_id in due:
        order = get_for_update(session, Order, order_id)
        if order is not None:
            expire_if_due(session, order, now=now, base_url=base_url)


def list_orders(
    session: Session,
    client_id: str,
    filters: OrderFilter,
    *,
    limit: int,
    cursor: str | None,
    now: datetime | None = None,
    base_url: str = "",
) -> tuple[list[Order], str | None]:
    """Newest first, keyset-paginated on ``(created_at, id)`` so pages never skip or repeat.

    With ``now``, past-due open orders are expired first so that statuses and the status filter
    are current (callers that only page through history may leave it out).
    """
    if now is not None:
        expire_due_orders(session, client_id, now=now, base_url=base_url)
    stmt = (
        select(Order)
        .where(Order.client_id == client_id)
        .options(selectinload(Order.items), selectinload(Order.attempts))
    )
    if filters.dossier_code:
        stmt = stmt.where(Order.dossier_code == filters.dossier_code)
    if filters.status:
        stmt = stmt.where(Order.status == filters.status)
    if filters.created_from:
        stmt = stmt.where(Order.created_at >= filters.created_from)
    if filters.created_to:
        stmt = stmt.where(Order.created_at < filters.created_to)
    if cursor:
        created, last_id = decode_cursor(cursor)
        stmt = stmt.where(
            or_(Order.created_at < created, and_(Order.created_at == created, Order.id < last_id))
        )
    stmt = stmt.order_by(Order.created_at.desc(), Order.id.desc()).limit(limit + 1)
    rows = list(session.scalars(stmt))
    next_cursor = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return rows[:limit], next_cursor
