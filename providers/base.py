"""The contract every payment provider adapter implements.

Adapters translate between the gateway's plain dataclasses and one provider's wire protocol.
They never touch the database, Flask or the order state: the services and ``callbacks/`` do.
Inputs and outputs keep the provider's ``raw`` payload for the audit trail.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

import requests

from gateway.settings import ProviderCredentials


class Outcome(StrEnum):
    """What a provider says about a payment, normalised."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PENDING = "pending"
    UNKNOWN = "unknown"


class Ack(StrEnum):
    """How the gateway answers a notification; each provider renders its own body (contract §6)."""

    OK = "ok"  # recorded (also a recorded failure)
    NOT_FOUND = "not_found"  # unknown reference
    ALREADY = "already"  # duplicate / already confirmed
    BAD_AMOUNT = "bad_amount"
    BAD_SIGNATURE = "bad_signature"
    ERROR = "error"  # our fault: the provider should retry


@dataclass(frozen=True)
class PaymentRequest:
    reference: str
    amount: int
    order_info: str
    return_url: str
    notify_url: str
    client_ip: str
    locale: str
    created_at: datetime
    expires_at: datetime
    bank_code: str | None = None
    method: str | None = None


@dataclass(frozen=True)
class PaymentRedirect:
    redirect_url: str | None
    qr_payload: str | None = None
    provider_txn_id: str | None = None
    provider_data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CallbackRequest:
    """An inbound HTTP message, framework-free. ``args`` are the decoded query parameters."""

    method: str
    args: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    remote_addr: str | None = None


@dataclass(frozen=True)
class Notification:
    """A verified statement from the provider about one payment attempt."""

    reference: str
    outcome: Outcome
    amount: int | None
    provider_txn_id: str | None
    result_code: str
    paid_at: datetime | None = None
    kind: str = "payment"
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def dedupe_key(self) -> str:
        return f"{self.reference}:{self.provider_txn_id or '-'}:{self.kind}"


@dataclass(frozen=True)
class AckResponse:
    status: int
    body: bytes
    content_type: str | None = "application/json"


@dataclass(frozen=True)
class QueryRequest:
    reference: str
    amount: int
    created_at: datetime
    order_info: str
    provider_txn_id: str | None = None
    provider_data: Mapping[str, Any] = field(default_factory=dict)


class PaymentProvider(ABC):
    """Base class of every adapter.

    Args:
        credentials: this provider's settings (contract §2); secrets may hold ``new,old``.
        base_url: the gateway's public base URL (for emulator defaults).
        session: the HTTP session used for server-to-server calls (injected for tests).
        timeout: seconds for each provider call.
    """

    code: ClassVar[str]
    display_name: ClassVar[str]
    methods: ClassVar[tuple[str, ...]]
    # How notifications arrive at /callbacks/<code>.
    callback_methods: ClassVar[tuple[str, ...]] = ("POST",)

    def __init__(
        self,
        credentials: ProviderCredentials,
        *,
        base_url: str,
        session: requests.Session | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.credentials = credentials
        self.base_url = base_url
        self.session = session or requests.Session()
        self.timeout = timeout

    @property
    def emulated(self) -> bool:
        return self.credentials.emulated

    @abstractmethod
    def build_payment_request(self, request: PaymentRequest) -> PaymentRedirect:
        """Prepare the redirect (or QR) that starts a payment. May call the provider."""

    @abstractmethod
    def verify_callback(self, request: CallbackRequest) -> Notification:
        """Verify a server-to-server notification on its raw values.

        Raises:
            SignatureVerificationError: missing or wrong signature (never trusted).
            MalformedNotification: signed but not understood.
        """

    @abstractmethod
    def verify_return(self, request: CallbackRequest) -> Notification:
        """Verify the browser redirect. Display only: the result never changes state."""

    @abstractmethod
    def acknowledge(self, ack: Ack) -> AckResponse:
        """The exact answer this provider expects for ``ack``."""

    @abstractmethod
    def query(self, request: QueryRequest) -> Notification:
        """Ask the provider for the current state of a payment.

        Timeouts, 5xx and unreadable answers give ``Outcome.UNKNOWN``, never ``FAILED``.
        """
