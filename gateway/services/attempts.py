"""Starting a payment attempt: reserve under the lock, call the provider outside any transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from gateway.domain.errors import (
    Conflict,
    GatewayError,
    ProviderTemporarilyUnavailable,
    ProviderUnavailable,
)
from gateway.domain.references import new_id, new_reference
from gateway.domain.status import OPEN_ORDER_STATUSES, AttemptStatus, OrderStatus
from gateway.services.audit import change_status
from gateway.services.circuit import CircuitRegistry
from gateway.services.orders import expire_if_due, is_past_deadline, lock_order
from gateway.services.registry import ProviderRegistry
from gateway.storage.db import get_for_update, transaction
from gateway.storage.models import PaymentAttempt
from providers.base import PaymentProvider, PaymentRedirect, PaymentRequest


@dataclass(frozen=True)
class AttemptChoice:
    provider: str
    bank_code: str | None = None
    locale: str = "vi"
    client_ip: str | None = None
    method: str | None = None


def start_attempt(
    factory: sessionmaker[Session],
    registry: ProviderRegistry,
    *,
    client_id: str | None,
    order_id: str,
    choice: AttemptChoice,
    now: datetime,
    base_url: str,
    actor: str,
    circuits: CircuitRegistry | None = None,
) -> PaymentAttempt:
    """Create an attempt and hand out its redirect (or QR). Same path for the API and the citizen page.

    Raises:
        NotFound: no such order for this client.
        Conflict: the order is not payable (paid, expired, cancelled...).
        UnknownProvider: the provider is not enabled.
        ProviderTemporarilyUnavailable: the provider's circuit is open (``circuits``; None = no breaker);
            refused before any attempt row exists.
    """
    provider = registry.get(choice.provider)
    if circuits is not None and not circuits.acquire(provider.code):
        raise ProviderTemporarilyUnavailable(
            f"{provider.code} is temporarily unavailable after repeated failures; choose another provider"
        )

    # Phase 1, one short transaction under the order's row lock: check and reserve a reference.
    for _ in range(3):
        try:
            with transaction(factory) as session:
                order = lock_order(session, client_id, order_id)
                expire_if_due(session, order, now=now, base_url=base_url)
                if order.status not in OPEN_ORDER_STATUSES or is_past_deadline(order, now):
                    state = "expired" if order.status in OPEN_ORDER_STATUSES else order.status
                    raise Conflict(f"order {order.id} is {state} and cannot be paid")
                attempt = PaymentAttempt(
                    id=new_id("att"),
                    order_id=order.id,
                    provider=provider.code,
                    reference=new_reference(now),
                    status=AttemptStatus.CREATED.value,
                    amount=order.amount,
                    bank_code=choice.bank_code,
                    locale=choice.locale,
                    client_ip=choice.client_ip,
                    expires_at=order.expires_at,
                    created_at=now,
                    updated_at=now,
                )
                session.add(attempt)
                session.flush()
                change_status(
                    session,
                    order,
                    OrderStatus.PROCESSING,
                    actor=actor,
                    source="attempt",
                    reason=f"payment started with {provider.code}",
                    at=now,
                )
                request = PaymentRequest(
                    reference=attempt.reference,
                    amount=attempt.amount,
                    order_info=f"Thanh toan ho so {order.dossier_code}",
                    return_url=f"{base_url}/return/{provider.code}",
                    notify_url=f"{base_url}/callbacks/{provider.code}",
                    client_ip=choice.client_ip or "127.0.0.1",
                    locale=choice.locale,
                    created_at=now,
                    expires_at=order.expires_at,
                    bank_code=choice.bank_code,
                    method=choice.method,
                )
            break
        except IntegrityError:
            continue  # a reference collision (1 in 10^9 a day): draw another
        except BaseException:
            if circuits is not None:
                circuits.release(provider.code)  # no provider call: hand a half-open trial back
            raise
    else:  # pragma: no cover - would need three collisions in a row
        if circuits is not None:
            circuits.release(provider.code)
        raise GatewayError("could not allocate a unique payment reference")

    # Phase 2: talk to the provider with no transaction open (no provider HTTP inside a DB tx).
    redirect, failure = _call_provider(provider, request, circuits)

    # Phase 3: record what happened, again under the lock.
    with transaction(factory) as session:
        order = lock_order(session, client_id, order_id)
        attempt = get_for_update(session, PaymentAttempt, attempt.id)  # type: ignore[assignment]
        if redirect is not None:
            attempt.redirect_url = redirect.redirect_url
            attempt.qr_payload = redirect.qr_payload
            attempt.provider_txn_id = redirect.provider_txn_id
            attempt.provider_data = dict(redirect.provider_data)
            change_status(
                session,
                attempt,
                AttemptStatus.REDIRECTED,
                actor=actor,
                source="attempt",
                reason="redirect handed out",
                at=now,
            )
        elif failure and failure.startswith("unknown"):
            # Timeout or 5xx: the provider may have created it. Never treated as failed.
            change_status(
                session,
                attempt,
                AttemptStatus.UNKNOWN,
                actor=actor,
                source="attempt",
                reason=failure,
                at=now,
            )
        else:
            change_status(
                session,
                attempt,
                AttemptStatus.FAILED,
                actor=actor,
                source="attempt",
                reason=failure or "provider refused",
                at=now,
            )
        session.flush()
        return attempt


def _call_provider(
    provider: PaymentProvider, request: PaymentRequest, circuits: CircuitRegistry | None
) -> tuple[PaymentRedirect | None, str | None]:
    """Phase 2: the redirect, or why there is none ("unknown: ..." / "failed: ..."); feeds the breaker.

    Only ``ProviderUnavailable`` (timeout, 5xx, garbage) counts as a failure; any answer, even a refusal,
    shows the provider is reachable.
    """
    try:
        redirect = provider.build_payment_request(request)
    except ProviderUnavailable as exc:
        if circuits is not None:
            circuits.record_failure(provider.code)
        return None, f"unknown: {exc.detail}"
    except GatewayError as exc:
        if circuits is not None:
            circuits.record_success(provider.code)
        return None, f"failed: {exc.detail}"
    except BaseException:
        if circuits is not None:
            circuits.release(provider.code)  # a bug, not the provider: no verdict, hand a trial back
        raise
    if circuits is not None:
        circuits.record_success(provider.code)
    return redirect, None
