"""Console fixtures: staff users made through the service, and a browser-like login that carries CSRF."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from gateway.console import totp
from gateway.services.staff import create_user
from gateway.storage.db import transaction
from gateway.storage.models import StaffUser
from tests.conftest import FakeClock

PASSWORD = "correct horse battery"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass(frozen=True)
class Staff:
    id: str
    email: str
    role: str
    password: str = PASSWORD
    totp_secret: str | None = None

    def code(self, clock: FakeClock, *, offset_steps: int = 0) -> str:
        assert self.totp_secret is not None
        return totp.totp(totp.decode_secret(self.totp_secret), clock.now.timestamp() + 30 * offset_steps)


def make_staff(
    sessions: sessionmaker[Session], clock: FakeClock, email: str, role: str, *, with_totp: bool = False
) -> Staff:
    with transaction(sessions) as session:
        user = create_user(session, email, role=role, password=PASSWORD, actor="test", now=clock())
        secret = None
        if with_totp:
            secret = totp.new_secret()
            row = session.get(StaffUser, user.id)
            assert row is not None
            row.totp_secret = secret
            row.totp_enabled_at = clock()
        return Staff(user.id, user.email, role, totp_secret=secret)


def csrf_from(html: str) -> str:
    match = _TOKEN.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def token(client: FlaskClient, page: str = "/console/account") -> str:
    """Read the CSRF token from a page, as a browser submitting that page's form would."""
    resp = client.get(page)
    assert resp.status_code == 200, (page, resp.status_code, resp.get_data(as_text=True)[:500])
    return csrf_from(resp.get_data(as_text=True))


def post(
    client: FlaskClient, path: str, data: dict[str, Any] | None = None, *, page: str = "/console/account"
):
    return client.post(path, data={**(data or {}), "csrf_token": token(client, page)})


def login(client: FlaskClient, staff: Staff, clock: FakeClock | None = None, *, password: str | None = None):
    form = {
        "email": staff.email,
        "password": password or staff.password,
        "csrf_token": token(client, "/console/login"),
    }
    if staff.totp_secret is not None and clock is not None:
        form["totp"] = staff.code(clock)
    return client.post("/console/login", data=form)


@pytest.fixture
def finance(sessions: sessionmaker[Session], clock: FakeClock) -> Staff:
    return make_staff(sessions, clock, "ke.toan@example.vn", "finance")


@pytest.fixture
def finance2(sessions: sessionmaker[Session], clock: FakeClock) -> Staff:
    return make_staff(sessions, clock, "truong.phong@example.vn", "finance")


@pytest.fixture
def auditor(sessions: sessionmaker[Session], clock: FakeClock) -> Staff:
    return make_staff(sessions, clock, "kiem.toan@example.vn", "auditor")


@pytest.fixture
def admin(sessions: sessionmaker[Session], clock: FakeClock) -> Staff:
    return make_staff(sessions, clock, "quan.tri@example.vn", "admin", with_totp=True)


@pytest.fixture
def as_finance(client: FlaskClient, finance: Staff) -> FlaskClient:
    assert login(client, finance).status_code == 303
    return client


@pytest.fixture
def as_admin(client: FlaskClient, admin: Staff, clock: FakeClock) -> FlaskClient:
    assert login(client, admin, clock).status_code == 303
    return client
