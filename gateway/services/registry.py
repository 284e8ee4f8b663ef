"""The enabled provider adapters, built once by the app factory from settings."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import requests

from gateway.domain.errors import UnknownProvider
from gateway.services.clock import Clock
from gateway.settings import ConfigError, Settings
from providers import REGISTRY
from providers.base import PaymentProvider


class ProviderRegistry:
    def __init__(self, providers: Mapping[str, PaymentProvider]) -> None:
        self._providers = dict(providers)

    def get(self, code: str) -> PaymentProvider:
        try:
            return self._providers[code]
        except KeyError:
            raise UnknownProvider(
                f"unknown or disabled provider {code!r}",
                errors={"provider": [f"must be one of: {', '.join(self._providers) or '(none)'}"]},
            ) from None

    def __iter__(self) -> Iterator[PaymentProvider]:
        return iter(self._providers.values())

    def __contains__(self, code: object) -> bool:
        return code in self._providers

    def codes(self) -> list[str]:
        return list(self._providers)


def build_registry(
    settings: Settings, *, session: requests.Session | None = None, clock: Clock | None = None
) -> tuple[ProviderRegistry, list[str]]:
    """Instantiate every enabled provider. Returns the registry and why others were left out."""
    wanted = settings.enabled_providers or tuple(REGISTRY)
    unknown = [code for code in wanted if code not in REGISTRY]
    if unknown:
        raise ConfigError(f"GATEWAY_PROVIDERS names unknown provider(s): {', '.join(unknown)}")
    built: dict[str, PaymentProvider] = {}
    skipped: list[str] = []
    for code in wanted:
        credentials = settings.providers.get(code)
        if credentials is None:
            skipped.append(f"{code}: no settings")
            continue
        if credentials.emulated and settings.is_production:
            # contract §2: in production a provider without real credentials is disabled.
            skipped.append(f"{code}: disabled, no credentials set in production")
            continue
        try:
            built[code] = REGISTRY[code](
                credentials, base_url=settings.base_url, session=session, clock=clock
            )
        except ValueError as exc:
            raise ConfigError(f"{code}: {exc}") from exc
    return ProviderRegistry(built), skipped
