"""A VNPAY emulator speaking the real v2.1.0 wire protocol (providers.md §1, contract §10).

It checks the pay URL's signature like VNPAY does (§1.3), shows a checkout page with three outcomes, sends the
signed IPN GET (§1.5) and the browser redirect (§1.4), and answers ``querydr`` (§1.8) from an in-memory
ledger. Registered at ``/_emulator/vnpay``, so the provider's emulator defaults point at it.

Fault switches for tests live in ``blueprint.faults`` (``app.blueprints["emulator_vnpay"].faults``):
``"slow"`` seconds to sleep on the API endpoint, ``"status"`` an HTTP status to answer instead (e.g. 503),
``"garbage"`` (truthy) to answer ``<html>oops`` with 200.
"""

from __future__ import annotations

import logging
import re
import time  # noqa: F401 - tests patch <emulator>.time.sleep, which pages.apply_faults calls
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final
from urllib.parse import parse_qsl

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
    Accent,
    EmulatorBlueprint,
    apply_faults,
    invalid_page,
    page,
    random_digits,
    with_query,
)
from providers.signing import hmac_hex, verify_hmac
from providers.vnpay import (
    ALGORITHM,
    FAILED_RESPONSE_CODES,
    VnpayProvider,
    query_response_hash_data,
    querydr_hash_data,
    refund_hash_data,
    refund_response_hash_data,
    sign_string,
    signed_query,
    to_vnp_date,
)

log = logging.getLogger(__name__)

BLUEPRINT_NAME: Final = "emulator_vnpay"
IPN_TIMEOUT_SECONDS: Final = 10.0
DEFAULT_BANK_CODE: Final = "NCB"  # §1.2: the sandbox test bank
_DIGITS_RE: Final = re.compile(r"[0-9]+")

# Button value → (vnp_ResponseCode §1.6, vnp_TransactionStatus §1.7).
OUTCOMES: Final[Mapping[str, tuple[str, str]]] = {
    "success": ("00", "00"),
    "failure": ("51", "02"),  # insufficient balance
    "cancel": ("24", "02"),  # customer cancelled
}

INVALID_SIGNATURE: Final = "Sai chữ ký / Invalid signature"

ACCENT: Final = Accent("#005baa")

# Autoescaped (pages.page): every value below comes from the (untrusted) query string.
CHECKOUT_BODY: Final = (
    """<div class="card">
<h1>Cổng thanh toán VNPAY</h1>
"""
    + EMULATOR_NOTE
    + """
<div class="amount">{{ amount }} VND</div>
<dl>
<dt>Mã giao dịch / TxnRef</dt><dd>{{ txn_ref }}</dd>
<dt>Nội dung / Order info</dt><dd>{{ order_info }}</dd>
<dt>Ngân hàng / Bank</dt><dd>{{ bank_code }}</dd>
</dl>
<form method="post" action="{{ pay_url }}">
<input type="hidden" name="query" value="{{ query }}">
<button class="ok" type="submit" name="outcome" value="success">Thanh toán thành công</button>
<button class="fail" type="submit" name="outcome" value="failure">Thất bại — không đủ số dư</button>
<button class="cancel" type="submit" name="outcome" value="cancel">Hủy giao dịch</button>
</form>
</div>
"""
)


@dataclass
class EmulatedTransaction:
    """What the emulator remembers of one vnp_TxnRef, to answer querydr (§1.8)."""

    txn_ref: str
    amount: int  # integer VND (the wire carries × 100, §1.2)
    order_info: str
    bank_code: str
    create_date: str  # the pay request's vnp_CreateDate, GMT+7
    status: str = "01"  # §1.7: 01 = not completed until the customer presses a button
    response_code: str = ""
    transaction_no: str = "0"  # §1.5: 0 while VNPAY has created no transaction
    pay_date: str = ""
    ipn_query: str = ""  # the signed IPN query, kept so a test can replay it
    refunded: int = 0  # Σ refunded VND (§1.9)


def build_ipn_query(secret: str, params: Mapping[str, str]) -> str:
    """Sign ``params`` like VNPAY signs an IPN/return (§1.3) and return the query string (forging helper)."""
    return signed_query(secret, params)


def _vnp_params(items: Mapping[str, str]) -> dict[str, str]:
    # §1.3: VNPAY (like the official demos) only considers vnp_* keys.
    return {k: v for k, v in items.items() if k.startswith("vnp_")}


def _as_str(value: Any) -> str:
    return "" if value is None else str(value)


class VnpayEmulatorBlueprint(EmulatorBlueprint):
    """The emulator's routes plus its state: ``transactions`` (by TxnRef) and ``faults``."""

    def __init__(self, provider: VnpayProvider, *, ipn_url: str, http: requests.Session | None) -> None:
        super().__init__(BLUEPRINT_NAME, __name__, ipn_url=ipn_url, http=http)
        self.provider = provider
        self.transactions: dict[str, EmulatedTransaction] = {}
        self.add_url_rule("/paymentv2/vpcpay.html", view_func=self.checkout, methods=["GET"])
        self.add_url_rule("/paymentv2/pay", view_func=self.pay, methods=["POST"])
        self.add_url_rule("/merchant_webapi/api/transaction", view_func=self.api, methods=["POST"])

    @property
    def secret(self) -> str:
        # VNPAY holds one secret per terminal: the provider's signing key (contract §2, first of "new,old").
        return self.provider.secret

    # ---- pay page (§1.2, §1.3) -----------------------------------------------------------------------

    def _check_pay_request(self, params: Mapping[str, str]) -> str | None:
        """Why VNPAY would refuse this pay request, or None. The signature is checked first (§1.3)."""
        try:
            verify_hmac((self.secret,), sign_string(params), params.get("vnp_SecureHash"), ALGORITHM)
        except SignatureVerificationError:
            return INVALID_SIGNATURE
        if params.get("vnp_TmnCode") != self.provider.tmn_code:
            return "Mã website không tồn tại / Unknown terminal (vnp_TmnCode)"
        raw_amount = params.get("vnp_Amount", "")
        # §1.2: VND × 100, so a real amount is a positive multiple of 100.
        if not _DIGITS_RE.fullmatch(raw_amount) or int(raw_amount) <= 0 or int(raw_amount) % 100:
            return "Số tiền không hợp lệ / Invalid amount"
        if params.get("vnp_Command") != "pay":
            return "Yêu cầu không hợp lệ / Invalid request (vnp_Command)"
        for name in ("vnp_TxnRef", "vnp_ReturnUrl", "vnp_CreateDate"):
            if not params.get(name):
                return f"Yêu cầu không hợp lệ / Invalid request (thiếu / missing {name})"
        return None

    def _invalid(self, message: str) -> ResponseReturnValue:
        title = "VNPAY (giả lập) - Giao dịch không hợp lệ"
        return invalid_page(title, INVALID_TRANSACTION, message, accent=ACCENT)

    def checkout(self) -> ResponseReturnValue:
        params = _vnp_params(flask.request.args)
        problem = self._check_pay_request(params)
        if problem:
            return self._invalid(problem)
        txn_ref = params["vnp_TxnRef"]
        with self.lock:
            known = self.transactions.get(txn_ref)
            if known and known.status != "01":
                # §1.2: vnp_TxnRef is unique; a finished transaction cannot be paid again.
                return self._invalid("Giao dịch đã tồn tại / Transaction already processed")
            if known is None:
                # Opening the page creates the transaction at VNPAY: querydr now says 01 (not completed).
                self.transactions[txn_ref] = self._new_transaction(params)
        amount = int(params["vnp_Amount"]) // 100
        return page(
            "VNPAY (giả lập) - Thanh toán",
            CHECKOUT_BODY,
            accent=ACCENT,
            amount=format_vnd(amount),
            txn_ref=txn_ref,
            order_info=params.get("vnp_OrderInfo", ""),
            bank_code=params.get("vnp_BankCode") or "-",
            pay_url=flask.url_for(".pay"),
            query=flask.request.query_string.decode("utf-8", "replace"),
        )

    @staticmethod
    def _new_transaction(params: Mapping[str, str]) -> EmulatedTransaction:
        return EmulatedTransaction(
            txn_ref=params["vnp_TxnRef"],
            amount=int(params["vnp_Amount"]) // 100,
            order_info=params.get("vnp_OrderInfo", ""),
            bank_code=params.get("vnp_BankCode") or DEFAULT_BANK_CODE,
            create_date=params["vnp_CreateDate"],
        )

    def pay(self) -> ResponseReturnValue:
        query = flask.request.form.get("query", "")
        params = _vnp_params(dict(parse_qsl(query, keep_blank_values=True)))
        # Re-verify: the hidden field came back from the browser and may have been edited (§1.3).
        problem = self._check_pay_request(params)
        if problem:
            return self._invalid(problem)
        outcome = OUTCOMES.get(flask.request.form.get("outcome", ""))
        if outcome is None:
            return self._invalid("Yêu cầu không hợp lệ / Invalid request (outcome)")
        response_code, status = outcome
        cancelled = flask.request.form.get("outcome") == "cancel"

        txn_ref = params["vnp_TxnRef"]
        with self.lock:
            txn = self.transactions.get(txn_ref) or self._new_transaction(params)
            if txn.status != "01":
                return self._invalid("Giao dịch đã tồn tại / Transaction already processed")
            txn.status = status
            txn.response_code = response_code
            txn.transaction_no = "0" if cancelled else random_digits(8)
            txn.pay_date = to_vnp_date(emulator_now())
            # §1.5: the IPN parameter set, signed per §1.3.
            ipn = {
                "vnp_TmnCode": self.provider.tmn_code,
                "vnp_Amount": params["vnp_Amount"],
                "vnp_BankCode": txn.bank_code,
                "vnp_BankTranNo": "VNP" + random_digits(8),
                "vnp_CardType": "ATM",
                "vnp_OrderInfo": txn.order_info,
                "vnp_PayDate": txn.pay_date,
                "vnp_ResponseCode": response_code,
                "vnp_TransactionNo": txn.transaction_no,
                "vnp_TransactionStatus": status,
                "vnp_TxnRef": txn_ref,
            }
            txn.ipn_query = build_ipn_query(self.secret, ipn)
            self.transactions[txn_ref] = txn
        self.send_ipn(txn.ipn_query)
        # §1.4: the browser comes back with the same signed parameters as the IPN.
        return flask.redirect(with_query(params["vnp_ReturnUrl"], txn.ipn_query), code=302)

    def send_ipn(self, query: str) -> None:
        """GET ``ipn_url?query`` (§1.5). Failures are logged only: VNPAY retries on its own schedule."""
        try:
            resp = self.http.get(with_query(self.ipn_url, query), timeout=IPN_TIMEOUT_SECONDS)
        except requests.RequestException as exc:
            log.warning("vnpay emulator: IPN to %s failed: %s", self.ipn_url, exc)
            return
        log.info("vnpay emulator: IPN answered HTTP %s %s", resp.status_code, resp.text[:200])

    # ---- merchant API: querydr (§1.8), refund (§1.9) ---------------------------------------------------

    def api(self) -> ResponseReturnValue:
        fault = apply_faults(self.faults)
        if fault is not None:
            return fault
        data = flask.request.get_json(silent=True)
        if not isinstance(data, dict):
            return self._answer({}, "03", "Invalid request format")
        fields = {str(k): _as_str(v) for k, v in data.items()}
        command = fields.get("vnp_Command", "")
        if command == "querydr":
            return self._querydr(fields)
        if command == "refund":
            return self._refund(fields)
        return self._answer(fields, "03", "Invalid request format")

    def _signed(self, fields: Mapping[str, str], data: str) -> bool:
        try:
            verify_hmac((self.secret,), data, fields.get("vnp_SecureHash"), ALGORITHM)
        except SignatureVerificationError:
            return False
        return True

    def _querydr(self, fields: Mapping[str, str]) -> ResponseReturnValue:
        if not self._signed(fields, querydr_hash_data(fields)):
            return self._answer(fields, "97", "Invalid Checksum")
        if fields.get("vnp_TmnCode") != self.provider.tmn_code:
            return self._answer(fields, "02", "Merchant is not valid")
        with self.lock:
            txn = self.transactions.get(fields.get("vnp_TxnRef", ""))
            if txn is None:
                return self._answer(fields, "91", "Transaction not found")
            body = {
                "vnp_Amount": str(txn.amount * 100),  # §1.8: VND × 100 like every VNPAY amount
                "vnp_BankCode": txn.bank_code,
                "vnp_PayDate": txn.pay_date,
                "vnp_TransactionNo": txn.transaction_no,
                "vnp_TransactionType": "01",  # §1.7: payment
                "vnp_TransactionStatus": txn.status,
                "vnp_OrderInfo": txn.order_info,
                "vnp_PromotionCode": "",
                "vnp_PromotionAmount": "",
            }
        return self._answer(fields, "00", "QueryDR Success", extra=body)

    def _refund(self, fields: Mapping[str, str]) -> ResponseReturnValue:
        """§1.9: partial (03) or full (02) refunds of a paid transaction; Σ refunds ≤ the paid amount."""
        if not self._signed(fields, refund_hash_data(fields)):
            return self._answer(fields, "97", "Invalid Checksum", refund=True)
        if fields.get("vnp_TmnCode") != self.provider.tmn_code:
            return self._answer(fields, "02", "Merchant is not valid", refund=True)
        raw = fields.get("vnp_Amount", "")
        if not re.fullmatch(r"[1-9][0-9]*00", raw) or fields.get("vnp_TransactionType") not in {"02", "03"}:
            return self._answer(fields, "03", "Invalid request format", refund=True)
        amount = int(raw) // 100
        with self.lock:
            txn = self.transactions.get(fields.get("vnp_TxnRef", ""))
            if txn is None:
                return self._answer(fields, "91", "Transaction not found", refund=True)
            if txn.status != "00" and txn.refunded == 0:
                return self._answer(fields, "95", "Transaction is not successful", refund=True)
            if txn.refunded + amount > txn.amount:
                return self._answer(fields, "03", "Refund amount exceeds the paid amount", refund=True)
            txn.refunded += amount
            body = {
                "vnp_Amount": raw,
                "vnp_BankCode": txn.bank_code,
                "vnp_PayDate": txn.pay_date,
                "vnp_TransactionNo": random_digits(8),
                "vnp_TransactionType": fields["vnp_TransactionType"],
                "vnp_TransactionStatus": "00",
                "vnp_OrderInfo": fields.get("vnp_OrderInfo", ""),
            }
        return self._answer(fields, "00", "Refund success", extra=body, refund=True)

    def _answer(
        self,
        fields: Mapping[str, str],
        code: str,
        message: str,
        *,
        extra: Mapping[str, str] | None = None,
        refund: bool = False,
    ) -> ResponseReturnValue:
        """A signed JSON answer (§1.8 / §1.9 response order), also for errors so the caller can trust it."""
        body: dict[str, str] = {
            "vnp_ResponseId": uuid.uuid4().hex,
            "vnp_Command": fields.get("vnp_Command", ""),
            "vnp_ResponseCode": code,
            "vnp_Message": message,
            "vnp_TmnCode": self.provider.tmn_code,
            "vnp_TxnRef": fields.get("vnp_TxnRef", ""),
            **(extra or {}),
        }
        hash_data = refund_response_hash_data(body) if refund else query_response_hash_data(body)
        body["vnp_SecureHash"] = hmac_hex(self.secret, hash_data, ALGORITHM)
        return flask.jsonify(body)


def create_blueprint(
    provider: VnpayProvider, *, ipn_url: str, http: requests.Session | None = None
) -> VnpayEmulatorBlueprint:
    """The VNPAY emulator, to register at ``url_prefix="/_emulator/vnpay"`` (contract §10).

    Args:
        provider: supplies the terminal code and signing secret the emulator shares with the gateway.
        ipn_url: where IPNs go (§1.1: configured per terminal at VNPAY, not sent in the pay request).
        http: the session used to send IPNs (injected by tests).
    """
    return VnpayEmulatorBlueprint(provider, ipn_url=ipn_url, http=http)


class Forge(NotificationForge):
    """VNPAY's IPN as VNPAY sends it: a GET whose query is signed per §1.3 (used by the contract suite)."""

    # §1.6 (vnp_ResponseCode): 00 paid; 07 debited but suspected -> investigate; the rest did not happen.
    result_codes: ClassVar[Mapping[str, Outcome]] = {
        "00": Outcome.SUCCEEDED,
        "07": Outcome.UNKNOWN,
        **dict.fromkeys(sorted(FAILED_RESPONSE_CODES), Outcome.FAILED),
    }
    success_code: ClassVar[str] = "00"
    signed_fields: ClassVar[tuple[str, ...]] = (
        "vnp_Amount",
        "vnp_BankCode",
        "vnp_BankTranNo",
        "vnp_CardType",
        "vnp_OrderInfo",
        "vnp_PayDate",
        "vnp_ResponseCode",
        "vnp_TmnCode",
        "vnp_TransactionNo",
        "vnp_TransactionStatus",
        "vnp_TxnRef",
    )

    def notification(
        self,
        *,
        reference: str,
        amount: int,
        result_code: str,
        provider_txn_id: str,
        secret: str | None = None,
    ) -> CallbackRequest:
        params = {
            "vnp_TmnCode": self.provider.tmn_code,  # type: ignore[attr-defined]
            "vnp_Amount": str(amount * 100),
            "vnp_BankCode": "NCB",
            "vnp_BankTranNo": f"VNP{provider_txn_id}",
            "vnp_CardType": "ATM",
            "vnp_OrderInfo": f"Thanh toan {reference}",
            "vnp_PayDate": to_vnp_date(emulator_now()),
            "vnp_ResponseCode": result_code,
            "vnp_TransactionNo": provider_txn_id,
            "vnp_TransactionStatus": "00" if result_code == "00" else "02",
            "vnp_TxnRef": reference,
        }
        query = signed_query(secret or self.secret, params)
        return CallbackRequest(method="GET", args=dict(parse_qsl(query)), headers={}, body=b"")

    def tamper(self, request: CallbackRequest, field_name: str) -> CallbackRequest:
        args = dict(request.args)
        value = args[field_name]
        args[field_name] = value[:-1] + ("1" if value[-1:] != "1" else "2") if value else "X"
        return CallbackRequest(method=request.method, args=args, headers=request.headers, body=request.body)

    def strip_signature(self, request: CallbackRequest) -> CallbackRequest:
        args = {k: v for k, v in request.args.items() if k != "vnp_SecureHash"}
        return CallbackRequest(method=request.method, args=args, headers=request.headers, body=request.body)
