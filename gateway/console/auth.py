"""Signing in and out, the gate in front of every console page, and the user's own account (issue 7.1).

The gate, in order: CSRF on every POST; a session (else a redirect to the login page); the idle timeout
(the last-seen instant is kept in the session and compared with the app's clock); an admin without a
second factor can only enrol one; an auditor may not POST anything but their own sign-out, password and
second factor (403).
"""

from __future__ import annotations

from typing import Any, Final

import segno
from flask import Flask, current_app, flash, redirect, request, session, url_for
from flask_babel import gettext
from flask_login import LoginManager, login_user, logout_user
from markupsafe import Markup
from werkzeug.wrappers import Response

from gateway.console import totp
from gateway.console.base import (
    ConsoleUser,
    bp,
    console_config,
    local_time,
    me,
    render,
    safe_next,
    signed_in,
)
from gateway.console.forms import LoginForm, PasswordChangeForm, TotpForm
from gateway.container import services
from gateway.domain.errors import Forbidden, ValidationProblem
from gateway.services import staff as staff_service
from gateway.services.staff import LoginOutcome, LoginPolicy, LoginResult, Role, StaffPrincipal
from gateway.storage.db import transaction
from gateway.web.i18n import remember_user_locale, requested_locale

ISSUER: Final = "DVC Payment Gateway"
LAST_SEEN: Final = "console_seen"
PENDING_2FA: Final = "console_2fa"
# How long the second page of the login (the one-time code) waits after a correct password.
SECOND_STEP_SECONDS: Final = 300

_PUBLIC: Final = frozenset({"console.login", "console.static"})
# An admin without a second factor may only do these (and must enrol before anything else).
_BEFORE_TOTP: Final = frozenset({"console.logout", "console.totp_enrol"})
# POSTs about one's own session and credentials, open to auditors too; nothing else changes for them.
_SELF_SERVICE: Final = frozenset({"console.logout", "console.password", "console.totp_enrol"})


def init_auth(app: Flask) -> None:
    manager = LoginManager()
    manager.init_app(app)
    manager.session_protection = "strong"
    manager.user_loader(_load_user)


def _load_user(user_id: str) -> ConsoleUser | None:
    staff_id, _, version = user_id.partition(":")
    if not version.isdigit():
        return None
    with services().sessions() as db:
        found = staff_service.load_principal(db, staff_id, int(version))
    return ConsoleUser(found) if found is not None else None


def active_staff() -> StaffPrincipal | None:
    """The staff member of a live console session (signed in, not idle, second factor set up where the
    role needs one), or None. For read-only use outside the console (the finance API): it neither
    refreshes the idle clock nor changes anything."""
    staff = signed_in()
    if staff is None or _idle_expired():
        return None
    if staff.role == Role.ADMIN and not staff.has_totp:
        return None
    return staff


def _end_session() -> None:
    logout_user()
    session.clear()


def _idle_expired() -> bool:
    """No console request for longer than the idle timeout (by the app's clock)."""
    last = session.get(LAST_SEEN)
    now = services().clock().timestamp()
    return not isinstance(last, int | float) or now - last > console_config().idle_timeout.total_seconds()


@bp.before_request
def _gate() -> Response | None:
    endpoint = request.endpoint or ""
    if endpoint == "console.static":
        return None
    if request.method == "POST":
        current_app.extensions["csrf"].protect()  # CSRFError: 400
    if endpoint in _PUBLIC:
        return None
    staff = signed_in()
    if staff is None:
        target = request.full_path.rstrip("?") if request.method == "GET" else None
        return redirect(url_for("console.login", next=target))

    if _idle_expired():
        _end_session()
        return redirect(url_for("console.login", expired=1))
    session[LAST_SEEN] = services().clock().timestamp()

    chosen = requested_locale()
    if chosen and chosen != staff.locale:
        with transaction(services().sessions) as db:
            staff_service.set_locale(db, staff.id, chosen)
    remember_user_locale(chosen or staff.locale)

    if staff.role == Role.ADMIN and not staff.has_totp and endpoint not in _BEFORE_TOTP:
        if not session.get("_flashes"):
            flash(gettext("Administrators must set up a second factor before using the console."), "notice")
        return redirect(url_for("console.totp_enrol"))
    if request.method == "POST" and not staff.can(Role.FINANCE.value) and endpoint not in _SELF_SERVICE:
        raise Forbidden("auditors can read everything and change nothing")
    return None


# ---- login ---------------------------------------------------------------------------------------------


def _policy() -> LoginPolicy:
    config = console_config()
    return LoginPolicy(max_failures=config.max_failed_logins, lock_for=config.lockout)


def _start_session(staff: StaffPrincipal, destination: str | None) -> Response:
    session.clear()  # a fresh session on every sign-in (no fixation of a pre-login session)
    login_user(ConsoleUser(staff), fresh=True)
    session[LAST_SEEN] = services().clock().timestamp()
    return redirect(safe_next(destination) or url_for("console.dashboard"), code=303)


def _locked_page(result: LoginResult) -> Response:
    minutes = int(console_config().lockout.total_seconds() // 60)
    return render("console_locked.html", status=429, until=local_time(result.locked_until), minutes=minutes)


def _login_page(form: LoginForm, *, status: int = 200, error: str | None = None, **extra: Any) -> Response:
    return render(
        "console_login.html",
        status=status,
        form=form,
        error=error,
        next=safe_next(request.values.get("next")),
        **extra,
    )


def _totp_page(form: TotpForm, *, status: int = 200, error: str | None = None) -> Response:
    return render("console_login_totp.html", status=status, form=form, error=error)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response:
    if request.method == "GET":
        if signed_in() is not None:
            if not _idle_expired():
                return redirect(url_for("console.dashboard"))
            _end_session()
        session.pop(PENDING_2FA, None)
        return _login_page(LoginForm(), expired=bool(request.args.get("expired")))
    if "email" not in request.form and "password" not in request.form:
        return _second_step()

    form = LoginForm()
    if not form.validate():
        return _login_page(form, status=422)
    svc = services()
    now = svc.clock()
    with transaction(svc.sessions) as db:
        result = staff_service.login(
            db,
            form.email.data or "",
            form.password.data or "",
            totp_code=(form.totp.data or "").strip() or None,
            now=now,
            policy=_policy(),
        )
    if result.outcome is LoginOutcome.OK:
        assert result.user is not None
        return _start_session(result.user, request.form.get("next"))
    if result.outcome is LoginOutcome.LOCKED:
        return _locked_page(result)
    if result.outcome is LoginOutcome.NEED_TOTP:
        assert result.user is not None
        session[PENDING_2FA] = {
            "uid": result.user.id,
            "at": now.timestamp(),
            "next": safe_next(request.form.get("next")),
        }
        return _totp_page(TotpForm())
    form.password.data = ""
    return _login_page(form, status=401, error=gettext("The email, password or one-time code is incorrect."))


def _second_step() -> Response:
    svc = services()
    now = svc.clock()
    pending = session.get(PENDING_2FA)
    if not isinstance(pending, dict) or now.timestamp() - float(pending.get("at", 0)) > SECOND_STEP_SECONDS:
        session.pop(PENDING_2FA, None)
        return _login_page(
            LoginForm(), status=401, error=gettext("Your sign-in has expired. Please start again.")
        )
    form = TotpForm()
    if not form.validate():
        return _totp_page(form, status=422)
    with transaction(svc.sessions) as db:
        result = staff_service.second_factor(
            db, str(pending["uid"]), form.totp.data or "", now=now, policy=_policy()
        )
    if result.outcome is LoginOutcome.OK:
        assert result.user is not None
        return _start_session(result.user, pending.get("next"))
    if result.outcome is LoginOutcome.LOCKED:
        session.pop(PENDING_2FA, None)
        return _locked_page(result)
    return _totp_page(TotpForm(), status=401, error=gettext("The one-time code is incorrect."))


@bp.post("/logout")
def logout() -> Response:
    staff = me()
    svc = services()
    with transaction(svc.sessions) as db:
        staff_service.record_logout(db, staff, now=svc.clock())
    _end_session()
    return redirect(url_for("console.login"), code=303)


# ---- the user's own account ----------------------------------------------------------------------------


@bp.get("/account")
def account() -> Response:
    return render("console_account.html", form=PasswordChangeForm())


@bp.post("/account/password")
def password() -> Response:
    staff = me()
    form = PasswordChangeForm()
    if not form.validate():
        return render("console_account.html", status=422, form=form)
    svc = services()
    try:
        with transaction(svc.sessions) as db:
            renewed = staff_service.change_password(
                db,
                staff.id,
                current=form.current_password.data or "",
                new=form.new_password.data or "",
                now=svc.clock(),
            )
    except ValidationProblem:
        form.current_password.errors = [gettext("The current password is incorrect.")]
        return render("console_account.html", status=422, form=form)
    # Other sessions of this account end (their version is stale); this one continues.
    login_user(ConsoleUser(renewed), fresh=True)
    flash(gettext("Your password has been changed."), "success")
    return redirect(url_for("console.account"), code=303)


def _qr(uri: str) -> Markup:
    code = segno.make(uri, error="m")
    svg = code.svg_inline(scale=4, border=4, dark="#000", light="#fff", omitsize=True, svgclass="qr")
    return Markup(svg)  # noqa: S704 - segno's own markup of a URI we built


@bp.route("/account/totp", methods=["GET", "POST"])
def totp_enrol() -> Response:
    staff = me()
    if staff.has_totp:
        return render("console_totp_enrol.html", enrolled=True)
    svc = services()
    form = TotpForm()
    if request.method == "POST" and form.validate():
        with transaction(svc.sessions) as db:
            ok = staff_service.confirm_totp_enrolment(db, staff.id, form.totp.data or "", now=svc.clock())
        if ok:
            flash(gettext("Your second factor is set up. It will be asked for at every sign-in."), "success")
            return redirect(url_for("console.dashboard"), code=303)
        form.totp.errors = [gettext("The one-time code is incorrect.")]
    with transaction(svc.sessions) as db:
        email, secret = staff_service.begin_totp_enrolment(db, staff.id)
    uri = totp.provisioning_uri(secret, account=email, issuer=ISSUER)
    status = 422 if request.method == "POST" else 200
    return render(
        "console_totp_enrol.html",
        status=status,
        enrolled=False,
        form=form,
        qr=_qr(uri),
        secret=" ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
    )
