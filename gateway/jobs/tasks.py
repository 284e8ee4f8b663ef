"""The task bodies: plain functions of the app's services, tested without a broker."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete

from gateway.container import Services
from gateway.services.clients import end_expired_overlaps
from gateway.services.janitor import run_janitor, sweep_expired
from gateway.services.relay import deliver
from gateway.storage.db import transaction
from gateway.storage.models import IdempotencyRecord

log = logging.getLogger(__name__)


def relay_outbox(svc: Services) -> int:
    """Deliver due portal webhooks."""
    return deliver(
        svc.sessions, svc.webhook_http, now=svc.clock(), schedule=svc.settings.webhook_retry_schedule
    )


def janitor(svc: Services) -> int:
    """Re-query stuck payment attempts."""
    return run_janitor(
        svc.sessions,
        svc.providers,
        now=svc.clock(),
        schedule=svc.settings.janitor_schedule,
        base_url=svc.base_url,
    )


def expire_orders(svc: Services) -> int:
    """Expire open orders past their deadline (querying open attempts first)."""
    return sweep_expired(svc.sessions, svc.providers, now=svc.clock(), base_url=svc.base_url)


def purge_idempotency_keys(svc: Services) -> int:
    """Forget idempotency records past their retention (≥ 24 h, contract §4)."""
    with transaction(svc.sessions) as session:
        result = session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.expires_at < svc.clock()))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


def end_key_overlaps(svc: Services) -> int:
    """Close rotated API keys and webhook secrets whose overlap window has passed (issue 7.7)."""
    with transaction(svc.sessions) as session:
        return end_expired_overlaps(session, now=svc.clock())


def reconcile_nightly(svc: Services) -> int:
    """Import the reconciliation inbox; once a night, reconcile the previous business day (issue 6.5)."""
    from reconciliation.inbox import nightly

    return nightly(svc).handled


@dataclass(frozen=True)
class Job:
    name: str
    func: Callable[[Services], int]
    every: float  # seconds; 0 = every scheduler tick


JOBS: tuple[Job, ...] = (
    Job("relay_outbox", relay_outbox, 0),
    Job("janitor", janitor, 60),
    Job("expire_orders", expire_orders, 60),
    Job("purge_idempotency_keys", purge_idempotency_keys, 3600),
    Job("end_key_overlaps", end_key_overlaps, 300),
    Job("reconcile_nightly", reconcile_nightly, 300),
)
JOBS_BY_NAME = {job.name: job for job in JOBS}


def run_job(svc: Services, name: str) -> int:
    job = JOBS_BY_NAME[name]
    try:
        done = job.func(svc)
    except Exception:
        log.exception("job %s failed", name)
        raise
    if done:
        log.info("job %s handled %s item(s)", name, done)
    return done
