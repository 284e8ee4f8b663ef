"""``/api/v1/orders``: create, read, list, cancel, start an attempt (contract §4)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from flask import Response, request
from sqlalchemy.exc import IntegrityError

from gateway.api.auth import current_client, require_client
from gateway.api.parsing import Blueprint, parse_json_body
from gateway.api.problems import problem
from gateway.api.schemas import (
    MAX_EXPIRES_IN,
    MIN_EXPIRES_IN,
    AttemptCreateSchema,
    AttemptOut,
    OrderCreateSchema,
    OrderListArgs,
    OrderOut,
    OrderPage,
)
from gateway.container import Services, services
from gateway.domain.errors import Conflict, ValidationProblem
from gateway.services import idempotency
from gateway.services.attempts import AttemptChoice, start_attempt
from gateway.services.orders import (
    NewItem,
    NewOrder,
    OrderFilter,
    build_order,
    cancel_order,
    get_order,
    insert_order,
    list_orders,
    open_dossier_conflict,
)
from gateway.services.presenters import attempt_view, order_view
from gateway.storage.db import transaction

blp = Blueprint("orders", __name__, url_prefix="/api/v1/orders", description="Payment orders for dossiers")


def _json_response(status: int, body: str) -> Response:
    # A replayed refusal (a remembered 409) is a problem document: answer it with the
    # problem+json type the first response had (contract §12), not plain JSON.
    mimetype = "application/problem+json" if status >= 400 else "application/json"
    return Response(body, status=status, mimetype=mimetype)


def _new_order(data: dict[str, Any], now: datetime) -> NewOrder:
    expires_at = data.get("expires_at")
    if expires_at is not None:
        delta = (expires_at - now).total_seconds()
        if not MIN_EXPIRES_IN <= delta <= MAX_EXPIRES_IN + 60:
            raise ValidationProblem(
                "expires_at out of range",
                errors={"expires_at": [f"must be {MIN_EXPIRES_IN} s to {MAX_EXPIRES_IN} s from now"]},
            )
    payer = data["payer"]
    return NewOrder(
        dossier_code=data["dossier_code"],
        agency_code=data["agency_code"],
        payer_name=payer["name"],
        payer_id_number=payer.get("id_number"),
        payer_phone=payer.get("phone"),
        payer_email=payer.get("email"),
        items=[
            NewItem(
                code=item.get("code"),
                kind=item["kind"],
                description=item.get("description"),
                amount=item["amount"],
                revenue_code=item.get("revenue_code"),
                chapter_code=item.get("chapter_code"),
            )
            for item in data["items"]
        ],
        currency=data.get("currency", "VND"),
        return_url=data.get("return_url"),
        expires_in=data.get("expires_in"),
        expires_at=expires_at,
        metadata=data.get("metadata"),
    )


def _create(svc: Services, data: dict[str, Any], now: datetime) -> tuple[int, str]:
    """Create the order; returns (status, JSON body). Conflicts become a 409 body to remember."""
    client = current_client()
    new = _new_order(data, now)
    key = request.headers.get("Idempotency-Key")
    for _ in range(2):  # a second try only after an expired open order for the dossier was closed
        order = build_order(client, new, now=now)
        # order_view has exactly OrderOut's shape (the schema documents it; tests compare them).
        body = json.dumps(order_view(order, svc.base_url), ensure_ascii=False)
        remember = (
            idempotency.record_row(
                client_id=client.id,
                key=key,
                method="POST",
                path=request.path,
                req_hash=_hash(),
                status=201,
                body=body,
                now=now,
            )
            if key
            else None
        )
        try:
            insert_order(svc.engine, svc.sessions, order, idempotency_row=remember)
            return 201, body
        except IntegrityError as exc:
            if key:
                # The same request may have won the race under this key: answer as it did.
                with transaction(svc.sessions) as session:
                    record = idempotency.lookup(session, client.id, key, _hash())
                if record is not None:
                    return record.status, record.body
                if idempotency.is_key_conflict(exc):
                    raise _KeyRace from exc
            existing = open_dossier_conflict(svc.sessions, client.id, new, now=now, base_url=svc.base_url)
            if existing is not None:
                raise Conflict(
                    f"an open order already exists for dossier {new.dossier_code}",
                    extra={"order_id": existing},
                ) from exc
    raise Conflict(f"orders for dossier {new.dossier_code} are being created concurrently; retry")


class _KeyRace(Exception):
    """A concurrent request with the same Idempotency-Key committed first."""


def _hash() -> str:
    return idempotency.request_hash("POST", request.path, parse_json_body(request))


@blp.route("", methods=["POST"])
@require_client()
@blp.arguments(OrderCreateSchema())
@blp.response(201, OrderOut)
@blp.alt_response(409, description="Same dossier already open, or Idempotency-Key reused with another body")
@blp.alt_response(422, description="Invalid field(s), problem+json naming each")
def create(data: dict[str, Any]) -> Response:
    """Create a payment order for a dossier.

    Send ``Idempotency-Key`` to make retries safe: the same key and body return the first response.
    """
    svc = services()
    client = current_client()
    key = idempotency.check_key(request.headers.get("Idempotency-Key"))
    now = svc.clock()
    if key:
        with transaction(svc.sessions) as session:
            stored = idempotency.lookup(session, client.id, key, _hash())
        if stored is not None:
            return _json_response(stored.status, stored.body)
    try:
        status, body = _create(svc, data, now)
    except Conflict as exc:
        if not key:
            raise
        # Remember the refusal too, so that a retry with this key gets the same answer.
        refusal = problem(exc.status, exc.title, exc.detail, errors=exc.errors, **exc.extra)
        try:
            with transaction(svc.sessions) as session:
                idempotency.remember(
                    session,
                    client_id=client.id,
                    key=key,
                    method="POST",
                    path=request.path,
                    req_hash=_hash(),
                    status=exc.status,
                    body=refusal.get_data(as_text=True),
                    now=now,
                )
        except IntegrityError:
            pass  # a concurrent request with the key won; this refusal is not remembered
        return refusal
    except _KeyRace:
        with transaction(svc.sessions) as session:
            stored = idempotency.lookup(session, client.id, key or "", _hash())
        if stored is None:  # pragma: no cover - the winner committed before we looked
            raise Conflict("a request with this Idempotency-Key is in progress") from None
        return _json_response(stored.status, stored.body)
    return _json_response(status, body)


@blp.route("", methods=["GET"])
@require_client()
@blp.arguments(OrderListArgs(), location="query")
@blp.response(200, OrderPage)
def list_(args: dict[str, Any]) -> dict[str, Any]:
    """List this client's orders, newest first, with cursor pagination."""
    svc = services()
    filters = OrderFilter(
        dossier_code=args.get("dossier_code"),
        status=args.get("status"),
        created_from=args.get("created_from"),
        created_to=args.get("created_to"),
    )
    with transaction(svc.sessions) as session:
        orders, next_cursor = list_orders(
            session,
            current_client().id,
            filters,
            limit=args["limit"],
            cursor=args.get("cursor"),
            # expire past-due orders first: a list is a read too (issue 3.11)
            now=svc.clock(),
            base_url=svc.base_url,
        )
        return {"items": [order_view(o, svc.base_url) for o in orders], "next_cursor": next_cursor}


@blp.route("/<string:order_id>", methods=["GET"])
@require_client()
@blp.response(200, OrderOut)
@blp.alt_response(404, description="No such order for this client")
def read(order_id: str) -> dict[str, Any]:
    """Read one order with its items and attempts."""
    svc = services()
    with transaction(svc.sessions) as session:
        order = get_order(session, current_client().id, order_id, now=svc.clock(), base_url=svc.base_url)
        return order_view(order, svc.base_url)


@blp.route("/<string:order_id>/cancel", methods=["POST"])
@require_client()
@blp.response(200, OrderOut)
@blp.alt_response(409, description="The order is paid, expired or refunded")
def cancel(order_id: str) -> dict[str, Any]:
    """Cancel an open order (a payment that still succeeds later is raised as order.late_payment)."""
    svc = services()
    with transaction(svc.sessions) as session:
        order = cancel_order(session, current_client(), order_id, now=svc.clock(), base_url=svc.base_url)
        return order_view(order, svc.base_url)


@blp.route("/<string:order_id>/attempts", methods=["POST"])
@require_client()
@blp.arguments(AttemptCreateSchema())
@blp.response(201, AttemptOut)
@blp.alt_response(409, description="The order cannot be paid any more")
def create_attempt(data: dict[str, Any], order_id: str) -> dict[str, Any]:
    """Start a payment attempt with a provider; returns the redirect URL (or QR payload)."""
    svc = services()
    client = current_client()
    attempt = start_attempt(
        svc.sessions,
        svc.providers,
        client_id=client.id,
        order_id=order_id,
        choice=AttemptChoice(
            provider=data["provider"],
            bank_code=data.get("bank_code"),
            locale=data.get("locale", "vi"),
            client_ip=data.get("client_ip"),
            method=data.get("method"),
        ),
        now=svc.clock(),
        base_url=svc.base_url,
        actor=client.id,
        circuits=svc.circuits,
    )
    return attempt_view(attempt)


__all__ = ["blp"]
