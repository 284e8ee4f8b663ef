"""Portal clients and their API keys. Keys are stored as SHA-256 and compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.domain.errors import Unauthorized, ValidationProblem
from gateway.domain.references import new_id
from gateway.storage.models import PortalClient

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
