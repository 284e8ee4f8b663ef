"""Administration (issue 7.7): staff users and portal clients. Admins only; every action is audited.

A new portal client's API key and webhook secret, and each rotated one, are shown once, in the answer to
the POST that made them (never stored in clear, never cached: see ``harden``).
"""

from __future__ import annotations

from datetime import timedelta

from flask import flash, redirect, url_for
from flask_babel import gettext
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response
from wtforms import SelectChoice

from gateway.console.base import bp, me, render, require, role_label
from gateway.console.forms import ClientCreateForm, RotateForm, UserCreateForm
from gateway.container import services
from gateway.domain.errors import Conflict, NotFound, ValidationProblem
from gateway.services import clients as client_service
from gateway.services import staff as staff_service
from gateway.services.audit import record_action
from gateway.services.staff import ROLES, SOURCE, Role
from gateway.services.webhooks import split_secrets
from gateway.storage.db import transaction
from gateway.storage.models import ClientKeyRotation, PortalClient, StaffUser

# ---- staff users ---------------------------------------------------------------------------------------


def _users_page(form: UserCreateForm, *, status: int = 200) -> Response:
    svc = services()
    with svc.sessions() as db:
        users = [
            {
                "id": u.id,
                "email": u.email,
                "role": u.role,
                "has_totp": u.totp_secret is not None,
                "disabled": u.disabled_at is not None,
                "locked_until": u.locked_until if u.locked_until and u.locked_until > svc.clock() else None,
                "last_login_at": u.last_login_at,
                "created_at": u.created_at,
            }
            for u in db.scalars(select(StaffUser).order_by(StaffUser.email))
        ]
    form.role.choices = [SelectChoice(r, role_label(r)) for r in ROLES]
    return render("console_users.html", status=status, users=users, form=form, me_id=me().id)


@bp.get("/admin/users")
@require(Role.ADMIN)
def users() -> Response:
    return _users_page(UserCreateForm(formdata=None))


@bp.post("/admin/users")
@require(Role.ADMIN)
def create_user() -> Response:
    form = UserCreateForm()
    form.role.choices = [SelectChoice(r, role_label(r)) for r in ROLES]
    if not form.validate():
        return _users_page(form, status=422)
    svc = services()
    try:
        with transaction(svc.sessions) as db:
            staff_service.create_user(
                db,
                form.email.data or "",
                role=form.role.data or "",
                password=form.password.data or "",
                actor=me().email,
                now=svc.clock(),
            )
    except Conflict:
        form.email.errors = [gettext("A staff user with this email already exists.")]
        return _users_page(form, status=409)
    except ValidationProblem:
        form.email.errors = [gettext("Check the email, role and password.")]
        return _users_page(form, status=422)
    flash(gettext("The staff user has been created."), "success")
    return redirect(url_for("console.users"), code=303)


def _user_action(user_id: str, action: str) -> Response:
    svc = services()
    try:
        with transaction(svc.sessions) as db:
            if action == "reset-totp":
                staff_service.reset_totp(db, user_id, actor=me(), now=svc.clock())
            else:
                staff_service.set_disabled(
                    db, user_id, disabled=action == "disable", actor=me(), now=svc.clock()
                )
    except Conflict:
        flash(gettext("You cannot disable your own account."), "error")
        return redirect(url_for("console.users"), code=303)
    messages = {
        "disable": gettext("The staff user has been disabled."),
        "enable": gettext("The staff user has been enabled."),
        "reset-totp": gettext("The second factor has been removed; the user must set it up again."),
    }
    flash(messages[action], "success")
    return redirect(url_for("console.users"), code=303)


@bp.post("/admin/users/<string:user_id>/disable")
@require(Role.ADMIN)
def disable_user(user_id: str) -> Response:
    return _user_action(user_id, "disable")


@bp.post("/admin/users/<string:user_id>/enable")
@require(Role.ADMIN)
def enable_user(user_id: str) -> Response:
    return _user_action(user_id, "enable")


@bp.post("/admin/users/<string:user_id>/reset-totp")
@require(Role.ADMIN)
def reset_user_totp(user_id: str) -> Response:
    return _user_action(user_id, "reset-totp")


# ---- portal clients ------------------------------------------------------------------------------------


def _clients_page(form: ClientCreateForm, *, status: int = 200) -> Response:
    svc = services()
    now = svc.clock()
    with transaction(svc.sessions) as db:
        # Windows that have passed end here as well as in any job that calls the same function.
        client_service.end_expired_overlaps(db, now=now)
        open_rotations: dict[str, list[dict[str, object]]] = {}
        for r in db.scalars(
            select(ClientKeyRotation)
            .where(ClientKeyRotation.ended_at.is_(None))
            .order_by(ClientKeyRotation.rotated_at)
        ):
            open_rotations.setdefault(r.client_id, []).append(
                {"kind": r.kind, "rotated_at": r.rotated_at, "overlap_until": r.overlap_until}
            )
        clients = [
            {
                "id": c.id,
                "name": c.name,
                "webhook_url": c.webhook_url or "",
                "scopes": c.scopes,
                "key_prefix": c.api_key_prefix,
                "secrets": len(split_secrets(c.webhook_secret)),
                "created_at": c.created_at,
                "disabled": c.disabled_at is not None,
                "rotations": open_rotations.get(c.id, []),
            }
            for c in db.scalars(select(PortalClient).order_by(PortalClient.created_at, PortalClient.id))
        ]
    return render(
        "console_clients.html",
        status=status,
        clients=clients,
        form=form,
        rotate_form=RotateForm(formdata=None),
        kind_api_key=client_service.KIND_API_KEY,
        kind_webhook=client_service.KIND_WEBHOOK,
    )


def _audit_client(db: Session, client_id: str, action: str, reason: str) -> None:
    record_action(
        db,
        entity_type="portal_client",
        entity_id=client_id,
        action=action,
        actor=me().email,
        source=SOURCE,
        reason=reason,
        at=services().clock(),
    )


@bp.get("/admin/clients")
@require(Role.ADMIN)
def clients() -> Response:
    return _clients_page(ClientCreateForm(formdata=None))


@bp.post("/admin/clients")
@require(Role.ADMIN)
def create_client() -> Response:
    form = ClientCreateForm()
    if not form.validate():
        return _clients_page(form, status=422)
    svc = services()
    scopes = ("orders", "finance") if form.finance.data else ("orders",)
    try:
        with transaction(svc.sessions) as db:
            issued = client_service.create_client(
                db,
                form.name.data or "",
                webhook_url=(form.webhook_url.data or "").strip() or None,
                scopes=scopes,
                now=svc.clock(),
            )
            _audit_client(db, issued.client_id, "client_created", f"{form.name.data} ({','.join(scopes)})")
    except ValidationProblem as exc:
        if "webhook_url" in exc.errors:
            form.webhook_url.errors = [gettext("Enter an absolute http(s) URL.")]
        else:
            form.name.errors = [gettext("This field is required.")]
        return _clients_page(form, status=422)
    return render(
        "console_secret.html",
        heading=gettext("Portal client created"),
        client_id=issued.client_id,
        api_key=issued.api_key,
        webhook_secret=issued.webhook_secret,
    )


def _overlap(form: RotateForm) -> timedelta | None:
    if not form.validate():
        return None
    hours = form.overlap_hours.data
    return timedelta(hours=24 if hours is None else hours)


@bp.post("/admin/clients/<string:client_id>/rotate-key")
@require(Role.ADMIN)
def rotate_key(client_id: str) -> Response:
    form = RotateForm()
    overlap = _overlap(form)
    if overlap is None:
        flash(gettext("Enter between 0 and 720 hours."), "error")
        return redirect(url_for("console.clients"), code=303)
    svc = services()
    with transaction(svc.sessions) as db:
        api_key = client_service.rotate_api_key(
            db, client_id, overlap=overlap, actor=me().email, now=svc.clock()
        )
        _audit_client(db, client_id, "api_key_rotated", f"previous key valid for {overlap}")
    return render(
        "console_secret.html",
        heading=gettext("New API key"),
        client_id=client_id,
        api_key=api_key,
        webhook_secret=None,
        overlap_hours=int(overlap.total_seconds() // 3600),
    )


@bp.post("/admin/clients/<string:client_id>/rotate-webhook-secret")
@require(Role.ADMIN)
def rotate_webhook_secret(client_id: str) -> Response:
    form = RotateForm()
    overlap = _overlap(form)
    if overlap is None:
        flash(gettext("Enter between 0 and 720 hours."), "error")
        return redirect(url_for("console.clients"), code=303)
    svc = services()
    with transaction(svc.sessions) as db:
        secret = client_service.rotate_webhook_secret(
            db, client_id, overlap=overlap, actor=me().email, now=svc.clock()
        )
        _audit_client(db, client_id, "webhook_secret_rotated", f"previous secret also signs for {overlap}")
    return render(
        "console_secret.html",
        heading=gettext("New webhook secret"),
        client_id=client_id,
        api_key=None,
        webhook_secret=secret,
        overlap_hours=int(overlap.total_seconds() // 3600),
    )


@bp.post("/admin/clients/<string:client_id>/end-overlap/<string:kind>")
@require(Role.ADMIN)
def end_overlap(client_id: str, kind: str) -> Response:
    if kind not in {client_service.KIND_API_KEY, client_service.KIND_WEBHOOK}:
        raise NotFound(f"no credential kind {kind}")
    svc = services()
    with transaction(svc.sessions) as db:
        client_service.end_overlap(db, client_id, kind=kind, now=svc.clock())
        _audit_client(db, client_id, "overlap_ended", f"previous {kind} retired now")
    flash(gettext("The previous credential is no longer accepted."), "success")
    return redirect(url_for("console.clients"), code=303)
