"""The console blueprint and what every console page shares: rendering, the signed-in user, roles, labels.

Pages are server-rendered like the citizen pages (no script, no external asset), Vietnamese by default.
Views read through the services and hand templates plain view models built inside the transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any, Final, ParamSpec, TypeVar, cast
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, make_response, render_template, request
from flask_babel import lazy_gettext
from flask_login import UserMixin, current_user
from werkzeug.wrappers import Response

from gateway.console.config import ConsoleConfig
from gateway.domain.errors import Forbidden
from gateway.domain.money import format_vnd
from gateway.services.staff import Role, StaffPrincipal
from gateway.web.i18n import LANG_PARAM, SUPPORTED_LOCALES, current_locale

bp = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
    static_url_path="/assets",
)

DISPLAY_TZ: Final = ZoneInfo("Asia/Ho_Chi_Minh")
EXTENSION: Final = "console"

# No script at all; inline SVG (charts, QR codes) is markup, not an image, so it needs no img-src. Forms
# post only to the console itself.
_CSP: Final = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)

P = ParamSpec("P")
R = TypeVar("R")


class ConsoleUser(UserMixin):
    """Flask-Login's user: the principal plus the session version that a password change bumps."""

    def __init__(self, staff: StaffPrincipal) -> None:
        self.staff = staff

    def get_id(self) -> str:
        return f"{self.staff.id}:{self.staff.session_version}"


def console_config() -> ConsoleConfig:
    config: ConsoleConfig = current_app.extensions[EXTENSION]
    return config


def me() -> StaffPrincipal:
    """The signed-in staff member (every view but the login page runs behind the sign-in gate)."""
    user = cast(Any, current_user)
    if not getattr(user, "is_authenticated", False):
        raise Forbidden("not signed in")
    staff: StaffPrincipal = user.staff
    return staff


def signed_in() -> StaffPrincipal | None:
    user = cast(Any, current_user)
    return cast(StaffPrincipal, user.staff) if getattr(user, "is_authenticated", False) else None


def require(role: Role) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Refuse (403) a view to anyone whose role is below ``role`` (contract §11)."""

    def decorate(view: Callable[P, R]) -> Callable[P, R]:
        @wraps(view)
        def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
            if not me().can(role.value):
                raise Forbidden(f"needs the {role.value} role")
            return view(*args, **kwargs)

        return wrapped

    return decorate


# ---- labels --------------------------------------------------------------------------------------------

STATUS_LABELS: Final = {
    "pending": lazy_gettext("Pending"),
    "processing": lazy_gettext("Processing"),
    "paid": lazy_gettext("Paid"),
    "expired": lazy_gettext("Expired"),
    "cancelled": lazy_gettext("Cancelled"),
    "partially_refunded": lazy_gettext("Partially refunded"),
    "refunded": lazy_gettext("Refunded"),
    "created": lazy_gettext("New"),
    "redirected": lazy_gettext("Redirected to the provider"),
    "succeeded": lazy_gettext("Succeeded"),
    "failed": lazy_gettext("Failed"),
    "unknown": lazy_gettext("Unknown (awaiting the provider)"),
    "executing": lazy_gettext("Being sent"),
    "done": lazy_gettext("Sent"),
    "rejected": lazy_gettext("Rejected"),
    "delivered": lazy_gettext("Delivered"),
    "dead": lazy_gettext("Dead-lettered"),
    "retry": lazy_gettext("Will retry"),
}

ROLE_LABELS: Final = {
    Role.AUDITOR.value: lazy_gettext("Auditor"),
    Role.FINANCE.value: lazy_gettext("Finance"),
    Role.ADMIN.value: lazy_gettext("Administrator"),
}


def status_label(status: str | None) -> str:
    if not status:
        return ""
    return str(STATUS_LABELS.get(status, status))


def role_label(role: str) -> str:
    return str(ROLE_LABELS.get(role, role))


# ---- formatting ----------------------------------------------------------------------------------------


def money(amount: int | None) -> str:
    return "" if amount is None else f"{format_vnd(amount)} ₫"


def local_time(instant: datetime | None) -> str:
    """An instant in Vietnam time, ``dd/mm/yyyy HH:MM:SS``."""
    return "" if instant is None else instant.astimezone(DISPLAY_TZ).strftime("%d/%m/%Y %H:%M:%S")


def mask(value: str | None, keep: int = 4) -> str:
    """A phone or ID number with all but its last ``keep`` characters hidden (issue 7.3)."""
    if not value:
        return ""
    visible = value[-keep:] if len(value) > keep else ""
    return "•" * (len(value) - len(visible)) + visible


# ---- rendering -----------------------------------------------------------------------------------------


def _switch_url(target: str) -> str:
    args: dict[str, list[str]] = request.args.to_dict(flat=False) if request.method == "GET" else {}
    args[LANG_PARAM] = [target]
    return f"{request.script_root}{quote(request.path)}?{urlencode(args, doseq=True)}"


def harden(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", _CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    # Staff pages show personal data and one-time secrets: never cached, never stored by a proxy.
    response.headers["Cache-Control"] = "no-store"
    return response


def render(template: str, status: int = 200, **context: Any) -> Response:
    lang = current_locale()
    other = next(code for code in SUPPORTED_LOCALES if code != lang)
    response = make_response(
        render_template(
            template,
            lang=lang,
            other_lang=other,
            switch_url=_switch_url(other),
            staff=signed_in(),
            roles=Role,
            money=money,
            local_time=local_time,
            status_label=status_label,
            role_label=role_label,
            **context,
        ),
        status,
    )
    return harden(response)


def safe_next(target: str | None) -> str | None:
    """Only a path inside the console may be a post-login destination (no open redirect)."""
    if not target or not target.startswith("/console") or target.startswith("//") or "\\" in target:
        return None
    return target
