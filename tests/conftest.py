"""Shared fixtures.

The suite runs on SQLite by default and on PostgreSQL when ``DATABASE_URL`` points at one
(``.ci/run`` does both). On PostgreSQL every test session (and xdist worker) migrates a fresh
schema of its own with Alembic and drops it at the end; no test ever calls ``create_all``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from gateway.app import create_app
from gateway.services.clients import create_client
from gateway.settings import ProviderCredentials, Settings
from gateway.storage.db import make_engine, make_session_factory, transaction
from gateway.storage.migrate import upgrade
from gateway.storage.models import Base

PG = os.environ.get("DATABASE_URL", "").startswith("postgresql")
BASE_URL = "http://gateway.test"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if PG:
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: run with DATABASE_URL=postgresql+psycopg://...")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Iterator[str]:
    if not PG:
        path = tmp_path_factory.mktemp("db") / "gateway.db"
        yield f"sqlite:///{path}"
        return
    base = os.environ["DATABASE_URL"]
    schema = f"t_{worker_id}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(scope="session")
def migrated_engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def _wipe(engine: Engine) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))


@pytest.fixture
def engine(migrated_engine: Engine) -> Iterator[Engine]:
    yield migrated_engine
    _wipe(migrated_engine)


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@dataclass
class FakeClock:
    """A controllable clock: tests move time instead of sleeping (Kill Bill's janitor tests)."""

    now: datetime = field(default_factory=lambda: datetime(2026, 11, 25, 3, 0, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def emulated_providers(instance_path: str = "instance") -> dict[str, ProviderCredentials]:
    from gateway.settings import OPTIONAL_PROVIDER_VARIABLES, PROVIDER_VARIABLES

    return {
        code: ProviderCredentials(
            code=code,
            values=dict.fromkeys(names + OPTIONAL_PROVIDER_VARIABLES.get(code, ()), ""),
            emulated=True,
            instance_path=instance_path,
        )
        for code, names in PROVIDER_VARIABLES.items()
    }


@pytest.fixture(scope="session")
def emulator_instance(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Where emulated providers keep generated demo keys: once per test session, never in the tree."""
    return str(tmp_path_factory.mktemp("emulator-instance"))


@pytest.fixture
def settings(database_url: str, tmp_path: Any, emulator_instance: str) -> Settings:
    return Settings(
        database_url=database_url,
        base_url=BASE_URL,
        secret_key="test-secret-key",
        environment="test",
        providers=emulated_providers(emulator_instance),
        instance_path=str(tmp_path / "instance"),
        testing=True,
    )


@pytest.fixture
def app(settings: Settings, engine: Engine, clock: FakeClock) -> Iterator[Flask]:
    import requests

    http = requests.Session()
    transport = WSGITransport()
    http.mount(BASE_URL, transport)  # type: ignore[arg-type]
    application = create_app(settings, clock=clock, http=http)
    transport.app = application
    yield application
    application.extensions["gateway"].engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@dataclass(frozen=True)
class PortalKey:
    client_id: str
    api_key: str
    webhook_secret: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


@pytest.fixture
def portal(sessions: sessionmaker[Session], clock: FakeClock) -> PortalKey:
    with transaction(sessions) as session:
        issued = create_client(
            session, "Cổng DVC tỉnh thử nghiệm", webhook_url="http://portal.test/hook", now=clock()
        )
    return PortalKey(issued.client_id, issued.api_key, issued.webhook_secret)


@pytest.fixture
def other_portal(sessions: sessionmaker[Session], clock: FakeClock) -> PortalKey:
    with transaction(sessions) as session:
        issued = create_client(session, "Another province", webhook_url=None, now=clock())
    return PortalKey(issued.client_id, issued.api_key, issued.webhook_secret)


def order_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "dossier_code": "H12.22-241125-0001",
        "agency_code": "SO-TU-PHAP",
        "payer": {"name": "Nguyễn Văn An", "id_number": "079201001234", "phone": "0901234567"},
        "items": [
            {"code": "LP-01", "kind": "fee", "description": "Lệ phí hộ tịch", "amount": 50000},
            {"code": "PH-02", "kind": "charge", "description": "Phí bản sao", "amount": 8000},
        ],
        "currency": "VND",
        "return_url": "https://dichvucong.example.vn/ho-so/H12.22-241125-0001",
        "expires_in": 3600,
    }
    body.update(overrides)
    return body


def count_rows(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t.name: conn.execute(text(f"SELECT COUNT(*) FROM {t.name}")).scalar_one()
            for t in Base.metadata.sorted_tables
        }


@dataclass
class LiveServer:
    url: str


@pytest.fixture
def live_server(app: Flask) -> Iterator[LiveServer]:
    """The app on a real threaded HTTP server on a free loopback port (for concurrency tests)."""
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LiveServer(f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        thread.join(timeout=5)


class WSGITransport:
    """A ``requests`` adapter that hands requests for the test host to the Flask app in-process.

    The gateway talks to its emulators over HTTP (creating a MoMo payment, VNPAY's emulator sending
    its IPN...). Mounted on the app's HTTP session for ``http://gateway.test``, those calls reach the
    same app without a socket, so e2e tests exercise the real wire protocol end to end.
    """

    def __init__(self) -> None:
        self.app: Flask | None = None

    def send(self, request: Any, **kwargs: Any) -> Any:
        import requests
        from requests.structures import CaseInsensitiveDict

        assert self.app is not None
        scheme, rest = request.url.split("://", 1)
        host, _, tail = rest.partition("/")
        response = self.app.test_client().open(
            "/" + tail,
            base_url=f"{scheme}://{host}",
            method=request.method,
            headers=dict(request.headers),
            data=request.body,
        )
        out = requests.Response()
        out.status_code = response.status_code
        out._content = response.get_data()
        out.headers = CaseInsensitiveDict(response.headers)
        out.url = request.url
        out.request = request
        out.encoding = "utf-8"
        return out

    def close(self) -> None:
        return None


@dataclass
class PortalReceiver:
    """A portal's webhook endpoint on a real loopback port: records what arrives, answers ``status``."""

    url: str = ""
    status: int = 200
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def bodies(self) -> list[dict[str, Any]]:
        import json

        return [json.loads(body) for _, body in self.received]


@pytest.fixture
def receiver() -> Iterator[PortalReceiver]:
    import threading

    from werkzeug.serving import make_server
    from werkzeug.wrappers import Request, Response

    state = PortalReceiver()
    lock = threading.Lock()

    @Request.application  # type: ignore[arg-type]
    def endpoint(request: Request) -> Response:
        with lock:
            state.received.append((dict(request.headers), request.get_data()))
        return Response("ok" if state.status < 300 else "nope", status=state.status)

    server = make_server("127.0.0.1", 0, endpoint, threaded=True)
    state.url = f"http://127.0.0.1:{server.server_port}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture
def hooked_portal(sessions: sessionmaker[Session], clock: FakeClock, receiver: PortalReceiver) -> PortalKey:
    """A portal client whose webhook URL is the live ``receiver``."""
    with transaction(sessions) as session:
        issued = create_client(session, "Cổng có webhook", webhook_url=receiver.url, now=clock())
    return PortalKey(issued.client_id, issued.api_key, issued.webhook_secret)
