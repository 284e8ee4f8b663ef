"""One mapping from errors to ``application/problem+json`` (contract §12). Views never catch for codes."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, json, request
from werkzeug.exceptions import HTTPException
from werkzeug.http import http_date

from gateway.domain.errors import Conflict, GatewayError

log = logging.getLogger(__name__)

PROBLEM_TYPES = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation-error",
    429: "rate-limited",
    500: "internal-error",
    502: "provider-unavailable",
    503: "temporarily-unavailable",
}


def problem(status: int, title: str, detail: str, *, errors: Any = None, **extra: Any) -> Response:
    body: dict[str, Any] = {
        "type": f"https://docs.dvc-gateway.vn/problems/{PROBLEM_TYPES.get(status, 'error')}",
        "title": title,
        "status": status,
        "detail": detail,
        "errors": errors or {},
    }
    body.update(extra)
    response = Response(
        json.dumps(body, ensure_ascii=False), status=status, mimetype="application/problem+json"
    )
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="dvc-gateway"'
    return response


def wants_problem() -> bool:
    """API and callback paths answer problem+json; citizen pages answer HTML."""
    return request.path.startswith(("/api/", "/callbacks/", "/healthz"))


def register_error_handlers(app: Flask, html_error: Any = None) -> None:
    @app.errorhandler(GatewayError)
    def _gateway_error(exc: GatewayError) -> Any:
        if exc.status >= 500:
            log.warning("gateway error on %s: %s", request.path, exc.detail)
        if not wants_problem() and html_error is not None:
            return html_error(exc.status, exc.title, exc.detail)
        extra = exc.extra if isinstance(exc, Conflict) else {}
        response = problem(exc.status, exc.title, exc.detail, errors=exc.errors, **extra)
        if exc.status == 503:
            # A circuit breaker is open: tell the caller when trying again makes sense.
            response.headers["Retry-After"] = str(getattr(exc, "retry_after", 60))
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        status = exc.code or 500
        title = exc.name
        detail = exc.description or title
        if status == 413:
            limit = app.config.get("MAX_CONTENT_LENGTH")
            detail = f"the request body is larger than {limit} bytes"
            errors = {"body": [f"must be at most {limit} bytes"]}
        elif status == 422 and getattr(exc, "data", None):
            errors = exc.data.get("messages", {})  # type: ignore[attr-defined]
        else:
            errors = {}
        if not wants_problem() and html_error is not None:
            response = html_error(status, title, detail)
        else:
            response = problem(status, title, detail, errors=errors)
        # A 429 (rate limit) or 503 says when to come back; the fresh response must keep saying it.
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            response.headers["Retry-After"] = (
                str(retry_after) if isinstance(retry_after, int) else http_date(retry_after)
            )
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        log.exception("unhandled error on %s %s", request.method, request.path)
        if not wants_problem() and html_error is not None:
            return html_error(500, "Internal error", "An unexpected error occurred.")
        return problem(500, "Internal error", "an unexpected error occurred; it has been logged")
