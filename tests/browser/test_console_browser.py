"""The staff console in a real browser (issue 7, acceptance point 9).

Headless Chromium (Debian's package) against the app on a live loopback server, on the suite's database:
sign-in (with TOTP for an admin), order search and detail, a refund under the four-eyes rule by two
finance users in two browsers, the XLSX export read back with openpyxl, an auditor who can read but not
act, a POST without a CSRF token, the 360 px layout, and reconciliation review: a run, resolving an
exception, its XLSX export.

Test data is made the way the console tests make it: staff users through the service layer, orders
through the portal API and paid through the VNPAY emulator with the Flask test client (the app's own
server-to-server calls to http://gateway.test go through ``WSGITransport``). Only the browser uses the
live server's http://127.0.0.1:<port> address.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openpyxl import load_workbook
from sqlalchemy import select

from gateway.console import totp
from gateway.console.base import EXTENSION
from gateway.storage.models import RefundApproval
from tests.browser.conftest import Console, StaffMaker
from tests.helpers import create_order, paid_order

if TYPE_CHECKING:
    from playwright.sync_api import Page, Response

RECON_RUNS = "/console/reconciliation/runs"


# ---- helpers -------------------------------------------------------------------------------------------


def vnd(amount: int) -> str:
    """How the console shows money: 1.234.567 ₫."""
    return f"{amount:,}".replace(",", ".") + " ₫"


def items(amount: int) -> list[dict[str, Any]]:
    return [{"code": "LP-99", "kind": "fee", "description": "Lệ phí cấp phép", "amount": amount}]


def csrf_token(page: Page) -> str:
    """The token of the page's own forms (every signed-in page has one, in the sign-out form)."""
    return page.locator("input[name=csrf_token]").first.input_value()


def post_form(page: Page, path: str, fields: dict[str, str]) -> Response:
    """Submit a form crafted in the page (the console's CSP forbids fetch): the answer's Response."""
    with page.expect_navigation() as navigation:
        page.evaluate(
            """([path, fields]) => {
                const form = document.createElement("form");
                form.method = "post";
                form.action = path;
                for (const [name, value] of Object.entries(fields)) {
                    const input = document.createElement("input");
                    input.type = "hidden";
                    input.name = name;
                    input.value = value;
                    form.appendChild(input);
                }
                document.body.appendChild(form);
                form.submit();
            }""",
            [path, fields],
        )
    response = navigation.value
    assert response is not None
    return response


def submit(page: Page, form_selector: str) -> None:
    """Press the submit button of the form and wait for the page that answers."""
    with page.expect_navigation():
        page.locator(f"{form_selector} button[type=submit]").click()


def approvals(sessions: Any) -> list[RefundApproval]:
    with sessions() as s:
        return list(s.scalars(select(RefundApproval).order_by(RefundApproval.created_at)))


def scroll_width(page: Page) -> int:
    return int(page.evaluate("document.documentElement.scrollWidth"))


# ---- signing in ----------------------------------------------------------------------------------------


def test_finance_signs_in(console: Console, staff: StaffMaker) -> None:
    finance = staff("ke.toan@example.vn", "finance")
    page = console.new_page()
    page.goto("/console/orders")
    assert page.url == f"{console.url}/console/login?next=/console/orders"
    assert page.locator("html").get_attribute("lang") == "vi"

    page.locator("#email").fill(finance.email)
    page.locator("#password").fill("not the password")
    submit(page, "form[action='/console/login']")
    assert page.locator("[role=alert]").is_visible()
    assert page.locator("#password").input_value() == ""  # never echoed back

    page.locator("#email").fill(finance.email)
    page.locator("#password").fill(finance.password)
    submit(page, "form[action='/console/login']")
    assert page.url == f"{console.url}/console/orders"  # back to the page asked for
    assert page.locator(".who").inner_text().startswith(finance.email)
    [cookie] = [c for c in page.context.cookies() if c["name"] == "session"]
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["secure"]) == (True, "Lax", True)

    submit(page, "form[action='/console/logout']")
    assert page.url == f"{console.url}/console/login"
    page.goto("/console/")
    assert page.url.startswith(f"{console.url}/console/login")


def test_admin_enrols_a_second_factor_then_signs_in_with_it(console: Console, staff: StaffMaker) -> None:
    admin = staff("quan.tri@example.vn", "admin")
    page = console.sign_in(console.new_page(), admin, expect="/console/account/totp")
    # Until a second factor is set up, the admin pages send an admin back to the enrolment page.
    page.goto("/console/admin/users")
    assert page.url == f"{console.url}/console/account/totp"

    secret = page.locator("code.secret").inner_text()  # what a person would type into their app
    assert page.locator("svg.qr").is_visible()
    page.locator("#totp").fill(totp.totp(totp.decode_secret(secret), console.clock.now.timestamp()))
    submit(page, "form[action='/console/account/totp']")
    assert page.url == f"{console.url}/console/"
    submit(page, "form[action='/console/logout']")

    console.clock.advance(seconds=30)  # the next code: one already used is refused (no replay)
    code = totp.totp(totp.decode_secret(secret), console.clock.now.timestamp())
    page.goto("/console/login")
    page.locator("#email").fill(admin.email)
    page.locator("#password").fill(admin.password)
    submit(page, "form[action='/console/login']")
    assert page.locator("#email").count() == 0  # the second page asks for the code only
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    page.locator("#totp").fill(wrong)
    submit(page, "form[action='/console/login']")
    assert page.locator("[role=alert]").is_visible()
    page.locator("#totp").fill(code)
    submit(page, "form[action='/console/login']")
    assert page.url == f"{console.url}/console/"

    response = page.goto("/console/admin/users")
    assert response is not None
    assert response.status == 200
    assert page.get_by_text(admin.email).first.is_visible()


# ---- orders --------------------------------------------------------------------------------------------


def test_finance_finds_an_order_by_dossier_code_and_opens_it(
    console: Console, staff: StaffMaker, client: Any, portal: Any
) -> None:
    wanted = paid_order(client, portal, dossier_code="H12.22-241125-0042")
    create_order(client, portal, dossier_code="H12.22-241125-0043")
    finance = staff("ke.toan@example.vn", "finance")
    page = console.signed_in(finance)

    page.goto("/console/orders")
    assert page.locator("table.data tbody a").count() == 2
    page.get_by_label("Mã hồ sơ").fill("0042")
    submit(page, "form.filters")
    assert "dossier_code=0042" in page.url
    links = page.locator("table.data tbody a")
    assert links.all_inner_texts() == ["H12.22-241125-0042"]

    with page.expect_navigation():
        links.first.click()
    assert page.url == f"{console.url}/console/orders/{wanted['id']}"
    assert "H12.22-241125-0042" in page.locator("h1").inner_text()
    summary = page.locator("#h-summary + dl").inner_text()
    assert wanted["id"] in summary
    assert vnd(58_000) in summary
    assert "VNPAY" in page.locator("section[aria-labelledby=h-attempts]").inner_text()


def test_a_large_refund_needs_a_second_finance_user(
    app: Any, console: Console, staff: StaffMaker, client: Any, portal: Any, sessions: Any
) -> None:
    threshold = app.extensions[EXTENSION].refund_approval_threshold
    order = paid_order(client, portal, items=items(threshold + 1_000_000))
    requester = staff("ke.toan@example.vn", "finance")
    approver = staff("truong.phong@example.vn", "finance")

    a = console.signed_in(requester)
    a.goto(f"/console/orders/{order['id']}")
    refund_form = f"form[action='/console/orders/{order['id']}/refunds']"
    a.locator(f"{refund_form} [name=amount]").fill(str(threshold))
    a.locator(f"{refund_form} [name=reason]").fill("Hồ sơ bị từ chối, hoàn lệ phí")
    submit(a, refund_form)
    assert a.url == f"{console.url}/console/orders/{order['id']}"
    flashed = a.locator(".flashes").inner_text()
    assert f"Yêu cầu hoàn {vnd(threshold)} đang chờ một kế toán khác phê duyệt." in flashed
    [approval] = approvals(sessions)
    assert approval.status == "pending"
    assert (approval.requested_by, approval.amount) == (requester.email, threshold)

    # The requester has no Approve button, and approving by hand is refused.
    assert a.locator("form[action$='/approve']").count() == 0
    assert "Cần một kế toán khác phê duyệt." in a.locator("section[aria-labelledby=h-refunds]").inner_text()
    refused = post_form(a, f"/console/refund-requests/{approval.id}/approve", {"csrf_token": csrf_token(a)})
    assert refused.status == 403
    assert "Nguyên tắc hai người duyệt" in a.locator("h1").inner_text()
    assert approvals(sessions)[0].status == "pending"

    # A second finance user, in another browser, finds it in the queue and approves it.
    b = console.signed_in(approver)
    b.goto("/console/refunds")
    waiting = b.locator("section[aria-labelledby=h-waiting] tbody")
    assert vnd(threshold) in waiting.inner_text()
    assert requester.email in waiting.inner_text()
    with b.expect_navigation():
        waiting.get_by_role("link", name=order["dossier_code"]).click()
    submit(b, f"form[action='/console/refund-requests/{approval.id}/approve']")
    assert b.url == f"{console.url}/console/orders/{order['id']}"
    [approval] = approvals(sessions)
    assert (approval.status, approval.decided_by) == ("done", approver.email)
    refunds = b.locator("section[aria-labelledby=h-refunds] table.data").first.inner_text()
    assert vnd(threshold) in refunds
    state = client.get(f"/api/v1/orders/{order['id']}", headers=portal.headers).get_json()
    assert (state["status"], state["refunded_amount"]) == ("partially_refunded", threshold)

    a.reload()
    assert a.locator("form[action*='/refund-requests/']").count() == 0  # decided: nothing left to do


def test_orders_export_to_xlsx_through_a_download(
    console: Console, staff: StaffMaker, client: Any, portal: Any, tmp_path: Path
) -> None:
    paid_order(client, portal, dossier_code="H12.22-241125-0001", items=items(1_234_567))
    create_order(client, portal, dossier_code="H12.22-241125-0002")
    create_order(client, portal, dossier_code="KHAC-0003")
    page = console.signed_in(staff("ke.toan@example.vn", "finance"))
    page.goto("/console/orders?dossier_code=H12.22")

    with page.expect_download() as info:
        page.locator("a[href^='/console/orders/export.xlsx']").click()
    download = info.value
    assert download.failure() is None
    assert re.fullmatch(r"orders-[\w-]+\.xlsx", download.suggested_filename)
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    sheet = load_workbook(saved).active
    assert sheet is not None
    header = [c.value for c in sheet[1]]
    assert header[2] == "Mã hồ sơ"
    assert header[7] == "Số tiền (VND)"
    rows = {r[2].value: r for r in sheet.iter_rows(min_row=2)}
    assert set(rows) == {"H12.22-241125-0001", "H12.22-241125-0002"}  # the search filter applies
    paid = rows["H12.22-241125-0001"][7]
    assert paid.value == 1_234_567
    assert type(paid.value) is int
    assert rows["H12.22-241125-0002"][7].value == 58_000


def test_an_auditor_sees_everything_but_cannot_act(
    console: Console, staff: StaffMaker, client: Any, portal: Any, sessions: Any
) -> None:
    order = paid_order(client, portal)
    page = console.signed_in(staff("kiem.toan@example.vn", "auditor"))
    page.goto("/console/orders")
    with page.expect_navigation():
        page.get_by_role("link", name=order["dossier_code"]).click()
    assert order["dossier_code"] in page.locator("h1").inner_text()
    assert page.locator("section[aria-labelledby=h-summary]").is_visible()
    # No refund form, no redelivery buttons: nothing on the page changes anything.
    assert page.locator("main form").count() == 0

    # A request crafted with the page's valid CSRF token is refused all the same.
    crafted = post_form(
        page,
        f"/console/orders/{order['id']}/refunds",
        {"amount": "1000", "reason": "thử", "csrf_token": csrf_token(page)},
    )
    assert crafted.status == 403
    assert page.locator(".who").inner_text().startswith("kiem.toan@example.vn")  # still signed in
    assert approvals(sessions) == []
    response = page.goto("/console/admin/users")
    assert response is not None
    assert response.status == 403
    page.goto("/console/refunds")  # reading the refund queue is fine
    assert page.locator("section[aria-labelledby=h-waiting]").is_visible()


def test_a_post_without_a_csrf_token_is_refused(
    console: Console, staff: StaffMaker, client: Any, portal: Any, sessions: Any
) -> None:
    order = paid_order(client, portal)
    page = console.signed_in(staff("ke.toan@example.vn", "finance"))
    page.goto(f"/console/orders/{order['id']}")
    path = f"/console/orders/{order['id']}/refunds"

    token = csrf_token(page)
    missing = post_form(page, path, {"amount": "1000", "reason": "không có token"})
    assert missing.status == 400
    page.goto(f"/console/orders/{order['id']}")
    forged = post_form(page, path, {"amount": "1000", "reason": "token giả", "csrf_token": "x" * len(token)})
    assert forged.status == 400
    # The same request outside any page, with the session cookie but no token.
    outside = page.request.post(path, form={"amount": "1000", "reason": "ngoài trang"}, max_redirects=0)
    assert outside.status == 400
    assert approvals(sessions) == []

    # Signing out is a POST too: without the token it does nothing.
    page.goto("/console/")
    assert post_form(page, "/console/logout", {}).status == 400
    response = page.goto("/console/")
    assert response is not None
    assert (response.status, page.url) == (200, f"{console.url}/console/")
    # With the page's token, the same request goes through: the token was the only thing missing.
    assert post_form(page, path, {"amount": "1000", "reason": "có token", "csrf_token": token}).status == 200
    assert len(approvals(sessions)) == 1


def test_pages_fit_a_360_px_screen(
    console: Console, staff: StaffMaker, client: Any, portal: Any, sessions: Any
) -> None:
    order = paid_order(client, portal, payer={"name": "Nguyễn Thị Phương Thảo Hoàng Lan Anh"})
    page = console.new_page(width=360, height=740)
    page.goto("/console/login")
    assert scroll_width(page) <= 360, "/console/login"

    console.sign_in(page, staff("ke.toan@example.vn", "finance"))
    for path in ["/console/", "/console/orders", f"/console/orders/{order['id']}", "/console/refunds"]:
        page.goto(path)
        assert scroll_width(page) <= 360, path

    admin = staff("quan.tri@example.vn", "admin", with_totp=True)
    other = console.new_page(width=360, height=740)
    console.sign_in(other, admin, totp=admin.code(console.clock))
    for path in ["/console/admin/users", "/console/admin/clients", "/console/account"]:
        other.goto(path)
        assert scroll_width(other) <= 360, path


# ---- reconciliation (issue 7.5) ------------------------------------------------------------------------


def _run_with_an_exception(sessions: Any, client: Any, portal: Any) -> tuple[str, dict[str, Any]]:
    """A paid VNPAY order no settlement file ever mentions: pending on its day, missing five days later."""
    from reconciliation.config import ReconConfig
    from reconciliation.runs import reconcile

    order = paid_order(client, portal)  # 25/11/2026, by the tests' clock
    later = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    reconcile(sessions, business_date=date(2026, 11, 25), config=ReconConfig(), clock=lambda: later)
    run = reconcile(sessions, business_date=date(2026, 11, 30), config=ReconConfig(), clock=lambda: later)
    assert run.run_id is not None
    assert run.totals["missing_in_statement"]["count"] == 1, run.totals
    return run.run_id, order


def test_finance_opens_a_reconciliation_run(
    console: Console, staff: StaffMaker, client: Any, portal: Any, sessions: Any, tmp_path: Path
) -> None:
    run_id, order = _run_with_an_exception(sessions, client, portal)
    page = console.signed_in(staff("ke.toan@example.vn", "finance"))
    page.goto(RECON_RUNS)
    with page.expect_navigation():
        page.locator(f"a[href^='{RECON_RUNS}/{run_id}']").first.click()
    assert page.url.startswith(f"{console.url}{RECON_RUNS}/{run_id}")
    text = page.locator("main").inner_text()
    assert vnd(58_000) in text
    assert order["dossier_code"] in text or page.locator(f"a[href$='/console/orders/{order['id']}']").count()

    # The review pages and the XLSX export, on a phone: nothing wider than the screen.
    phone = console.signed_in(staff("kiem.soat@example.vn", "finance"), width=360, height=740)
    phone.goto(f"{RECON_RUNS}/{run_id}")
    item_link = phone.locator("a[href^='/console/reconciliation/items/']").first.get_attribute("href")
    assert item_link is not None
    for path in [RECON_RUNS, f"{RECON_RUNS}/{run_id}", item_link, "/console/reconciliation/exceptions"]:
        phone.goto(path)
        assert scroll_width(phone) <= 360, path
    with page.expect_download() as info:
        page.locator(f"a[href^='{RECON_RUNS}/{run_id}/export.xlsx']").click()
    download = info.value
    assert download.failure() is None
    assert download.suggested_filename.endswith(".xlsx")
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    sheet = load_workbook(saved).active
    assert sheet is not None
    rows = list(sheet.iter_rows(values_only=True))
    assert len(rows) == 2  # the header and the one missing payment
    assert 58_000 in rows[1]


def test_finance_resolves_an_exception_with_a_reason(
    console: Console, staff: StaffMaker, client: Any, portal: Any, sessions: Any
) -> None:
    from gateway.storage.models import ReconItem, ReconItemAction

    run_id, _order = _run_with_an_exception(sessions, client, portal)
    finance = staff("ke.toan@example.vn", "finance")
    page = console.signed_in(finance)
    page.goto(f"{RECON_RUNS}/{run_id}")
    form = "form[action*='resolve']"
    assert page.locator(form).count() >= 1

    reason = "Đã đối chiếu với sao kê ngày 01/12: tiền về muộn"
    page.locator(form).first.locator("[name=reason]").fill(reason)
    with page.expect_navigation():
        page.locator(form).first.locator("button[type=submit]").click()
    assert reason in page.locator("main").inner_text()
    with sessions() as s:
        item = s.scalars(
            select(ReconItem).where(ReconItem.run_id == run_id, ReconItem.category == "missing_in_statement")
        ).one()
        actions = s.scalars(select(ReconItemAction).where(ReconItemAction.item_id == item.id)).all()
    assert (item.status, item.resolved_by) == ("resolved", finance.email)
    assert [(a.action, a.actor, a.reason) for a in actions] == [("resolve", finance.email, reason)]
