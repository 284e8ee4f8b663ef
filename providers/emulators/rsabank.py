"""An emulated RSA-signing bank speaking docs/rsabank.md (providers.md §5, contract §10).

It verifies OUR signature on every API call (with the public half of the gateway's key), answers with JSON
signed by the bank's key, shows a payment page with three outcomes, sends the signed notification to the
``notify_url`` of the create request (else ``ipn_url``) and redirects the browser back with
``reference``, ``status`` and ``signature``. An in-memory ledger answers payment queries and refunds
(partial refunds allowed, their sum never above the paid amount). Registered at ``/_emulator/rsabank``.

The bank's private key is the emulated provider's (``RsabankProvider.emulator_bank_private_pem``, generated
under ``<instance>/emulator/rsabank/``) unless ``bank_private_pem`` is given.

Fault switches in ``blueprint.faults`` (``app.blueprints["emulator_rsabank"].faults``), on the API endpoints:
``"slow"`` seconds to sleep, ``"status"`` an HTTP status to answer instead (e.g. 503), ``"garbage"`` (truthy)
to answer ``<html>oops`` with 200, ``"bad_signature"`` (truthy) to sign answers wrongly,
``"refund_pending"`` (truthy) to accept refunds as ``pending`` (final at the next refund query); on the
payment page: ``"drop"`` (truthy) to take the payment but never send the notification.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time  # noqa: F401 - tests patch <emulator>.time.sleep, which pages.apply_faults calls
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Final, TypeGuard
from urllib.parse import urlencode, urlsplit

import flask
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from flask.typing import ResponseReturnValue

from gateway.domain.errors import SignatureVerificationError
from gateway.domain.money import format_vnd
from providers.bank_notifications import CANONICAL_FIELDS, DEFAULT_MAPPING, FieldMapping
from providers.base import CallbackRequest, NotificationForge, Outcome, PaymentProvider
from providers.emulators import emulator_now
from providers.emulators.pages import (
    EMULATOR_NOTE,
    JSON_HEADERS,
    Accent,
    EmulatorBlueprint,
    apply_faults,
    invalid_page,
    page,
    post_notification,
    random_digits,
    with_query,
)
from providers.rsa_signing import Scheme, generate_private_key_pem, load_private_key, sign, verify
from providers.rsabank import (
    CURRENCY,
    REQUEST_ID_HEADER,
    RsabankProvider,
    cached_private_key,
    dumps,
    json_object,
    return_message,
    to_bank_time,
)

log = logging.getLogger(__name__)

BLUEPRINT_NAME: Final = "emulator_rsabank"
NOTIFY_TIMEOUT_SECONDS: Final = 10.0
# The collection account the emulated bank credits (shown in notifications as account_no).
EMULATOR_ACCOUNT_NO: Final = "0011001234567"

# Button value -> the bank's status word (docs/rsabank.md §6), when the bank's mapping knows that word.
OUTCOMES: Final[Mapping[str, str]] = {"success": "success", "failure": "failed", "cancel": "cancelled"}

METHOD_LABELS: Final[Mapping[str, str]] = {"bank_account": "Tài khoản ngân hàng", "card": "Thẻ ngân hàng"}

ACCENT: Final = Accent("#1f5f3f")

# Autoescaped (pages.page): every value below came from a request.
CHECKOUT_BODY: Final = (
    """<div class="card">
<h1>{{ bank_name }}</h1>
"""
    + EMULATOR_NOTE
    + """
<div class="amount">{{ amount }} VND</div>
<dl>
<dt>Mã thanh toán</dt><dd>{{ reference }}</dd>
<dt>Mã giao dịch ngân hàng</dt><dd>{{ bank_reference }}</dd>
<dt>Nội dung</dt><dd>{{ description }}</dd>
<dt>Phương thức</dt><dd>{{ method }}</dd>
<dt>Hết hạn lúc</dt><dd>{{ expires_at }}</dd>
</dl>
<form method="post" action="{{ pay_url }}">
<button class="ok" type="submit" name="outcome" value="success">Thanh toán thành công</button>
<button class="fail" type="submit" name="outcome" value="failure">Thanh toán thất bại</button>
<button class="cancel" type="submit" name="outcome" value="cancel">Hủy giao dịch</button>
</form>
</div>
"""
)


@dataclass
class EmulatedPayment:
    """What the bank remembers of one payment (docs/rsabank.md §3.1)."""

    bank_reference: str
    merchant_reference: str
    amount: int
    description: str
    method: str | None
    return_url: str
    notify_url: str
    expires_at: str
    status: str = "pending"  # until the customer presses a button
    transaction_id: str | None = None
    transacted_at: str | None = None
    refunded: int = 0  # Σ accepted refunds (pending ones included: the money is reserved)
    notification: bytes = b""  # the signed notification body, kept so a test can replay it
    notification_signature: str = ""


@dataclass
class EmulatedRefund:
    refund_reference: str
    merchant_reference: str
    amount: int
    reason: str
    bank_refund_id: str
    status: str


def _http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in {"http", "https"} and bool(parts.netloc)


def _positive_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def status_word(mapping: FieldMapping, outcome: str) -> str:
    """The word the emulated bank uses for a button: the documented default when the bank's mapping has
    it, else one of the bank's own success / failure words (so a custom mapping is spoken correctly)."""
    word = OUTCOMES[outcome]
    values = mapping.success_values if outcome == "success" else mapping.failure_values
    return word if word in values else sorted(values)[0]


def notification_fields(
    *,
    reference: str,
    amount: int,
    status: str,
    transaction_id: str,
    transacted_at: str,
    description: str,
) -> dict[str, Any]:
    """A notification in canonical field names, in the documented order (docs/rsabank.md)."""
    return {
        "transaction_id": transaction_id,
        "account_no": EMULATOR_ACCOUNT_NO,
        "amount": amount,
        "currency": CURRENCY,
        "direction": "credit",
        "status": status,
        "reference": reference,
        "remittance": f"{reference} {description}".strip(),
        "transacted_at": transacted_at,
    }


def notification_body(mapping: FieldMapping, fields: Mapping[str, Any]) -> bytes:
    """The bank's JSON body: canonical names renamed through the bank's mapping, compact UTF-8."""
    return dumps({mapping.fields.get(name, name): value for name, value in fields.items()})


class RsabankEmulatorBlueprint(EmulatorBlueprint):
    """The emulated bank's routes and state: ``payments`` (by bank reference), ``refunds``, ``faults``."""

    def __init__(
        self,
        provider: RsabankProvider,
        *,
        ipn_url: str,
        http: requests.Session | None,
        bank_private_pem: bytes | None = None,
    ) -> None:
        super().__init__(BLUEPRINT_NAME, __name__, ipn_url=ipn_url, http=http)
        pem = bank_private_pem or provider.emulator_bank_private_pem
        if pem is None:
            raise ValueError("rsabank emulator: no bank private key (the provider is not emulated)")
        self.provider = provider
        self.bank_key: rsa.RSAPrivateKey = cached_private_key(pem)
        # The bank knows the gateway's PUBLIC key only; derived here from the provider's key pair.
        self.gateway_key: rsa.RSAPublicKey = provider.private_key.public_key()
        self.payments: dict[str, EmulatedPayment] = {}
        self.by_reference: dict[str, str] = {}  # merchant_reference -> bank_reference
        self.refunds: dict[str, EmulatedRefund] = {}
        self.add_url_rule("/payments", view_func=self.create, methods=["POST"])
        self.add_url_rule("/pay/<bank_reference>", view_func=self.pay, methods=["GET", "POST"])
        self.add_url_rule("/payments/query", view_func=self.query, methods=["POST"])
        self.add_url_rule("/refunds", view_func=self.refund, methods=["POST"])
        self.add_url_rule("/refunds/query", view_func=self.query_refund, methods=["POST"])

    @property
    def mapping(self) -> FieldMapping:
        return self.provider.mapping

    @property
    def scheme(self) -> Scheme:
        return self.provider.scheme

    # ---- signing -----------------------------------------------------------------------------------------

    def sign(self, data: bytes) -> str:
        return sign(self.bank_key, data, self.scheme)

    def answer(self, payload: Mapping[str, Any], status: int = 200) -> flask.Response:
        """A JSON answer whose raw body is signed with the bank's key (errors too: the caller trusts
        only signed refusals)."""
        body = dumps(payload)
        signed = body + b" " if self.faults.get("bad_signature") else body
        return flask.Response(
            body,
            status=status,
            content_type="application/json",
            headers={self.mapping.signature_header: self.sign(signed)},
        )

    def error(self, status: int, code: str, message: str) -> flask.Response:
        return self.answer({"code": code, "message": message}, status)

    def _api_request(self) -> dict[str, Any] | flask.Response:
        """Faults, then OUR signature on the raw body, then JSON: the request's data or the answer."""
        fault = apply_faults(self.faults)
        if fault is not None:
            return fault
        raw = flask.request.get_data(cache=True)
        try:
            verify(
                (self.gateway_key,),
                raw,
                flask.request.headers.get(self.mapping.signature_header),
                self.scheme,
            )
        except SignatureVerificationError as exc:
            return self.error(401, "invalid_signature", str(exc))
        if not flask.request.headers.get(REQUEST_ID_HEADER):
            return self.error(400, "invalid_request", f"missing {REQUEST_ID_HEADER}")
        data = json_object(raw)
        if data is None:
            return self.error(400, "invalid_request", "the body is not a JSON object")
        return data

    # ---- POST /payments ------------------------------------------------------------------------------

    def create(self) -> ResponseReturnValue:
        data = self._api_request()
        if isinstance(data, flask.Response):
            return data
        invalid = self._invalid_create(data)
        if invalid:
            return self.error(400, "invalid_request", invalid)
        reference = data["merchant_reference"]
        with self.lock:
            known = self.payments.get(self.by_reference.get(reference, ""))
            if known is not None:
                if known.status != "pending" or known.amount != data["amount"]:
                    return self.error(409, "duplicate_reference", "merchant_reference already used")
                payment = known  # a retried create: the same payment page again
            else:
                payment = EmulatedPayment(
                    bank_reference="BR" + random_digits(12),
                    merchant_reference=reference,
                    amount=data["amount"],
                    description=str(data.get("description") or ""),
                    method=data.get("method"),
                    return_url=data["return_url"],
                    notify_url=data.get("notify_url") or self.ipn_url,
                    expires_at=str(data.get("expires_at") or ""),
                )
                self.payments[payment.bank_reference] = payment
                self.by_reference[reference] = payment.bank_reference
        return self.answer(
            {
                "merchant_reference": reference,
                "bank_reference": payment.bank_reference,
                "payment_url": flask.url_for(".pay", bank_reference=payment.bank_reference, _external=True),
            }
        )

    @staticmethod
    def _invalid_create(data: Mapping[str, Any]) -> str | None:
        reference = data.get("merchant_reference")
        if not isinstance(reference, str) or not reference.strip() or len(reference) > 64:
            return "merchant_reference must be a string of 1 to 64 characters"
        if not _positive_int(data.get("amount")):
            return "amount must be a positive integer number of VND"
        if data.get("currency") != CURRENCY:
            return "currency must be VND"
        if not _http_url(data.get("return_url")):
            return "return_url must be an absolute http(s) URL"
        if data.get("notify_url") is not None and not _http_url(data.get("notify_url")):
            return "notify_url must be an absolute http(s) URL"
        if not isinstance(data.get("description", ""), str):
            return "description must be a string"
        if data.get("method") not in (None, *RsabankProvider.methods):
            return "method must be bank_account, card or null"
        expires_at = data.get("expires_at")
        if expires_at is not None:
            try:
                parsed = datetime.fromisoformat(str(expires_at))
            except ValueError:
                return "expires_at must be ISO-8601"
            if parsed.tzinfo is None:
                return "expires_at must carry a UTC offset"
        return None

    # ---- the payment page --------------------------------------------------------------------------------

    @property
    def _title(self) -> str:
        return f"{self.provider.display_name} (giả lập)"

    def _invalid(self, message: str, status: int = 400) -> ResponseReturnValue:
        return invalid_page(self._title, "Giao dịch không hợp lệ", message, accent=ACCENT, status=status)

    def pay(self, bank_reference: str) -> ResponseReturnValue:
        with self.lock:
            payment = self.payments.get(bank_reference)
            if payment is None:
                return self._invalid("Không tìm thấy giao dịch / Unknown payment", 404)
            if payment.status != "pending":
                return self._invalid("Giao dịch đã được xử lý / Already processed")
            if flask.request.method == "GET":
                return page(
                    self._title,
                    CHECKOUT_BODY,
                    accent=ACCENT,
                    bank_name=self.provider.display_name,
                    amount=format_vnd(payment.amount),
                    reference=payment.merchant_reference,
                    bank_reference=payment.bank_reference,
                    description=payment.description,
                    method=METHOD_LABELS.get(payment.method or "", "Khách hàng tự chọn"),
                    expires_at=payment.expires_at or "-",
                    pay_url=flask.url_for(".pay", bank_reference=bank_reference),
                )
            outcome = flask.request.form.get("outcome", "")
            if outcome not in OUTCOMES:
                return self._invalid("Yêu cầu không hợp lệ / Invalid outcome")
            status = status_word(self.mapping, outcome)
            payment.status = status
            payment.transaction_id = "FT" + random_digits(10)
            payment.transacted_at = to_bank_time(emulator_now())
            payment.notification = notification_body(
                self.mapping,
                notification_fields(
                    reference=payment.merchant_reference,
                    amount=payment.amount,
                    status=status,
                    transaction_id=payment.transaction_id,
                    transacted_at=payment.transacted_at,
                    description=payment.description,
                ),
            )
            payment.notification_signature = self.sign(payment.notification)
        if not self.faults.get("drop"):
            self.send_notification(payment)
        query = urlencode(
            {
                "reference": payment.merchant_reference,
                "status": status,
                "signature": self.sign(return_message(payment.merchant_reference, status)),
            }
        )
        return flask.redirect(with_query(payment.return_url, query), code=302)

    def send_notification(self, payment: EmulatedPayment) -> None:
        """POST the signed notification (docs/rsabank.md §5). Failures are logged only."""
        what = "rsabank emulator: notification"
        resp = post_notification(
            self.http,
            payment.notify_url,
            payment.notification,
            headers={**JSON_HEADERS, self.mapping.signature_header: payment.notification_signature},
            timeout=NOTIFY_TIMEOUT_SECONDS,
            log=log,
            what=what,
        )
        if resp is not None:
            log.info("%s answered HTTP %s %s", what, resp.status_code, resp.text[:200])

    # ---- POST /payments/query ------------------------------------------------------------------------

    def query(self) -> ResponseReturnValue:
        data = self._api_request()
        if isinstance(data, flask.Response):
            return data
        reference = data.get("merchant_reference")
        with self.lock:
            payment = self.payments.get(self.by_reference.get(str(reference), ""))
            if payment is None:
                return self.error(404, "not_found", "unknown merchant_reference")
            body = {
                "merchant_reference": payment.merchant_reference,
                "bank_reference": payment.bank_reference,
                "status": payment.status,
                "amount": payment.amount,
                "transaction_id": payment.transaction_id,
                "transacted_at": payment.transacted_at,
            }
        return self.answer(body)

    # ---- POST /refunds, /refunds/query ---------------------------------------------------------------

    def refund(self) -> ResponseReturnValue:
        data = self._api_request()
        if isinstance(data, flask.Response):
            return data
        refund_reference = data.get("refund_reference")
        reference = data.get("merchant_reference")
        amount = data.get("amount")
        if not isinstance(refund_reference, str) or not refund_reference.strip():
            return self.error(400, "invalid_request", "refund_reference is required")
        if not _positive_int(amount):
            return self.error(400, "invalid_request", "amount must be a positive integer number of VND")
        with self.lock:
            known = self.refunds.get(refund_reference)
            if known is not None:
                if (known.merchant_reference, known.amount) != (reference, amount):
                    return self.error(409, "duplicate_reference", "refund_reference already used")
                return self.answer(self._refund_body(known))  # a retried refund: the same answer
            payment = self.payments.get(self.by_reference.get(str(reference), ""))
            if payment is None:
                return self.error(404, "not_found", "unknown merchant_reference")
            if payment.status != "success":
                return self.error(422, "not_refundable", f"the payment is {payment.status}")
            txn = data.get("transaction_id")
            if txn is not None and txn != payment.transaction_id:
                return self.error(422, "transaction_mismatch", "transaction_id does not match the payment")
            if payment.refunded + amount > payment.amount:
                return self.error(422, "amount_exceeds", "refunds would exceed the paid amount")
            payment.refunded += amount
            refund = EmulatedRefund(
                refund_reference=refund_reference,
                merchant_reference=payment.merchant_reference,
                amount=amount,
                reason=str(data.get("reason") or ""),
                bank_refund_id="RF" + random_digits(10),
                status="pending" if self.faults.get("refund_pending") else "success",
            )
            self.refunds[refund_reference] = refund
        return self.answer(self._refund_body(refund))

    def query_refund(self) -> ResponseReturnValue:
        data = self._api_request()
        if isinstance(data, flask.Response):
            return data
        with self.lock:
            refund = self.refunds.get(str(data.get("refund_reference")))
            if refund is None:
                return self.error(404, "not_found", "unknown refund_reference")
            if refund.status == "pending" and not self.faults.get("refund_pending"):
                refund.status = "success"  # the bank has finished processing it
            body = self._refund_body(refund)
        return self.answer(body)

    @staticmethod
    def _refund_body(refund: EmulatedRefund) -> dict[str, Any]:
        return {
            "refund_reference": refund.refund_reference,
            "merchant_reference": refund.merchant_reference,
            "bank_refund_id": refund.bank_refund_id,
            "amount": refund.amount,
            "status": refund.status,
            "message": "refund accepted" if refund.status == "pending" else "refunded",
        }


def create_blueprint(
    provider: RsabankProvider,
    *,
    ipn_url: str,
    http: requests.Session | None = None,
    bank_private_pem: bytes | None = None,
) -> RsabankEmulatorBlueprint:
    """The emulated bank, to register at ``url_prefix="/_emulator/rsabank"`` (contract §10).

    Args:
        provider: supplies the gateway's key pair, the scheme and the field mapping.
        ipn_url: where notifications go when a create request carried no ``notify_url``.
        http: the session used to send notifications (injected by tests).
        bank_private_pem: the bank's key; default: the emulated provider's generated one.
    """
    return RsabankEmulatorBlueprint(provider, ipn_url=ipn_url, http=http, bank_private_pem=bank_private_pem)


class Forge(NotificationForge):
    """The bank's notification exactly as it is POSTed (docs/rsabank.md §5).

    ``secret`` is the bank's private key as PEM text (an emulated provider's is
    ``provider.emulator_bank_private_pem.decode()``). A ``secret`` that is not exactly one PEM private key
    (e.g. ``"wrong"`` or the PEM with a prefix) stands for "some other key": it signs with a throwaway key,
    so that a generic wrong-key check works. ``signed_fields`` are canonical names; ``tamper`` renames them
    through the provider's mapping.
    """

    # docs/rsabank.md §6 with the default mapping; anything else (e.g. "reversed") is UNKNOWN.
    result_codes: ClassVar[Mapping[str, Outcome]] = {
        "success": Outcome.SUCCEEDED,
        "succeeded": Outcome.SUCCEEDED,
        "paid": Outcome.SUCCEEDED,
        "00": Outcome.SUCCEEDED,
        "failed": Outcome.FAILED,
        "failure": Outcome.FAILED,
        "cancelled": Outcome.FAILED,
        "canceled": Outcome.FAILED,
        "pending": Outcome.PENDING,
        "processing": Outcome.PENDING,
        "reversed": Outcome.UNKNOWN,
    }
    success_code: ClassVar[str] = "success"
    signed_fields: ClassVar[tuple[str, ...]] = CANONICAL_FIELDS

    def __init__(self, provider: PaymentProvider, secret: str) -> None:
        super().__init__(provider, secret)
        self._keys: dict[str, rsa.RSAPrivateKey] = {}

    @property
    def mapping(self) -> FieldMapping:
        return getattr(self.provider, "mapping", DEFAULT_MAPPING)

    def _key(self, secret: str) -> rsa.RSAPrivateKey:
        if secret not in self._keys:
            text = secret.strip()
            exact_pem = (
                text.startswith("-----BEGIN") and text.endswith("-----") and text.count("-----BEGIN") == 1
            )
            try:
                key = cached_private_key(text.encode()) if exact_pem else None
            except ValueError:
                key = None
            self._keys[secret] = key or load_private_key(generate_private_key_pem())
        return self._keys[secret]

    def notification(
        self,
        *,
        reference: str,
        amount: int,
        result_code: str,
        provider_txn_id: str,
        secret: str | None = None,
    ) -> CallbackRequest:
        mapping = self.mapping
        body = notification_body(
            mapping,
            notification_fields(
                reference=reference,
                amount=amount,
                status=result_code,
                transaction_id=provider_txn_id,
                transacted_at=to_bank_time(emulator_now()),
                description=f"Thanh toan {reference}",
            ),
        )
        scheme = getattr(self.provider, "scheme", Scheme.PKCS1V15)
        signature = sign(self._key(secret or self.secret), body, scheme)
        headers = {"Content-Type": "application/json", mapping.signature_header: signature}
        return CallbackRequest(method="POST", args={}, headers=headers, body=body)

    def tamper(self, request: CallbackRequest, field_name: str) -> CallbackRequest:
        data = json.loads(request.body)
        name = self.mapping.fields.get(field_name, field_name)
        data[name] = _changed(data.get(name))
        return dataclasses.replace(request, body=dumps(data))

    def strip_signature(self, request: CallbackRequest) -> CallbackRequest:
        wanted = self.mapping.signature_header.lower()
        headers = {k: v for k, v in request.headers.items() if k.lower() != wanted}
        return dataclasses.replace(request, headers=headers)


def _changed(value: Any) -> Any:
    """A different value of the same JSON type (so only the signature can catch it)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str) and value:
        return value[:-1] + ("1" if value[-1] != "1" else "2")
    return "X"
