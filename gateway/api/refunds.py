"""``POST /api/v1/orders/{id}/refunds`` (contract §4), with ``Idempotency-Key``."""

from __future__ import annotations

import json
from typing import Any

from flask import Response, request
from sqlalchemy.exc import IntegrityError

from gateway.api.auth import current_client, require_client
from gateway.api.parsing import Blueprint, parse_json_body
from gateway.api.problems import problem
from gateway.api.schemas import RefundCreateSchema, RefundOut
from gateway.container import services
from gateway.domain.errors import GatewayError
from gateway.services import idempotency
from gateway.services.presenters import refund_view
from gateway.services.refunds import request_refund
from gateway.storage.db import transaction

blp = Blueprint("refunds", __name__, url_prefix="/api/v1/orders", description="Refunds of paid orders")


def _json(status: int, body: str) -> Response:
    # A remembered refusal is replayed as the problem document it was (contract §12).
    mimetype = "application/problem+json" if status >= 400 else "application/json"
    return Response(body, status=status, mimetype=mimetype)


@blp.route("/<string:order_id>/refunds", methods=["POST"])
@require_client()
@blp.arguments(RefundCreateSchema)
@blp.response(201, RefundOut)
@blp.alt_response(409, description="Not refundable, over the refundable balance, or key in use")
def create_refund(data: dict[str, Any], order_id: str) -> Response:
    """Refund part or all of a paid order. The provider is called before the answer is given.

    The answer's ``status`` is ``pending`` while the provider has not confirmed (or for a bank-transfer
    refund that staff complete), ``succeeded`` or ``failed``.
    """
    svc = services()
    client = current_client()
    key = idempotency.check_key(request.headers.get("Idempotency-Key"))
    now = svc.clock()
    req_hash = idempotency.request_hash("POST", request.path, parse_json_body(request))
    if key:
        with transaction(svc.sessions) as session:
            stored = idempotency.lookup(session, client.id, key, req_hash)
        if stored is not None:
            return _json(stored.status, stored.body)
        try:
            with transaction(svc.sessions) as session:
                idempotency.reserve(
                    session,
                    client_id=client.id,
                    key=key,
                    method="POST",
                    path=request.path,
                    req_hash=req_hash,
                    now=now,
                )
        except IntegrityError:
            with transaction(svc.sessions) as session:
                stored = idempotency.lookup(session, client.id, key, req_hash)  # raises 409 while in progress
            assert stored is not None
            return _json(stored.status, stored.body)

    try:
        refund = request_refund(
            svc.sessions,
            svc.providers,
            client_id=client.id,
            order_id=order_id,
            amount=data["amount"],
            reason=data["reason"],
            actor=client.id,
            now=now,
            base_url=svc.base_url,
        )
    except GatewayError as exc:
        if key:
            with transaction(svc.sessions) as session:
                if exc.status == 422:
                    idempotency.release(session, client_id=client.id, key=key)
                else:
                    extra = getattr(exc, "extra", {})
                    refusal = problem(exc.status, exc.title, exc.detail, errors=exc.errors, **extra)
                    idempotency.complete(
                        session,
                        client_id=client.id,
                        key=key,
                        status=exc.status,
                        body=refusal.get_data(as_text=True),
                    )
        raise
    body = json.dumps(RefundOut().dump(refund_view(refund)), ensure_ascii=False)
    if key:
        with transaction(svc.sessions) as session:
            idempotency.complete(session, client_id=client.id, key=key, status=201, body=body)
    return _json(201, body)
