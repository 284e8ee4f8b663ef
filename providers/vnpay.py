"""VNPAY payment gateway adapter, API v2.1.0 (providers.md §1).

The pay request is a signed redirect URL (§1.2, §1.3); the result arrives as a signed IPN GET (§1.5) and a
display-only browser redirect with the same parameters (§1.4); ``querydr`` (§1.8) covers lost IPNs. Amounts
cross the wire as VND × 100 and every date is ``yyyyMMddHHmmss`` in GMT+7.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, Final
from urllib.parse import quote_plus
from zoneinfo import ZoneInfo

import requests

from gateway.domain.errors import MalformedNotification, SignatureVerificationError
from gateway.settings import ProviderCredentials
from providers.base import (
    Ack,
    AckResponse,
    CallbackRequest,
    Notification,
    Outcome,
    PaymentProvider,
    PaymentRedirect,
    PaymentRequest,
    QueryRequest,
    RefundRequest,
    RefundResult,
)
from providers.signing import hmac_hex, split_secrets, verify_hmac

log = logging.getLogger(__name__)

# Defaults used when no VNPAY_* variable is set: the gateway's own emulator (contract §2, §10).
EMULATOR_TMN_CODE: Final = "GWDEMO01"
# Not a real credential: the emulator's public key, so the demo needs no VNPAY account (contract §10).
EMULATOR_HASH_SECRET: Final = "emulator-vnpay-hash-secret"  # noqa: S105
EMULATOR_PAY_PATH: Final = "/_emulator/vnpay/paymentv2/vpcpay.html"
EMULATOR_API_PATH: Final = "/_emulator/vnpay/merchant_webapi/api/transaction"

VERSION: Final = "2.1.0"  # §1.2: vnp_SecureHashType is not sent from 2.1.0 on
ALGORITHM: Final = "sha512"  # §1.3 step 5: HMAC-SHA512, lowercase hex
VN_TZ: Final = ZoneInfo("Asia/Ho_Chi_Minh")  # §1.2: every vnp_*Date is GMT+7
VNP_DATE_FORMAT: Final = "%Y%m%d%H%M%S"
_VNP_DATE_RE: Final = re.compile(r"[0-9]{14}")
_DIGITS_RE: Final = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() would accept "²"
ORDER_INFO_MAX: Final = 255

# §1.3 step 1: never part of the string-to-sign.
_HASH_KEYS: Final = frozenset({"vnp_SecureHash", "vnp_SecureHashType"})

# §1.8: the pipe-joined field orders of querydr (request and response) and §1.9 of refund.
QUERYDR_HASH_FIELDS: Final = (
    "vnp_RequestId",
    "vnp_Version",
    "vnp_Command",
    "vnp_TmnCode",
    "vnp_TxnRef",
    "vnp_TransactionDate",
    "vnp_CreateDate",
    "vnp_IpAddr",
    "vnp_OrderInfo",
)
QUERY_RESPONSE_HASH_FIELDS: Final = (
    "vnp_ResponseId",
    "vnp_Command",
    "vnp_ResponseCode",
    "vnp_Message",
    "vnp_TmnCode",
    "vnp_TxnRef",
    "vnp_Amount",
    "vnp_BankCode",
    "vnp_PayDate",
    "vnp_TransactionNo",
    "vnp_TransactionType",
    "vnp_TransactionStatus",
    "vnp_OrderInfo",
    "vnp_PromotionCode",
    "vnp_PromotionAmount",
)
REFUND_HASH_FIELDS: Final = (
    "vnp_RequestId",
    "vnp_Version",
    "vnp_Command",
    "vnp_TmnCode",
    "vnp_TransactionType",
    "vnp_TxnRef",
    "vnp_Amount",
    "vnp_TransactionNo",
    "vnp_TransactionDate",
    "vnp_CreateBy",
    "vnp_CreateDate",
    "vnp_IpAddr",
    "vnp_OrderInfo",
)
# §1.9: the refund answer is signed like the querydr answer without the two promotion fields.
REFUND_RESPONSE_HASH_FIELDS: Final = QUERY_RESPONSE_HASH_FIELDS[:-2]

# §1.6: codes that say the payment did not happen. 07 is deliberately absent: the money was debited and the
# transaction is only *suspected*, so it must be investigated (UNKNOWN), never treated as failed.
FAILED_RESPONSE_CODES: Final = frozenset({"09", "10", "11", "12", "13", "24", "51", "65", "75", "79", "99"})

# §1.5: the merchant's IPN answers (contract §6). 00 is also the answer for a recorded *failed* payment.
ACK_CODES: Final[Mapping[Ack, tuple[str, str]]] = {
    Ack.OK: ("00", "Confirm Success"),
    Ack.NOT_FOUND: ("01", "Order not found"),
    Ack.ALREADY: ("02", "Order already confirmed"),
    Ack.BAD_AMOUNT: ("04", "Invalid amount"),
    Ack.BAD_SIGNATURE: ("97", "Invalid signature"),
    Ack.ERROR: ("99", "Unknown error"),
}

_LOCALES: Final = {"vi": "vn", "en": "en"}  # §1.2: VNPAY spells Vietnamese "vn"


# --------------------------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------------------------


def sign_string(params: Mapping[str, str]) -> str:
    """The string-to-sign of a pay URL, return URL or IPN (§1.3).

    Drops ``vnp_SecureHash``/``vnp_SecureHashType`` and empty values, sorts by key and form-encodes key and
    value with :func:`urllib.parse.quote_plus` (space → ``+``, uppercase ``%XX``). ``quote_plus`` keeps
    ``~`` where PHP would encode it: §1.3 lists such encoder differences, which is why
    :func:`ascii_order_info` restricts ``vnp_OrderInfo`` to ``[A-Za-z0-9 ._:-]``, on which every encoder
    agrees.
    """
    pairs = sorted((k, v) for k, v in params.items() if k not in _HASH_KEYS and v != "")
    return "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in pairs)


def signed_query(secret: str, params: Mapping[str, str]) -> str:
    """The query string VNPAY sends or expects: the string-to-sign plus ``&vnp_SecureHash=`` (§1.3 step 6)."""
    data = sign_string(params)
    return f"{data}&vnp_SecureHash={hmac_hex(secret, data, ALGORITHM)}"


def querydr_hash_data(fields: Mapping[str, str]) -> str:
    """The querydr request's string-to-sign: raw values (not URL-encoded) joined by ``|``, §1.8 order."""
    return _pipe_join(fields, QUERYDR_HASH_FIELDS)


def query_response_hash_data(resp: Mapping[str, Any]) -> str:
    """The querydr answer's string-to-sign (§1.8 response order; missing fields count as empty)."""
    return _pipe_join(resp, QUERY_RESPONSE_HASH_FIELDS)


def refund_hash_data(fields: Mapping[str, str]) -> str:
    """The refund request's string-to-sign: raw values joined by ``|`` in the §1.9 order."""
    return _pipe_join(fields, REFUND_HASH_FIELDS)


def refund_response_hash_data(resp: Mapping[str, Any]) -> str:
    """The refund answer's string-to-sign (§1.9 response order; missing fields count as empty)."""
    return _pipe_join(resp, REFUND_RESPONSE_HASH_FIELDS)


def _pipe_join(values: Mapping[str, Any], order: tuple[str, ...]) -> str:
    # §1.8: "missing fields as empty strings". JSON answers should only hold strings; anything else is
    # rendered with str() so that a mismatch shows up as a bad signature rather than a crash.
    return "|".join("" if values.get(name) is None else str(values.get(name)) for name in order)


def to_vnp_date(dt: datetime) -> str:
    """An aware instant as VNPAY's ``yyyyMMddHHmmss`` in GMT+7 (§1.2)."""
    if dt.tzinfo is None:
        # The gateway only holds aware UTC instants (storage/types.py); a naive one is a bug, not "local".
        raise ValueError("naive datetime given to to_vnp_date")
    return dt.astimezone(VN_TZ).strftime(VNP_DATE_FORMAT)


def from_vnp_date(value: str) -> datetime:
    """VNPAY's GMT+7 ``yyyyMMddHHmmss`` (§1.2, §1.5) as an aware UTC datetime. Raises ValueError."""
    if not _VNP_DATE_RE.fullmatch(value):
        raise ValueError(f"not a yyyyMMddHHmmss date: {value!r}")
    return datetime.strptime(value, VNP_DATE_FORMAT).replace(tzinfo=VN_TZ).astimezone(UTC)


_ORDER_INFO_DROP_RE: Final = re.compile(r"[^A-Za-z0-9 ._:-]")
_SPACES_RE: Final = re.compile(r" {2,}")


def ascii_order_info(text: str) -> str:
    """``vnp_OrderInfo`` as VNPAY wants it: Vietnamese without diacritics, no special characters (§1.2).

    Diacritics are stripped by NFD decomposition; ``đ``/``Đ`` have no decomposition and are mapped by hand.
    Only ``[A-Za-z0-9 ._:-]`` is kept so that every URL encoder signs the same bytes (§1.3); whitespace
    runs collapse to one space and the result is at most 255 characters.
    """
    text = text.replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    spaced = re.sub(r"\s", " ", stripped)
    kept = _ORDER_INFO_DROP_RE.sub("", spaced)
    return _SPACES_RE.sub(" ", kept).strip()[:ORDER_INFO_MAX].strip()


def _amount_from_vnp(raw: str) -> int:
    """``vnp_Amount`` (VND × 100, §1.2) as integer VND; MalformedNotification unless a whole VND amount."""
    if not _DIGITS_RE.fullmatch(raw):
        raise MalformedNotification(f"vnp_Amount is not a non-negative integer: {raw!r}")
    hundredths = int(raw)
    if hundredths % 100:
        raise MalformedNotification(f"vnp_Amount is not a whole number of VND: {raw!r}")
    return hundredths // 100


def _order_info(text: str, reference: str) -> str:
    # §1.2 requires a non-empty description; an all-symbol one would sanitise to "" and be dropped (§1.3).
    return ascii_order_info(text) or ascii_order_info(f"Thanh toan {reference}")


def _txn_no(raw: str | None) -> str | None:
    # §1.5: vnp_TransactionNo is "0" when VNPAY created no transaction (e.g. a cancel).
    if raw is None or raw.strip("0") == "":
        return None
    return raw


def _paid_at(raw: str | None) -> datetime | None:
    try:
        return from_vnp_date(raw) if raw else None
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------------------
# Adapter
# --------------------------------------------------------------------------------------------------------


class VnpayProvider(PaymentProvider):
    """VNPAY API v2.1.0: redirect, IPN GET, return GET, querydr (providers.md §1)."""

    code: ClassVar[str] = "vnpay"
    display_name: ClassVar[str] = "VNPAY"
    # §1.2 vnp_BankCode: the usual method codes; None lets the customer pick on VNPAY's page.
    methods: ClassVar[tuple[str, ...]] = ("VNPAYQR", "VNBANK", "INTCARD")
    # §1.5: the IPN is an HTTP GET.
    callback_methods: ClassVar[tuple[str, ...]] = ("GET",)

    def __init__(
        self,
        credentials: ProviderCredentials,
        *,
        base_url: str,
        session: requests.Session | None = None,
        timeout: float = 30.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(credentials, base_url=base_url, session=session, timeout=timeout, clock=clock)
        if credentials.emulated:
            root = base_url.rstrip("/")
            self.tmn_code = EMULATOR_TMN_CODE
            self.secrets: tuple[str, ...] = (EMULATOR_HASH_SECRET,)
            self.pay_url = root + EMULATOR_PAY_PATH
            self.api_url = root + EMULATOR_API_PATH
            return
        # contract §2: the secret may hold "new,old"; split_secrets raises ValueError when it is empty.
        self.secrets = split_secrets(credentials.get("VNPAY_HASH_SECRET"))
        self.tmn_code = credentials.get("VNPAY_TMN_CODE").strip()
        self.pay_url = credentials.get("VNPAY_PAY_URL").strip()
        self.api_url = credentials.get("VNPAY_API_URL").strip()
        missing = [
            name
            for name, value in (
                ("VNPAY_TMN_CODE", self.tmn_code),
                ("VNPAY_PAY_URL", self.pay_url),
                ("VNPAY_API_URL", self.api_url),
            )
            if not value
        ]
        if missing:
            raise ValueError(f"vnpay: missing {', '.join(missing)}")

    @property
    def secret(self) -> str:
        """The key outgoing messages are signed with: the first of ``new,old`` (contract §2)."""
        return self.secrets[0]

    # ---- pay (§1.2, §1.3) ---------------------------------------------------------------------------

    def build_payment_request(self, request: PaymentRequest) -> PaymentRedirect:
        if isinstance(request.amount, bool) or not isinstance(request.amount, int) or request.amount <= 0:
            raise ValueError(f"amount must be a positive integer number of VND, got {request.amount!r}")
        create_date = to_vnp_date(request.created_at)
        params: dict[str, str] = {
            "vnp_Version": VERSION,
            "vnp_Command": "pay",
            "vnp_TmnCode": self.tmn_code,
            "vnp_Amount": str(request.amount * 100),  # §1.2: VND × 100, integer arithmetic only
            "vnp_CreateDate": create_date,
            "vnp_ExpireDate": to_vnp_date(request.expires_at),
            "vnp_CurrCode": "VND",
            # §1.2 makes vnp_IpAddr mandatory and sign_string drops empty values, so never send it empty.
            "vnp_IpAddr": request.client_ip or "127.0.0.1",
            "vnp_Locale": _LOCALES.get(request.locale, "vn"),
            "vnp_OrderInfo": _order_info(request.order_info, request.reference),
            "vnp_OrderType": "billpayment",
            "vnp_ReturnUrl": request.return_url,
            "vnp_TxnRef": request.reference,
        }
        # §1.2: omitting vnp_BankCode lets the customer choose on VNPAY. request.method is accepted as the
        # bank code only when it is one of our method codes, so a free-form value never reaches VNPAY.
        bank_code = request.bank_code or (request.method if request.method in self.methods else None)
        if bank_code:
            params["vnp_BankCode"] = bank_code
        # §1.1: the IPN URL is configured per terminal at VNPAY, so request.notify_url is not sent.
        separator = "&" if "?" in self.pay_url else "?"
        return PaymentRedirect(
            redirect_url=self.pay_url + separator + signed_query(self.secret, params),
            # §1.8: querydr needs the original vnp_CreateDate as vnp_TransactionDate.
            provider_data={"vnp_CreateDate": create_date, "vnp_TxnRef": request.reference},
        )

    # ---- IPN and return (§1.4, §1.5) -----------------------------------------------------------------

    def verify_callback(self, request: CallbackRequest) -> Notification:
        return self._verify(request)

    def verify_return(self, request: CallbackRequest) -> Notification:
        # §1.4: same parameters and signature as the IPN; the caller only displays the result.
        return self._verify(request)

    def _verify(self, request: CallbackRequest) -> Notification:
        # §1.3 (official demos): only vnp_* keys take part; other query parameters are ignored.
        params = {k: v for k, v in request.args.items() if k.startswith("vnp_")}
        # Signature first: nothing of an unverified message is read (§1.5 check order).
        verify_hmac(self.secrets, sign_string(params), params.get("vnp_SecureHash"), ALGORITHM)

        missing = [k for k in ("vnp_TxnRef", "vnp_Amount", "vnp_ResponseCode") if not params.get(k)]
        if missing:
            raise MalformedNotification(f"signed VNPAY message without {', '.join(missing)}")
        response_code = params["vnp_ResponseCode"]
        return Notification(
            reference=params["vnp_TxnRef"],
            outcome=self._payment_outcome(response_code, params.get("vnp_TransactionStatus", "")),
            amount=_amount_from_vnp(params["vnp_Amount"]),
            provider_txn_id=_txn_no(params.get("vnp_TransactionNo")),
            result_code=response_code,
            paid_at=_paid_at(params.get("vnp_PayDate")),
            raw=params,
        )

    @staticmethod
    def _payment_outcome(response_code: str, transaction_status: str) -> Outcome:
        # §1.5: paid iff both codes are 00 (the current demo; older copies used OR, which is unsafe).
        if response_code == "00" and transaction_status == "00":
            return Outcome.SUCCEEDED
        if response_code in FAILED_RESPONSE_CODES:
            return Outcome.FAILED
        # 07 (debited, suspected), 00 with a non-00 status, an undocumented code: a human/querydr decides.
        return Outcome.UNKNOWN

    def claimed_reference(self, request: CallbackRequest) -> str | None:
        return request.args.get("vnp_TxnRef") or None

    def acknowledge(self, ack: Ack) -> AckResponse:
        code, message = ACK_CODES[ack]
        # §1.5: always HTTP 200; VNPAY reads RspCode from the compact JSON body.
        body = json.dumps({"RspCode": code, "Message": message}, separators=(",", ":"))
        return AckResponse(status=200, body=body.encode(), content_type="application/json")

    # ---- querydr (§1.8) ------------------------------------------------------------------------------

    def query(self, request: QueryRequest) -> Notification:
        body: dict[str, str] = {
            # §1.8: Alphanumeric[1,32], unique per day: a uuid4 in hex is 32 characters.
            "vnp_RequestId": uuid.uuid4().hex,
            "vnp_Version": VERSION,
            "vnp_Command": "querydr",
            "vnp_TmnCode": self.tmn_code,
            "vnp_TxnRef": request.reference,
            "vnp_OrderInfo": _order_info(request.order_info, request.reference),
            # §1.8: the original payment's vnp_CreateDate, kept in provider_data by build_payment_request.
            "vnp_TransactionDate": str(request.provider_data.get("vnp_CreateDate") or "")
            or to_vnp_date(request.created_at),
            "vnp_CreateDate": to_vnp_date(datetime.now(UTC)),
            "vnp_IpAddr": "127.0.0.1",
        }
        if request.provider_txn_id:
            body["vnp_TransactionNo"] = request.provider_txn_id  # §1.8: optional, not part of the hash
        body["vnp_SecureHash"] = hmac_hex(self.secret, querydr_hash_data(body), ALGORITHM)

        reference = request.reference
        try:
            resp = self.session.post(self.api_url, json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            log.warning("vnpay querydr %s unreachable: %s", reference, exc)
            return _unknown(reference, "unreachable")
        if not 200 <= resp.status_code < 300:
            log.warning("vnpay querydr %s answered HTTP %s", reference, resp.status_code)
            return _unknown(reference, f"http_{resp.status_code}")
        try:
            data = resp.json()
        except ValueError:
            return _unknown(reference, "garbage")
        if not isinstance(data, dict):
            return _unknown(reference, "garbage")
        try:
            verify_hmac(
                self.secrets, query_response_hash_data(data), _as_str(data.get("vnp_SecureHash")), ALGORITHM
            )
        except SignatureVerificationError:
            log.warning("vnpay querydr %s: bad response signature", reference)
            return _unknown(reference, "bad_signature", data)
        return self._query_notification(reference, data)

    # ---- refund (§1.9) ------------------------------------------------------------------------------

    def refund(self, request: RefundRequest) -> RefundResult:
        # §1.9: 02 = full refund, 03 = partial; a refund that completes an earlier partial one is still
        # partial as far as VNPAY is concerned (it is not the whole original amount).
        full = request.amount == request.payment_amount and request.already_refunded == 0
        body: dict[str, str] = {
            "vnp_RequestId": uuid.uuid4().hex,
            "vnp_Version": VERSION,
            "vnp_Command": "refund",
            "vnp_TmnCode": self.tmn_code,
            "vnp_TransactionType": "02" if full else "03",
            "vnp_TxnRef": request.payment_reference,
            "vnp_Amount": str(request.amount * 100),  # §1.9: × 100, ≤ the paid amount
            # §1.9: optional; the official demos send "0" when it is not known.
            "vnp_TransactionNo": request.payment_txn_id or "0",
            "vnp_TransactionDate": str(request.payment_provider_data.get("vnp_CreateDate") or "")
            or to_vnp_date(request.payment_created_at),
            "vnp_CreateBy": ascii_order_info(request.actor)[:250] or "gateway",
            "vnp_CreateDate": to_vnp_date(request.created_at),
            "vnp_IpAddr": "127.0.0.1",
            "vnp_OrderInfo": _order_info(f"Hoan tien {request.reason}", request.reference),
        }
        body["vnp_SecureHash"] = hmac_hex(self.secret, refund_hash_data(body), ALGORITHM)
        try:
            resp = self.session.post(self.api_url, json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            log.warning("vnpay refund %s unreachable: %s", request.reference, exc)
            return RefundResult(outcome=Outcome.UNKNOWN, result_code="unreachable")
        if not 200 <= resp.status_code < 300:
            return RefundResult(outcome=Outcome.UNKNOWN, result_code=f"http_{resp.status_code}")
        try:
            data = resp.json()
        except ValueError:
            return RefundResult(outcome=Outcome.UNKNOWN, result_code="garbage")
        if not isinstance(data, dict):
            return RefundResult(outcome=Outcome.UNKNOWN, result_code="garbage")
        try:
            verify_hmac(
                self.secrets, refund_response_hash_data(data), _as_str(data.get("vnp_SecureHash")), ALGORITHM
            )
        except SignatureVerificationError:
            log.warning("vnpay refund %s: bad response signature", request.reference)
            return RefundResult(outcome=Outcome.UNKNOWN, result_code="bad_signature", raw=data)
        code = _as_str(data.get("vnp_ResponseCode"))
        message = _as_str(data.get("vnp_Message"))
        if code == "00":
            # §1.7: 05/06 = refund being processed / sent to the bank; 00 = done.
            status = _as_str(data.get("vnp_TransactionStatus"))
            outcome = Outcome.PENDING if status in {"05", "06"} else Outcome.SUCCEEDED
            return RefundResult(
                outcome=outcome,
                result_code=status or code,
                message=message,
                provider_reference=_txn_no(_as_str(data.get("vnp_TransactionNo"))),
                raw=data,
            )
        # §1.9: 02/03/91/95/97 are definite refusals; 94 = a refund is already being processed; 99 other.
        if code in {"02", "03", "91", "95", "97"}:
            return RefundResult(outcome=Outcome.FAILED, result_code=code, message=message, raw=data)
        return RefundResult(outcome=Outcome.UNKNOWN, result_code=code or "garbage", message=message, raw=data)

    def query_refund(self, request: RefundRequest) -> RefundResult:
        # VNPAY answers a refund synchronously (§1.9); a later state would come from querydr, whose
        # vnp_TransactionType 02/03 and status 05/06/09 describe the refund (§1.7).
        note = self.query(
            QueryRequest(
                reference=request.payment_reference,
                amount=request.payment_amount,
                created_at=request.payment_created_at,
                order_info=f"Hoan tien {request.reason}",
                provider_txn_id=request.payment_txn_id,
                provider_data=request.payment_provider_data,
            )
        )
        status = _as_str(note.raw.get("vnp_TransactionStatus"))
        if status in {"05", "06"}:
            return RefundResult(outcome=Outcome.PENDING, result_code=status, raw=note.raw)
        if status == "09":
            return RefundResult(outcome=Outcome.FAILED, result_code=status, raw=note.raw)
        return RefundResult(outcome=Outcome.UNKNOWN, result_code=status or note.result_code, raw=note.raw)

    @staticmethod
    def _query_notification(reference: str, data: Mapping[str, Any]) -> Notification:
        response_code = _as_str(data.get("vnp_ResponseCode"))
        if response_code != "00":
            # §1.8: 91 (not found), 94, 97, 99…: the query failed, not the payment. The caller decides.
            return _unknown(reference, response_code or "garbage", data)
        if _as_str(data.get("vnp_TxnRef")) != reference:
            # A signed answer about another order says nothing about this one.
            return _unknown(reference, "garbage", data)
        status = _as_str(data.get("vnp_TransactionStatus"))
        # §1.7: 00 paid, 01 not completed, 02 error; 04 (reversed), 07 (suspected) etc. need a human.
        outcome = {"00": Outcome.SUCCEEDED, "01": Outcome.PENDING, "02": Outcome.FAILED}.get(
            status, Outcome.UNKNOWN
        )
        raw_amount = _as_str(data.get("vnp_Amount"))
        try:
            amount = _amount_from_vnp(raw_amount) if raw_amount else None
        except MalformedNotification:
            return _unknown(reference, "garbage", data)
        if outcome is Outcome.SUCCEEDED and amount is None:
            return _unknown(reference, "garbage", data)
        return Notification(
            reference=reference,
            outcome=outcome,
            amount=amount,
            provider_txn_id=_txn_no(_as_str(data.get("vnp_TransactionNo"))),
            # With vnp_ResponseCode 00 the payment's state is vnp_TransactionStatus (§1.8, §1.7).
            result_code=status or "garbage",
            paid_at=_paid_at(_as_str(data.get("vnp_PayDate"))),
            raw=dict(data),
        )


def _unknown(reference: str, result_code: str, raw: Mapping[str, Any] | None = None) -> Notification:
    # Base contract: an unreachable or unreadable provider is UNKNOWN (re-queried later), never FAILED.
    return Notification(
        reference=reference,
        outcome=Outcome.UNKNOWN,
        amount=None,
        provider_txn_id=None,
        result_code=result_code,
        raw=dict(raw or {}),
    )


def _as_str(value: Any) -> str:
    return "" if value is None else str(value)
