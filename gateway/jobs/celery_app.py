"""Celery on Redis (``BROKER_URL``): ``gateway worker`` runs the tasks, ``gateway scheduler`` is beat.

The tasks are the same plain functions the in-process scheduler runs. Each worker process builds the
gateway app once, lazily, from the environment.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from flask import Flask

from gateway.jobs.tasks import JOBS, run_job
from gateway.settings import Settings, load_settings

_app: Flask | None = None


def _flask_app() -> Flask:
    global _app  # noqa: PLW0603 - one app per worker process, built on first use
    if _app is None:
        from gateway.app import create_app

        _app = create_app()
    return _app


def make_celery(settings: Settings) -> Celery:
    if not settings.broker_url:
        raise RuntimeError("BROKER_URL is not set: jobs run in-process inside `gateway serve`")
    celery = Celery("gateway", broker=settings.broker_url)
    celery.conf.update(
        task_acks_late=True,  # a worker killed mid-task leaves the message to be redelivered
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue="gateway",
        broker_connection_retry_on_startup=True,
        beat_schedule={
            job.name: {"task": f"gateway.{job.name}", "schedule": max(job.every, settings.jobs_tick_seconds)}
            for job in JOBS
        },
        timezone="UTC",
    )

    for job in JOBS:

        def _run(name: str = job.name) -> int:
            app = _flask_app()
            with app.app_context():
                return run_job(app.extensions["gateway"], name)

        celery.task(name=f"gateway.{job.name}")(_run)
    return celery


def celery_from_env() -> Any:
    return make_celery(load_settings())
