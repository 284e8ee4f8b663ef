"""``GET /api/v1/providers``: what the portal (and the citizen page) can offer."""

from __future__ import annotations

from typing import Any

from gateway.api.auth import require_client
from gateway.api.parsing import Blueprint
from gateway.api.schemas import ProviderList
from gateway.container import services

blp = Blueprint(
    "providers", __name__, url_prefix="/api/v1/providers", description="Enabled payment providers"
)


@blp.route("", methods=["GET"])
@require_client()
@blp.response(200, ProviderList)
def list_providers() -> dict[str, Any]:
    """Enabled providers with display names and methods."""
    items = [
        {"code": p.code, "name": p.display_name, "methods": list(p.methods), "emulated": p.emulated}
        for p in services().providers
    ]
    return {"items": items, "next_cursor": None}
