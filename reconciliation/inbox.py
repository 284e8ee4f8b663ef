"""The nightly job (issue 6.5): import what was dropped into the inbox, reconcile the previous business day.

Layout of ``RECON_INBOX`` (default ``<instance>/inbox``)::

    inbox/statement/<file>        bank/treasury statements (camt.053, MT940, CSV/XLSX)
    inbox/<provider>/<file>       that provider's settlement files (vnpay, momo, zalopay…)
    inbox/processed/<source>/…    files imported (or found already imported) are moved here
    inbox/rejected/<source>/…     files refused, each with ``<file>.errors.txt`` listing every error

A file is picked up once it has not changed for ``RECON_INBOX_SETTLE_SECONDS`` (default 60) and its
name does not start with ``.`` or end with ``.part``/``.tmp`` (upload, then rename). Each file is
imported in its own transaction: one bad file does not hold back the others.

Then, once the local time (Asia/Ho_Chi_Minh) is past ``RECON_NIGHTLY_AFTER``, the previous business
day is reconciled — when it has no run yet, or when this pass imported something new (late files
make a fresh run of the same day; the newest run of a day is the one that counts). The run emits
``reconciliation.completed`` to every enabled portal client with the finance scope
(:func:`reconciliation.runs.reconcile`).

Several scheduler processes may tick at once: on PostgreSQL a session advisory lock lets one pass
run at a time (the others skip the tick); SQLite has a single writer anyway.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, text

from gateway.storage.db import transaction
from gateway.storage.models import ReconFile, ReconRun
from providers import REGISTRY
from reconciliation.config import ReconConfig, load_config
from reconciliation.records import FileRejected
from reconciliation.runs import RunOutcome, reconcile
from reconciliation.store import ImportOutcome, import_settlement, import_statement
from reconciliation.timeutil import VN_TZ

__all__ = ["InboxResult", "nightly", "scan_inbox"]

log = logging.getLogger(__name__)

RESERVED = frozenset({"processed", "rejected"})
_LOCK_KEY = "gateway:reconciliation-nightly"


@dataclass
class InboxResult:
    imported: list[ImportOutcome] = field(default_factory=list)
    rejected: list[Path] = field(default_factory=list)
    run: RunOutcome | None = None

    @property
    def handled(self) -> int:
        return len(self.imported) + len(self.rejected) + (1 if self.run else 0)


def _ready(path: Path, settle_seconds: float) -> bool:
    name = path.name
    if name.startswith(".") or name.endswith((".part", ".tmp", ".errors.txt")):
        return False
    return time.time() - path.stat().st_mtime >= settle_seconds


def _move(path: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    if target.exists():
        target = (
            folder / f"{path.stem}.{time.strftime('%Y%m%dT%H%M%S')}.{time.time_ns() % 10**6}{path.suffix}"
        )
    shutil.move(str(path), target)
    return target


def _reject(path: Path, inbox: Path, source: str, lines: list[str]) -> Path:
    target = _move(path, inbox / "rejected" / source)
    target.with_name(target.name + ".errors.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


def scan_inbox(
    engine: Engine, config: ReconConfig, *, now: datetime, settle_seconds: float | None = None
) -> InboxResult:
    """Import every ready file of the inbox, moving each to ``processed/`` or ``rejected/``."""
    result = InboxResult()
    inbox = config.inbox
    settle = config.inbox_settle_seconds if settle_seconds is None else settle_seconds
    if not inbox.is_dir():
        return result
    for folder in sorted(p for p in inbox.iterdir() if p.is_dir() and p.name not in RESERVED):
        source = folder.name.lower()
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            if not _ready(path, settle):
                continue
            if source != "statement" and source not in REGISTRY:
                _reject(
                    path,
                    inbox,
                    source,
                    [
                        f"unknown source folder {folder.name!r}: 'statement' or one of "
                        f"{', '.join(sorted(REGISTRY))}"
                    ],
                )
                result.rejected.append(path)
                continue
            try:
                with engine.begin() as conn:
                    if source == "statement":
                        outcome = import_statement(
                            conn, path, mapping=config.statement_mapping(), actor="nightly", now=now
                        )
                    else:
                        outcome = import_settlement(
                            conn,
                            path,
                            source,
                            mapping=config.settlement_layout(source),
                            actor="nightly",
                            now=now,
                        )
            except FileRejected as exc:
                lines = [f"{path.name}: rejected, {exc.error_count} error(s); nothing was imported"]
                lines += [str(e) for e in exc.errors]
                _reject(path, inbox, source, lines)
                result.rejected.append(path)
                log.warning("reconciliation inbox: %s rejected (%s errors)", path, exc.error_count)
                continue
            except (ValueError, OSError) as exc:
                _reject(path, inbox, source, [f"{path.name}: {exc}"])
                result.rejected.append(path)
                log.warning("reconciliation inbox: %s rejected: %s", path, exc)
                continue
            _move(path, inbox / "processed" / source)
            if not outcome.already_imported:
                result.imported.append(outcome)
            log.info(
                "reconciliation inbox: %s %s",
                path,
                "already imported" if outcome.already_imported else "imported",
            )
    return result


@contextmanager
def _single_pass(engine: Engine) -> Iterator[bool]:
    if engine.dialect.name != "postgresql":
        yield True
        return
    with engine.connect() as conn:
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(hashtext(:k))"), {"k": _LOCK_KEY}).scalar())
        conn.commit()
        try:
            yield got
        finally:
            if got:
                conn.execute(text("SELECT pg_advisory_unlock(hashtext(:k))"), {"k": _LOCK_KEY})
                conn.commit()


def _any_file(svc: Any) -> bool:
    with transaction(svc.sessions) as session:
        return session.scalars(select(ReconFile.id).limit(1)).first() is not None


def _has_run(svc: Any, day: date) -> bool:
    with transaction(svc.sessions) as session:
        return (
            session.scalars(
                select(ReconRun.id)
                .where(ReconRun.business_date == day, ReconRun.status == "completed")
                .limit(1)
            ).first()
            is not None
        )


def nightly(
    svc: Any, *, config: ReconConfig | None = None, settle_seconds: float | None = None
) -> InboxResult:
    """One tick of the nightly job (``gateway.jobs.tasks.reconcile_nightly``)."""
    config = config or load_config(instance_path=svc.settings.instance_path)
    now = svc.clock()
    with _single_pass(svc.engine) as mine:
        if not mine:
            return InboxResult()
        result = scan_inbox(svc.engine, config, now=now, settle_seconds=settle_seconds)
        local = now.astimezone(VN_TZ)
        if local.time() < config.nightly_after:
            return result
        target = config.calendar.previous_business_day(local.date())
        if not result.imported and not _any_file(svc):
            return result  # nothing was ever imported: nothing to reconcile against
        if result.imported or not _has_run(svc, target):
            result.run = reconcile(
                svc.sessions,
                business_date=target,
                config=config,
                registry=svc.providers,
                clock=svc.clock,
                base_url=svc.base_url,
                actor="nightly",
                trigger="nightly",
            )
            log.info(
                "reconciliation of %s: run %s, %s items, totals %s",
                target,
                result.run.run_id,
                result.run.item_count,
                {k: v["count"] for k, v in result.run.totals.items() if v["count"]},
            )
        return result
