"""Rate limits (issue 5.8): per portal client on the API, and a tighter one per source IP on provider
callbacks that fail verification. Breaches answer 429 with ``Retry-After``."""

from __future__ import annotations

from typing import cast

from flask import Blueprint, Flask, g, request
from flask.wrappers import Response
from flask_limiter import Limiter

from gateway.settings import Settings

# A provider sends a handful of notifications per payment; a source that keeps sending callbacks we
# cannot verify is probing, and each one costs a stored row (and may trigger a provider query).
REJECTED_CALLBACK_LIMIT = "30 per minute"


def client_key() -> str:
    """The API key's public prefix (``gk_<prefix>_…``) identifies the client without a database hit."""
    header = request.headers.get("Authorization", "")
    token = header.partition(" ")[2].strip()
    parts = token.split("_", 2)
    if len(parts) == 3 and parts[0] == "gk" and parts[1]:
        return f"client:{parts[1]}"
    return f"ip:{request.remote_addr}"


def source_ip() -> str:
    return f"ip:{request.remote_addr}"


def _rejected(_response: Response) -> bool:
    return bool(g.get("callback_rejected"))


def init_limits(app: Flask, settings: Settings) -> Limiter:
    storage = settings.broker_url if (settings.broker_url or "").startswith("redis") else "memory://"
    limiter = Limiter(
        key_func=client_key,
        app=app,
        storage_uri=storage,
        headers_enabled=True,
        strategy="fixed-window",  # the cheapest check per request; bursts at a window edge are acceptable
        key_prefix="gateway-limits",
        # Never turn a broken limiter store into an outage of payments.
        swallow_errors=True,
    )
    api_limit = settings.api_rate_limit
    for name in ("orders", "refunds", "events", "providers"):
        limiter.limit(api_limit, key_func=client_key)(cast(Blueprint, app.blueprints[name]))
    limiter.limit(REJECTED_CALLBACK_LIMIT, key_func=source_ip, deduct_when=_rejected)(
        cast(Blueprint, app.blueprints["callbacks"])
    )
    return limiter
