"""Bearer API keys per portal client (contract §4).

A verified key is remembered in-process for a few seconds (by its SHA-256, never the key itself), so that
a busy portal does not cost a database round trip per request; disabling a client or rotating its key
takes effect within :data:`AUTH_CACHE_TTL` seconds.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar, cast

from flask import current_app, g, request

from gateway.container import services
from gateway.domain.errors import Forbidden
from gateway.services.clients import authenticate_with_overlap
from gateway.storage.db import transaction

F = TypeVar("F", bound=Callable[..., Any])

AUTH_CACHE_TTL = 30.0
AUTH_CACHE_SIZE = 1024


@dataclass(frozen=True)
class AuthenticatedClient:
    """What a request knows about its caller: a detached snapshot, safe to share between threads."""

    id: str
    name: str
    scope_set: frozenset[str]


class _AuthCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[str, tuple[float, AuthenticatedClient]] = OrderedDict()

    def get(self, digest: str) -> AuthenticatedClient | None:
        with self._lock:
            item = self._items.get(digest)
            if item is None or item[0] < time.monotonic():
                return None
            return item[1]

    def put(self, digest: str, client: AuthenticatedClient) -> None:
        with self._lock:
            self._items[digest] = (time.monotonic() + AUTH_CACHE_TTL, client)
            self._items.move_to_end(digest)
            while len(self._items) > AUTH_CACHE_SIZE:
                self._items.popitem(last=False)


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _authenticate(token: str | None) -> AuthenticatedClient:
    cache: _AuthCache = current_app.extensions.setdefault("gateway_auth_cache", _AuthCache())
    digest = hashlib.sha256(token.encode()).hexdigest() if token else ""
    cached = cache.get(digest) if digest else None
    if cached is not None:
        return cached
    svc = services()
    with transaction(svc.sessions) as session:
        # A key rotated out in the console keeps working until its overlap window ends (issue 7.7).
        row = authenticate_with_overlap(session, token, now=svc.clock())
        client = AuthenticatedClient(id=row.id, name=row.name, scope_set=row.scope_set)
    cache.put(digest, client)
    return client


def require_client(scope: str = "orders") -> Callable[[F], F]:
    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            client = _authenticate(bearer_token())
            if scope not in client.scope_set:
                raise Forbidden(f"this API key lacks the {scope!r} scope")
            g.client = client
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorator


def current_client() -> AuthenticatedClient:
    client: AuthenticatedClient = g.client
    return client
