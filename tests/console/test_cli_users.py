"""``gateway users create EMAIL --role finance|admin|auditor [--password-stdin]`` (contract §3)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from gateway.cli import main
from gateway.services.staff import verify_password
from gateway.storage.models import StaffUser


@pytest.fixture
def env(tmp_path, database_url, engine) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "GATEWAY_INSTANCE_PATH": str(tmp_path / "instance"),
        "SECRET_KEY": "cli-test",
    }


def _users(sessions):
    with sessions() as s:
        return list(s.scalars(select(StaffUser)))


def test_create_with_password_on_stdin(env, sessions):
    result = CliRunner().invoke(
        main,
        ["users", "create", "Ke.Toan@Example.vn", "--role", "finance", "--password-stdin"],
        input="a long enough password\n",
        env=env,
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["email"] == "ke.toan@example.vn"
    assert data["role"] == "finance"
    [user] = _users(sessions)
    assert user.id == data["id"]
    assert user.password_hash.startswith("scrypt$1$16384$8$1$")
    assert "a long enough password" not in user.password_hash
    assert verify_password("a long enough password", user.password_hash)


def test_create_prompts_for_the_password_twice(env, sessions):
    result = CliRunner().invoke(
        main,
        ["users", "create", "kiem.toan@example.vn", "--role", "auditor"],
        input="another good password\nanother good password\n",
        env=env,
    )
    assert result.exit_code == 0, result.output
    [user] = _users(sessions)
    assert user.role == "auditor"
    assert verify_password("another good password", user.password_hash)


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["x@example.vn", "--role", "boss", "--password-stdin"], "a long enough password\n", "boss"),
        (["x@example.vn", "--password-stdin"], "a long enough password\n", "--role"),
        (["not-an-email", "--role", "finance", "--password-stdin"], "a long enough password\n", "email"),
        (["x@example.vn", "--role", "admin", "--password-stdin"], "short\n", "password"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(env, sessions, args, stdin, message):
    result = CliRunner().invoke(main, ["users", "create", *args], input=stdin, env=env)
    assert result.exit_code == 2, result.output
    assert message in result.output
    with sessions() as s:
        assert s.scalar(select(func.count(StaffUser.id))) == 0


def test_duplicate_email_exits_2(env, sessions):
    args = ["users", "create", "ke.toan@example.vn", "--role", "finance", "--password-stdin"]
    assert CliRunner().invoke(main, args, input="a long enough password\n", env=env).exit_code == 0
    again = CliRunner().invoke(main, [*args[:2], "KE.TOAN@example.vn", *args[3:]], input="x" * 20, env=env)
    assert again.exit_code == 2
    assert "already exists" in again.output
    assert len(_users(sessions)) == 1
