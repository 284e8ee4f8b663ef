"""Bearer API keys per portal client (contract §4)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import g, request

from gateway.container import services
from gateway.domain.errors import Forbidden
from gateway.services.clients import authenticate
from gateway.storage.db import transaction
from gateway.storage.models import PortalClient

F = TypeVar("F", bound=Callable[..., Any])


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def require_client(scope: str = "orders") -> Callable[[F], F]:
    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with transaction(services().sessions) as session:
                client = authenticate(session, bearer_token())
            if scope not in client.scope_set:
                raise Forbidden(f"this API key lacks the {scope!r} scope")
            g.client = client
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorator


def current_client() -> PortalClient:
    client: PortalClient = g.client
    return client
