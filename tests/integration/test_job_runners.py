"""The same task functions run by a real Celery worker on the machine's Redis, and by the in-process
scheduler of the embedded default (issue 5.1)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from gateway.jobs.celery_app import make_celery
from gateway.jobs.scheduler import InProcessScheduler
from gateway.settings import Settings
from tests.helpers import paid_order

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _wait_for(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_in_process_scheduler_delivers_due_events(app, client, hooked_portal, receiver):
    paid_order(client, hooked_portal)
    scheduler = InProcessScheduler(app, tick=0.05)
    scheduler.start()
    try:
        assert _wait_for(lambda: len(receiver.received) == 1, timeout=10)
    finally:
        scheduler.stop()
    assert receiver.bodies()[0]["type"] == "order.paid"


def test_a_real_celery_worker_runs_the_relay(app, client, hooked_portal, receiver, database_url, tmp_path):
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError:  # pragma: no cover - the machine starts Redis before every session and CI
        pytest.fail(f"Redis is not reachable at {REDIS_URL}")
    queue_db = REDIS_URL
    paid_order(client, hooked_portal)

    gateway = shutil.which("gateway", path=str(Path(sys.executable).parent))
    assert gateway
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "BROKER_URL": queue_db,
        "GATEWAY_BASE_URL": "http://gateway.test",
        "GATEWAY_INSTANCE_PATH": str(tmp_path / "instance"),
        "SECRET_KEY": "celery-test",
        "GATEWAY_ENV": "test",
    }
    redis.Redis.from_url(queue_db).flushdb()  # no task left over from an earlier run
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(  # noqa: S603 - our own console script
        [gateway, "worker", "--concurrency", "1", "--loglevel", "INFO"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        celery = make_celery(Settings(database_url=database_url, broker_url=queue_db))
        celery.send_task("gateway.relay_outbox", queue="gateway")
        delivered = _wait_for(lambda: len(receiver.received) >= 1, timeout=45)
        assert delivered, (tmp_path / "worker.log").read_text()[-3000:]
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()
    assert receiver.bodies()[0]["type"] == "order.paid"
