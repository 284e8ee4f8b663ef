"""Portal clients and their API keys. Keys are stored as SHA-256 and compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.domain.errors import NotFound, Unauthorized, ValidationProblem
from gateway.domain.references import new_id
from gateway.services.webhooks import split_secrets
from gateway.storage.models import ClientKeyRotation, PortalClient

KNOWN_SCOPES = frozenset({"orders", "finance"})
# A fixed-size dummy hash keeps the work done for an unknown prefix equal to a wrong key.
_DUMMY_HASH = hashlib.sha256(b"no such client").hexdigest()


@dataclass(frozen=True)
class IssuedClient:
    client_id: str
    api_key: str
    webhook_secret: str


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_client(
    session: Session,
    name: str,
    *,
    webhook_url: str | None,
    scopes: tuple[str, ...] = ("orders",),
    now: datetime,
) -> IssuedClient:
    """Register a portal client; the returned key and secret are shown once."""
    name = name.strip()
    if not name:
        raise ValidationProblem("client name is empty", errors={"name": ["must not be empty"]})
    unknown = set(scopes) - KNOWN_SCOPES
    if unknown:
        raise ValidationProblem(
            f"unknown scope(s): {', '.join(sorted(unknown))}",
            errors={"scopes": [f"allowed: {', '.join(sorted(KNOWN_SCOPES))}"]},
        )
    if webhook_url is not None:
        parts = urlsplit(webhook_url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValidationProblem(
                "webhook URL must be an absolute http(s) URL",
                errors={"webhook_url": ["must be an absolute http(s) URL"]},
            )
    prefix = secrets.token_hex(6)
    api_key = f"gk_{prefix}_{secrets.token_urlsafe(32)}"
    webhook_secret = f"whsec_{secrets.token_urlsafe(32)}"
    client = PortalClient(
        id=new_id("cli"),
        name=name,
        api_key_prefix=prefix,
        api_key_hash=_hash(api_key),
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
        scopes=",".join(sorted(set(scopes) | {"orders"})),
        created_at=now,
    )
    session.add(client)
    session.flush()
    return IssuedClient(client.id, api_key, webhook_secret)


def authenticate(session: Session, api_key: str | None) -> PortalClient:
    """Return the active client owning ``api_key`` or raise :class:`Unauthorized`."""
    if not api_key:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <api_key>'")
    parts = api_key.split("_", 2)
    prefix = parts[1] if len(parts) == 3 and parts[0] == "gk" else ""
    client = (
        session.scalars(select(PortalClient).where(PortalClient.api_key_prefix == prefix)).first()
        if prefix
        else None
    )
    stored = client.api_key_hash if client is not None else _DUMMY_HASH
    matches = hmac.compare_digest(stored.encode(), _hash(api_key).encode())
    if client is None or not matches or client.disabled_at is not None:
        raise Unauthorized("invalid API key")
    return client


# ---- rotation with an overlap window (issue 7.7) ---------------------------------------------------------
#
# API key: the new key replaces ``api_key_prefix``/``api_key_hash`` on the client at once; the previous
# prefix and hash move to a ``client_key_rotations`` row that stays valid until ``overlap_until``.
# :func:`authenticate` (unchanged) knows only the current key; :func:`authenticate_with_overlap` also
# accepts a previous key inside its window, and is what the API's auth should call.
# Webhook secret: the stored value becomes ``new,old`` (newest first), so every delivery carries a ``v1=``
# for each and a portal verifying with either secret accepts it; :func:`end_expired_overlaps` (or an
# admin, early) puts it back to ``new`` once the window has passed.

KIND_API_KEY = "api_key"
KIND_WEBHOOK = "webhook_secret"
DEFAULT_OVERLAP = timedelta(hours=24)
MAX_OVERLAP = timedelta(days=30)


def _client_for_update(session: Session, client_id: str) -> PortalClient:
    client = session.scalars(
        select(PortalClient)
        .where(PortalClient.id == client_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if client is None:
        raise NotFound(f"portal client {client_id} not found")
    return client


def _check_overlap(overlap: timedelta) -> None:
    if overlap < timedelta(0) or overlap > MAX_OVERLAP:
        raise ValidationProblem(
            "the overlap window must be between 0 and 30 days",
            errors={"overlap_hours": ["must be between 0 and 720 hours"]},
        )


def rotate_api_key(session: Session, client_id: str, *, overlap: timedelta, actor: str, now: datetime) -> str:
    """Issue a new API key (returned once); the old one keeps working for ``overlap``."""
    _check_overlap(overlap)
    client = _client_for_update(session, client_id)
    if overlap > timedelta(0):
        session.add(
            ClientKeyRotation(
                client_id=client.id,
                kind=KIND_API_KEY,
                old_key_prefix=client.api_key_prefix,
                old_key_hash=client.api_key_hash,
                rotated_by=actor,
                rotated_at=now,
                overlap_until=now + overlap,
            )
        )
    prefix = secrets.token_hex(6)
    api_key = f"gk_{prefix}_{secrets.token_urlsafe(32)}"
    client.api_key_prefix = prefix
    client.api_key_hash = _hash(api_key)
    session.flush()
    return api_key


def rotate_webhook_secret(
    session: Session, client_id: str, *, overlap: timedelta, actor: str, now: datetime
) -> str:
    """Issue a new webhook secret (returned once); events are signed with new and old during ``overlap``."""
    _check_overlap(overlap)
    client = _client_for_update(session, client_id)
    current = split_secrets(client.webhook_secret)
    new_secret = f"whsec_{secrets.token_urlsafe(32)}"
    # Only the newest previous secret overlaps: a second rotation inside a window retires the oldest.
    kept = current[:1] if overlap > timedelta(0) else []
    client.webhook_secret = ",".join([new_secret, *kept])
    for open_rotation in _open_rotations(session, client.id, KIND_WEBHOOK):
        open_rotation.ended_at = now
    if kept:
        session.add(
            ClientKeyRotation(
                client_id=client.id,
                kind=KIND_WEBHOOK,
                rotated_by=actor,
                rotated_at=now,
                overlap_until=now + overlap,
            )
        )
    session.flush()
    return new_secret


def _open_rotations(session: Session, client_id: str, kind: str | None = None) -> list[ClientKeyRotation]:
    stmt = select(ClientKeyRotation).where(
        ClientKeyRotation.client_id == client_id, ClientKeyRotation.ended_at.is_(None)
    )
    if kind is not None:
        stmt = stmt.where(ClientKeyRotation.kind == kind)
    return list(session.scalars(stmt))


def end_overlap(session: Session, client_id: str, *, kind: str, now: datetime) -> int:
    """Stop accepting the previous key / signing with the previous secret now. Returns rows ended."""
    client = _client_for_update(session, client_id)
    rows = _open_rotations(session, client.id, kind)
    for row in rows:
        row.ended_at = now
    if kind == KIND_WEBHOOK:
        client.webhook_secret = split_secrets(client.webhook_secret)[0]
    return len(rows)


def end_expired_overlaps(session: Session, *, now: datetime) -> int:
    """End every overlap window that has passed (idempotent; safe to call from a job or a page)."""
    due = list(
        session.scalars(
            select(ClientKeyRotation).where(
                ClientKeyRotation.ended_at.is_(None), ClientKeyRotation.overlap_until <= now
            )
        )
    )
    for row in due:
        if row.kind == KIND_WEBHOOK:
            client = _client_for_update(session, row.client_id)
            client.webhook_secret = split_secrets(client.webhook_secret)[0]
        row.ended_at = now
    return len(due)


def authenticate_with_overlap(session: Session, api_key: str | None, *, now: datetime) -> PortalClient:
    """:func:`authenticate`, also accepting a rotated-out key inside its overlap window."""
    try:
        return authenticate(session, api_key)
    except Unauthorized:
        if not api_key:
            raise
    parts = api_key.split("_", 2)
    prefix = parts[1] if len(parts) == 3 and parts[0] == "gk" else ""
    rotation = (
        session.scalars(
            select(ClientKeyRotation).where(
                ClientKeyRotation.kind == KIND_API_KEY,
                ClientKeyRotation.old_key_prefix == prefix,
                ClientKeyRotation.ended_at.is_(None),
                ClientKeyRotation.overlap_until > now,
            )
        ).first()
        if prefix
        else None
    )
    stored = rotation.old_key_hash if rotation is not None and rotation.old_key_hash else _DUMMY_HASH
    matches = hmac.compare_digest(stored.encode(), _hash(api_key).encode())
    client = session.get(PortalClient, rotation.client_id) if rotation is not None else None
    if client is None or not matches or client.disabled_at is not None:
        raise Unauthorized("invalid API key")
    return client
