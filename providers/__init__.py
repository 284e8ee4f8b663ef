"""Payment provider adapters. Add a provider with one module and one line in :data:`REGISTRY`."""

from __future__ import annotations

from providers.base import PaymentProvider
from providers.vnpay import VnpayProvider

REGISTRY: dict[str, type[PaymentProvider]] = {
    VnpayProvider.code: VnpayProvider,
}

__all__ = ["REGISTRY", "PaymentProvider"]
