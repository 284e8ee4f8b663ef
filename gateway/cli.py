"""``gateway`` command line (contract §3). Bad input: a readable message and exit code 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from gateway.settings import ConfigError, Settings, load_settings

DEMO_CLIENT_FILE = "demo-client.json"


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _settings() -> Settings:
    from gateway.observability import configure_logging

    configure_logging()
    try:
        return load_settings()
    except ConfigError as exc:
        _fail(str(exc))


@click.group()
def main() -> None:
    """Payment gateway for Vietnam's online public services."""


@main.group()
def db() -> None:
    """Database schema (Alembic)."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Upgrade the database schema to the newest revision."""
    from sqlalchemy.exc import SQLAlchemyError

    from gateway.storage.db import make_engine
    from gateway.storage.migrate import upgrade

    settings = _settings()
    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
    except SQLAlchemyError as exc:
        where = engine.url.render_as_string(hide_password=True)
        _fail(f"cannot migrate {where}: {exc.__class__.__name__}: {exc}")
    finally:
        engine.dispose()
    click.echo(f"database at head: {engine.url.render_as_string(hide_password=True)}")


@main.group()
def clients() -> None:
    """Portal clients (API keys and webhook secrets)."""


@clients.command("create")
@click.argument("name")
@click.option("--webhook-url", default=None, help="Where events are POSTed (contract §7).")
@click.option("--scopes", default="orders", show_default=True, help="Comma list: orders, finance.")
def clients_create(name: str, webhook_url: str | None, scopes: str) -> None:
    """Create a portal client and print its credentials once, as JSON."""
    from gateway.domain.errors import ValidationProblem
    from gateway.services.clients import create_client
    from gateway.services.clock import utc_now
    from gateway.storage.db import make_engine, make_session_factory, transaction
    from gateway.storage.migrate import upgrade

    settings = _settings()
    engine = make_engine(settings.database_url)
    upgrade(engine)
    scope_list = tuple(s.strip() for s in scopes.split(",") if s.strip())
    try:
        with transaction(make_session_factory(engine)) as session:
            issued = create_client(session, name, webhook_url=webhook_url, scopes=scope_list, now=utc_now())
    except ValidationProblem as exc:
        _fail(exc.detail)
    finally:
        engine.dispose()
    click.echo(
        json.dumps(
            {
                "client_id": issued.client_id,
                "api_key": issued.api_key,
                "webhook_secret": issued.webhook_secret,
            }
        )
    )


def ensure_demo_client(settings: Settings) -> dict[str, Any]:
    """The embedded default's demo portal client, created once and kept in ``instance/``."""
    from gateway.services.clients import create_client
    from gateway.services.clock import utc_now
    from gateway.storage.db import make_engine, make_session_factory, transaction

    path = Path(settings.instance_path) / DEMO_CLIENT_FILE
    engine = make_engine(settings.database_url)
    try:
        if path.exists():
            saved: dict[str, Any] = json.loads(path.read_text())
            from sqlalchemy import select

            from gateway.storage.models import PortalClient

            with transaction(make_session_factory(engine)) as session:
                if session.scalars(select(PortalClient).where(PortalClient.id == saved["client_id"])).first():
                    return saved
        with transaction(make_session_factory(engine)) as session:
            issued = create_client(session, "Demo portal", webhook_url=None, now=utc_now())
    finally:
        engine.dispose()
    data = {"client_id": issued.client_id, "api_key": issued.api_key, "webhook_secret": issued.webhook_secret}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    path.chmod(0o600)
    return data


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=None, type=click.IntRange(1, 64), help="Processes (default: 1 on SQLite).")
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 256))
def serve(host: str, port: int, workers: int | None, threads: int) -> None:
    """Migrate the database if needed and serve the gateway."""
    from sqlalchemy.exc import SQLAlchemyError

    from gateway.server import run
    from gateway.storage.db import make_engine
    from gateway.storage.migrate import upgrade

    settings = _settings()
    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
    except SQLAlchemyError as exc:
        _fail(f"cannot migrate the database: {exc.__class__.__name__}: {exc}")
    finally:
        engine.dispose()
    if not settings.is_production:
        demo = ensure_demo_client(settings)
        click.echo("")
        click.echo("  Demo portal client (embedded default; kept in instance/demo-client.json):")
        click.echo(f"    API key: {demo['api_key']}")
        click.echo(f"    Try:     curl -s -X POST http://{host}:{port}/api/v1/orders \\")
        click.echo(f"               -H 'Authorization: Bearer {demo['api_key']}' \\")
        click.echo("               -H 'Content-Type: application/json' -d @examples/order.json")
        click.echo("")
    if workers is None:
        workers = 1 if settings.is_sqlite else 2
    run(settings, host=host, port=port, workers=workers, threads=threads)


@main.command()
@click.option("--concurrency", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--loglevel", default="INFO", show_default=True)
def worker(concurrency: int, loglevel: str) -> None:
    """Run a Celery worker for the gateway's jobs (needs BROKER_URL)."""
    from gateway.jobs.celery_app import make_celery

    settings = _settings()
    if not settings.broker_url:
        _fail("BROKER_URL is not set; without it the jobs run inside `gateway serve`")
    celery = make_celery(settings)
    celery.worker_main(["worker", f"--concurrency={concurrency}", f"--loglevel={loglevel}", "-Q", "gateway"])


@main.command()
@click.option("--loglevel", default="INFO", show_default=True)
def scheduler(loglevel: str) -> None:
    """Run Celery beat, which queues the gateway's periodic jobs (needs BROKER_URL)."""
    import tempfile

    from gateway.jobs.celery_app import make_celery

    settings = _settings()
    if not settings.broker_url:
        _fail("BROKER_URL is not set; without it the jobs run inside `gateway serve`")
    celery = make_celery(settings)
    schedule_file = str(Path(tempfile.gettempdir()) / "gateway-celerybeat-schedule")
    celery.start(["beat", f"--loglevel={loglevel}", f"--schedule={schedule_file}"])


if __name__ == "__main__":  # pragma: no cover
    main()
