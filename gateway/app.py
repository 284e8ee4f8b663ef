"""The app factory: the composition root. Nothing here runs at import time."""

from __future__ import annotations

import importlib
import logging

import requests
from flask import Flask

from gateway.container import Services
from gateway.services.circuit import CircuitRegistry
from gateway.services.clock import Clock, utc_now
from gateway.services.registry import ProviderRegistry, build_registry
from gateway.settings import Settings, load_settings
from gateway.storage.db import make_engine, make_session_factory

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    http: requests.Session | None = None,
    webhook_http: requests.Session | None = None,
    providers: ProviderRegistry | None = None,
) -> Flask:
    """Build the WSGI app.

    Args:
        settings: typed settings; read from the environment when omitted.
        clock: returns the current aware UTC instant (tests pass a fixed or moving clock).
        http: the HTTP session for provider calls and emulator notifications.
        webhook_http: the HTTP session for deliveries to portal webhooks.
        providers: a ready registry (tests); built from ``settings`` when omitted.
    """
    settings = settings or load_settings()
    http = http or requests.Session()
    engine = make_engine(settings.database_url)
    registry = providers
    if registry is None:
        registry, skipped = build_registry(settings, session=http, clock=clock or utc_now)
        for reason in skipped:
            log.warning("provider not enabled: %s", reason)

    app = Flask(__name__, instance_path=None, instance_relative_config=False)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        TESTING=settings.testing,
        JSON_SORT_KEYS=False,
        # The emulators stamp payments with the gateway's clock (providers/emulators/__init__.py).
        GATEWAY_CLOCK=clock or utc_now,
        GATEWAY_EMULATORS=not settings.is_production,
    )
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.extensions["gateway"] = Services(
        settings=settings,
        engine=engine,
        sessions=make_session_factory(engine),
        providers=registry,
        clock=clock or utc_now,
        http=http,
        webhook_http=webhook_http or requests.Session(),
        circuits=CircuitRegistry(clock or utc_now),
    )

    from callbacks.views import bp as callbacks_bp
    from gateway.api import init_api
    from gateway.api.problems import register_error_handlers
    from gateway.console import init_console
    from gateway.limits import init_limits
    from gateway.observability import init_metrics, init_request_ids
    from gateway.web import init_web
    from gateway.web.vietqr import bp as vietqr_page_bp

    init_request_ids(app)
    init_api(app)
    app.register_blueprint(callbacks_bp)
    html_error = init_web(app)
    init_console(app)
    app.register_blueprint(vietqr_page_bp)
    register_error_handlers(app, html_error)
    init_limits(app, settings)
    init_metrics(app, app.extensions["gateway"].sessions)
    if not settings.is_production:
        _mount_emulators(app, registry, settings, http)

    return app


def _mount_emulators(
    app: Flask, registry: ProviderRegistry, settings: Settings, http: requests.Session
) -> None:
    """contract §10: each emulated provider's emulator under /_emulator/<code>, never in production.

    By convention ``providers/emulators/<code>.py`` exposes ``create_blueprint(provider, *, ipn_url, http)``.
    """
    for provider in registry:
        if not provider.emulated:
            continue
        module = importlib.import_module(f"providers.emulators.{provider.code}")
        blueprint = module.create_blueprint(
            provider, ipn_url=f"{settings.base_url}/callbacks/{provider.code}", http=http
        )
        app.register_blueprint(blueprint, url_prefix=f"/_emulator/{provider.code}")
