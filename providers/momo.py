"""MoMo payment gateway adapter, API v2 "all-in-one" (providers.md §2).

Create (§2.2) is a signed server-to-server POST that answers a ``payUrl`` to send the citizen to; the
result arrives as a signed IPN POST with a JSON body (§2.3) and a display-only browser redirect carrying the
same fields in its query string; ``/v2/gateway/api/query`` (§2.4) covers lost IPNs and ``/refund`` (§2.5)
returns money. Every signature is ``hex(HMAC_SHA256(secretKey, raw))`` over ``key=value`` pairs in a→z order,
with the raw (not URL-encoded) values and the ``accessKey`` included (§2.1). Amounts are plain integer VND.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Final, NoReturn

import requests

from gateway.domain.errors import (
    GatewayError,
    MalformedNotification,
    ProviderUnavailable,
    SignatureVerificationError,
)
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
from providers.vnpay import ascii_order_info

log = logging.getLogger(__name__)

# Defaults used when no MOMO_* variable is set: the gateway's own emulator (contract §2, §10).
EMULATOR_PARTNER_CODE: Final = "GWDEMOMOMO"
# Not real credentials: the emulator's public keys, so the demo needs no MoMo account (contract §10).
EMULATOR_ACCESS_KEY: Final = "GWDEMOACCESSKEY"
EMULATOR_SECRET_KEY: Final = "emulator-momo-secret-key"  # noqa: S105
EMULATOR_ENDPOINT_PATH: Final = "/_emulator/momo"

# §2.1: MOMO_ENDPOINT is the host; the gateway appends these paths.
CREATE_PATH: Final = "/v2/gateway/api/create"
QUERY_PATH: Final = "/v2/gateway/api/query"
REFUND_PATH: Final = "/v2/gateway/api/refund"

ALGORITHM: Final = "sha256"  # §2.1: HMAC-SHA256, lowercase hex

# §2.2 requestType values we offer; captureWallet (MoMo app / QR) unless the citizen picked ATM.
CAPTURE_WALLET: Final = "captureWallet"
PAY_WITH_ATM: Final = "payWithATM"
DEFAULT_METHOD: Final = CAPTURE_WALLET

# §2.1 amount limits per requestType, inclusive (wallet: [INF]).
AMOUNT_LIMITS: Final[Mapping[str, tuple[int, int]]] = {
    CAPTURE_WALLET: (1_000, 50_000_000),
    PAY_WITH_ATM: (10_000, 50_000_000),
}
# §2.5: the smallest refund (10 000 for ATM payments).
REFUND_MINIMUM: Final[Mapping[str, int]] = {CAPTURE_WALLET: 1_000, PAY_WITH_ATM: 10_000}

# §2.2: partnerName/storeId are free text shown on MoMo's page; storeId defaults to the partner code.
PARTNER_NAME: Final = "Cong thanh toan dich vu cong"

# §2.1: orderId must match this; our references (gateway/domain/references.py) always do.
ORDER_ID_RE: Final = re.compile(r"^[0-9a-zA-Z]([-_.]*[0-9a-zA-Z]+)*$")
REQUEST_ID_MAX: Final = 50  # §2.1: requestId is String(50)
_DIGITS_RE: Final = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() would accept "²"

# ---- signed field sets (§2.2-§2.5), already in the a→z order of §2.1 ---------------------------------

CREATE_SIGNATURE_KEYS: Final = (
    "accessKey",
    "amount",
    "extraData",
    "ipnUrl",
    "orderId",
    "orderInfo",
    "partnerCode",
    "redirectUrl",
    "requestId",
    "requestType",
)
IPN_SIGNATURE_KEYS: Final = (
    "accessKey",
    "amount",
    "extraData",
    "message",
    "orderId",
    "orderInfo",
    "orderType",
    "partnerCode",
    "payType",
    "requestId",
    "responseTime",
    "resultCode",
    "transId",
)
QUERY_SIGNATURE_KEYS: Final = ("accessKey", "orderId", "partnerCode", "requestId")
REFUND_SIGNATURE_KEYS: Final = (
    "accessKey",
    "amount",
    "description",
    "orderId",
    "partnerCode",
    "requestId",
    "transId",
)

# ---- resultCode (§2.6) --------------------------------------------------------------------------------

# Every code §2.6 documents, in its order.
DOCUMENTED_RESULT_CODES: Final = (
    "0",
    "9000",
    "8000",
    "7000",
    "7002",
    "1000",
    "10",
    "11",
    "12",
    "13",
    "20",
    "21",
    "22",
    "40",
    "41",
    "42",
    "43",
    "1001",
    "1002",
    "1003",
    "1004",
    "1005",
    "1006",
    "1007",
    "1017",
    "1026",
    "1080",
    "1081",
    "1088",
    "4001",
    "4100",
    "98",
    "99",
)

SUCCESS_CODE: Final = "0"
# Not final yet: 1000 initiated / 8000 waiting for the user to re-confirm / 7000, 7002 processing (by MoMo,
# by the payment provider) / 9000 authorized awaiting capture: we never send autoCapture=false, so MoMo
# captures on its own and a final IPN follows / 43 a transaction for this orderId is already in progress.
PENDING_CODES: Final = frozenset({"1000", "7000", "7002", "8000", "9000", "43"})
# The citizen's payment did not happen and will not:
# - 1001 insufficient funds, 1002 rejected by the issuer, 1003 cancelled after authorization (merchant or
#   timeout), 1004 over the payment limit, 1005 URL/QR expired, 1006 user declined, 1007 account inactive,
#   1017 cancelled by merchant, 1026 promotion restriction, 4001 account restricted, 4100 user login failed,
#   98 QR generation failed: the citizen's side failed.
# - 10 maintenance, 11 access denied, 12 unsupported API version, 13 merchant authentication failed,
#   20 bad request format, 21 invalid amount, 22 amount out of range, 42 orderId invalid/not found: MoMo
#   refused the request itself; in a signed IPN about this orderId that means no money moved.
PAYMENT_FAILED_CODES: Final = frozenset(
    {
        "1001",
        "1002",
        "1003",
        "1004",
        "1005",
        "1006",
        "1007",
        "1017",
        "1026",
        "4001",
        "4100",
        "98",
        "10",
        "11",
        "12",
        "13",
        "20",
        "21",
        "22",
        "42",
    }
)
# Deliberately UNKNOWN (re-queried, never FAILED): 40 duplicated requestId and 41 duplicated orderId refuse a
# *repeated* request and say nothing about the first one, which may well have been paid; 99 is MoMo's own
# "unknown error"; 1080/1081/1088 are refund codes that do not describe a payment. Any undocumented code too.

# §2.2 create: codes that mean "not now" rather than "no": maintenance, processing, unknown error, a similar
# transaction in progress. The attempt becomes unknown (re-queried), never failed.
CREATE_UNAVAILABLE_CODES: Final = frozenset({"10", "7000", "7002", "99", "43"})

# §2.4 query: these codes describe the *query request* (signature, format, unknown orderId, a duplicate
# requestId, MoMo's own trouble), not the payment. The caller decides, as for VNPAY's querydr 91.
QUERY_ERROR_CODES: Final = frozenset({"10", "11", "12", "13", "20", "21", "22", "40", "41", "42", "43", "99"})

# §2.5 refund answers.
REFUND_PENDING_CODES: Final = frozenset({"1000", "7000", "7002"})
# 1080 refund failed, 1081 rejected (already refunded / amount too large), 1088 original not refundable, and
# the request errors 11, 12, 13, 20, 21, 22, 42 (42: the purchase's transId is unknown): no money moved.
# 40/41 (duplicated requestId/orderId) are NOT here: a refund with this orderId may already exist, so the
# answer is UNKNOWN and must be resolved with query_refund, never retried blindly. 10, 43, 99 likewise.
REFUND_FAILED_CODES: Final = frozenset({"1080", "1081", "1088", "11", "12", "13", "20", "21", "22", "42"})
# query_refund (§2.4 on the refund's orderId): a refund transaction that failed reports a refund code or a
# transaction failure code.
REFUND_QUERY_FAILED_CODES: Final = frozenset(
    {"1080", "1081", "1088", *(PAYMENT_FAILED_CODES - QUERY_ERROR_CODES)}
)


def _classify(result_code: str, pending: frozenset[str], failed: frozenset[str]) -> Outcome:
    """SUCCEEDED for the success code, PENDING / FAILED by the given tables, anything else UNKNOWN."""
    if result_code == SUCCESS_CODE:
        return Outcome.SUCCEEDED
    if result_code in pending:
        return Outcome.PENDING
    if result_code in failed:
        return Outcome.FAILED
    return Outcome.UNKNOWN


def payment_outcome(result_code: str) -> Outcome:
    """The outcome of a payment whose IPN/redirect (§2.3) carries ``result_code`` (§2.6, table above)."""
    return _classify(result_code, PENDING_CODES, PAYMENT_FAILED_CODES)


def query_outcome(result_code: str) -> Outcome:
    """The outcome of a payment according to a query answer (§2.4): request errors say nothing about it."""
    if result_code in QUERY_ERROR_CODES:
        return Outcome.UNKNOWN
    return payment_outcome(result_code)


def refund_outcome(result_code: str) -> Outcome:
    """The outcome of a refund according to the refund answer (§2.5)."""
    return _classify(result_code, REFUND_PENDING_CODES, REFUND_FAILED_CODES)


def refund_query_outcome(result_code: str) -> Outcome:
    """The outcome of a refund according to a query on the refund's own orderId (§2.4)."""
    return _classify(result_code, REFUND_PENDING_CODES, REFUND_QUERY_FAILED_CODES)


# --------------------------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------------------------


def raw_value(value: Any) -> str:
    """One value as it appears in a string-to-sign: the raw text, never re-serialised (§2.1).

    Strings are used as they are (:func:`loads_raw` keeps JSON numbers as their source text, so ``50000``
    stays ``50000`` and a float ``50000.0`` stays ``50000.0``); ints are rendered in decimal; ``None`` is
    empty, as a missing field. Anything else is rendered as compact JSON, so that it fails the signature
    rather than crashing.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _raw(fields: Mapping[str, Any], keys: tuple[str, ...]) -> str:
    # §2.1: every key of the set appears, an empty value too (``extraData=``).
    return "&".join(f"{key}={raw_value(fields.get(key))}" for key in keys)


def create_signature_raw(fields: Mapping[str, Any]) -> str:
    """The create request's string-to-sign (§2.2). ``fields`` must include ``accessKey``."""
    return _raw(fields, CREATE_SIGNATURE_KEYS)


def ipn_signature_raw(fields: Mapping[str, Any]) -> str:
    """The IPN/redirect string-to-sign (§2.3). ``fields`` must include ``accessKey``."""
    return _raw(fields, IPN_SIGNATURE_KEYS)


def query_signature_raw(fields: Mapping[str, Any]) -> str:
    """The query request's string-to-sign (§2.4). ``fields`` must include ``accessKey``."""
    return _raw(fields, QUERY_SIGNATURE_KEYS)


def refund_signature_raw(fields: Mapping[str, Any]) -> str:
    """The refund request's string-to-sign (§2.5). ``fields`` must include ``accessKey``."""
    return _raw(fields, REFUND_SIGNATURE_KEYS)


def sign(secret: str, raw: str) -> str:
    """``hex(HMAC_SHA256(secret, raw))`` (§2.1)."""
    return hmac_hex(secret, raw, ALGORITHM)


class JsonNumber(str):
    """A JSON number's exact source text, as :func:`loads_raw` keeps it (``50000``, ``5e4``, ``50000.0``)."""

    __slots__ = ()


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"JSON constant {name} is not allowed")


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            # Which copy did MoMo sign? Ambiguous input is never trusted.
            raise ValueError(f"duplicate JSON key {key!r}")
        result[key] = value
    return result


def loads_raw(body: bytes | str) -> Any:
    """Parse MoMo JSON keeping every number as its source text, a :class:`JsonNumber` (§2.3: raw values).

    ``amount``, ``transId``, ``resultCode`` and ``responseTime`` are JSON numbers; re-serialising a parsed
    number (``5e4`` → ``50000.0``) would sign other bytes than MoMo did. Duplicate keys, NaN/Infinity and
    invalid UTF-8 raise ValueError.
    """
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    return json.loads(
        text,
        parse_int=JsonNumber,
        parse_float=JsonNumber,
        parse_constant=_reject_constant,
        object_pairs_hook=_unique_pairs,
    )


def parse_int_field(value: Any) -> int | None:
    """A JSON integer (kept as text by :func:`loads_raw`) or an ASCII-digit string as int; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and _DIGITS_RE.fullmatch(value):
        return int(value)
    return None


def from_epoch_ms(value: Any) -> datetime | None:
    """MoMo's ``responseTime`` (epoch milliseconds, §2.1) as an aware UTC datetime, or None."""
    ms = parse_int_field(value)
    if ms is None:
        return None
    try:
        # Integer arithmetic: no float rounding of the milliseconds.
        return datetime.fromtimestamp(ms // 1000, UTC) + timedelta(milliseconds=ms % 1000)
    except (OverflowError, OSError, ValueError):
        return None


def _order_info(text: str, reference: str) -> str:
    # §2.2: orderInfo is required; an all-symbol description would sanitise to "".
    return ascii_order_info(text) or ascii_order_info(f"Thanh toan {reference}")


def new_request_id(reference: str) -> str:
    """A unique ``requestId`` (§2.1: String(50), the idempotency key): the reference plus a short random."""
    return f"{reference[: REQUEST_ID_MAX - 9]}-{secrets.token_hex(4)}"


def _code(value: Any) -> str | None:
    number = parse_int_field(value)
    return None if number is None else str(number)


def _txn_id(value: Any) -> str | None:
    # §2.3: transId is a Long; 0 or absent means MoMo created no transaction.
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if value else None
    if isinstance(value, str):
        return None if value.strip("0") == "" else value
    return None


def _as_str(value: Any) -> str:
    return "" if value is None else str(value)


def _plain(fields: Mapping[str, Any]) -> dict[str, Any]:
    """For the audit trail: JsonNumber texts (also nested ones, e.g. refundTrans) as plain str."""
    return {str(k): _plain_value(v) for k, v in fields.items()}


def _plain_value(value: Any) -> Any:
    if isinstance(value, str):
        return str(value)  # str() of a str subclass is an exact str
    if isinstance(value, Mapping):
        return _plain(value)
    if isinstance(value, list):
        return [_plain_value(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------------------
# Adapter
# --------------------------------------------------------------------------------------------------------


class MomoProvider(PaymentProvider):
    """MoMo API v2 all-in-one: create, IPN POST JSON, redirect GET, query, refund (providers.md §2)."""

    code: ClassVar[str] = "momo"
    display_name: ClassVar[str] = "MoMo"
    # §2.2 requestType: the citizen chooses; PaymentRequest.method carries the choice.
    methods: ClassVar[tuple[str, ...]] = (CAPTURE_WALLET, PAY_WITH_ATM)
    # §2.3: the IPN is an HTTP POST with a JSON body.
    callback_methods: ClassVar[tuple[str, ...]] = ("POST",)

    def __init__(
        self,
        credentials: ProviderCredentials,
        *,
        base_url: str,
        session: requests.Session | None = None,
        timeout: float = 30.0,  # §2.1: MoMo asks for >= 30 s on create and refund
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(credentials, base_url=base_url, session=session, timeout=timeout, clock=clock)
        if credentials.emulated:
            self.partner_code = EMULATOR_PARTNER_CODE
            self.access_key = EMULATOR_ACCESS_KEY
            self.secrets: tuple[str, ...] = (EMULATOR_SECRET_KEY,)
            self.endpoint = base_url.rstrip("/") + EMULATOR_ENDPOINT_PATH
        else:
            # contract §2: the secret may hold "new,old"; split_secrets raises ValueError when it is empty.
            self.secrets = split_secrets(credentials.get("MOMO_SECRET_KEY"))
            self.partner_code = credentials.get("MOMO_PARTNER_CODE").strip()
            self.access_key = credentials.get("MOMO_ACCESS_KEY").strip()
            self.endpoint = credentials.get("MOMO_ENDPOINT").strip().rstrip("/")
            missing = [
                name
                for name, value in (
                    ("MOMO_PARTNER_CODE", self.partner_code),
                    ("MOMO_ACCESS_KEY", self.access_key),
                    ("MOMO_ENDPOINT", self.endpoint),
                )
                if not value
            ]
            if missing:
                raise ValueError(f"momo: missing {', '.join(missing)}")
        self.create_url = self.endpoint + CREATE_PATH
        self.query_url = self.endpoint + QUERY_PATH
        self.refund_url = self.endpoint + REFUND_PATH

    @property
    def secret(self) -> str:
        """The key outgoing messages are signed with: the first of ``new,old`` (contract §2)."""
        return self.secrets[0]

    def _signed(
        self, body: dict[str, Any], raw_builder: Callable[[Mapping[str, Any]], str]
    ) -> dict[str, Any]:
        # §2.1: accessKey is part of the string-to-sign but not of the body.
        body["signature"] = sign(self.secret, raw_builder({**body, "accessKey": self.access_key}))
        return body

    # ---- create (§2.2) --------------------------------------------------------------------------------

    def build_payment_request(self, request: PaymentRequest) -> PaymentRedirect:
        amount = request.amount
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise ValueError(f"amount must be a positive integer number of VND, got {amount!r}")
        request_type = request.method or DEFAULT_METHOD
        if request_type not in AMOUNT_LIMITS:
            raise GatewayError(f"MoMo does not offer the method {request_type!r}")
        low, high = AMOUNT_LIMITS[request_type]
        if not low <= amount <= high:
            # §2.1: MoMo would refuse it (22); say so without a round trip.
            raise GatewayError(f"MoMo {request_type} accepts {low}..{high} VND, not {amount}")
        if not ORDER_ID_RE.fullmatch(request.reference):
            raise ValueError(f"reference {request.reference!r} is not a valid MoMo orderId (§2.1)")

        request_id = new_request_id(request.reference)
        body = self._signed(
            {
                "partnerCode": self.partner_code,
                "partnerName": PARTNER_NAME,
                "storeId": self.partner_code,
                "requestId": request_id,
                "amount": amount,
                "orderId": request.reference,
                "orderInfo": _order_info(request.order_info, request.reference),
                "redirectUrl": request.return_url,
                "ipnUrl": request.notify_url,
                "lang": "en" if request.locale == "en" else "vi",
                "extraData": "",
                "requestType": request_type,
            },
            create_signature_raw,
        )
        data = self._create_call(request.reference, body)

        code = _code(data.get("resultCode"))
        if code is None:
            raise ProviderUnavailable("MoMo create answered without a usable resultCode")
        message = _as_str(data.get("message"))[:200]
        if code != SUCCESS_CODE:
            if code in CREATE_UNAVAILABLE_CODES:
                raise ProviderUnavailable(f"MoMo create: resultCode {code} {message}".strip())
            raise GatewayError(f"MoMo refused the payment: resultCode {code} {message}".strip())
        # The create answer's signature is not reliably present (§2.2 [DOC/INF]): we check the echo instead.
        if (
            _as_str(data.get("orderId") or request.reference) != request.reference
            or _as_str(data.get("requestId") or request_id) != request_id
        ):
            raise ProviderUnavailable("MoMo create answered about another order")
        pay_url = data.get("payUrl")
        if not isinstance(pay_url, str) or not pay_url.startswith(("https://", "http://")):
            raise ProviderUnavailable("MoMo create answered resultCode 0 without a payUrl")
        return PaymentRedirect(
            redirect_url=pay_url,
            provider_data={"requestId": request_id, "requestType": request_type},
        )

    def _create_call(self, reference: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """POST the create request; trouble becomes ProviderUnavailable (the attempt is unknown)."""
        data, problem = self._post(self.create_url, body)
        if data is None:
            log.warning("momo create %s: %s", reference, problem)
            raise ProviderUnavailable(f"MoMo create: {problem}")
        return data

    def _post(self, url: str, body: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str]:
        """POST JSON; (answer, "") or (None, "unreachable" | "http_NNN" | "garbage").

        A 4xx whose body is MoMo's JSON with a resultCode is MoMo's answer (it reports request errors that
        way); anything else that is not 2xx, and any non-JSON body, is trouble.
        """
        try:
            resp = self.session.post(url, json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            log.warning("momo %s unreachable: %s", url, exc)
            return None, "unreachable"
        status = resp.status_code
        if status >= 500 or status < 200 or 300 <= status < 400:
            return None, f"http_{status}"
        try:
            data = loads_raw(resp.content)
        except ValueError:
            return None, f"http_{status}" if status >= 400 else "garbage"
        if not isinstance(data, dict) or "resultCode" not in data:
            return None, f"http_{status}" if status >= 400 else "garbage"
        return data, ""

    # ---- IPN and redirect (§2.3) ----------------------------------------------------------------------

    def verify_callback(self, request: CallbackRequest) -> Notification:
        try:
            fields = loads_raw(request.body)
        except ValueError as exc:
            # Nothing readable carries a signature we could check.
            raise SignatureVerificationError(f"MoMo IPN body is not readable JSON: {exc}") from exc
        if not isinstance(fields, dict):
            raise SignatureVerificationError("MoMo IPN body is not a JSON object")
        return self._verify(fields)

    def verify_return(self, request: CallbackRequest) -> Notification:
        # §2.3: the redirect carries the IPN's fields and signature as query parameters; display only.
        return self._verify(dict(request.args))

    def _verify(self, fields: Mapping[str, Any]) -> Notification:
        # Signature first, on the raw received values; our accessKey, never one from the message.
        signature = fields.get("signature")
        verify_hmac(
            self.secrets,
            ipn_signature_raw({**fields, "accessKey": self.access_key}),
            signature if isinstance(signature, str) else None,
            ALGORITHM,
        )

        if fields.get("partnerCode") != self.partner_code:
            raise MalformedNotification(f"MoMo message for partner {fields.get('partnerCode')!r}, not ours")
        reference = fields.get("orderId")
        if not isinstance(reference, str) or not reference:
            raise MalformedNotification("signed MoMo message without orderId")
        amount = parse_int_field(fields.get("amount"))
        if amount is None:
            raise MalformedNotification(
                f"MoMo amount is not an integer number of VND: {fields.get('amount')!r}"
            )
        result_code = _code(fields.get("resultCode"))
        if result_code is None:
            raise MalformedNotification(f"MoMo resultCode is not an integer: {fields.get('resultCode')!r}")
        trans_id = fields.get("transId")
        # §2.3: transId is a Long. A JSON number that is not an integer (or an object...) is malformed; a
        # string (the redirect's query parameters are all strings) is taken as MoMo signed it.
        if (trans_id is not None and not isinstance(trans_id, str)) or (
            isinstance(trans_id, JsonNumber) and parse_int_field(trans_id) is None
        ):
            raise MalformedNotification(f"MoMo transId is not a Long: {trans_id!r}")
        return Notification(
            reference=reference,
            outcome=payment_outcome(result_code),
            amount=amount,
            provider_txn_id=_txn_id(trans_id),
            result_code=result_code,
            paid_at=from_epoch_ms(fields.get("responseTime")),
            raw=_plain(fields),
        )

    def acknowledge(self, ack: Ack) -> AckResponse:
        # §2.3: MoMo wants 204 No Content, empty body, for a message we took in (also a recorded failure, an
        # unknown order or a wrong amount: those are ours to resolve). A bad signature or our own error gets
        # a non-2xx so that MoMo flags/retries it.
        if ack is Ack.BAD_SIGNATURE:
            return AckResponse(status=400, body=b"", content_type=None)
        if ack is Ack.ERROR:
            return AckResponse(status=500, body=b"", content_type=None)
        return AckResponse(status=204, body=b"", content_type=None)

    # ---- query (§2.4) ---------------------------------------------------------------------------------

    def _query_call(self, order_id: str) -> tuple[dict[str, Any] | None, str]:
        body = self._signed(
            {
                "partnerCode": self.partner_code,
                "requestId": new_request_id(order_id),
                "orderId": order_id,
                "lang": "vi",
            },
            query_signature_raw,
        )
        data, problem = self._post(self.query_url, body)
        if data is None:
            return None, problem
        # §2.4 documents no signature on the answer: we check that it is about our order instead.
        if (
            _as_str(data.get("orderId") or order_id) != order_id
            or _as_str(data.get("partnerCode") or self.partner_code) != self.partner_code
        ):
            return None, "garbage"
        return data, ""

    def query(self, request: QueryRequest) -> Notification:
        reference = request.reference
        data, problem = self._query_call(reference)
        if data is None:
            log.warning("momo query %s: %s", reference, problem)
            return _unknown(reference, problem)
        code = _code(data.get("resultCode"))
        if code is None:
            return _unknown(reference, "garbage", data)
        outcome = query_outcome(code)
        raw_amount = data.get("amount")
        amount = parse_int_field(raw_amount)
        if raw_amount not in (None, "") and amount is None:
            return _unknown(reference, "garbage", data)
        if outcome is Outcome.SUCCEEDED and amount is None:
            return _unknown(reference, "garbage", data)
        return Notification(
            reference=reference,
            outcome=outcome,
            amount=amount,
            provider_txn_id=_txn_id(data.get("transId")),
            result_code=code,
            # responseTime is when the query was answered; lastUpdated [INF] is the transaction's own time.
            paid_at=from_epoch_ms(data.get("lastUpdated")) if outcome is Outcome.SUCCEEDED else None,
            raw=_plain(data),
        )

    # ---- refund (§2.5) and its status (§2.4 on the refund's orderId) -----------------------------------

    def refund(self, request: RefundRequest) -> RefundResult:
        trans_id = parse_int_field(request.payment_txn_id)
        if not trans_id:
            # Nothing was sent: without the purchase's transId MoMo cannot refund it.
            return RefundResult(Outcome.FAILED, "missing_trans_id", message="no MoMo transId for the payment")
        method = _as_str(request.payment_provider_data.get("requestType")) or DEFAULT_METHOD
        minimum = REFUND_MINIMUM.get(method, REFUND_MINIMUM[DEFAULT_METHOD])
        if (
            isinstance(request.amount, bool)
            or not isinstance(request.amount, int)
            or request.amount < minimum
        ):
            return RefundResult(
                Outcome.FAILED, "amount_out_of_range", message=f"MoMo refunds at least {minimum} VND (§2.5)"
            )
        if not ORDER_ID_RE.fullmatch(request.reference):
            raise ValueError(f"refund reference {request.reference!r} is not a valid MoMo orderId (§2.1)")
        body = self._signed(
            {
                "partnerCode": self.partner_code,
                # §2.5: a NEW unique orderId for the refund, not the purchase's.
                "orderId": request.reference,
                "requestId": new_request_id(request.reference),
                "amount": request.amount,
                "transId": trans_id,
                "lang": "vi",
                "description": ascii_order_info(request.reason),
            },
            refund_signature_raw,
        )
        data, problem = self._post(self.refund_url, body)
        if data is None:
            log.warning("momo refund %s: %s", request.reference, problem)
            return RefundResult(Outcome.UNKNOWN, problem)
        if _as_str(data.get("orderId") or request.reference) != request.reference:
            return RefundResult(Outcome.UNKNOWN, "garbage", raw=_plain(data))
        return _refund_result(data, refund_outcome)

    def query_refund(self, request: RefundRequest) -> RefundResult:
        data, problem = self._query_call(request.reference)
        if data is None:
            log.warning("momo refund query %s: %s", request.reference, problem)
            return RefundResult(Outcome.UNKNOWN, problem)
        return _refund_result(data, refund_query_outcome)


def _refund_result(data: Mapping[str, Any], mapping: Callable[[str], Outcome]) -> RefundResult:
    code = _code(data.get("resultCode"))
    if code is None:
        return RefundResult(Outcome.UNKNOWN, "garbage", raw=_plain(data))
    outcome = mapping(code)
    return RefundResult(
        outcome=outcome,
        result_code=code,
        provider_reference=_txn_id(data.get("transId")) if outcome is Outcome.SUCCEEDED else None,
        message=_as_str(data.get("message"))[:200],
        raw=_plain(data),
    )


def _unknown(reference: str, result_code: str, raw: Mapping[str, Any] | None = None) -> Notification:
    # Base contract: an unreachable or unreadable provider is UNKNOWN (re-queried later), never FAILED.
    return Notification(
        reference=reference,
        outcome=Outcome.UNKNOWN,
        amount=None,
        provider_txn_id=None,
        result_code=result_code,
        raw=_plain(raw or {}),
    )
