"""Payment provider adapters. Add a provider with one module and one line in :data:`REGISTRY`
(plus its emulator in ``providers/emulators/<code>.py``, found by convention)."""

from __future__ import annotations

from providers.base import PaymentProvider
from providers.momo import MomoProvider
from providers.rsabank import RsabankProvider
from providers.vietqr import VietqrProvider
from providers.vnpay import VnpayProvider
from providers.zalopay import ZalopayProvider

REGISTRY: dict[str, type[PaymentProvider]] = {
    VnpayProvider.code: VnpayProvider,
    MomoProvider.code: MomoProvider,
    ZalopayProvider.code: ZalopayProvider,
    VietqrProvider.code: VietqrProvider,
    RsabankProvider.code: RsabankProvider,
}

__all__ = ["REGISTRY", "PaymentProvider"]
