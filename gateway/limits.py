"""Rate limits (issue 5.8): per portal client on the API, and a tighter one per source IP on provider
callbacks that fail verification. Breaches answer 429 with ``Retry-After``.

Built on ``limits`` (the storage and fixed-window strategy Flask-Limiter itself runs on) with two small
request hooks instead of Flask-Limiter's generic machinery: on the order-creation hot path that machinery
cost about 0.16 ms of CPU per request, 15 % of the whole request (bench/README.md), for features the
gateway does not use (decorator limits, exemptions, per-route resolution, informational headers).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Final

from flask import Flask, g, request
from flask.wrappers import Response
from limits import RateLimitItem, parse, parse_many
from limits.errors import ConfigurationError
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from werkzeug.exceptions import TooManyRequests

from gateway.settings import ConfigError, Settings

log = logging.getLogger(__name__)

# A provider sends a handful of notifications per payment; a source that keeps sending callbacks we
# cannot verify is probing, and each one costs a stored row (and may trigger a provider query).
REJECTED_CALLBACK_LIMIT: Final = "30 per minute"
API_BLUEPRINTS: Final = frozenset({"orders", "refunds", "events", "providers", "reconciliation"})
CALLBACK_BLUEPRINT: Final = "callbacks"
KEY_PREFIX: Final = "gateway-limits"


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


@dataclass
class RateLimits:
    window: FixedWindowRateLimiter  # the cheapest check per request; bursts at a window edge are acceptable
    api: tuple[RateLimitItem, ...]  # ``100 per minute; 1000 per hour``: every one of them applies
    rejected_callbacks: RateLimitItem

    def _refuse(self, limit: RateLimitItem, key: str) -> TooManyRequests:
        reset = self.window.get_window_stats(limit, KEY_PREFIX, key).reset_time
        return TooManyRequests(
            f"rate limit exceeded: {limit}", retry_after=max(1, math.ceil(reset - time.time()))
        )

    def check_api(self) -> None:
        """Count this API request against its client; refuse it once the window is full."""
        key = client_key()
        for limit in self.api:
            if not self.window.hit(limit, KEY_PREFIX, key):
                raise self._refuse(limit, key)

    def check_callback_source(self) -> None:
        """Refuse every callback from a source whose unverifiable callbacks filled the window."""
        key = source_ip()
        if not self.window.test(self.rejected_callbacks, KEY_PREFIX, key):
            raise self._refuse(self.rejected_callbacks, key)

    def count_rejected_callback(self) -> None:
        self.window.hit(self.rejected_callbacks, KEY_PREFIX, source_ip())


def _storage(settings: Settings) -> Storage:
    # Shared by every worker process when the jobs' Redis is there; per process otherwise.
    broker = settings.broker_url or ""
    uri = broker if broker.startswith("redis") else "memory://"
    try:
        storage = storage_from_string(uri)
    except ConfigurationError as exc:
        raise ConfigError(f"rate-limit storage {uri.split('@')[-1]}: {exc}") from exc
    if not isinstance(storage, Storage):  # an async (aio) scheme: not usable from WSGI workers
        raise ConfigError(f"rate-limit storage {uri.split('@')[-1]} is asynchronous")
    return storage


def init_limits(app: Flask, settings: Settings) -> RateLimits:
    """Install the limits on ``app`` (``settings.api_rate_limit`` was validated when settings were loaded).

    Raises:
        gateway.settings.ConfigError: the storage URI names a backend that cannot be used.
    """
    limits = RateLimits(
        FixedWindowRateLimiter(_storage(settings)),
        tuple(parse_many(settings.api_rate_limit)),
        parse(REJECTED_CALLBACK_LIMIT),
    )

    @app.before_request
    def _limit() -> None:
        try:
            if request.blueprint in API_BLUEPRINTS:
                limits.check_api()
            elif request.blueprint == CALLBACK_BLUEPRINT:
                limits.check_callback_source()
        except TooManyRequests:
            raise
        except Exception:  # noqa: BLE001 - a Redis outage surfaces as the client library's own errors
            # Never turn a broken limiter store into an outage of payments.
            log.warning("rate-limit storage unavailable; request let through", exc_info=True)

    @app.after_request
    def _count_rejected(response: Response) -> Response:
        if g.get("callback_rejected"):
            try:
                limits.count_rejected_callback()
            except Exception:  # noqa: BLE001 - as above
                log.warning("rate-limit storage unavailable; rejected callback not counted", exc_info=True)
        return response

    return limits
