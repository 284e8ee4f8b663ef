"""Refunds in the console (issue 7.4): request, four-eyes approval, and recording a manual bank transfer.

Everything goes through :mod:`gateway.services.staff`, which calls the API's own refund service.
"""

from __future__ import annotations

from flask import flash, redirect, url_for
from flask_babel import gettext
from sqlalchemy import select
from werkzeug.wrappers import Response

from gateway.console.base import bp, console_config, me, money, render, require
from gateway.console.forms import BankTransferForm, RefundForm, RejectForm
from gateway.console.orders import order_page
from gateway.container import services
from gateway.domain.errors import Conflict, Forbidden, NotFound, ValidationProblem
from gateway.domain.status import RefundStatus
from gateway.services import staff as staff_service
from gateway.services.staff import ApprovalStatus, ConsoleRefund, Role
from gateway.storage.models import Order, Refund, RefundApproval


def _announce(result: ConsoleRefund, amount: int) -> None:
    if result.status == ApprovalStatus.PENDING:
        flash(
            gettext(
                "The refund of %(amount)s is waiting for approval by a second finance user.",
                amount=money(amount),
            ),
            "notice",
        )
    elif result.status == ApprovalStatus.FAILED:
        flash(gettext("The refund could not be made: %(reason)s", reason=result.error or ""), "error")
    elif result.refund_status == RefundStatus.SUCCEEDED:
        flash(gettext("The refund of %(amount)s has succeeded.", amount=money(amount)), "success")
    elif result.refund_status == RefundStatus.FAILED:
        flash(gettext("The provider refused the refund of %(amount)s.", amount=money(amount)), "error")
    else:
        flash(
            gettext(
                "The refund of %(amount)s is pending: it completes when the provider confirms it or, "
                "for a bank transfer, when the transfer reference is recorded.",
                amount=money(amount),
            ),
            "notice",
        )


def _order_of_approval(approval_id: str) -> str:
    with services().sessions() as db:
        order_id = db.scalar(select(RefundApproval.order_id).where(RefundApproval.id == approval_id))
    if order_id is None:
        raise NotFound(f"refund request {approval_id} not found")
    return order_id


@bp.post("/orders/<string:order_id>/refunds")
@require(Role.FINANCE)
def request_refund(order_id: str) -> Response:
    form = RefundForm()
    if not form.validate():
        return order_page(order_id, status=422, refund_form=form)
    svc = services()
    amount = int(form.amount.data or 0)
    try:
        result = staff_service.request_console_refund(
            svc.sessions,
            svc.providers,
            order_id=order_id,
            amount=amount,
            reason=form.reason.data or "",
            actor=me(),
            threshold=console_config().refund_approval_threshold,
            now=svc.clock(),
            base_url=svc.base_url,
        )
    except (Conflict, ValidationProblem) as exc:
        message = (
            gettext("The amount is more than can still be refunded on this order.")
            if "amount" in exc.errors
            else gettext("This order cannot be refunded in its current state.")
        )
        if "amount" in exc.errors:
            form.amount.errors = [message]
        return order_page(order_id, status=exc.status, refund_form=form, error=message)
    _announce(result, amount)
    return redirect(url_for("console.order_detail", order_id=order_id), code=303)


@bp.post("/refund-requests/<string:approval_id>/approve")
@require(Role.FINANCE)
def approve_refund(approval_id: str) -> Response:
    order_id = _order_of_approval(approval_id)
    svc = services()
    try:
        with svc.sessions() as db:
            amount = int(
                db.scalar(select(RefundApproval.amount).where(RefundApproval.id == approval_id)) or 0
            )
        result = staff_service.approve_refund(
            svc.sessions, svc.providers, approval_id, actor=me(), now=svc.clock(), base_url=svc.base_url
        )
    except Forbidden:
        return render(
            "console_error.html",
            status=403,
            heading=gettext("Four-eyes rule"),
            message=gettext("You asked for this refund, so another finance user has to approve it."),
            back_url=url_for("console.order_detail", order_id=order_id),
        )
    except Conflict:
        flash(gettext("This refund request has already been decided."), "error")
        return redirect(url_for("console.order_detail", order_id=order_id), code=303)
    _announce(result, amount)
    return redirect(url_for("console.order_detail", order_id=order_id), code=303)


@bp.post("/refund-requests/<string:approval_id>/reject")
@require(Role.FINANCE)
def reject_refund(approval_id: str) -> Response:
    order_id = _order_of_approval(approval_id)
    form = RejectForm()
    form.validate()
    svc = services()
    try:
        staff_service.reject_refund(
            svc.sessions, approval_id, actor=me(), note=form.note.data or "", now=svc.clock()
        )
    except Conflict:
        flash(gettext("This refund request has already been decided."), "error")
    else:
        flash(gettext("The refund request has been rejected."), "success")
    return redirect(url_for("console.order_detail", order_id=order_id), code=303)


@bp.post("/refunds/<string:refund_id>/complete")
@require(Role.FINANCE)
def complete_refund(refund_id: str) -> Response:
    svc = services()
    with svc.sessions() as db:
        order_id = db.scalar(select(Refund.order_id).where(Refund.id == refund_id))
    if order_id is None:
        raise NotFound(f"refund {refund_id} not found")
    form = BankTransferForm()
    if not form.validate():
        return order_page(order_id, status=422, error=gettext("Enter the bank transfer reference."))
    try:
        staff_service.complete_bank_refund(
            svc.sessions,
            svc.providers,
            refund_id,
            bank_transfer_ref=form.bank_transfer_ref.data or "",
            actor=me(),
            now=svc.clock(),
            base_url=svc.base_url,
        )
    except Conflict:
        return order_page(
            order_id,
            status=409,
            error=gettext("This refund is paid back by the provider itself, not by a bank transfer."),
        )
    flash(gettext("The bank transfer has been recorded and the refund is complete."), "success")
    return redirect(url_for("console.order_detail", order_id=order_id), code=303)


@bp.get("/refunds")
def refund_queue() -> Response:
    """What finance has to act on: requests waiting for approval and bank transfers to record."""
    svc = services()
    manual = [p.code for p in svc.providers if p.manual_refunds]
    with svc.sessions() as db:
        waiting = [
            {
                "id": a.id,
                "order_id": a.order_id,
                "dossier_code": dossier,
                "amount": a.amount,
                "reason": a.reason,
                "requested_by": a.requested_by,
                "created_at": a.created_at,
            }
            for a, dossier in db.execute(
                select(RefundApproval, Order.dossier_code)
                .join(Order, Order.id == RefundApproval.order_id)
                .where(RefundApproval.status == ApprovalStatus.PENDING.value)
                .order_by(RefundApproval.created_at)
            )
        ]
        transfers = [
            {
                "id": r.id,
                "order_id": r.order_id,
                "dossier_code": dossier,
                "amount": r.amount,
                "reason": r.reason,
                "requested_by": r.requested_by,
                "created_at": r.created_at,
            }
            for r, dossier in db.execute(
                select(Refund, Order.dossier_code)
                .join(Order, Order.id == Refund.order_id)
                .where(Refund.status == RefundStatus.PENDING.value, Refund.provider.in_(manual))
                .order_by(Refund.created_at)
            )
        ]
    return render("console_refunds.html", waiting=waiting, transfers=transfers)
