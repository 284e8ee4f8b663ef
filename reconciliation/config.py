"""Reconciliation settings (``RECON_*`` environment variables) and the provider fee schedule.

Variables (default in brackets):

* ``RECON_SETTLEMENT_WINDOW_DAYS`` [2] — business days a paid attempt or a payout may wait for its
  counterpart (``pending``) before it is ``missing_in_statement``;
* ``RECON_DATE_WINDOW_DAYS`` [2] — ± business days of the "amount + date window" rungs;
* ``RECON_HOLIDAYS`` [built in] — holiday file (:mod:`reconciliation.calendar`) replacing the 2025–2027 list;
* ``RECON_FEE_SCHEDULE`` [none] — fee schedule file (below); without one no ``fee_variance`` is raised;
* ``RECON_INBOX`` [``<instance>/inbox``] — nightly inbox, ``<inbox>/<source>/`` with source
  ``statement`` or a provider code;
* ``RECON_MAPPINGS`` [none] — folder of column mappings: ``statement.json`` (bank CSV/XLSX),
  ``<provider>.json`` (settlement layouts);
* ``RECON_DIRECT_PROVIDERS`` [``vietqr``] — providers whose payments reach the bank statement one by
  one (not through a provider's settlement file);
* ``RECON_QUERY_LIMIT`` [200] — most provider status queries one run makes for ``status_conflict``;
* ``RECON_NIGHTLY_AFTER`` [``01:00``] — local time (Asia/Ho_Chi_Minh) after which the nightly job
  reconciles the previous business day;
* ``RECON_INBOX_SETTLE_SECONDS`` [60] — a dropped file is picked up once unchanged for this long.

Fee schedule (``RECON_FEE_SCHEDULE``), JSON, one entry per provider code; every key optional::

    {"vnpay": {"percent_bps": 110, "fixed": 0, "min": 1100, "max": null},
     "momo":  {"percent_bps": 150}}

Expected fee of a payment of ``gross`` VND, integer arithmetic only:
``fixed + (gross * percent_bps + 5000) // 10000`` — the percentage part rounded half up to whole VND —
then raised to ``min`` and lowered to ``max`` when they are set. A settlement line whose ``fee`` differs
from it (by even 1 VND: no tolerance) is a ``fee_variance``. Refund lines are not fee-checked.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any

from reconciliation.calendar import BusinessCalendar, load_calendar

__all__ = ["FeeRule", "FeeSchedule", "ReconConfig", "load_config", "load_fee_schedule"]


class ReconConfigError(ValueError):
    """A ``RECON_*`` setting or one of the files it names is malformed."""


@dataclass(frozen=True)
class FeeRule:
    percent_bps: int = 0
    fixed: int = 0
    min: int | None = None
    max: int | None = None

    def expected(self, gross: int) -> int:
        fee = self.fixed + (gross * self.percent_bps + 5000) // 10000
        if self.min is not None:
            fee = max(fee, self.min)
        if self.max is not None:
            fee = min(fee, self.max)
        return fee


@dataclass(frozen=True)
class FeeSchedule:
    rules: Mapping[str, FeeRule]
    source: str = ""

    def for_provider(self, provider: str) -> FeeRule | None:
        return self.rules.get(provider)

    @property
    def digest(self) -> str:
        text = json.dumps(
            {k: [v.percent_bps, v.fixed, v.min, v.max] for k, v in sorted(self.rules.items())}, sort_keys=True
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _int(value: Any, where: str, *, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ReconConfigError(f"{where} must be a whole number ≥ 0, got {value!r}")
    return value


def parse_fee_schedule(data: Any, *, source: str = "") -> FeeSchedule:
    if not isinstance(data, dict):
        raise ReconConfigError(f"fee schedule {source}: a JSON object of provider -> rule is expected")
    rules: dict[str, FeeRule] = {}
    for provider, spec in data.items():
        if not isinstance(spec, dict):
            raise ReconConfigError(f"fee schedule {source}: {provider} must be an object")
        unknown = set(spec) - {"percent_bps", "fixed", "min", "max"}
        if unknown:
            raise ReconConfigError(f"fee schedule {source}: {provider} has unknown keys {sorted(unknown)}")
        rules[str(provider).lower()] = FeeRule(
            percent_bps=_int(spec.get("percent_bps", 0), f"{provider}.percent_bps") or 0,
            fixed=_int(spec.get("fixed", 0), f"{provider}.fixed") or 0,
            min=_int(spec.get("min"), f"{provider}.min", allow_none=True),
            max=_int(spec.get("max"), f"{provider}.max", allow_none=True),
        )
    return FeeSchedule(rules, source)


def load_fee_schedule(path: str | Path) -> FeeSchedule:
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReconConfigError(f"fee schedule {p}: {exc}") from exc
    return parse_fee_schedule(data, source=str(p))


@dataclass(frozen=True)
class ReconConfig:
    settlement_window_days: int = 2
    date_window_days: int = 2
    calendar: BusinessCalendar = field(default_factory=lambda: load_calendar(None))
    fee_schedule: FeeSchedule | None = None
    inbox: Path = Path("instance") / "inbox"
    mappings: Path | None = None
    direct_providers: tuple[str, ...] = ("vietqr",)
    query_limit: int = 200
    nightly_after: time = time(1, 0)
    inbox_settle_seconds: int = 60

    def fingerprint(self) -> dict[str, Any]:
        """What of the configuration can change a run's result (stored with the run)."""
        return {
            "settlement_window_days": self.settlement_window_days,
            "date_window_days": self.date_window_days,
            "calendar": self.calendar.digest,
            "fee_schedule": self.fee_schedule.digest if self.fee_schedule else None,
            "direct_providers": list(self.direct_providers),
        }

    def statement_mapping(self) -> Path | None:
        if self.mappings is None:
            return None
        path = self.mappings / "statement.json"
        return path if path.exists() else None

    def settlement_layout(self, provider: str) -> Path | None:
        if self.mappings is None:
            return None
        path = self.mappings / f"{provider}.json"
        return path if path.exists() else None


def _env() -> dict[str, str]:
    from dotenv import dotenv_values

    merged = {k: v for k, v in dotenv_values(".env").items() if v is not None}
    merged.update(os.environ)
    return merged


def _whole(env: Mapping[str, str], name: str, default: int, *, high: int = 60) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ReconConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < 0 or value > high:
        raise ReconConfigError(f"{name} must be between 0 and {high}, got {value}")
    return value


def load_config(env: Mapping[str, str] | None = None, *, instance_path: str = "instance") -> ReconConfig:
    """Build the configuration from ``env`` (default: the environment plus ``.env``)."""
    env = _env() if env is None else env
    holidays = env.get("RECON_HOLIDAYS", "").strip() or None
    try:
        calendar = load_calendar(holidays)
    except (OSError, ValueError) as exc:
        raise ReconConfigError(f"RECON_HOLIDAYS: {exc}") from exc
    fees = env.get("RECON_FEE_SCHEDULE", "").strip()
    providers = tuple(
        p.strip().lower() for p in env.get("RECON_DIRECT_PROVIDERS", "vietqr").split(",") if p.strip()
    )
    after_raw = env.get("RECON_NIGHTLY_AFTER", "01:00").strip() or "01:00"
    try:
        after = time.fromisoformat(after_raw)
    except ValueError:
        raise ReconConfigError(f"RECON_NIGHTLY_AFTER must be HH:MM, got {after_raw!r}") from None
    mappings = env.get("RECON_MAPPINGS", "").strip()
    return ReconConfig(
        settlement_window_days=_whole(env, "RECON_SETTLEMENT_WINDOW_DAYS", 2),
        date_window_days=_whole(env, "RECON_DATE_WINDOW_DAYS", 2),
        calendar=calendar,
        fee_schedule=load_fee_schedule(fees) if fees else None,
        inbox=Path(env.get("RECON_INBOX", "").strip() or Path(instance_path) / "inbox"),
        mappings=Path(mappings) if mappings else None,
        direct_providers=providers,
        query_limit=_whole(env, "RECON_QUERY_LIMIT", 200, high=100_000),
        nightly_after=after,
        inbox_settle_seconds=_whole(env, "RECON_INBOX_SETTLE_SECONDS", 60, high=86_400),
    )
