"""Emulators speaking each provider's real wire protocol, mounted outside production (contract §10)."""

from __future__ import annotations

from datetime import UTC, datetime

import flask


def emulator_now() -> datetime:
    """The instant an emulator stamps on a payment (pay date, response time...).

    Inside the gateway it follows the gateway's own clock (``GATEWAY_CLOCK`` in the app config), so a test
    that moves time moves the emulated provider too; anywhere else it is the wall clock.
    """
    if flask.has_app_context():
        clock = flask.current_app.config.get("GATEWAY_CLOCK")
        if clock is not None:
            now: datetime = clock()
            return now
    return datetime.now(UTC)
