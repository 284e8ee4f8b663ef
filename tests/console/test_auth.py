"""Signing in (issue 7.1): sessions, lockout, idle timeout, CSRF, TOTP, roles."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from gateway.console import totp
from gateway.storage.models import AuditLog, StaffUser
from tests.conftest import count_rows
from tests.console.conftest import PASSWORD, csrf_from, login, make_staff, post, token


def _audit(sessions, action: str) -> list[AuditLog]:
    with sessions() as s:
        return list(s.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)))


def test_without_a_session_every_page_redirects_to_the_login(client):
    for path in ["/console/", "/console/orders", "/console/orders/ord_x", "/console/admin/users"]:
        resp = client.get(path)
        assert resp.status_code == 302, path
        assert resp.headers["Location"].startswith("/console/login")
    assert client.get("/console/orders?status=paid").headers["Location"] == (
        "/console/login?next=/console/orders?status%3Dpaid"
    )


def test_login_page_has_exactly_the_contract_fields(client):
    html = client.get("/console/login").get_data(as_text=True)
    names = set(re.findall(r'<(?:input|select|textarea)[^>]*name="([a-z_]+)"', html))
    assert names == {"csrf_token", "email", "password"}
    assert '<label for="email">' in html
    assert '<label for="password">' in html


def test_login_ok_sets_a_hardened_session_cookie_and_audits(client, finance, sessions):
    resp = login(client, finance)
    assert resp.status_code == 303
    assert resp.headers["Location"] == "/console/"
    cookie = next(h for h in resp.headers.getlist("Set-Cookie") if h.startswith("session="))
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" in cookie  # GATEWAY_ENV=test is not development
    assert client.get("/console/").status_code == 200
    [entry] = _audit(sessions, "login")
    assert (entry.actor, entry.source, entry.entity_id) == (finance.email, "console", finance.id)


def test_login_goes_back_to_the_page_asked_for_but_never_off_site(client, finance):
    page = client.get("/console/login?next=/console/orders%3Fstatus%3Dpaid").get_data(as_text=True)
    assert 'name="next" value="/console/orders?status=paid"' in page
    form = {
        "email": finance.email,
        "password": PASSWORD,
        "csrf_token": csrf_from(page),
        "next": "/console/orders",
    }
    assert client.post("/console/login", data=form).headers["Location"] == "/console/orders"
    client.post("/console/logout", data={"csrf_token": token(client, "/console/")})
    form = {"email": finance.email, "password": PASSWORD, "csrf_token": token(client, "/console/login")}
    form["next"] = "//evil.example/console"
    assert client.post("/console/login", data=form).headers["Location"] == "/console/"


def test_bad_password_and_unknown_email_look_the_same(client, finance, sessions):
    bad = login(client, finance, password="wrong password!")
    form = {
        "email": "nobody@example.vn",
        "password": "whatever",
        "csrf_token": token(client, "/console/login"),
    }
    unknown = client.post("/console/login", data=form)
    assert bad.status_code == unknown.status_code == 401
    message = "Email, mật khẩu hoặc mã xác thực không đúng."
    assert message in bad.get_data(as_text=True)
    assert message in unknown.get_data(as_text=True)
    assert client.get("/console/").status_code == 302
    assert [a.actor for a in _audit(sessions, "login_failed")] == [finance.email, "nobody@example.vn"]


def test_five_failures_lock_the_account_for_15_minutes(client, finance, sessions, clock):
    for _ in range(4):
        assert login(client, finance, password="wrong password!").status_code == 401
    locked = login(client, finance, password="wrong password!")
    assert locked.status_code == 429
    assert "Tài khoản bị khóa" in locked.get_data(as_text=True)
    # Even the right password is refused while locked, and that attempt is audited too.
    assert login(client, finance).status_code == 429
    assert len(_audit(sessions, "login_failed")) == 4
    [lock] = _audit(sessions, "account_locked")
    assert lock.actor == finance.email
    assert "5 failed sign-ins" in lock.reason
    assert len(_audit(sessions, "login_refused_locked")) == 1
    clock.advance(minutes=14, seconds=59)
    assert login(client, finance).status_code == 429
    clock.advance(seconds=1)
    assert login(client, finance).status_code == 303
    with sessions() as s:
        user = s.get(StaffUser, finance.id)
        assert user is not None
        assert user.failed_logins == 0
        assert user.locked_until is None


def test_idle_timeout_uses_the_app_clock(client, finance, clock):
    login(client, finance)
    for _ in range(3):
        clock.advance(minutes=29)
        assert client.get("/console/").status_code == 200  # activity keeps the session alive
    clock.advance(minutes=30, seconds=1)
    resp = client.get("/console/orders")
    assert resp.status_code == 302
    assert resp.headers["Location"] == "/console/login?expired=1"
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "Bạn đã bị đăng xuất do không thao tác" in page
    assert client.get("/console/").status_code == 302  # the session is gone, not just refused once


def test_logout_ends_the_session(client, finance):
    login(client, finance)
    resp = post(client, "/console/logout", page="/console/")
    assert resp.status_code == 303
    assert client.get("/console/").status_code == 302


@pytest.mark.parametrize("token_value", [None, "forged"])
def test_csrf_is_required_on_every_post(client, finance, token_value):
    data = {"email": finance.email, "password": PASSWORD}
    if token_value:
        data["csrf_token"] = token_value
    client.get("/console/login")
    resp = client.post("/console/login", data=data)
    assert resp.status_code == 400
    assert "Biểu mẫu đã hết hạn" in resp.get_data(as_text=True)
    login(client, finance)
    resp = client.post("/console/logout", data={"csrf_token": token_value} if token_value else {})
    assert resp.status_code == 400
    assert client.get("/console/").status_code == 200  # still signed in


def _enrol(client, sessions, clock, staff_id: str) -> str:
    page = client.get("/console/account/totp")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "<svg" in html
    assert 'class="qr"' in html
    with sessions() as s:
        secret = s.get(StaffUser, staff_id).totp_pending_secret
    assert secret
    assert " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)) in html
    wrong = client.post("/console/account/totp", data={"totp": "000000", "csrf_token": csrf_from(html)})
    assert wrong.status_code == 422
    code = totp.totp(totp.decode_secret(secret), clock.now.timestamp())
    done = client.post("/console/account/totp", data={"totp": code, "csrf_token": csrf_from(html)})
    assert done.status_code == 303
    return secret


def test_totp_enrolment_then_login_with_a_code(client, finance, sessions, clock):
    login(client, finance)
    secret = _enrol(client, sessions, clock, finance.id)
    with sessions() as s:
        user = s.get(StaffUser, finance.id)
        assert user.totp_secret == secret
        assert user.totp_pending_secret is None
    post(client, "/console/logout", page="/console/")

    # Password first, then the second page asks for the code (field "totp").
    clock.advance(seconds=60)
    step1 = login(client, finance)
    assert step1.status_code == 200
    html = step1.get_data(as_text=True)
    assert re.findall(r'name="([a-z_]+)"', html).count("totp") == 1
    assert client.get("/console/").status_code == 302  # not signed in yet
    bad = client.post("/console/login", data={"totp": "123456", "csrf_token": csrf_from(html)})
    assert bad.status_code == 401
    code = totp.totp(totp.decode_secret(secret), clock.now.timestamp())
    ok = client.post("/console/login", data={"totp": code, "csrf_token": csrf_from(html)})
    assert ok.status_code == 303
    assert client.get("/console/").status_code == 200
    post(client, "/console/logout", page="/console/")

    # A code is never accepted twice (RFC 6238 §5.2), also when sent with the password in one form.
    form = {
        "email": finance.email,
        "password": PASSWORD,
        "totp": code,
        "csrf_token": token(client, "/console/login"),
    }
    assert client.post("/console/login", data=form).status_code == 401
    clock.advance(seconds=30)
    form["totp"] = totp.totp(totp.decode_secret(secret), clock.now.timestamp())
    assert client.post("/console/login", data=form).status_code == 303


def test_wrong_codes_count_towards_the_lockout(client, sessions, clock):
    staff = make_staff(sessions, clock, "otp@example.vn", "finance", with_totp=True)
    for _ in range(4):
        form = {
            "email": staff.email,
            "password": PASSWORD,
            "totp": "000000",
            "csrf_token": token(client, "/console/login"),
        }
        assert client.post("/console/login", data=form).status_code == 401
    form["csrf_token"] = token(client, "/console/login")
    assert client.post("/console/login", data=form).status_code == 429


def test_admin_without_totp_must_enrol_before_anything_else(client, sessions, clock):
    admin = make_staff(sessions, clock, "admin.moi@example.vn", "admin")
    assert login(client, admin).status_code == 303
    for path in ["/console/admin/users", "/console/admin/clients", "/console/", "/console/orders"]:
        resp = client.get(path)
        assert resp.status_code == 302, path
        assert resp.headers["Location"] == "/console/account/totp"
    # Nor can it POST its way around the gate.
    html = client.get("/console/account/totp").get_data(as_text=True)
    resp = client.post("/console/admin/users", data={"csrf_token": csrf_from(html), "email": "x@example.vn"})
    assert resp.status_code == 302
    _enrol(client, sessions, clock, admin.id)
    assert client.get("/console/admin/users").status_code == 200


def test_finance_and_auditor_cannot_reach_admin_pages(client, finance, auditor):
    login(client, finance)
    assert client.get("/console/admin/users").status_code == 403
    assert client.get("/console/admin/clients").status_code == 403
    post(client, "/console/logout", page="/console/")
    login(client, auditor)
    resp = client.get("/console/admin/users")
    assert resp.status_code == 403
    assert "Không có quyền truy cập" in resp.get_data(as_text=True)


def _fill(rule: str) -> str:
    def value(m: re.Match[str]) -> str:
        if m.group(1) == "int":
            return "1"
        return "api_key" if m.group(2) == "kind" else "x_1"

    return re.sub(r"<(?:(string|int):)?(\w+)>", value, rule)


def test_auditor_reads_everything_and_every_post_is_403(app, client, auditor, engine, portal):
    from tests.helpers import paid_order

    order = paid_order(client, portal)
    login(client, auditor)
    for page in ["/console/", "/console/orders", f"/console/orders/{order['id']}", "/console/refunds"]:
        assert client.get(page).status_code == 200, page
    html = client.get(f"/console/orders/{order['id']}").get_data(as_text=True)
    assert "Gửi đề nghị hoàn tiền" not in html
    assert "Gửi lại" not in html
    self_service = {"console.logout", "console.password", "console.totp_enrol", "console.login"}
    posts = [
        rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("console.")
        and "POST" in rule.methods
        and rule.endpoint not in self_service
    ]
    assert len(posts) >= 17  # with the four reconciliation actions
    before = count_rows(engine)
    csrf = token(client, "/console/account")
    for rule in posts:
        path = _fill(rule.rule).replace("x_1", order["id"]) if "orders" in rule.rule else _fill(rule.rule)
        resp = client.post(path, data={"csrf_token": csrf, "amount": "1000", "reason": "x", "name": "x"})
        assert resp.status_code == 403, (rule.rule, resp.status_code)
    assert count_rows(engine) == before


def test_a_disabled_user_is_signed_out_at_the_next_request(client, app, finance, sessions, clock, admin):
    other = app.test_client()
    login(other, finance)
    assert other.get("/console/").status_code == 200
    login(client, admin, clock)
    html = client.get("/console/admin/users").get_data(as_text=True)
    resp = client.post(f"/console/admin/users/{finance.id}/disable", data={"csrf_token": csrf_from(html)})
    assert resp.status_code == 303
    assert other.get("/console/").status_code == 302
    assert login(other, finance).status_code == 401
    assert [a.actor for a in _audit(sessions, "user_disabled")] == [admin.email]


def test_language_choice_is_remembered_as_the_users_preference(app, client, finance, sessions):
    login(client, finance)
    assert '<html lang="vi">' in client.get("/console/").get_data(as_text=True)
    assert '<html lang="en">' in client.get("/console/?lang=en").get_data(as_text=True)
    with sessions() as s:
        assert s.get(StaffUser, finance.id).locale == "en"
    # Another browser (no lang cookie) gets the user's language after signing in.
    other = app.test_client()
    login(other, finance)
    html = other.get("/console/orders").get_data(as_text=True)
    assert '<html lang="en">' in html
    assert "Dossier code" in html
