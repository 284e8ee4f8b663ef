"""The contract every payment provider adapter implements.

Adapters translate between the gateway's plain dataclasses and one provider's wire protocol.
They never touch the database, Flask or the order state: the services and ``callbacks/`` do.
Inputs and outputs keep the provider's ``raw`` payload for the audit trail.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

import requests

from gateway.settings import ProviderCredentials


def _utc_now() -> datetime:
    return datetime.now(UTC)


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


@dataclass(frozen=True)
class RefundRequest:
    """One refund to send to the provider (contract §4). ``reference`` is new and unique per refund."""

    reference: str
    payment_reference: str
    payment_txn_id: str | None
    amount: int
    payment_amount: int
    already_refunded: int
    reason: str
    actor: str
    created_at: datetime
    payment_created_at: datetime
    payment_provider_data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RefundResult:
    """The provider's answer to a refund (or a refund status query).

    ``PENDING`` means accepted but not final (poll again); ``UNKNOWN`` means no usable answer (timeout,
    5xx, garbage): the refund may or may not have happened and must not be retried blindly.
    """

    outcome: Outcome
    result_code: str
    provider_reference: str | None = None
    message: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict)


class PaymentProvider(ABC):
    """Base class of every adapter.

    Args:
        credentials: this provider's settings (contract §2); secrets may hold ``new,old``.
        base_url: the gateway's public base URL (for emulator defaults).
        session: the HTTP session used for server-to-server calls (injected for tests).
        timeout: seconds for each provider call.
        clock: returns the current aware UTC instant.
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
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.credentials = credentials
        self.base_url = base_url
        self.session = session or requests.Session()
        self.timeout = timeout
        # The gateway's clock: provider-side time windows (ZaloPay's 48 h query window, request
        # timestamps) follow it, so tests that move time move the adapters too.
        self.clock: Callable[[], datetime] = clock or _utc_now

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

    def claimed_reference(self, request: CallbackRequest) -> str | None:
        """The attempt reference an *unverified* message claims to be about, or None.

        Never trusted: the gateway only uses it to ask the provider itself (a query) about that attempt,
        the way Hyperswitch answers an unverifiable webhook with a status sync (orchestrators.md §2).
        """
        return None

    @abstractmethod
    def acknowledge(self, ack: Ack) -> AckResponse:
        """The exact answer this provider expects for ``ack``."""

    @abstractmethod
    def query(self, request: QueryRequest) -> Notification:
        """Ask the provider for the current state of a payment.

        Timeouts, 5xx and unreadable answers give ``Outcome.UNKNOWN``, never ``FAILED``.
        """

    # Whether :meth:`query` can tell anything (a plain bank transfer cannot): the janitor and the expiry
    # sweep only ask providers that can answer.
    supports_query: ClassVar[bool] = True

    # Refunds. A provider without a refund API (a bank transfer) keeps ``manual_refunds = True``:
    # the gateway records the refund as pending until staff record the bank transfer.
    manual_refunds: ClassVar[bool] = False

    def refund(self, request: RefundRequest) -> RefundResult:
        """Send a refund. Never raises for provider trouble: answers ``UNKNOWN`` instead."""
        raise NotImplementedError(f"{self.code} has no refund API")

    def query_refund(self, request: RefundRequest) -> RefundResult:
        """Poll a refund that was answered ``PENDING``. Providers whose refunds are final answer as is."""
        raise NotImplementedError(f"{self.code} has no refund status API")


class NotificationForge(ABC):
    """Builds this provider's notifications exactly as the provider would send them.

    Used by the provider's emulator and by the shared contract suite (tests/contract/), so that every
    provider is held to the same checks: a correct signature verifies, each tampered signed field, a wrong
    key and a missing signature are rejected, every documented result code maps to an outcome.
    """

    #: the provider's documented result codes -> the outcome the adapter must report
    result_codes: ClassVar[Mapping[str, Outcome]]
    #: the code meaning "paid"
    success_code: ClassVar[str]
    #: names of the signed fields that the contract suite tampers with one by one
    signed_fields: ClassVar[tuple[str, ...]]

    def __init__(self, provider: PaymentProvider, secret: str) -> None:
        self.provider = provider
        self.secret = secret

    @abstractmethod
    def notification(
        self,
        *,
        reference: str,
        amount: int,
        result_code: str,
        provider_txn_id: str,
        secret: str | None = None,
    ) -> CallbackRequest:
        """A notification for one attempt, signed with ``secret`` (default: the provider's own)."""

    @abstractmethod
    def tamper(self, request: CallbackRequest, field_name: str) -> CallbackRequest:
        """The same notification with one signed field changed and the signature left as it was."""

    @abstractmethod
    def strip_signature(self, request: CallbackRequest) -> CallbackRequest:
        """The same notification without its signature."""
