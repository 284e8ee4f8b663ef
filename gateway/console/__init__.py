"""The finance staff console at ``/console/`` (contract §11; issue 7).

Staff accounts (passwords, lockout, TOTP, idle timeout, CSRF), the dashboard, orders and their detail,
refunds with four-eyes approval, reconciliation review, exports, and administration of staff users and
portal clients.

Nothing is imported here at module level beyond the standard library, so that
``gateway.console.totp`` (pure RFC 6238) can be used by the service layer without pulling in Flask.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask


def init_console(app: Flask) -> None:
    """Register the console on ``app``: call after ``init_web`` (it reuses that Flask-Babel).

    Raises:
        gateway.settings.ConfigError: ``REFUND_APPROVAL_THRESHOLD`` or ``CONSOLE_IDLE_MINUTES`` is invalid.
    """
    from flask_wtf.csrf import CSRFProtect

    # Importing the view modules registers their routes on the blueprint.
    from gateway.console import (  # noqa: F401
        admin,
        auth,
        dashboard,
        errors,
        orders,
        reconciliation,
        refunds,
    )
    from gateway.console.base import EXTENSION, bp
    from gateway.console.config import load_console_config

    config = load_console_config()
    settings = app.extensions["gateway"].settings
    app.extensions[EXTENSION] = config
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.environment != "development",
        # The console never uses "remember me"; should it ever, the same rules apply to that cookie.
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=settings.environment != "development",
        # CSRF is enforced by the console blueprint on its own POSTs only: the portal API (bearer keys),
        # provider callbacks and the public citizen form are not cookie-authenticated.
        WTF_CSRF_CHECK_DEFAULT=False,
    )
    CSRFProtect(app)
    auth.init_auth(app)
    app.register_blueprint(bp)
