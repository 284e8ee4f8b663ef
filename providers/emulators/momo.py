"""A MoMo emulator speaking the real v2 "all-in-one" wire protocol (providers.md §2, contract §10).

``POST /v2/gateway/api/create`` checks our signature like MoMo does (§2.2) and answers a ``payUrl`` on this
emulator; the checkout page offers three outcomes; paying sends the signed IPN POST JSON (§2.3) to the
``ipnUrl`` of the create request and redirects the browser to ``redirectUrl`` with the same fields;
``/query`` (§2.4) and ``/refund`` (§2.5) are answered from an in-memory ledger. Registered at
``/_emulator/momo``, so the provider's emulator defaults point at it.

Fault switches for tests live in ``blueprint.faults`` (``app.blueprints["emulator_momo"].faults``):
``"slow"`` seconds to sleep on the API endpoints, ``"status"`` an HTTP status to answer instead (e.g. 503),
``"garbage"`` (truthy) to answer ``<html>oops`` with 200, ``"drop"`` (truthy) to accept a payment but never
send its IPN.
"""

from __future__ import annotations

import json
import logging
import secrets
import time  # noqa: F401 - tests patch <emulator>.time.sleep, which pages.apply_faults calls
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Final, cast
from urllib.parse import urlencode

import flask
import requests
from flask.typing import ResponseReturnValue

from gateway.domain.errors import SignatureVerificationError
from gateway.domain.money import format_vnd
from providers.base import CallbackRequest, NotificationForge, Outcome
from providers.emulators import emulator_now
from providers.emulators.pages import (
    EMULATOR_NOTE,
    INVALID_TRANSACTION,
    JSON_HEADERS,
    Accent,
    EmulatorBlueprint,
    apply_faults,
    invalid_page,
    page,
    post_notification,
    with_query,
)
from providers.momo import (
    ALGORITHM,
    AMOUNT_LIMITS,
    CAPTURE_WALLET,
    DOCUMENTED_RESULT_CODES,
    IPN_SIGNATURE_KEYS,
    ORDER_ID_RE,
    PAY_WITH_ATM,
    REFUND_MINIMUM,
    SUCCESS_CODE,
    MomoProvider,
    create_signature_raw,
    ipn_signature_raw,
    loads_raw,
    parse_int_field,
    payment_outcome,
    query_signature_raw,
    refund_signature_raw,
    sign,
)
from providers.signing import verify_hmac

log = logging.getLogger(__name__)

BLUEPRINT_NAME: Final = "emulator_momo"
IPN_TIMEOUT_SECONDS: Final = 10.0
ORDER_TYPE: Final = "momo_wallet"  # §2.3

# Button value → resultCode (§2.6).
OUTCOMES: Final[Mapping[str, int]] = {
    "success": 0,
    "failure": 1001,  # insufficient funds
    "cancel": 1006,  # user declined
}
# §2.3 payType per requestType: the wallet is paid by scanning the QR, ATM cards through NAPAS.
PAY_TYPES: Final[Mapping[str, str]] = {CAPTURE_WALLET: "qr", PAY_WITH_ATM: "napas"}
METHOD_LABELS: Final[Mapping[str, str]] = {
    CAPTURE_WALLET: "Ví MoMo / Quét mã QR",
    PAY_WITH_ATM: "Thẻ ATM nội địa (NAPAS)",
}

# MoMo's messages per lang (§2.2 lang, §2.6). Only what the emulator answers.
MESSAGES: Final[Mapping[str, Mapping[int, str]]] = {
    "vi": {
        0: "Thành công.",
        1000: "Giao dịch đã được khởi tạo, chờ người dùng xác nhận thanh toán.",
        1001: "Giao dịch thanh toán thất bại do tài khoản người dùng không đủ tiền.",
        1006: "Giao dịch thất bại do người dùng đã từ chối xác nhận thanh toán.",
        1081: "Giao dịch hoàn tiền bị từ chối. Giao dịch thanh toán ban đầu có thể đã được hoàn.",
        1088: "Giao dịch hoàn tiền bị từ chối. Giao dịch thanh toán ban đầu không được hỗ trợ hoàn tiền.",
        13: "Xác thực doanh nghiệp thất bại.",
        20: "Yêu cầu sai định dạng.",
        21: "Số tiền giao dịch không hợp lệ.",
        22: "Số tiền giao dịch không nằm trong khoảng cho phép.",
        40: "RequestId bị trùng.",
        41: "OrderId bị trùng.",
        42: "OrderId không hợp lệ hoặc không được tìm thấy.",
    },
    "en": {
        0: "Successful.",
        1000: "Transaction initiated, waiting for user confirmation.",
        1001: "Transaction failed due to insufficient funds.",
        1006: "Transaction denied by user.",
        1081: "Refund rejected. The original transaction may have been refunded.",
        1088: "Refund rejected. The original transaction is not refundable.",
        13: "Merchant authentication failed.",
        20: "Bad format request.",
        21: "Invalid transaction amount.",
        22: "Transaction amount is out of range.",
        40: "Duplicated requestId.",
        41: "Duplicated orderId.",
        42: "Invalid orderId or orderId is not found.",
    },
}

ACCENT: Final = Accent("#a50064", background="#fdf2f8", button="#a50064")

# Autoescaped (pages.page): orderInfo and orderId come from the (untrusted) create request.
CHECKOUT_BODY: Final = (
    """<div class="card">
<h1>Thanh toán qua MoMo</h1>
"""
    + EMULATOR_NOTE
    + """
<div class="amount">{{ amount }} VND</div>
<dl>
<dt>Mã đơn hàng / Order</dt><dd>{{ order_id }}</dd>
<dt>Nội dung / Order info</dt><dd>{{ order_info }}</dd>
<dt>Phương thức / Method</dt><dd>{{ method }}</dd>
</dl>
<form method="post" action="{{ pay_url }}">
<button class="ok" type="submit" name="outcome" value="success">Thanh toán thành công</button>
<button class="fail" type="submit" name="outcome" value="failure">Thất bại — không đủ số dư</button>
<button class="cancel" type="submit" name="outcome" value="cancel">Từ chối thanh toán</button>
</form>
</div>
"""
)


@dataclass
class EmulatedRefund:
    """One refund (§2.5), under its own new orderId."""

    order_id: str
    request_id: str
    payment_order_id: str
    amount: int
    trans_id: int
    response_time: int
    result_code: int = 0


@dataclass
class EmulatedPayment:
    """What the emulator remembers of one create request (§2.2), to pay, query and refund it."""

    order_id: str
    request_id: str
    amount: int
    order_info: str
    request_type: str
    redirect_url: str
    ipn_url: str
    extra_data: str
    lang: str
    result_code: int = 1000  # §2.6: initiated, waiting for the user until a button is pressed
    trans_id: int = 0
    pay_type: str = ""
    response_time: int = 0
    refunds: list[EmulatedRefund] = field(default_factory=list)
    ipn_body: bytes = b""  # the signed IPN, kept so that a test can replay it

    @property
    def refunded(self) -> int:
        return sum(r.amount for r in self.refunds if r.result_code == 0)


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _now_ms() -> int:
    # §2.1 responseTime: epoch milliseconds, on the gateway's clock inside the app (emulator_now).
    return (emulator_now() - _EPOCH) // timedelta(milliseconds=1)


def _random_trans_id() -> int:
    # secrets, not random (ruff S311); 10 digits like MoMo's transIds, never 0 ("no transaction").
    return 4_000_000_000 + secrets.randbelow(1_000_000_000)


def _message(lang: str, code: int) -> str:
    return MESSAGES.get(lang, MESSAGES["vi"]).get(code, "Giao dịch thất bại." if lang != "en" else "Failed.")


def signed_ipn(
    *,
    secret: str,
    access_key: str,
    partner_code: str,
    order_id: str,
    request_id: str,
    amount: int,
    order_info: str,
    trans_id: int | str,
    result_code: int,
    message: str,
    pay_type: str,
    response_time: int,
    extra_data: str = "",
) -> dict[str, Any]:
    """The IPN body MoMo POSTs (§2.3): JSON numbers for amount/transId/resultCode/responseTime, signed."""
    fields: dict[str, Any] = {
        "partnerCode": partner_code,
        "orderId": order_id,
        "requestId": request_id,
        "amount": amount,
        "orderInfo": order_info,
        "orderType": ORDER_TYPE,
        "transId": trans_id,
        "resultCode": result_code,
        "message": message,
        "payType": pay_type,
        "responseTime": response_time,
        "extraData": extra_data,
    }
    fields["signature"] = sign(secret, ipn_signature_raw({**fields, "accessKey": access_key}))
    return fields


def ipn_json(fields: Mapping[str, Any]) -> bytes:
    """The IPN body as bytes (compact JSON, UTF-8, like MoMo's Java serializer)."""
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()


class MomoEmulatorBlueprint(EmulatorBlueprint):
    """The emulator's routes plus its state: ``payments`` and ``refunds`` (by orderId) and ``faults``."""

    def __init__(self, provider: MomoProvider, *, ipn_url: str, http: requests.Session | None) -> None:
        super().__init__(BLUEPRINT_NAME, __name__, ipn_url=ipn_url, http=http)
        self.provider = provider
        self.payments: dict[str, EmulatedPayment] = {}
        self.refunds: dict[str, EmulatedRefund] = {}
        self.request_ids: set[str] = set()
        self.add_url_rule("/v2/gateway/api/create", view_func=self.api_create, methods=["POST"])
        self.add_url_rule("/v2/gateway/api/query", view_func=self.api_query, methods=["POST"])
        self.add_url_rule("/v2/gateway/api/refund", view_func=self.api_refund, methods=["POST"])
        self.add_url_rule("/pay/<order_id>", endpoint="checkout", view_func=self.checkout, methods=["GET"])
        self.add_url_rule("/pay/<order_id>", endpoint="pay", view_func=self.pay, methods=["POST"])

    @property
    def secret(self) -> str:
        # MoMo holds one secret per partner: the provider's signing key (contract §2, first of "new,old").
        return self.provider.secret

    # ---- API plumbing --------------------------------------------------------------------------------

    def _fields(self) -> dict[str, Any] | None:
        # MoMo signs raw values: parse keeping numbers as their source text, like the adapter does.
        try:
            data = loads_raw(flask.request.get_data())
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def _signed_by_partner(
        self, fields: Mapping[str, Any], builder: Callable[[Mapping[str, Any]], str]
    ) -> bool:
        """§2.1: the partner code is ours and the signature matches (accessKey taken from our side)."""
        if fields.get("partnerCode") != self.provider.partner_code:
            return False
        signature = fields.get("signature")
        try:
            verify_hmac(
                (self.secret,),
                builder({**fields, "accessKey": self.provider.access_key}),
                signature if isinstance(signature, str) else None,
                ALGORITHM,
            )
        except SignatureVerificationError:
            return False
        return True

    def _api_request(self, builder: Callable[[Mapping[str, Any]], str]) -> dict[str, Any] | flask.Response:
        """Faults, then the JSON body (else 20), then OUR signature over ``builder``'s string (else 13)."""
        fault = apply_faults(self.faults)
        if fault is not None:
            return fault
        fields = self._fields()
        if fields is None:
            return self._answer({}, 20)
        if not self._signed_by_partner(fields, builder):
            return self._answer(fields, 13)
        return fields

    def _answer(self, fields: Mapping[str, Any], code: int, **extra: Any) -> flask.Response:
        """MoMo's JSON answer: the echo of the request ids plus resultCode/message/responseTime."""
        lang = str(fields.get("lang") or "vi")
        body: dict[str, Any] = {
            "partnerCode": self.provider.partner_code,
            "orderId": str(fields.get("orderId") or ""),
            "requestId": str(fields.get("requestId") or ""),
            "resultCode": code,
            "message": _message(lang, code),
            "responseTime": _now_ms(),
            **extra,
        }
        return flask.jsonify(body)

    # ---- create (§2.2) --------------------------------------------------------------------------------

    def api_create(self) -> ResponseReturnValue:
        fields = self._api_request(create_signature_raw)
        if isinstance(fields, flask.Response):
            return fields
        for name in ("requestId", "orderId", "orderInfo", "redirectUrl", "ipnUrl", "requestType"):
            if not isinstance(fields.get(name), str) or not fields[name]:
                return self._answer(fields, 20)
        request_type = fields["requestType"]
        if request_type not in AMOUNT_LIMITS:
            return self._answer(fields, 20)
        amount = parse_int_field(fields.get("amount"))
        if amount is None:
            return self._answer(fields, 21)
        low, high = AMOUNT_LIMITS[request_type]
        if not low <= amount <= high:
            return self._answer(fields, 22)
        order_id = fields["orderId"]
        if not ORDER_ID_RE.fullmatch(order_id):
            return self._answer(fields, 42)
        with self.lock:
            if fields["requestId"] in self.request_ids:
                return self._answer(fields, 40)
            if order_id in self.payments or order_id in self.refunds:
                return self._answer(fields, 41)
            self.request_ids.add(fields["requestId"])
            self.payments[order_id] = EmulatedPayment(
                order_id=order_id,
                request_id=fields["requestId"],
                amount=amount,
                order_info=fields["orderInfo"],
                request_type=request_type,
                redirect_url=fields["redirectUrl"],
                ipn_url=fields["ipnUrl"],
                extra_data=str(fields.get("extraData") or ""),
                lang="en" if fields.get("lang") == "en" else "vi",
            )
        # On whichever host the request came to (url_for with _external uses request.host_url).
        pay_url = flask.url_for(".checkout", order_id=order_id, _external=True)
        deeplink = "momo://app?" + urlencode(
            {"action": "payWithApp", "partnerCode": self.provider.partner_code, "orderId": order_id}
        )
        return self._answer(
            fields,
            0,
            amount=amount,
            payUrl=pay_url,
            deeplink=deeplink,
            qrCodeUrl=deeplink if request_type == CAPTURE_WALLET else "",
        )

    # ---- checkout page and payment (§2.3) ------------------------------------------------------------

    def _invalid(self, message: str, status: int = 400) -> ResponseReturnValue:
        title = "MoMo (giả lập) - Giao dịch không hợp lệ"
        return invalid_page(title, INVALID_TRANSACTION, message, accent=ACCENT, status=status)

    def checkout(self, order_id: str) -> ResponseReturnValue:
        with self.lock:
            payment = self.payments.get(order_id)
            if payment is None:
                return self._invalid("Không tìm thấy giao dịch / Transaction not found", 404)
            if payment.result_code != 1000:
                return self._invalid("Giao dịch đã được xử lý / Transaction already processed")
            amount, order_info, method = payment.amount, payment.order_info, payment.request_type
        return page(
            "MoMo (giả lập) - Thanh toán",
            CHECKOUT_BODY,
            accent=ACCENT,
            amount=format_vnd(amount),
            order_id=order_id,
            order_info=order_info,
            method=METHOD_LABELS.get(method, method),
            pay_url=flask.url_for(".pay", order_id=order_id),
        )

    def pay(self, order_id: str) -> ResponseReturnValue:
        code = OUTCOMES.get(flask.request.form.get("outcome", ""))
        if code is None:
            return self._invalid("Yêu cầu không hợp lệ / Invalid request (outcome)")
        with self.lock:
            payment = self.payments.get(order_id)
            if payment is None:
                return self._invalid("Không tìm thấy giao dịch / Transaction not found", 404)
            if payment.result_code != 1000:
                return self._invalid("Giao dịch đã được xử lý / Transaction already processed")
            payment.result_code = code
            payment.trans_id = _random_trans_id()
            payment.pay_type = PAY_TYPES[payment.request_type]
            payment.response_time = _now_ms()
            ipn = signed_ipn(
                secret=self.secret,
                access_key=self.provider.access_key,
                partner_code=self.provider.partner_code,
                order_id=payment.order_id,
                request_id=payment.request_id,
                amount=payment.amount,
                order_info=payment.order_info,
                trans_id=payment.trans_id,
                result_code=code,
                message=_message(payment.lang, code),
                pay_type=payment.pay_type,
                response_time=payment.response_time,
                extra_data=payment.extra_data,
            )
            payment.ipn_body = ipn_json(ipn)
            target = payment.ipn_url or self.ipn_url
            redirect_url = payment.redirect_url
        if not self.faults.get("drop"):
            self.send_ipn(target, payment.ipn_body)
        # §2.3: the browser comes back with the same fields (and signature) as query parameters.
        query = urlencode({k: str(v) for k, v in ipn.items()})
        return flask.redirect(with_query(redirect_url, query), code=302)

    def send_ipn(self, url: str, body: bytes) -> None:
        """POST the IPN JSON to ``url`` (§2.3). Failures are logged only: MoMo retries on its own schedule."""
        resp = post_notification(
            self.http,
            url,
            body,
            headers=JSON_HEADERS,
            timeout=IPN_TIMEOUT_SECONDS,
            log=log,
            what="momo emulator: IPN",
        )
        if resp is not None:
            log.info("momo emulator: IPN answered HTTP %s", resp.status_code)

    # ---- query (§2.4) ---------------------------------------------------------------------------------

    def api_query(self) -> ResponseReturnValue:
        fields = self._api_request(query_signature_raw)
        if isinstance(fields, flask.Response):
            return fields
        order_id = str(fields.get("orderId") or "")
        with self.lock:
            payment = self.payments.get(order_id)
            if payment is not None:
                return self._answer(
                    fields,
                    payment.result_code,
                    amount=payment.amount,
                    transId=payment.trans_id,
                    payType=payment.pay_type,
                    extraData=payment.extra_data,
                    lastUpdated=payment.response_time or _now_ms(),
                    refundTrans=[
                        {
                            "orderId": r.order_id,
                            "amount": r.amount,
                            "resultCode": r.result_code,
                            "transId": r.trans_id,
                            "createdTime": r.response_time,
                        }
                        for r in payment.refunds
                    ],
                )
            refund = self.refunds.get(order_id)
            if refund is not None:
                # A refund is a transaction of its own, found under its new orderId.
                return self._answer(
                    fields,
                    refund.result_code,
                    amount=refund.amount,
                    transId=refund.trans_id,
                    payType="",
                    extraData="",
                    lastUpdated=refund.response_time,
                    refundTrans=[],
                )
        return self._answer(fields, 42)

    # ---- refund (§2.5) --------------------------------------------------------------------------------

    def api_refund(self) -> ResponseReturnValue:
        fields = self._api_request(refund_signature_raw)
        if isinstance(fields, flask.Response):
            return fields
        order_id, request_id = fields.get("orderId"), fields.get("requestId")
        if not isinstance(order_id, str) or not isinstance(request_id, str) or not order_id or not request_id:
            return self._answer(fields, 20)
        if not ORDER_ID_RE.fullmatch(order_id):
            return self._answer(fields, 42)
        amount = parse_int_field(fields.get("amount"))
        trans_id = parse_int_field(fields.get("transId"))
        if amount is None or amount <= 0:
            return self._answer(fields, 21)
        with self.lock:
            if request_id in self.request_ids:
                return self._answer(fields, 40)
            # §2.5: the refund needs a NEW orderId; reusing one (a purchase's or a refund's) is a duplicate.
            if order_id in self.payments or order_id in self.refunds:
                return self._answer(fields, 41)
            payment = next((p for p in self.payments.values() if trans_id and p.trans_id == trans_id), None)
            if payment is None:
                return self._answer(fields, 42)
            self.request_ids.add(request_id)
            if payment.result_code != 0:
                return self._answer(fields, 1088)  # only a successful purchase is refundable
            if amount < REFUND_MINIMUM.get(payment.request_type, 1_000):
                return self._answer(fields, 22)
            if payment.refunded + amount > payment.amount:
                return self._answer(fields, 1081)  # §2.6: already refunded / amount too large
            refund = EmulatedRefund(
                order_id=order_id,
                request_id=request_id,
                payment_order_id=payment.order_id,
                amount=amount,
                trans_id=_random_trans_id(),
                response_time=_now_ms(),
            )
            payment.refunds.append(refund)
            self.refunds[order_id] = refund
        return self._answer(fields, 0, amount=amount, transId=refund.trans_id)


def create_blueprint(
    provider: MomoProvider, *, ipn_url: str, http: requests.Session | None = None
) -> MomoEmulatorBlueprint:
    """The MoMo emulator, to register at ``url_prefix="/_emulator/momo"`` (contract §10).

    Args:
        provider: supplies the partner code, access key and signing secret shared with the gateway.
        ipn_url: where IPNs go when a create request carried no ``ipnUrl`` (§2.2 sends one per payment).
        http: the session used to send IPNs (injected by tests).
    """
    return MomoEmulatorBlueprint(provider, ipn_url=ipn_url, http=http)


class Forge(NotificationForge):
    """MoMo's IPN as MoMo sends it: a POST with a signed JSON body (§2.3), for the contract suite.

    ``secret`` is the MoMo secret key string (the first of ``MOMO_SECRET_KEY``, or the emulator's).
    """

    # §2.6, as the adapter must report it for an IPN (the grouping is documented in providers/momo.py).
    result_codes: ClassVar[Mapping[str, Outcome]] = {
        code: payment_outcome(code) for code in DOCUMENTED_RESULT_CODES
    }
    success_code: ClassVar[str] = SUCCESS_CODE
    # Every field of the §2.3 string-to-sign except accessKey (which is not in the message).
    signed_fields: ClassVar[tuple[str, ...]] = tuple(k for k in IPN_SIGNATURE_KEYS if k != "accessKey")

    def notification(
        self,
        *,
        reference: str,
        amount: int,
        result_code: str,
        provider_txn_id: str,
        secret: str | None = None,
    ) -> CallbackRequest:
        provider = cast(MomoProvider, self.provider)
        code = int(result_code)
        fields = signed_ipn(
            secret=secret or self.secret,
            access_key=provider.access_key,
            partner_code=provider.partner_code,
            order_id=reference,
            request_id=f"{reference}-forge",
            amount=amount,
            order_info=f"Thanh toan {reference}",
            # §2.3: transId is a Long; a non-numeric id (a test's) is sent as the string it is.
            trans_id=int(provider_txn_id)
            if provider_txn_id.isascii() and provider_txn_id.isdigit()
            else provider_txn_id,
            result_code=code,
            message=_message("vi", code),
            pay_type="qr",
            response_time=_now_ms(),
        )
        return _ipn_request(fields)

    def tamper(self, request: CallbackRequest, field_name: str) -> CallbackRequest:
        fields = json.loads(request.body)
        value = fields[field_name]
        if isinstance(value, int):
            fields[field_name] = value + 1
        elif value:
            fields[field_name] = value[:-1] + ("1" if value[-1:] != "1" else "2")
        else:
            fields[field_name] = "X"
        return _ipn_request(fields, like=request)

    def strip_signature(self, request: CallbackRequest) -> CallbackRequest:
        fields = {k: v for k, v in json.loads(request.body).items() if k != "signature"}
        return _ipn_request(fields, like=request)


def _ipn_request(fields: Mapping[str, Any], like: CallbackRequest | None = None) -> CallbackRequest:
    return CallbackRequest(
        method="POST",
        args={},
        headers=dict(like.headers) if like else {"Content-Type": "application/json"},
        body=ipn_json(fields),
        remote_addr=like.remote_addr if like else None,
    )
