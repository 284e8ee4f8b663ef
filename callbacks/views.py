"""``/callbacks/<provider>``: the HTTP edge of the notification pipeline."""

from __future__ import annotations

from flask import Blueprint, Response, abort, g, request

from callbacks.pipeline import Inbound, handle
from gateway.container import services
from providers.base import Ack, CallbackRequest

bp = Blueprint("callbacks", __name__, url_prefix="/callbacks")


def callback_request() -> CallbackRequest:
    return CallbackRequest(
        method=request.method,
        # First value of each parameter, as the providers' own demos read them.
        args=dict(request.args.items()),
        headers=dict(request.headers.items()),
        body=request.get_data(cache=True),
        remote_addr=request.remote_addr,
    )


@bp.route("/<string:provider_code>", methods=["GET", "POST"])
def receive(provider_code: str) -> Response:
    svc = services()
    if provider_code not in svc.providers:
        abort(404)
    provider = svc.providers.get(provider_code)
    if request.method not in provider.callback_methods:
        return Response(status=405, headers={"Allow": ", ".join(provider.callback_methods)})
    inbound = Inbound(
        provider=provider,
        request=callback_request(),
        path=request.path,
        query_string=request.query_string.decode("latin-1"),
    )
    handled = handle(svc.sessions, inbound, now=svc.clock(), base_url=svc.base_url)
    # Counted by the tighter limit on callbacks we could not verify (gateway/limits.py).
    g.callback_rejected = handled.ack is Ack.BAD_SIGNATURE
    ack = handled.response
    response = Response(ack.body, status=ack.status)
    if ack.content_type:
        response.headers["Content-Type"] = ack.content_type
    else:
        response.headers.pop("Content-Type", None)
    return response
