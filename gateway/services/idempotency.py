"""``Idempotency-Key`` (contract §4, Stripe's semantics, orchestrators.md §2).

Same key + same body -> the first response again, same status. Same key + different body -> 409.
A key whose first request is still running -> 409 (retry later). Keys are scoped per client and
kept for at least 24 hours. Requests that fail validation store nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.domain.errors import Conflict, ValidationProblem
from gateway.storage.models import IdempotencyRecord

RETENTION = timedelta(hours=48)
# A reserved key whose request is still running (requests that call a provider in between).
IN_PROGRESS = 0
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: str


def check_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not key.strip() or len(key) > MAX_KEY_LENGTH:
        raise ValidationProblem(
            "invalid Idempotency-Key",
            errors={"Idempotency-Key": [f"must be 1..{MAX_KEY_LENGTH} characters"]},
        )
    return key


def request_hash(method: str, path: str, body: Any) -> str:
    canonical = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def lookup(session: Session, client_id: str, key: str, req_hash: str) -> StoredResponse | None:
    record = session.scalars(
        select(IdempotencyRecord).where(
            IdempotencyRecord.client_id == client_id, IdempotencyRecord.key == key
        )
    ).first()
    if record is None:
        return None
    if record.request_hash != req_hash:
        raise Conflict(
            "this Idempotency-Key was already used with a different request",
            errors={"Idempotency-Key": ["reused with a different body"]},
        )
    if record.response_status == IN_PROGRESS:
        raise Conflict(
            "a request with this Idempotency-Key is still in progress; retry later",
            errors={"Idempotency-Key": ["in progress"]},
        )
    return StoredResponse(record.response_status, record.response_body)


def record_row(
    *, client_id: str, key: str, method: str, path: str, req_hash: str, status: int, body: str, now: datetime
) -> dict[str, Any]:
    """The idempotency record's column values, for writers that insert it themselves (order creation)."""
    return {
        "client_id": client_id,
        "key": key,
        "method": method,
        "path": path,
        "request_hash": req_hash,
        "response_status": status,
        "response_body": body,
        "created_at": now,
        "expires_at": now + RETENTION,
    }


def remember(
    session: Session,
    *,
    client_id: str,
    key: str,
    method: str,
    path: str,
    req_hash: str,
    status: int,
    body: str,
    now: datetime,
) -> None:
    session.add(
        IdempotencyRecord(
            client_id=client_id,
            key=key,
            method=method,
            path=path,
            request_hash=req_hash,
            response_status=status,
            response_body=body,
            created_at=now,
            expires_at=now + RETENTION,
        )
    )
    session.flush()


def is_key_conflict(exc: IntegrityError) -> bool:
    text = str(exc.orig)
    return "uq_idempotency_client_key" in text or "idempotency_records" in text


def reserve(
    session: Session, *, client_id: str, key: str, method: str, path: str, req_hash: str, now: datetime
) -> None:
    """Claim ``key`` before a request that calls a provider; IntegrityError if another request holds it."""
    remember(
        session,
        client_id=client_id,
        key=key,
        method=method,
        path=path,
        req_hash=req_hash,
        status=IN_PROGRESS,
        body="",
        now=now,
    )


def complete(session: Session, *, client_id: str, key: str, status: int, body: str) -> None:
    record = session.scalars(
        select(IdempotencyRecord).where(
            IdempotencyRecord.client_id == client_id, IdempotencyRecord.key == key
        )
    ).one()
    record.response_status = status
    record.response_body = body


def release(session: Session, *, client_id: str, key: str) -> None:
    """Forget a reservation whose request failed validation (nothing is kept for it, as Stripe does)."""
    record = session.scalars(
        select(IdempotencyRecord).where(
            IdempotencyRecord.client_id == client_id, IdempotencyRecord.key == key
        )
    ).first()
    if record is not None:
        session.delete(record)
