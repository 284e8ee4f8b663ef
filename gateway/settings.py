"""Typed settings, read once from the environment (contract §2) and validated at start-up.

A missing or malformed value is a :class:`ConfigError` raised by :func:`load_settings`, never a
silent default at request time.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULT_DATABASE_URL = "sqlite:///instance/gateway.db"
DEFAULT_JANITOR_SCHEDULE = (300, 900, 3600, 21600, 86400)
# Exponential steps (1 min doubling, capped at 6 h) that add up to just over 24 h.
DEFAULT_API_RATE_LIMIT = "600 per minute"  # contract §2
DEFAULT_WEBHOOK_RETRY_SCHEDULE = (60, 120, 300, 600, 1800, 3600, 7200, 14400, 21600, 21600, 21600)


class ConfigError(Exception):
    """The environment does not describe a runnable gateway."""


@dataclass(frozen=True)
class ProviderCredentials:
    """One provider's settings, exactly as the environment gave them (secrets may be ``new,old``)."""

    code: str
    values: Mapping[str, str]
    emulated: bool
    # Where an emulated provider may keep generated demo keys (the RSA bank's key pairs).
    instance_path: str = "instance"

    def get(self, name: str) -> str:
        return self.values.get(name, "")


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    broker_url: str | None = None
    base_url: str = "http://127.0.0.1:8000"
    secret_key: str = ""
    environment: str = "development"
    enabled_providers: tuple[str, ...] | None = None
    providers: Mapping[str, ProviderCredentials] = field(default_factory=dict)
    webhook_retry_schedule: tuple[int, ...] = DEFAULT_WEBHOOK_RETRY_SCHEDULE
    janitor_schedule: tuple[int, ...] = DEFAULT_JANITOR_SCHEDULE
    api_rate_limit: str = DEFAULT_API_RATE_LIMIT
    jobs_tick_seconds: int = 5
    instance_path: str = "instance"
    max_body_bytes: int = 64 * 1024
    testing: bool = False

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)


# contract §2: variable names per provider, and which of them hold (possibly rotated) secrets.
PROVIDER_VARIABLES: Mapping[str, tuple[str, ...]] = {
    "vnpay": ("VNPAY_TMN_CODE", "VNPAY_HASH_SECRET", "VNPAY_PAY_URL", "VNPAY_API_URL"),
    "momo": ("MOMO_PARTNER_CODE", "MOMO_ACCESS_KEY", "MOMO_SECRET_KEY", "MOMO_ENDPOINT"),
    "zalopay": ("ZALOPAY_APP_ID", "ZALOPAY_KEY1", "ZALOPAY_KEY2", "ZALOPAY_ENDPOINT"),
    "vietqr": ("VIETQR_BANK_BIN", "VIETQR_ACCOUNT_NO", "VIETQR_ACCOUNT_NAME"),
    # The collecting bank / national platform that signs with RSA (issue 4.4). Not in contract §2's
    # table: the keys are PEM file paths (several public keys, comma separated, during a rotation).
    "rsabank": ("RSABANK_ENDPOINT", "RSABANK_PUBLIC_KEYS", "RSABANK_PRIVATE_KEY"),
}

# Optional per-provider variables that do not decide whether a provider is configured.
OPTIONAL_PROVIDER_VARIABLES: Mapping[str, tuple[str, ...]] = {
    "vietqr": ("VIETQR_BANK_NAME", "VIETQR_BANK_PUBLIC_KEYS"),
    "rsabank": ("RSABANK_SIGNATURE_SCHEME", "RSABANK_FIELD_MAP", "RSABANK_NAME"),
}


def _int_list(name: str, raw: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part.strip()) for part in raw.split(",") if part.strip())
    except ValueError as exc:
        raise ConfigError(f"{name} must be a comma list of whole seconds, got {raw!r}") from exc
    if not values or any(v <= 0 for v in values):
        raise ConfigError(f"{name} must list at least one positive number of seconds, got {raw!r}")
    return values


def _rate_limit(raw: str) -> str:
    """``API_RATE_LIMIT`` in flask-limiter's syntax (contract §2): ``600 per minute``, ``10/second``,
    or several at once (``100 per minute; 2000 per hour``). Checked at start-up."""
    from limits import parse_many

    try:
        limits = parse_many(raw)
    except ValueError as exc:
        raise ConfigError(f"API_RATE_LIMIT must read like '600 per minute', got {raw!r}") from exc
    if any(limit.amount <= 0 for limit in limits):
        raise ConfigError(f"API_RATE_LIMIT must allow at least one request, got {raw!r}")
    return raw


def _secret_key(instance: Path, env: Mapping[str, str]) -> str:
    if env.get("SECRET_KEY"):
        return env["SECRET_KEY"]
    # contract §2: generated into instance/ on first run, so sessions survive restarts.
    path = instance / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    path.write_text(key)
    path.chmod(0o600)
    return key


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from ``env`` (default: ``os.environ`` plus an optional ``.env`` file)."""
    if env is None:
        from dotenv import dotenv_values

        merged = {k: v for k, v in dotenv_values(".env").items() if v is not None}
        merged.update(os.environ)
        env = merged

    environment = env.get("GATEWAY_ENV", "development").strip() or "development"
    if environment not in {"development", "production", "test"}:
        raise ConfigError(f"GATEWAY_ENV must be development, production or test, got {environment!r}")

    base_url = env.get("GATEWAY_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
    parts = urlsplit(base_url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ConfigError(f"GATEWAY_BASE_URL must be an absolute http(s) URL, got {base_url!r}")

    instance = Path(env.get("GATEWAY_INSTANCE_PATH", "instance"))
    providers: dict[str, ProviderCredentials] = {}
    for code, names in PROVIDER_VARIABLES.items():
        values = {name: env.get(name, "").strip() for name in names}
        configured = [n for n in names if values[n]]
        if configured and len(configured) != len(names):
            missing = ", ".join(n for n in names if not values[n])
            raise ConfigError(f"{code}: partially configured, missing {missing}")
        for name in OPTIONAL_PROVIDER_VARIABLES.get(code, ()):
            values[name] = env.get(name, "").strip()
        providers[code] = ProviderCredentials(
            code=code, values=values, emulated=not configured, instance_path=str(instance)
        )

    enabled_raw = env.get("GATEWAY_PROVIDERS", "").strip()
    enabled = tuple(p.strip() for p in enabled_raw.split(",") if p.strip()) if enabled_raw else None

    try:
        tick = int(env.get("JOBS_TICK_SECONDS", "5"))
    except ValueError as exc:
        raise ConfigError("JOBS_TICK_SECONDS must be a whole number of seconds") from exc

    return Settings(
        database_url=env.get("DATABASE_URL", DEFAULT_DATABASE_URL).strip() or DEFAULT_DATABASE_URL,
        broker_url=env.get("BROKER_URL") or None,
        base_url=base_url,
        secret_key=_secret_key(instance, env),
        environment=environment,
        enabled_providers=enabled,
        providers=providers,
        webhook_retry_schedule=_int_list("WEBHOOK_RETRY_SCHEDULE", env.get("WEBHOOK_RETRY_SCHEDULE", ""))
        if env.get("WEBHOOK_RETRY_SCHEDULE")
        else DEFAULT_WEBHOOK_RETRY_SCHEDULE,
        janitor_schedule=_int_list("JANITOR_SCHEDULE", env.get("JANITOR_SCHEDULE", ""))
        if env.get("JANITOR_SCHEDULE")
        else DEFAULT_JANITOR_SCHEDULE,
        api_rate_limit=_rate_limit(env.get("API_RATE_LIMIT", "").strip() or DEFAULT_API_RATE_LIMIT),
        jobs_tick_seconds=tick,
        instance_path=str(instance),
    )
