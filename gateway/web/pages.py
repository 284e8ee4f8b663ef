"""Citizen pages (contract §5): the order page, starting a payment, and the provider's return page.

Server-rendered, Vietnamese by default, no JavaScript and no external assets, so that they work on any
phone. Views read orders through the services and render plain view models built inside the transaction
(templates never touch the ORM, so nothing lazy-loads after the session is closed).

The checkout remembers nothing about the citizen: no session, no cookie but the language preference
(``lang``), ``Cache-Control: no-store`` and no pre-selected choice. A provider whose circuit breaker is
open (gateway/services/circuit.py) is shown disabled with a note, and choosing it anyway re-renders the
page with that note (503) without creating an attempt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlencode, urlsplit
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, make_response, redirect, render_template, request, url_for
from flask_babel import gettext
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers import Response

from callbacks.pipeline import Inbound, store
from callbacks.views import callback_request
from gateway.container import Services, services
from gateway.domain.errors import (
    Conflict,
    MalformedNotification,
    ProviderTemporarilyUnavailable,
    SignatureVerificationError,
    UnknownProvider,
)
from gateway.domain.money import format_vnd
from gateway.domain.status import OPEN_ORDER_STATUSES, PAID_ORDER_STATUSES, AttemptStatus, OrderStatus
from gateway.services.attempts import AttemptChoice, start_attempt
from gateway.services.orders import get_order, is_past_deadline
from gateway.services.payments import find_attempt
from gateway.storage.db import transaction
from gateway.storage.models import Order, PaymentAttempt
from gateway.web.i18n import LANG_PARAM, SUPPORTED_LOCALES, current_locale, remember_form_locale
from providers.base import Outcome, PaymentProvider
from providers.momo import CAPTURE_WALLET, PAY_WITH_ATM

log = logging.getLogger(__name__)

DISPLAY_TZ: Final = ZoneInfo("Asia/Ho_Chi_Minh")

bp = Blueprint(
    "citizen",
    __name__,
    template_folder="templates",
    static_folder="static",
    # Not under /static: the app's own static route would shadow it.
    static_url_path="/assets/citizen",
)

# The pages load nothing but their own stylesheet; no script may run, and no other site may frame the
# payment buttons (clickjacking). No form-action: browsers apply it to the 303 that follows the form,
# which would block the redirect to the provider.
_CSP: Final = "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'"


# ---- view models ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemView:
    description: str
    kind: str  # "fee" (lệ phí) | "charge" (phí), as in the API
    amount: int


@dataclass(frozen=True)
class OrderView:
    id: str
    status: str
    agency_code: str
    dossier_code: str
    payer_name: str
    items: tuple[ItemView, ...]
    amount: int
    expires_at: datetime
    return_url: str | None
    # What the page shows instead of (or above) the choices: payable | paid | expired | cancelled |
    # confirming (an attempt is still running after the deadline: no new payment may start).
    state: str
    awaiting: bool  # a payment is already waiting for the provider's answer


@dataclass(frozen=True)
class ProviderChoice:
    """One way to pay on the checkout page: a provider, and a method where the provider offers several."""

    code: str
    method: str | None  # the form's ``method`` field; None = the provider's default
    display_name: str
    logo: str  # file under the blueprint's static folder
    available: bool  # False while the provider's circuit breaker is open


# Our own drawings (static/providers/<code>.svg); a provider without one gets the generic card.
_LOGO_DIR: Final = Path(__file__).resolve().parent / "static" / "providers"
_GENERIC_LOGO: Final = "providers/generic.svg"

# Providers offered as several choices, one per method, with the label each choice shows. Every other
# provider is a single choice with its default method.
_METHOD_CHOICES: Final[dict[str, tuple[tuple[str, Callable[[], str]], ...]]] = {
    "momo": (
        (CAPTURE_WALLET, lambda: gettext("MoMo wallet")),
        (PAY_WITH_ATM, lambda: gettext("ATM card via MoMo")),
    ),
}

# Providers whose name describes the way to pay rather than a brand: shown translated, unless the
# deployment named it (rsabank's RSABANK_NAME sets the bank's own name on the instance).
_DESCRIPTIVE_NAMES: Final[dict[str, Callable[[], str]]] = {
    "vietqr": lambda: gettext("VietQR bank transfer"),
    "rsabank": lambda: gettext("Linked bank"),
}


def _safe_url(url: str | None) -> str | None:
    """Only http(s) links reach an ``href``: a ``javascript:`` return URL must never become a link."""
    if not url:
        return None
    parts = urlsplit(url)
    return url if parts.scheme in {"http", "https"} and parts.netloc else None


def _state(order: Order, now: datetime) -> str:
    if order.status in PAID_ORDER_STATUSES:
        return "paid"
    if order.status == OrderStatus.EXPIRED:
        return "expired"
    if order.status == OrderStatus.CANCELLED:
        return "cancelled"
    if order.status in OPEN_ORDER_STATUSES and is_past_deadline(order, now):
        # Still open only because a running payment gets a grace period; start_attempt would refuse.
        return "confirming"
    return "payable"


def order_view(order: Order, now: datetime) -> OrderView:
    return OrderView(
        id=order.id,
        status=order.status,
        agency_code=order.agency_code,
        dossier_code=order.dossier_code,
        payer_name=order.payer_name,
        items=tuple(ItemView(item.description or "", item.kind, item.amount) for item in order.items),
        amount=order.amount,
        expires_at=order.expires_at,
        return_url=_safe_url(order.return_url),
        state=_state(order, now),
        awaiting=order.status == OrderStatus.PROCESSING,
    )


def load_order(svc: Services, order_id: str) -> OrderView:
    """Read the order as the citizen sees it. Raises NotFound (rendered as the HTML 404 page)."""
    now = svc.clock()
    # get_order may expire the order on read, hence a transaction rather than a bare session.
    with transaction(svc.sessions) as session:
        order = get_order(session, None, order_id, now=now, base_url=svc.base_url)
        return order_view(order, now)


@cache
def _logo(code: str) -> str:
    name = f"providers/{code}.svg"
    return name if (_LOGO_DIR / f"{code}.svg").is_file() else _GENERIC_LOGO


def _provider_name(provider: PaymentProvider) -> str:
    describe = _DESCRIPTIVE_NAMES.get(provider.code)
    if describe is not None and provider.display_name == type(provider).display_name:
        return describe()
    return provider.display_name


def _offered(svc: Services) -> list[tuple[PaymentProvider, str | None, str]]:
    """(provider, method, label) for every enabled provider, in the registry's order."""
    offered: list[tuple[PaymentProvider, str | None, str]] = []
    for provider in svc.providers:
        methods = [(m, label) for m, label in _METHOD_CHOICES.get(provider.code, ()) if m in provider.methods]
        if methods:
            offered.extend((provider, method, label()) for method, label in methods)
        else:
            offered.append((provider, None, _provider_name(provider)))
    return offered


def _choices(svc: Services) -> list[ProviderChoice]:
    return [
        ProviderChoice(
            code=provider.code,
            method=method,
            display_name=label,
            logo=_logo(provider.code),
            available=svc.circuits.is_available(provider.code),
        )
        for provider, method, label in _offered(svc)
    ]


def _is_offered(svc: Services, code: str, method: str | None) -> bool:
    """A submitted choice is one the page offers; no method means the provider's default one."""
    offered = [(provider.code, m) for provider, m, _ in _offered(svc)]
    return any(c == code for c, _ in offered) if method is None else (code, method) in offered


# ---- rendering -----------------------------------------------------------------------------------------


def money(amount: int) -> str:
    return f"{format_vnd(amount)} ₫"


def local_time(instant: datetime) -> str:
    """An instant as the citizen reads it: Vietnam time, ``dd/mm/yyyy HH:MM``."""
    return instant.astimezone(DISPLAY_TZ).strftime("%d/%m/%Y %H:%M")


def _switch_url(target: str) -> str:
    """This page in the other language. A POST result links to the page's GET (same path)."""
    args: dict[str, list[str]] = request.args.to_dict(flat=False) if request.method == "GET" else {}
    args[LANG_PARAM] = [target]
    return f"{request.script_root}{quote(request.path)}?{urlencode(args, doseq=True)}"


def _harden(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", _CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    # The return URL carries the provider's signed query: other sites (the portal, the provider) get
    # the origin as Referer at most, never the path and query.
    response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    if response.mimetype == "text/html":
        # Order state changes under the citizen's feet; a cached page would show a stale one.
        response.headers["Cache-Control"] = "no-store"
    return response


def render_page(template: str, status: int = 200, **context: Any) -> Response:
    lang = current_locale()
    other = next(code for code in SUPPORTED_LOCALES if code != lang)
    response = make_response(
        render_template(
            template,
            lang=lang,
            other_lang=other,
            switch_url=_switch_url(other),
            money=money,
            local_time=local_time,
            **context,
        ),
        status,
    )
    return _harden(response)


def _order_page(svc: Services, order: OrderView, *, status: int = 200, error: str | None = None) -> Response:
    return render_page(
        "citizen_order.html",
        status=status,
        order=order,
        choices=_choices(svc) if order.state == "payable" else [],
        error=error,
    )


def _error_text(status: int) -> tuple[str, str] | None:
    if status == 404:
        return (
            gettext("Page not found"),
            gettext(
                "The page or payment request you are looking for does not exist. "
                "Please check the link you were given."
            ),
        )
    if status in {400, 405, 413, 415, 422}:
        return gettext("Invalid request"), gettext("The request could not be understood. Please try again.")
    if status == 409:
        return (
            gettext("This action is not possible now"),
            gettext("The payment request has changed in the meantime. Please reload the page."),
        )
    if status == 429:
        return gettext("Too many requests"), gettext("Please wait a moment and try again.")
    if status in {502, 503, 504}:
        return gettext("Service temporarily unavailable"), gettext("Please try again in a few minutes.")
    if status >= 500:
        return gettext("Something went wrong"), gettext("Please try again in a few minutes.")
    return None


def html_error(status: int, title: str, detail: str) -> Response:
    """The HTML error page for every non-API path (wired into the app's error handlers).

    ``detail`` is written for developers (English, may name internal ids): it goes to the log, and the
    citizen gets a translated explanation chosen by status.
    """
    log.info("HTML error %s on %s: %s (%s)", status, request.path, title, detail)
    try:
        heading, message = _error_text(status) or (title, gettext("Please try again later."))
        return render_page("citizen_message.html", status=status, heading=heading, message=message)
    except Exception:  # the error page itself must never fail into another error handler
        log.exception("could not render the HTML error page for %s", status)
        return _harden(Response(f"{status} {title}", status=status, mimetype="text/plain"))


@bp.after_request
def _citizen_headers(response: Response) -> Response:
    return _harden(response)


# ---- routes --------------------------------------------------------------------------------------------


@bp.get("/pay/<string:order_id>")
def order_page(order_id: str) -> Response:
    svc = services()
    return _order_page(svc, load_order(svc, order_id))


@bp.post("/pay/<string:order_id>")
def pay(order_id: str) -> Response:
    """Start a payment with the chosen provider and send the browser there (303).

    No CSRF token, on purpose: the page is public (anyone with the link may pay the dossier's fees) and
    this form only starts a new attempt, which is idempotent enough. No money moves without the payer
    confirming at the provider, and nothing is lost: a forged submission at most leaves an abandoned
    attempt, and the order stays payable (the page offers the choices again while it is processing).
    """
    remember_form_locale(request.form.get(LANG_PARAM))
    svc = services()
    code = (request.form.get("provider") or "").strip()
    method = (request.form.get("method") or "").strip() or None
    missing = gettext("Please choose a payment method.")
    if code not in svc.providers or not _is_offered(svc, code, method):
        return _order_page(svc, load_order(svc, order_id), status=422, error=missing)
    try:
        attempt = start_attempt(
            svc.sessions,
            svc.providers,
            client_id=None,
            order_id=order_id,
            choice=AttemptChoice(
                provider=code, locale=current_locale(), client_ip=request.remote_addr, method=method
            ),
            now=svc.clock(),
            base_url=svc.base_url,
            actor="citizen",
            circuits=svc.circuits,
        )
    except UnknownProvider:
        return _order_page(svc, load_order(svc, order_id), status=422, error=missing)
    except ProviderTemporarilyUnavailable:
        # The circuit is open: nothing was created. The page again, that choice disabled, the others open.
        log.info("citizen payment for %s with %s refused: circuit open", order_id, code)
        order = load_order(svc, order_id)
        if order.state != "payable":
            return _order_page(svc, order, status=409)
        return _order_page(
            svc,
            order,
            status=503,
            error=gettext("Temporarily unavailable, please choose another method"),
        )
    except Conflict:
        # Paid, expired or cancelled meanwhile (or an old tab): show what the order is now.
        return _order_page(svc, load_order(svc, order_id), status=409)

    if attempt.status == AttemptStatus.REDIRECTED:
        if attempt.redirect_url:
            return _harden(redirect(attempt.redirect_url, code=303))
        if attempt.qr_payload:
            return _qr_page(svc, attempt)
    # unknown (timeout, 5xx) or failed (refused): never a 500, the citizen can simply try again.
    log.warning(
        "citizen payment for %s with %s: attempt %s is %s", order_id, code, attempt.id, attempt.status
    )
    return render_page(
        "citizen_message.html",
        status=503,
        heading=gettext("The payment provider is not responding"),
        message=gettext("Please try again in a few minutes or choose another payment method."),
        back_url=url_for("citizen.order_page", order_id=order_id),
    )


def _qr_page(svc: Services, attempt: PaymentAttempt) -> Response:
    order = load_order(svc, attempt.order_id)
    return render_page(
        "citizen_qr.html",
        order=order,
        amount=attempt.amount,
        reference=attempt.reference,
        qr_payload=attempt.qr_payload,
    )


@bp.get("/return/<string:provider_code>")
def provider_return(provider_code: str) -> Response:
    """Where the provider sends the browser back. Display only: nothing here changes any state.

    The notification (IPN) is the only path that applies a result; this page reads the order as the
    database has it and uses the verified redirect merely to say "the bank reported success, confirming".
    """
    svc = services()
    if provider_code not in svc.providers:
        abort(404)
    provider = svc.providers.get(provider_code)
    now = svc.clock()
    incoming = callback_request()
    inbound = Inbound(
        provider=provider,
        request=incoming,
        path=request.path,
        query_string=request.query_string.decode("latin-1"),
        channel="return",
    )
    try:
        store(svc.sessions, inbound, now)
    except SQLAlchemyError:
        # The copy is for the audit trail; failing to keep it must not hide the page from the citizen.
        log.exception("could not store a %s return redirect", provider.code)

    try:
        note = provider.verify_return(incoming)
    except (SignatureVerificationError, MalformedNotification) as exc:
        log.warning("%s return redirect rejected: %s", provider.code, exc)
        return render_page("citizen_return.html", status=400, state="unverified", order=None)

    with transaction(svc.sessions) as session:
        attempt = find_attempt(session, provider.code, note.reference)
        order = (
            None
            if attempt is None
            else order_view(get_order(session, None, attempt.order_id, now=now, base_url=svc.base_url), now)
        )
    if order is None:
        return render_page("citizen_return.html", status=404, state="not_found", order=None)

    if order.state == "paid":
        state = "paid"
    elif note.outcome is Outcome.SUCCEEDED:
        state = "confirming"  # the redirect says paid; only the provider's notification makes it so
    elif note.outcome is Outcome.FAILED:
        state = "failed"
    else:
        state = "processing"
    return render_page(
        "citizen_return.html",
        state=state,
        order=order,
        refresh_url=f"{request.script_root}{request.full_path}".rstrip("?"),
        retry_url=url_for("citizen.order_page", order_id=order.id),
    )
