"""Administration (issue 7.7): staff users and portal clients, secrets shown once, rotation overlaps."""

from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import select

from gateway.domain.errors import Unauthorized
from gateway.services import relay
from gateway.services.clients import authenticate, authenticate_with_overlap
from gateway.services.webhooks import sign, split_secrets, verify_signature
from gateway.storage.db import transaction
from gateway.storage.models import AuditLog, OutboxEvent, PortalClient, StaffUser
from tests.console.conftest import PASSWORD, Staff, login, post


def _secret_values(html: str) -> dict[str, str]:
    return dict(
        zip(
            re.findall(r"<dt>([^<]+)</dt><dd><code class=\"secret\">", html),
            re.findall(r'<code class="secret">([^<]+)</code>', html),
            strict=True,
        )
    )


def test_admin_creates_a_portal_client_and_sees_its_key_once(as_admin, admin, sessions):
    client = as_admin
    resp = post(
        client,
        "/console/admin/clients",
        {"name": "Cổng DVC Đồng Nai", "webhook_url": "https://dvc.dongnai.example.vn/hook", "finance": "y"},
        page="/console/admin/clients",
    )
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-store"
    html = resp.get_data(as_text=True)
    values = _secret_values(html)
    api_key, secret = values["Khóa API"], values["Khóa bí mật webhook"]
    assert api_key.startswith("gk_")
    assert secret.startswith("whsec_")
    # The key works on the portal API...
    assert client.get("/api/v1/orders", headers={"Authorization": f"Bearer {api_key}"}).status_code == 200
    # ...and is never shown again.
    listing = client.get("/console/admin/clients").get_data(as_text=True)
    assert "Cổng DVC Đồng Nai" in listing
    assert api_key not in listing
    assert secret not in listing
    with sessions() as s:
        stored = s.scalars(select(PortalClient).where(PortalClient.name == "Cổng DVC Đồng Nai")).one()
        assert stored.scope_set == {"orders", "finance"}
        assert api_key not in stored.api_key_hash
        entry = s.scalars(select(AuditLog).where(AuditLog.action == "client_created")).one()
    assert (entry.actor, entry.entity_id) == (admin.email, stored.id)


def test_bad_client_input_is_refused(as_admin):
    resp = post(
        as_admin,
        "/console/admin/clients",
        {"name": "X", "webhook_url": "ftp://x"},
        page="/console/admin/clients",
    )
    assert resp.status_code == 422
    assert "Vui lòng nhập địa chỉ http(s) đầy đủ." in resp.get_data(as_text=True)


def test_webhook_secret_rotation_signs_with_both_during_the_overlap(as_admin, admin, portal, sessions, clock):
    resp = post(
        as_admin,
        f"/console/admin/clients/{portal.client_id}/rotate-webhook-secret",
        {"overlap_hours": "24"},
        page="/console/admin/clients",
    )
    assert resp.status_code == 200
    new = _secret_values(resp.get_data(as_text=True))["Khóa bí mật webhook"]
    with sessions() as s:
        stored = s.get(PortalClient, portal.client_id).webhook_secret
    assert stored == f"{new},{portal.webhook_secret}"  # newest first (contract §7)
    body = b'{"id":"evt_1"}'
    now = int(time.time())
    header = sign(split_secrets(stored), body, now)
    assert header.count("v1=") == 2
    assert verify_signature(portal.webhook_secret, header, body)  # a portal still on the old secret
    assert verify_signature(new, header, body)  # a portal already on the new one
    # The relay signs real deliveries with both.
    with transaction(sessions) as s:
        s.add(
            OutboxEvent(
                id="evt_rotation",
                client_id=portal.client_id,
                order_id=None,
                type="order.paid",
                payload={},
                status="pending",
                attempts=0,
                next_attempt_at=clock(),
                created_at=clock(),
            )
        )
    [claimed] = relay.claim(sessions, now=clock())
    assert claimed.secrets == (new, portal.webhook_secret)
    listing = as_admin.get("/console/admin/clients").get_data(as_text=True)
    assert "Sự kiện còn được ký thêm bằng khóa bí mật webhook cũ đến" in listing
    # After the window the old secret is retired (the page, or a job, sweeps it).
    clock.advance(hours=24, seconds=1)
    assert login(as_admin, admin, clock).status_code == 303  # the idle timeout ended the old session
    as_admin.get("/console/admin/clients")
    with sessions() as s:
        assert s.get(PortalClient, portal.client_id).webhook_secret == new


def test_an_overlap_can_be_ended_early(as_admin, portal, sessions):
    post(
        as_admin,
        f"/console/admin/clients/{portal.client_id}/rotate-webhook-secret",
        {"overlap_hours": "48"},
        page="/console/admin/clients",
    )
    resp = post(
        as_admin,
        f"/console/admin/clients/{portal.client_id}/end-overlap/webhook_secret",
        page="/console/admin/clients",
    )
    assert resp.status_code == 303
    with sessions() as s:
        assert len(split_secrets(s.get(PortalClient, portal.client_id).webhook_secret)) == 1


def test_api_key_rotation_keeps_the_old_key_valid_for_the_overlap(as_admin, portal, sessions, clock):
    resp = post(
        as_admin,
        f"/console/admin/clients/{portal.client_id}/rotate-key",
        {"overlap_hours": "2"},
        page="/console/admin/clients",
    )
    new_key = _secret_values(resp.get_data(as_text=True))["Khóa API"]
    assert "Giá trị cũ còn hiệu lực trong 2 giờ." in resp.get_data(as_text=True)
    with transaction(sessions) as s:
        assert authenticate(s, new_key).id == portal.client_id
        with pytest.raises(Unauthorized):
            authenticate(s, portal.api_key)  # the unchanged check knows only the current key
        assert authenticate_with_overlap(s, portal.api_key, now=clock()).id == portal.client_id
        assert authenticate_with_overlap(s, new_key, now=clock()).id == portal.client_id
        with pytest.raises(Unauthorized):
            authenticate_with_overlap(s, portal.api_key[:-2] + "xx", now=clock())
    clock.advance(hours=2)
    with transaction(sessions) as s, pytest.raises(Unauthorized):
        authenticate_with_overlap(s, portal.api_key, now=clock())


def test_rotation_without_overlap_retires_at_once(as_admin, portal, sessions, clock):
    resp = post(
        as_admin,
        f"/console/admin/clients/{portal.client_id}/rotate-key",
        {"overlap_hours": "0"},
        page="/console/admin/clients",
    )
    assert resp.status_code == 200
    with transaction(sessions) as s, pytest.raises(Unauthorized):
        authenticate_with_overlap(s, portal.api_key, now=clock())
    bad = post(
        as_admin,
        f"/console/admin/clients/{portal.client_id}/rotate-key",
        {"overlap_hours": "999"},
        page="/console/admin/clients",
    )
    assert bad.status_code == 303


def test_admin_manages_staff_users(as_admin, app, sessions, clock):
    resp = post(
        as_admin,
        "/console/admin/users",
        {"email": "Moi@Example.vn", "role": "finance", "password": "a new long password"},
        page="/console/admin/users",
    )
    assert resp.status_code == 303
    with sessions() as s:
        user = s.scalars(select(StaffUser).where(StaffUser.email == "moi@example.vn")).one()
    new = Staff(user.id, user.email, "finance", password="a new long password")
    browser = app.test_client()
    assert login(browser, new).status_code == 303
    dup = post(
        as_admin,
        "/console/admin/users",
        {"email": "moi@example.vn", "role": "auditor", "password": PASSWORD},
        page="/console/admin/users",
    )
    assert dup.status_code == 409
    weak = post(
        as_admin,
        "/console/admin/users",
        {"email": "x@example.vn", "role": "finance", "password": "short"},
        page="/console/admin/users",
    )
    assert weak.status_code == 422
    assert "Vui lòng dùng ít nhất 12 ký tự." in weak.get_data(as_text=True)

    # Reset the second factor of a user who lost their phone.
    with transaction(sessions) as s:
        s.get(StaffUser, user.id).totp_secret = "JBSWY3DPEHPK3PXP"
    assert (
        post(as_admin, f"/console/admin/users/{user.id}/reset-totp", page="/console/admin/users").status_code
        == 303
    )
    with sessions() as s:
        assert s.get(StaffUser, user.id).totp_secret is None
    # Disable, then enable again.
    assert (
        post(as_admin, f"/console/admin/users/{user.id}/disable", page="/console/admin/users").status_code
        == 303
    )
    assert browser.get("/console/").status_code == 302
    assert (
        post(as_admin, f"/console/admin/users/{user.id}/enable", page="/console/admin/users").status_code
        == 303
    )
    assert login(browser, new).status_code == 303
    with sessions() as s:
        actions = [a.action for a in s.scalars(select(AuditLog).where(AuditLog.entity_id == user.id))]
    assert {"user_created", "totp_reset", "user_disabled", "user_enabled"} <= set(actions)


def test_an_admin_cannot_disable_themselves(as_admin, admin, sessions):
    resp = post(as_admin, f"/console/admin/users/{admin.id}/disable", page="/console/admin/users")
    assert resp.status_code == 303
    with sessions() as s:
        assert s.get(StaffUser, admin.id).disabled_at is None


def test_password_change_ends_other_sessions(app, client, finance):
    login(client, finance)
    other = app.test_client()
    login(other, finance)
    resp = post(
        client,
        "/console/account/password",
        {"current_password": PASSWORD, "new_password": "an even longer password"},
    )
    assert resp.status_code == 303
    assert client.get("/console/").status_code == 200
    assert other.get("/console/").status_code == 302
    wrong = post(
        client, "/console/account/password", {"current_password": "nope", "new_password": "whatever long one"}
    )
    assert wrong.status_code == 422
