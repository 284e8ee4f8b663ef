"""Reconciliation review (issue 7.5) and its exports (7.6): runs, a run's items, the exception queue,
one item with its trail, and finance's actions on it.

Everything is read and changed through :mod:`reconciliation.service`, which appends one
``recon_item_actions`` row and one audit row per action and never edits history. Open items are
carried into every later run, so actions are offered on the newest run only (the head of the chain):
an open item of an older run has been superseded by its copy in the newer one.
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from typing import Any, BinaryIO, Final, cast

from flask import flash, redirect, request, send_file, url_for
from flask_babel import gettext, lazy_gettext
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from gateway.console.base import DISPLAY_TZ, bp, me, money, render, require
from gateway.console.forms import ItemActionForm, ManualMatchForm
from gateway.console.recon_text import explain
from gateway.container import services
from gateway.domain.errors import Conflict, NotFound, ValidationProblem
from gateway.services.audit import record_action
from gateway.services.staff import SOURCE, Role
from gateway.storage.db import transaction
from gateway.storage.models import ReconItem
from gateway.web.i18n import current_locale
from reconciliation import reports
from reconciliation import service as recon
from reconciliation.runs import CATEGORIES

RUNS_PER_PAGE: Final = 25
ITEMS_PER_PAGE: Final = 50
QUEUE_PER_PAGE: Final = 50
EXCEPTIONS: Final = "exceptions"  # the run page's default view: neither matched nor pending
ITEM_STATUSES: Final = ("open", "resolved", "closed")

CATEGORY_LABELS: Final = {
    "matched": lazy_gettext("Matched"),
    "pending": lazy_gettext("Pending (within the settlement window)"),
    "missing_in_statement": lazy_gettext("Missing in statement"),
    "unexpected_in_statement": lazy_gettext("Money with no dossier"),
    "amount_mismatch": lazy_gettext("Amount mismatch"),
    "duplicate": lazy_gettext("Duplicate"),
    "status_conflict": lazy_gettext("Status conflict"),
    "fee_variance": lazy_gettext("Fee variance"),
}
ITEM_STATUS_LABELS: Final = {
    "open": lazy_gettext("To be handled"),
    "resolved": lazy_gettext("Resolved"),
    "closed": lazy_gettext("Matched automatically"),
}
LEVEL_LABELS: Final = {
    "provider": lazy_gettext("Payment ↔ provider file"),
    "payout": lazy_gettext("Payout ↔ statement"),
    "bank": lazy_gettext("Statement ↔ payment"),
}
RULE_LABELS: Final = {
    "exact_reference": lazy_gettext("Our reference"),
    "provider_txn_id": lazy_gettext("Provider transaction id"),
    "batch_id": lazy_gettext("Batch id in the remittance text"),
    "remittance_reference": lazy_gettext("Reference in the remittance text"),
    "remittance_dossier": lazy_gettext("Dossier code in the remittance text"),
    "batch_amount_window": lazy_gettext("Payout amount and date window"),
    "amount_date_window": lazy_gettext("Amount and date window"),
}
ACTION_LABELS: Final = {
    "resolve": lazy_gettext("Resolved"),
    "reopen": lazy_gettext("Reopened"),
    "manual_match": lazy_gettext("Matched by hand"),
    "request_query": lazy_gettext("Provider queried"),
}
REFERENCE_LABELS: Final = {
    "dossier_code": lazy_gettext("Dossier code"),
    "attempt_reference": lazy_gettext("Our payment reference"),
    "reference": lazy_gettext("Reference in the file"),
    "provider_txn_id": lazy_gettext("Provider transaction id"),
    "bank_reference": lazy_gettext("Bank reference"),
    "end_to_end_id": lazy_gettext("End-to-end id"),
    "batch_id": lazy_gettext("Settlement batch"),
    "refund_reference": lazy_gettext("Refund reference"),
    "bank_transfer_ref": lazy_gettext("Bank transfer reference"),
    "provider": lazy_gettext("Provider"),
}
RUN_STATUS_LABELS: Final = {
    "completed": lazy_gettext("Completed"),
    "running": lazy_gettext("Running"),
    "failed": lazy_gettext("Failed"),
}


def _label(labels: dict[str, Any], value: str | None) -> str:
    return "" if not value else str(labels.get(value, value))


def category_label(category: str | None) -> str:
    return _label(CATEGORY_LABELS, category)


def _helpers() -> dict[str, Any]:
    return {
        "category_label": category_label,
        "item_status_label": lambda s: _label(ITEM_STATUS_LABELS, s),
        "level_label": lambda v: _label(LEVEL_LABELS, v),
        "rule_label": lambda r: _label(RULE_LABELS, r),
        "action_label": lambda a: _label(ACTION_LABELS, a),
        "run_status_label": lambda s: _label(RUN_STATUS_LABELS, s),
        "explain": explain,
        "reference_label": lambda key: _label(REFERENCE_LABELS, key),
        "day": iso_day,
        "instant": _instant,
        "exception_categories": [c for c in CATEGORIES if c not in ("matched", "pending")],
    }


def iso_day(iso: str | None) -> str:
    """A business date as the service gives it (``YYYY-MM-DD``) the Vietnamese way, ``dd/mm/yyyy``."""
    return "" if not iso else f"{iso[8:10]}/{iso[5:7]}/{iso[0:4]}"


def _instant(iso: str | None) -> str:
    """An ISO instant from the service (UTC, ``Z``) in Vietnam time."""
    if not iso:
        return ""
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return moment.astimezone(DISPLAY_TZ).strftime("%d/%m/%Y %H:%M:%S")


def _head_run_id(db: Session) -> str | None:
    head = recon.latest_run(db)
    return head.id if head else None


def _may_act() -> bool:
    return me().can(Role.FINANCE.value)


# ---- runs ----------------------------------------------------------------------------------------------


@bp.get("/reconciliation/runs")
def recon_runs() -> Response:
    cursor = request.args.get("cursor") or None
    with services().sessions() as db:
        try:
            page = recon.list_runs(db, limit=RUNS_PER_PAGE, cursor=cursor)
        except ValidationProblem:
            return redirect(url_for("console.recon_runs"))
        head = _head_run_id(db)
    return render(
        "console_recon_runs.html",
        runs=page.items,
        next_cursor=page.next_cursor,
        first_page=cursor is None,
        head_run_id=head,
        **_helpers(),
    )


def _view(args: Any) -> tuple[str, str]:
    """The run page's item filter: ``(show, status)``; ``show`` is ``exceptions``, ``all`` or a category."""
    show = args.get("show") or EXCEPTIONS
    if show not in (EXCEPTIONS, "all", *CATEGORIES):
        show = EXCEPTIONS
    status = args.get("status") or ""
    if status not in ITEM_STATUSES:
        status = ""
    return show, status


@bp.get("/reconciliation/runs/<string:run_id>")
def recon_run(run_id: str) -> Response:
    show, status = _view(request.args)
    cursor = request.args.get("cursor") or None
    with services().sessions() as db:
        run = recon.get_run(db, run_id)
        try:
            page = recon.list_items(
                db,
                run_id,
                category=show if show in CATEGORIES else None,
                exceptions=show == EXCEPTIONS,
                status=status or None,
                limit=ITEMS_PER_PAGE,
                cursor=cursor,
            )
        except ValidationProblem:
            return redirect(url_for("console.recon_run", run_id=run_id))
        head = _head_run_id(db)
    filters = {k: v for k, v in (("show", show), ("status", status)) if v}
    return render(
        "console_recon_run.html",
        run=run,
        items=page.items,
        next_cursor=page.next_cursor,
        first_page=cursor is None,
        show=show,
        item_status=status,
        statuses=ITEM_STATUSES,
        filters=filters,
        categories=CATEGORIES,
        is_head=run["id"] == head,
        head_run_id=head,
        may_act=_may_act() and run["id"] == head,
        form=ItemActionForm(formdata=None),
        **_helpers(),
    )


# ---- the exception queue -------------------------------------------------------------------------------


@bp.get("/reconciliation/exceptions")
def recon_exceptions() -> Response:
    try:
        page = max(1, min(int(request.args.get("page") or 1), 100_000))
    except ValueError:
        page = 1
    with services().sessions() as db:
        run, total, items = recon.exception_queue(
            db, limit=QUEUE_PER_PAGE, offset=(page - 1) * QUEUE_PER_PAGE
        )
        run_view = recon.run_view(run) if run else None
    pages = max(1, -(-total // QUEUE_PER_PAGE))
    return render(
        "console_recon_exceptions.html",
        run=run_view,
        total=total,
        items=items,
        page=page,
        pages=pages,
        may_act=_may_act(),
        form=ItemActionForm(formdata=None),
        **_helpers(),
    )


# ---- one item and the actions on it --------------------------------------------------------------------


def item_page(
    item_id: int,
    *,
    status: int = 200,
    form: ItemActionForm | None = None,
    match_form: ManualMatchForm | None = None,
    error: str | None = None,
) -> Response:
    with services().sessions() as db:
        item = recon.get_item(db, item_id)
        run = recon.get_run(db, item["run_id"])
        head = _head_run_id(db)
        is_head = item["run_id"] == head
        options = recon.counterparts(db, item_id) if is_head and item["status"] == "open" else []
    match_form = match_form or ManualMatchForm(formdata=None)
    match_form.counterpart.choices = [
        (
            str(o["id"]),
            " · ".join(
                part
                for part in (
                    category_label(o["category"]),
                    money(o["amount"]),
                    iso_day(o["business_date"]),
                    o["references"].get("dossier_code")
                    or o["references"].get("attempt_reference")
                    or o["references"].get("reference")
                    or o["references"].get("bank_reference")
                    or "",
                )
                if part
            ),
        )
        for o in options
    ]
    registry = services().providers
    code = str(item.get("provider") or "")
    can_query = bool(item["attempt_id"]) and code in registry and registry.get(code).supports_query
    return render(
        "console_recon_item.html",
        can_query=can_query,
        status=status,
        item=item,
        run=run,
        is_head=is_head,
        head_run_id=head,
        may_act=_may_act() and is_head,
        form=form or ItemActionForm(formdata=None),
        match_form=match_form,
        has_counterparts=bool(options),
        error=error,
        **_helpers(),
    )


@bp.get("/reconciliation/items/<int:item_id>")
def recon_item(item_id: int) -> Response:
    return item_page(item_id)


def _acting_on_head(item_id: int) -> None:
    """Refuse (409) an action on an item of a run that a newer one has superseded."""
    with services().sessions() as db:
        item = db.get(ReconItem, item_id)
        if item is None:
            raise NotFound(f"no reconciliation item {item_id}")
        if item.run_id != _head_run_id(db):
            raise Conflict(f"item {item_id} belongs to a superseded run")


def _act(item_id: int, action: str) -> Response:
    form = ItemActionForm()
    if not form.validate():
        return item_page(item_id, status=422, form=form, error=gettext("Give a reason for this action."))
    _acting_on_head(item_id)
    svc = services()
    reason = (form.reason.data or "").strip()
    actor = me().email
    try:
        if action == "request_query":
            result = recon.request_provider_query(
                svc.sessions,
                item_id,
                registry=svc.providers,
                actor=actor,
                reason=reason,
                now=svc.clock(),
                base_url=svc.base_url,
            )
        else:
            change = recon.resolve_item if action == "resolve" else recon.reopen_item
            with transaction(svc.sessions) as db:
                result = change(db, item_id, actor=actor, reason=reason, now=svc.clock())
    except Conflict:
        messages = {
            "resolve": gettext("This item is no longer open."),
            "reopen": gettext("Only a resolved item can be reopened."),
            "request_query": gettext("This item names no payment that its provider can be asked about."),
        }
        flash(messages[action], "error")
        return redirect(url_for("console.recon_item", item_id=item_id), code=303)
    if action == "request_query":
        if result["status"] == "resolved":
            flash(gettext("The provider confirmed the payment; the item is resolved."), "success")
        else:
            outcome = (result["actions"][-1]["after"] or {}).get("provider_outcome") or ""
            flash(
                gettext("The provider answered: %(outcome)s. The item stays open.", outcome=outcome), "notice"
            )
    elif action == "resolve":
        flash(gettext("The item is resolved."), "success")
    else:
        flash(gettext("The item is open again."), "success")
    return redirect(url_for("console.recon_item", item_id=item_id), code=303)


@bp.post("/reconciliation/items/<int:item_id>/resolve")
@require(Role.FINANCE)
def recon_resolve(item_id: int) -> Response:
    return _act(item_id, "resolve")


@bp.post("/reconciliation/items/<int:item_id>/reopen")
@require(Role.FINANCE)
def recon_reopen(item_id: int) -> Response:
    return _act(item_id, "reopen")


@bp.post("/reconciliation/items/<int:item_id>/query")
@require(Role.FINANCE)
def recon_query(item_id: int) -> Response:
    return _act(item_id, "request_query")


@bp.post("/reconciliation/items/<int:item_id>/match")
@require(Role.FINANCE)
def recon_match(item_id: int) -> Response:
    _acting_on_head(item_id)
    with services().sessions() as db:
        allowed = {str(o["id"]) for o in recon.counterparts(db, item_id)}
    form = ManualMatchForm()
    form.counterpart.choices = [(i, i) for i in sorted(allowed)]
    if not form.validate():
        return item_page(
            item_id,
            status=422,
            match_form=form,
            error=gettext("Choose the counterpart and give a reason for this action."),
        )
    svc = services()
    try:
        with transaction(svc.sessions) as db:
            recon.manual_match(
                db,
                [item_id, int(form.counterpart.data or 0)],
                actor=me().email,
                reason=(form.reason.data or "").strip(),
                now=svc.clock(),
            )
    except Conflict:
        flash(gettext("One of these items is no longer open."), "error")
        return redirect(url_for("console.recon_item", item_id=item_id), code=303)
    flash(gettext("The two items are matched and resolved."), "success")
    return redirect(url_for("console.recon_item", item_id=item_id), code=303)


# ---- exports -------------------------------------------------------------------------------------------


def _export(run_id: str, kind: str) -> Response:
    """All the run's items, or one category's (``?show=<category>``)."""
    show = request.args.get("show") or "all"
    category = show if show in CATEGORIES else None
    svc = services()
    lang = current_locale()
    with svc.sessions() as db:
        run = recon.get_run(db, run_id)  # 404 before any file is made
        writer = reports.export_run_csv if kind == "csv" else reports.export_run_xlsx
        # Spooled to disk past 8 MB: a run of a million items is exported without holding it in memory.
        out = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115 - send_file closes it
        try:
            count = writer(db, run_id, cast(BinaryIO, out), lang=lang, category=category)
        except BaseException:
            out.close()
            raise
    with transaction(svc.sessions) as db:
        record_action(
            db,
            entity_type="export",
            entity_id=run_id,
            action=f"export_reconciliation_{kind}",
            actor=me().email,
            source=SOURCE,
            reason=f"{count} items; category: {category or 'all'}",
            at=svc.clock(),
        )
    out.seek(0)
    mimetype = (
        "text/csv; charset=utf-8"
        if kind == "csv"
        else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    name = f"doi-soat-{run['business_date']}-{run_id[-8:]}.{kind}"
    response = send_file(out, mimetype=mimetype, as_attachment=True, download_name=name, max_age=0)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/reconciliation/runs/<string:run_id>/export.csv")
def recon_export_csv(run_id: str) -> Response:
    return _export(run_id, "csv")


@bp.get("/reconciliation/runs/<string:run_id>/export.xlsx")
def recon_export_xlsx(run_id: str) -> Response:
    return _export(run_id, "xlsx")
