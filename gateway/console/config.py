"""The console's own settings, read from the environment once by :func:`gateway.console.init_console`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from gateway.settings import ConfigError

DEFAULT_REFUND_APPROVAL_THRESHOLD = 5_000_000
DEFAULT_IDLE_MINUTES = 30


@dataclass(frozen=True)
class ConsoleConfig:
    """Args:
    refund_approval_threshold: a console refund of at least this many VND needs a second finance
        user's approval (issue 7.4).
    idle_minutes: a console session unused for longer than this is signed out (issue 7.1).
    max_failed_logins: failed sign-ins in a row that lock an account.
    lockout: how long a locked account stays locked.
    """

    refund_approval_threshold: int = DEFAULT_REFUND_APPROVAL_THRESHOLD
    idle_minutes: int = DEFAULT_IDLE_MINUTES
    max_failed_logins: int = 5
    lockout: timedelta = timedelta(minutes=15)

    @property
    def idle_timeout(self) -> timedelta:
        return timedelta(minutes=self.idle_minutes)


def _positive_int(env: Mapping[str, str], name: str, default: int, *, maximum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw.replace("_", ""))
    except ValueError as exc:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from exc
    if not 1 <= value <= maximum:
        raise ConfigError(f"{name} must be between 1 and {maximum}, got {value}")
    return value


def load_console_config(env: Mapping[str, str] | None = None) -> ConsoleConfig:
    """Read ``REFUND_APPROVAL_THRESHOLD`` (VND) and ``CONSOLE_IDLE_MINUTES``; a bad value is a ConfigError."""
    env = os.environ if env is None else env
    return ConsoleConfig(
        refund_approval_threshold=_positive_int(
            env, "REFUND_APPROVAL_THRESHOLD", DEFAULT_REFUND_APPROVAL_THRESHOLD, maximum=10_000_000_000
        ),
        idle_minutes=_positive_int(env, "CONSOLE_IDLE_MINUTES", DEFAULT_IDLE_MINUTES, maximum=24 * 60),
    )
