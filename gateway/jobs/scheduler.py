"""The embedded default's scheduler: a daemon thread inside ``gateway serve`` (no broker, issue 5.1).

Every task is safe to run concurrently with itself (rows are claimed with ``SKIP LOCKED`` and changed under
the order's row lock), so several server processes each running this thread is harmless.
"""

from __future__ import annotations

import logging
import threading
import time

from flask import Flask

from gateway.container import Services
from gateway.jobs.tasks import JOBS, run_job

log = logging.getLogger(__name__)


class InProcessScheduler:
    def __init__(self, app: Flask, *, tick: float) -> None:
        self.app = app
        self.tick = tick
        self._stop = threading.Event()
        self._last: dict[str, float] = {}
        self._thread = threading.Thread(target=self._loop, name="gateway-jobs", daemon=True)

    def start(self) -> None:
        log.info("in-process jobs every %s s: %s", self.tick, ", ".join(j.name for j in JOBS))
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def run_due(self) -> None:
        """One tick: run each job whose interval has passed (exposed for tests)."""
        svc: Services = self.app.extensions["gateway"]
        now = time.monotonic()
        for job in JOBS:
            if now - self._last.get(job.name, -1e18) < job.every:
                continue
            self._last[job.name] = now
            try:
                with self.app.app_context():
                    run_job(svc, job.name)
            except Exception:  # noqa: S112 - logged by run_job; the scheduler must survive a bad tick
                continue

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_due()
            self._stop.wait(self.tick)
