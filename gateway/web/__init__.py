"""Citizen pages (contract §5): Flask-Babel, the ``citizen`` blueprint and the HTML error page."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from flask import Flask
from werkzeug.wrappers import Response

from gateway.container import Services
from gateway.web.i18n import init_i18n
from gateway.web.pages import bp, html_error


def init_web(app: Flask) -> Callable[[int, str, str], Response]:
    """Register the citizen pages on ``app``.

    Returns:
        ``html_error(status, title, detail)``, which the app's error handlers use for every path that is
        not an API or provider-callback path.
    """
    svc: Services = app.extensions["gateway"]
    # Catalogs are compiled next to their .po; an installed read-only package falls back to instance/.
    init_i18n(app, fallback_dir=Path(svc.settings.instance_path) / "translations")
    app.register_blueprint(bp)
    return html_error
