"""The gateway's typed error hierarchy; one error handler maps it to problem+json (contract §12)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""

    status = 500
    title = "Internal error"

    def __init__(self, detail: str = "", *, errors: Mapping[str, Sequence[str]] | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = dict(errors or {})


class ValidationProblem(GatewayError):
    status = 422
    title = "Invalid request"


class BadRequest(GatewayError):
    status = 400
    title = "Bad request"


class PayloadTooLarge(GatewayError):
    status = 413
    title = "Request body too large"


class Unauthorized(GatewayError):
    status = 401
    title = "Unauthorized"


class Forbidden(GatewayError):
    status = 403
    title = "Forbidden"


class NotFound(GatewayError):
    status = 404
    title = "Not found"


class Conflict(GatewayError):
    status = 409
    title = "Conflict"

    def __init__(self, detail: str = "", *, extra: Mapping[str, object] | None = None, **kw: object) -> None:
        super().__init__(detail, **kw)  # type: ignore[arg-type]
        self.extra = dict(extra or {})


class IllegalTransition(Conflict):
    """A status change that the transition table forbids."""

    title = "Illegal status transition"

    def __init__(self, entity: str, current: str, target: str) -> None:
        super().__init__(f"{entity} cannot go from {current} to {target}")
        self.entity = entity
        self.current = current
        self.target = target


class UnknownProvider(ValidationProblem):
    title = "Unknown provider"


class ProviderUnavailable(GatewayError):
    """The provider could not be reached or answered nonsense: the outcome is *unknown*."""

    status = 502
    title = "Payment provider unavailable"


class ProviderTemporarilyUnavailable(GatewayError):
    """The provider's circuit is open after repeated failures: refused before any attempt is created.

    Unlike :class:`ProviderUnavailable` nothing was sent anywhere, so there is no unknown outcome: the
    caller may simply choose another provider (or retry after a while).
    """

    status = 503
    title = "Payment provider temporarily unavailable"


class SignatureVerificationError(GatewayError):
    """A provider message whose signature is missing or wrong. Never trusted, never applied."""

    status = 400
    title = "Invalid signature"


class MalformedNotification(GatewayError):
    """A provider message that is signed correctly but cannot be understood."""

    status = 400
    title = "Malformed notification"
