"""Plain-dict views of orders and attempts, shared by the API responses and the outbox events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gateway.storage.models import Order, PaymentAttempt, Refund

if TYPE_CHECKING:
    from gateway.services.orders import DraftOrder


def iso(dt: datetime | None) -> str | None:
    """UTC ISO-8601 with ``Z`` (contract preamble)."""
    if dt is None:
        return None
    return dt.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def attempt_view(attempt: PaymentAttempt) -> dict[str, Any]:
    return {
        "id": attempt.id,
        "provider": attempt.provider,
        "reference": attempt.reference,
        "status": attempt.status,
        "amount": attempt.amount,
        "redirect_url": attempt.redirect_url,
        "qr_payload": attempt.qr_payload,
        "provider_txn_id": attempt.provider_txn_id,
        "result_code": attempt.result_code,
        "expires_at": iso(attempt.expires_at),
        "created_at": iso(attempt.created_at),
        "paid_at": iso(attempt.paid_at),
    }


def order_view(order: Order | DraftOrder, base_url: str) -> dict[str, Any]:
    return {
        "id": order.id,
        "status": order.status,
        "amount": order.amount,
        "currency": order.currency,
        "dossier_code": order.dossier_code,
        "agency_code": order.agency_code,
        "payer": {
            "name": order.payer_name,
            "id_number": order.payer_id_number,
            "phone": order.payer_phone,
            "email": order.payer_email,
        },
        "items": [
            {
                "code": item.code,
                "kind": item.kind,
                "description": item.description,
                "amount": item.amount,
                "revenue_code": item.revenue_code,
                "chapter_code": item.chapter_code,
            }
            for item in order.items
        ],
        "paid_amount": order.paid_amount,
        "refunded_amount": order.refunded_amount,
        "checkout_url": f"{base_url}/pay/{order.id}",
        "return_url": order.return_url,
        "metadata": order.metadata_json or {},
        "expires_at": iso(order.expires_at),
        "created_at": iso(order.created_at),
        "updated_at": iso(order.updated_at),
        "paid_at": iso(order.paid_at),
        "attempts": [attempt_view(a) for a in order.attempts],
    }


def refund_view(refund: Refund) -> dict[str, Any]:
    # contract §4 lists pending|succeeded|failed: "unknown" (no usable provider answer yet) is, for the
    # portal, still pending; the console shows the distinction.
    status = "pending" if refund.status == "unknown" else refund.status
    return {
        "id": refund.id,
        "order_id": refund.order_id,
        "amount": refund.amount,
        "reason": refund.reason,
        "status": status,
        "provider": refund.provider,
        "provider_reference": refund.provider_reference,
        "created_at": iso(refund.created_at),
        "completed_at": iso(refund.completed_at),
    }
