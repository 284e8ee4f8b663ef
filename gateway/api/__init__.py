"""Portal API ``/api/v1`` (contract §4), documented as OpenAPI 3 from the marshmallow schemas."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api

from gateway.api import events, health, orders, providers_api, reconciliation, refunds


def init_api(app: Flask) -> Api:
    app.config.update(
        API_TITLE="DVC payment gateway — portal API",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api/v1",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "components": {
                "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            },
            "security": [{"bearerAuth": []}],
            "info": {
                "description": (
                    "Create payment orders for dossiers, follow their status, start payment attempts. "
                    "Money is an integer number of VND. Errors are application/problem+json."
                )
            },
        },
    )
    api = Api(app)
    api.register_blueprint(orders.blp)
    api.register_blueprint(refunds.blp)
    api.register_blueprint(events.blp)
    api.register_blueprint(providers_api.blp)
    api.register_blueprint(reconciliation.blp)
    app.register_blueprint(health.bp)
    return api
