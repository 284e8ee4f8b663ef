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


@main.group()
def users() -> None:
    """Staff users of the console (contract §11)."""


@users.command("create")
@click.argument("email")
@click.option(
    "--role", required=True, type=click.Choice(["finance", "admin", "auditor"]), help="What the user may do."
)
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
def users_create(email: str, role: str, password_stdin: bool) -> None:
    """Create a staff user of the console; prints its id as JSON. Admins set up a second factor at sign-in."""
    from gateway.domain.errors import Conflict, ValidationProblem
    from gateway.services.clock import utc_now
    from gateway.services.staff import create_user
    from gateway.storage.db import make_engine, make_session_factory, transaction
    from gateway.storage.migrate import upgrade

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    settings = _settings()
    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
        with transaction(make_session_factory(engine)) as session:
            user = create_user(session, email, role=role, password=password, actor="cli", now=utc_now())
            created = {"id": user.id, "email": user.email, "role": user.role}
    except (ValidationProblem, Conflict) as exc:
        details = "; ".join(f"{field}: {', '.join(msgs)}" for field, msgs in exc.errors.items())
        _fail(f"{exc.detail}" + (f" ({details})" if details else ""))
    finally:
        engine.dispose()
    click.echo(json.dumps(created))


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


# --- reconciliation (contract §3, §9) ----------------------------------------------------------------


def _fail_rejected(path: str, exc: Any, *, limit: int = 100) -> NoReturn:
    """Exit 2 listing the row-level errors of a rejected file (nothing was written)."""
    lines = [f"error: {path}: file rejected, {exc.error_count} error(s); nothing was written"]
    lines += [f"  {error}" for error in exc.errors[:limit]]
    if exc.error_count > limit:
        lines.append(f"  ... and {exc.error_count - limit} more")
    click.echo("\n".join(lines), err=True)
    sys.exit(2)


def _recon_setup() -> tuple[Settings, Any, Any]:
    from gateway.storage.db import make_engine
    from gateway.storage.migrate import upgrade
    from reconciliation.config import ReconConfigError, load_config

    settings = _settings()
    try:
        config = load_config(instance_path=settings.instance_path)
    except ReconConfigError as exc:
        _fail(str(exc))
    engine = make_engine(settings.database_url)
    upgrade(engine)
    return settings, config, engine


@main.command("import-settlement")
@click.option("--provider", required=True, help="Provider code (vnpay, momo, zalopay...).")
@click.argument("file", type=click.Path(dir_okay=False))
def import_settlement_command(provider: str, file: str) -> None:
    """Import a provider settlement file (CSV/XLSX). A file already imported is recognised and skipped."""
    from gateway.services.clock import utc_now
    from providers import REGISTRY
    from reconciliation.records import FileRejected
    from reconciliation.store import import_settlement

    code = provider.strip().lower()
    if code not in REGISTRY:
        _fail(f"unknown provider {provider!r}; one of: {', '.join(sorted(REGISTRY))}")
    if not Path(file).is_file():
        _fail(f"{file}: no such file")
    _, config, engine = _recon_setup()
    try:
        with engine.begin() as conn:
            outcome = import_settlement(
                conn, file, code, mapping=config.settlement_layout(code), actor="cli", now=utc_now()
            )
    except FileRejected as exc:
        _fail_rejected(file, exc)
    except (ValueError, OSError) as exc:
        _fail(f"{file}: {exc}")
    finally:
        engine.dispose()
    if outcome.already_imported:
        click.echo(
            f"{file}: already imported (file {outcome.file_id}, sha256 {outcome.sha256}); nothing to do"
        )
        return
    click.echo(
        f"{file}: imported {outcome.line_count} line(s) for {code} (file {outcome.file_id}, "
        f"sha256 {outcome.sha256}); payments {outcome.total_credit} VND, refunds {outcome.total_debit} VND"
    )


def _print_summary(outcome: Any, items: Any, *, limit: int = 30) -> None:
    from reconciliation.runs import CATEGORIES

    head = f"reconciliation of {outcome.business_date} (window from {outcome.window_from})"
    head += " — DRY RUN, nothing written" if outcome.dry_run else f" — run {outcome.run_id}"
    click.echo(head)
    if outcome.statement is not None:
        st = outcome.statement
        state = "already imported" if st.already_imported else f"imported {st.line_count} line(s)"
        click.echo(f"statement: {state} ({st.source}, sha256 {st.sha256[:16]}…)")
    if outcome.queried:
        click.echo(f"provider queries: {outcome.queried}")
    for category in CATEGORIES:
        total = outcome.totals[category]
        click.echo(f"  {category:<24} {total['count']:>9}  {total['amount']:>18,} VND")
    shown = 0
    for item in items:
        if item["category"] in ("matched", "pending"):
            continue
        if shown == 0:
            click.echo("exceptions:")
        if shown >= limit:
            click.echo("  … (see --json or the console for the rest)")
            break
        expected = f" (ours {item['expected_amount']:,})" if item["expected_amount"] is not None else ""
        refs = ", ".join(f"{k}={v}" for k, v in item["references"].items())
        click.echo(
            f"  {item['category']:<24} {item['amount']:>14,} VND{expected}  {item['business_date']}  "
            f"{item['reason']}  [{refs}]"
        )
        shown += 1


@main.command()
@click.option(
    "--date", "business_date", required=True, help="Business date to reconcile, YYYY-MM-DD (GMT+7)."
)
@click.option("--statement", required=True, type=click.Path(dir_okay=False), help="Bank/treasury statement.")
@click.option(
    "--format",
    "statement_format",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "camt053", "mt940", "csv", "xlsx"]),
)
@click.option("--dry-run", is_flag=True, help="Report what a run would find; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print {run_id, business_date, totals, items}.")
def reconcile(
    business_date: str, statement: str, statement_format: str, dry_run: bool, as_json: bool
) -> None:
    """Reconcile a business date: statement, provider settlement files and paid attempts (contract §9).

    Exit code 0: nothing but matched and pending; 1: discrepancies found; 2: bad input (nothing written).
    """
    from datetime import date

    from gateway.services.clock import utc_now
    from gateway.services.registry import build_registry
    from gateway.storage.db import make_session_factory
    from reconciliation.records import FileRejected
    from reconciliation.runs import reconcile as run_reconciliation

    try:
        day = date.fromisoformat(business_date)
    except ValueError:
        _fail(f"--date must be YYYY-MM-DD, got {business_date!r}")
    if not Path(statement).is_file():
        _fail(f"{statement}: no such file")
    settings, config, engine = _recon_setup()
    try:
        registry, _skipped = build_registry(settings)
    except Exception as exc:  # noqa: BLE001 - queries are optional; report and go on without them
        click.echo(f"warning: providers unavailable, status conflicts will not be queried: {exc}", err=True)
        registry = None

    def sink(outcome: Any, items: Any) -> None:
        if as_json:
            out = sys.stdout
            out.write(json.dumps(outcome.header(), ensure_ascii=False)[:-1] + ', "items": [')
            for n, item in enumerate(items):
                out.write(("," if n else "") + "\n" + json.dumps(item, ensure_ascii=False))
            out.write("\n]}\n")
            out.flush()
        else:
            _print_summary(outcome, items)

    try:
        outcome = run_reconciliation(
            make_session_factory(engine),
            business_date=day,
            config=config,
            statement=statement,
            statement_format=statement_format,
            dry_run=dry_run,
            registry=registry,
            clock=utc_now,
            base_url=settings.base_url,
            actor="cli",
            trigger="cli",
            sink=sink,
        )
    except FileRejected as exc:
        _fail_rejected(statement, exc)
    except (ValueError, OSError) as exc:
        _fail(f"{statement}: {exc}")
    finally:
        engine.dispose()
    sys.exit(1 if outcome.discrepancies else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
