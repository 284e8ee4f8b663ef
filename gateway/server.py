"""Serve the app with gunicorn from code (``gateway serve``)."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

from gateway.settings import Settings


class _Server(BaseApplication):
    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self._settings = settings
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        # Runs in each worker process (no preload), so each gets its own engine and, without a broker,
        # its own jobs thread (the tasks are safe to run side by side: issue 5.1).
        from gateway.app import create_app
        from gateway.jobs.scheduler import InProcessScheduler

        app = create_app(self._settings)
        if not self._settings.broker_url:
            InProcessScheduler(app, tick=self._settings.jobs_tick_seconds).start()
        return app


def run(settings: Settings, *, host: str, port: int, workers: int, threads: int) -> None:
    _Server(
        settings,
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "threads": threads,
            "worker_class": "gthread",
            "accesslog": "-",
            "timeout": 60,
            "graceful_timeout": 20,
        },
    ).run()
