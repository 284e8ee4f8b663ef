"""The ``gateway`` command line (contract §3): JSON out, exit code 2 and nothing written on bad input."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from gateway.cli import main
from gateway.services.clients import authenticate
from gateway.storage.db import make_session_factory, transaction
from gateway.storage.models import PortalClient


@pytest.fixture
def env(tmp_path, database_url, engine) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "GATEWAY_INSTANCE_PATH": str(tmp_path / "instance"),
        "SECRET_KEY": "cli-test",
    }


def test_db_upgrade(env):
    result = CliRunner().invoke(main, ["db", "upgrade"], env=env)
    assert result.exit_code == 0, result.output
    assert "database at head" in result.output


def test_clients_create_prints_credentials_once_and_stores_a_hash(env, engine):
    result = CliRunner().invoke(
        main,
        [
            "clients",
            "create",
            "Cổng DVC Bình Dương",
            "--webhook-url",
            "https://portal.example.vn/hook",
            "--scopes",
            "orders,finance",
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"client_id", "api_key", "webhook_secret"}
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        client = authenticate(session, data["api_key"])
        assert client.id == data["client_id"]
        assert client.scope_set == {"orders", "finance"}
        assert data["api_key"] not in (client.api_key_hash, client.api_key_prefix)
        assert client.webhook_url == "https://portal.example.vn/hook"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["clients", "create", "X", "--scopes", "orders,admin"], "unknown scope"),
        (["clients", "create", "X", "--webhook-url", "ftp://nope"], "webhook URL"),
        (["clients", "create", "   "], "empty"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(env, engine, args, message):
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 2
    assert message in result.output
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(PortalClient)).scalar_one() == 0


def test_bad_configuration_exits_2(env):
    result = CliRunner().invoke(main, ["db", "upgrade"], env={**env, "GATEWAY_BASE_URL": "not a url"})
    assert result.exit_code == 2
    assert "GATEWAY_BASE_URL" in result.output


def test_unreachable_database_exits_2(env):
    bad = {**env, "DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"}
    result = CliRunner().invoke(main, ["db", "upgrade"], env=bad)
    assert result.exit_code == 2
    assert "cannot migrate" in result.output
