"""The one shape every provider notification goes through (contract §6, style.md "What we absorb" 6).

1. Store the raw message (body, query, headers, source IP) in its own transaction.
2. Verify the signature on the raw values; a failure is recorded and answered, never applied.
3. Under the order's row lock, apply the verified statement once (a unique dedupe key guards it).
4. Answer with the provider's exact acknowledgement.
Any database failure answers the provider's "error" code so that it retries.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from gateway.domain.errors import MalformedNotification, SignatureVerificationError
from gateway.domain.status import OPEN_ATTEMPT_STATUSES
from gateway.services.payments import apply_notification
from gateway.storage.db import transaction
from gateway.storage.models import InboundNotification, PaymentAttempt
from providers.base import Ack, AckResponse, CallbackRequest, Notification, Outcome, PaymentProvider

log = logging.getLogger(__name__)

# Header values worth keeping; cookies and authorisation never are.
_SECRET_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


@dataclass(frozen=True)
class Inbound:
    provider: PaymentProvider
    request: CallbackRequest
    path: str
    query_string: str
    channel: str = "ipn"


def store(factory: sessionmaker[Session], inbound: Inbound, now: datetime) -> int:
    headers = {k: v for k, v in inbound.request.headers.items() if k.lower() not in _SECRET_HEADERS}
    with transaction(factory) as session:
        row = InboundNotification(
            provider=inbound.provider.code,
            channel=inbound.channel,
            method=inbound.request.method,
            path=inbound.path,
            query_string=inbound.query_string,
            body=inbound.request.body,
            headers=headers,
            source_ip=inbound.request.remote_addr,
            verified=False,
            received_at=now,
        )
        session.add(row)
        session.flush()
        return row.id


def _finish(
    session: Session,
    row_id: int,
    *,
    outcome: str,
    ack: Ack,
    now: datetime,
    verified: bool = False,
    reference: str | None = None,
    error: str | None = None,
    dedupe_key: str | None = None,
) -> None:
    # One plain UPDATE: only this request ever writes this row after storing it, so no lock or reload.
    values: dict[str, object] = {
        "verified": verified,
        "outcome": outcome,
        "ack_code": ack.value,
        "reference": reference,
        "error": error,
        "processed_at": now,
    }
    if dedupe_key is not None:
        values["dedupe_key"] = dedupe_key
    session.execute(update(InboundNotification).where(InboundNotification.id == row_id).values(**values))


@dataclass(frozen=True)
class Handled:
    ack: Ack
    response: AckResponse


def handle(factory: sessionmaker[Session], inbound: Inbound, *, now: datetime, base_url: str) -> Handled:
    provider = inbound.provider
    try:
        row_id = store(factory, inbound, now)
    except SQLAlchemyError:
        log.exception("could not store a %s notification; asking the provider to retry", provider.code)
        return Handled(Ack.ERROR, provider.acknowledge(Ack.ERROR))

    try:
        note = provider.verify_callback(inbound.request)
    except SignatureVerificationError as exc:
        _record_rejection(
            factory, provider, row_id, outcome="bad_signature", ack=Ack.BAD_SIGNATURE, error=str(exc), now=now
        )
        request_query(factory, provider, provider.claimed_reference(inbound.request), now=now)
        return Handled(Ack.BAD_SIGNATURE, provider.acknowledge(Ack.BAD_SIGNATURE))
    except MalformedNotification as exc:
        _record_rejection(
            factory, provider, row_id, outcome="malformed", ack=Ack.ERROR, error=str(exc), now=now
        )
        return Handled(Ack.ERROR, provider.acknowledge(Ack.ERROR))

    try:
        ack = _apply(factory, provider, row_id, note, now=now, base_url=base_url)
    except SQLAlchemyError:
        log.exception("could not apply %s notification %s", provider.code, row_id)
        ack = Ack.ERROR
    return Handled(ack, provider.acknowledge(ack))


# After a callback we could not verify, the janitor asks the provider about the attempt it names, at most
# once per this interval per attempt (so a forger cannot make us hammer the provider).
QUERY_AFTER_REJECTION_INTERVAL = timedelta(minutes=5)


def request_query(
    factory: sessionmaker[Session], provider: PaymentProvider, reference: str | None, *, now: datetime
) -> bool:
    """Bring the janitor's next query of ``reference`` forward to now (issue 5.4). Returns True if it did."""
    if not reference:
        return False
    try:
        with transaction(factory) as session:
            attempt = session.scalars(
                select(PaymentAttempt)
                .where(PaymentAttempt.reference == reference, PaymentAttempt.provider == provider.code)
                .with_for_update()
            ).first()
            if attempt is None or attempt.status not in OPEN_ATTEMPT_STATUSES or attempt.needs_review:
                return False
            if (
                attempt.next_check_at is not None
                and attempt.next_check_at <= now + QUERY_AFTER_REJECTION_INTERVAL
            ):
                return False  # a query is due soon anyway
            recent = now - QUERY_AFTER_REJECTION_INTERVAL
            if attempt.last_checked_at is not None and attempt.last_checked_at > recent:
                return False  # asked recently: rejected callbacks do not get to pace our queries
            attempt.next_check_at = now
            return True
    except SQLAlchemyError:
        log.exception("could not schedule a query after a rejected %s callback", provider.code)
        return False


def _apply(
    factory: sessionmaker[Session],
    provider: PaymentProvider,
    row_id: int,
    note: Notification,
    *,
    now: datetime,
    base_url: str,
) -> Ack:
    try:
        with transaction(factory) as session:
            ack = apply_notification(session, provider.code, note, source="ipn", now=now, base_url=base_url)
            final = ack is Ack.OK and note.outcome in {Outcome.SUCCEEDED, Outcome.FAILED}
            _finish(
                session,
                row_id,
                outcome=note.outcome.value,
                ack=ack,
                now=now,
                verified=True,
                reference=note.reference,
                dedupe_key=f"{provider.code}:{note.dedupe_key}" if final else None,
            )
            return ack
    except IntegrityError:
        # Another copy of this notification was applied first: the unique dedupe key refused ours.
        with transaction(factory) as session:
            _finish(
                session,
                row_id,
                outcome=note.outcome.value,
                ack=Ack.ALREADY,
                now=now,
                verified=True,
                reference=note.reference,
            )
        return Ack.ALREADY


def _record_rejection(
    factory: sessionmaker[Session],
    provider: PaymentProvider,
    row_id: int,
    *,
    outcome: str,
    ack: Ack,
    error: str,
    now: datetime,
) -> None:
    log.warning("%s notification %s rejected: %s", provider.code, row_id, error)
    try:
        with transaction(factory) as session:
            _finish(session, row_id, outcome=outcome, ack=ack, now=now, error=error)
    except SQLAlchemyError:
        log.exception("could not record the rejection of %s notification %s", provider.code, row_id)
