"""ZaloPay adapter, API v2 (providers.md §3).

Create an order server-to-server (§3.2) and send the citizen to its ``order_url``; ZaloPay POSTs a JSON
callback **only when money was collected** (§3.3) and redirects the browser back with a checksum (§3.4,
display only). ``/v2/query`` (§3.5) covers lost callbacks for 48 h; ``/v2/refund`` and ``/v2/query_refund``
(§3.6) handle refunds. Every MAC is ``hex(HMAC_SHA256(key, fields joined by "|"))`` over raw values (§3.1):
``key1`` signs our requests, ``key2`` signs what ZaloPay sends us.

Requests are sent as ``application/json`` (§3.1 accepts JSON or a form): integers stay integers and the
``embed_data``/``item`` JSON strings need no second layer of form encoding.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Final
from zoneinfo import ZoneInfo

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

# Defaults used when no ZALOPAY_* variable is set: the gateway's own emulator (contract §2, §10).
# app_id 2553 is ZaloPay's *public* sandbox app (§7 item 5); the emulator deliberately uses another id and
# keys of its own so that a sandbox key can never be mistaken for an emulator one (and vice versa).
EMULATOR_APP_ID: Final = 9999
# Not real credentials: the emulator's published dev keys, so the demo needs no ZaloPay account (§10).
EMULATOR_KEY1: Final = "emulator-zalopay-9999-key1-dev-only"
EMULATOR_KEY2: Final = "emulator-zalopay-9999-key2-dev-only"
EMULATOR_PATH: Final = "/_emulator/zalopay"

# §3.1: paths appended to ZALOPAY_ENDPOINT (the base, e.g. https://sb-openapi.zalopay.vn).
CREATE_PATH: Final = "/v2/create"
QUERY_PATH: Final = "/v2/query"
REFUND_PATH: Final = "/v2/refund"
QUERY_REFUND_PATH: Final = "/v2/query_refund"

ALGORITHM: Final = "sha256"  # §3.1: HMAC-SHA256, lowercase hex
VN_TZ: Final = ZoneInfo("Asia/Ho_Chi_Minh")  # §3.2: the yymmdd prefixes are GMT+7 dates
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

APP_USER: Final = "dvc"  # §3.2: non-empty, ≤ 50; one merchant-side "user" for every public-service payment
APP_TRANS_ID_MAX: Final = 40  # §3.2
DESCRIPTION_MAX: Final = 256  # §3.2
EXPIRE_MIN_SECONDS: Final = 300  # §3.2 expire_duration_seconds range
EXPIRE_MAX_SECONDS: Final = 2_592_000
QUERY_WINDOW: Final = timedelta(hours=48)  # §3.5: /v2/query only answers for 48 h after creation

# §3.2 / §3.5 / §3.6: the field orders of each request MAC.
CREATE_MAC_FIELDS: Final = ("app_id", "app_trans_id", "app_user", "amount", "app_time", "embed_data", "item")
REFUND_MAC_FIELDS: Final = ("app_id", "zp_trans_id", "amount", "description", "timestamp")
QUERY_REFUND_MAC_FIELDS: Final = ("app_id", "m_refund_id", "timestamp")
# §3.4: the browser redirect's checksum order.
REDIRECT_CHECKSUM_FIELDS: Final = (
    "appid",
    "apptransid",
    "pmcid",
    "bankcode",
    "amount",
    "discountamount",
    "status",
)

# Our method codes -> what the create request asks for. ZaloPay's own gateway page (order_url) is steered by
# embed_data.preferred_payment_method (§3.2, e.g. ["vietqr"]) with bank_code left empty; the list values
# (zalopay_wallet, domestic_card, account, international_card, vietqr) are ZaloPay's gateway names [INF: seen
# consistently in public integrations, not in providers.md]. A concrete bank (request.bank_code) goes in
# bank_code.
METHOD_PREFERENCES: Final[Mapping[str, tuple[str, ...]]] = {
    "zalopayapp": ("zalopay_wallet",),
    "ATM": ("domestic_card", "account"),
    "CC": ("international_card",),
    "vietqr": ("vietqr",),
}

# §3.2: create refusals that are worth retrying (rate limit, system error, maintenance): the attempt is
# *unknown*, never *failed*. Every other return_code 2 is a definite refusal (-68, -401, -402...).
CREATE_RETRYABLE_SUB_CODES: Final = frozenset({-429, -500, -999})
# §3.5/§3.6 (zlp.yaml code lists): sub codes about ZaloPay's systems rather than about the transaction.
SYSTEM_TROUBLE_SUB_CODES: Final = frozenset({-32, -33, -88, -135, -301, -429, -500, -999})
# §3.6: "illegal client/signature/app/data": our request was refused, nothing was done.
REQUEST_REJECTED_SUB_CODES: Final = frozenset({-401, -402, -403, -405})
SUB_CODE_EXPIRED: Final = -54  # §3.5: the order expired unpaid
# §3.6: "refund successful (card refund in 3-5 working days)".
SUB_CODE_REFUND_SUCCESSFUL: Final = -101

# §3.3: the merchant's answer bodies (contract §6). ZaloPay reads return_code only.
ACK_BODIES: Final[Mapping[Ack, tuple[int, str]]] = {
    Ack.OK: (1, "success"),
    # Unknown order / wrong amount: the notification is already stored (contract §6) and raised for finance.
    # Answering 1 stops ZaloPay's retries, which could not change anything; 2 would claim a duplicate and
    # 0 would make ZaloPay call again for nothing.
    Ack.NOT_FOUND: (1, "success: unknown order recorded for review"),
    Ack.BAD_AMOUNT: (1, "success: amount mismatch recorded for review"),
    Ack.ALREADY: (2, "already processed"),  # §3.3 (v1 docs, [INF]): duplicate callback
    Ack.BAD_SIGNATURE: (-1, "mac not equal"),  # §3.3 official samples
    # §3.3: return_code 0 -> "ZaloPay server will call back again (at most 3 times)".
    Ack.ERROR: (0, "internal error, retry"),
}

_APP_TRANS_ID_RE: Final = re.compile(r"([0-9]{6})_(.+)", re.DOTALL)
_DIGITS_RE: Final = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() would accept "²"
_SIGNED_INT_RE: Final = re.compile(r"-?[0-9]+")


# --------------------------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------------------------


def _pipe_join(values: Mapping[str, Any], order: tuple[str, ...]) -> str:
    # §3.1: raw values joined by "|". JSON integers are rendered with str(); a missing field counts as "" so a
    # message lacking one fails the MAC instead of crashing.
    return "|".join("" if values.get(name) is None else str(values.get(name)) for name in order)


def create_mac_data(fields: Mapping[str, Any]) -> str:
    """``/v2/create``'s MAC input: ``app_id|app_trans_id|app_user|amount|app_time|embed_data|item`` (§3.2)."""
    return _pipe_join(fields, CREATE_MAC_FIELDS)


def query_mac_data(fields: Mapping[str, Any], key1: str) -> str:
    """``/v2/query``'s MAC input: ``app_id|app_trans_id|key1`` — key1 is also part of the data (§3.5)."""
    return f"{_pipe_join(fields, ('app_id', 'app_trans_id'))}|{key1}"


def refund_mac_data(fields: Mapping[str, Any]) -> str:
    """``/v2/refund``'s MAC input: ``app_id|zp_trans_id|amount|description|timestamp`` (§3.6)."""
    return _pipe_join(fields, REFUND_MAC_FIELDS)


def query_refund_mac_data(fields: Mapping[str, Any]) -> str:
    """``/v2/query_refund``'s MAC input: ``app_id|m_refund_id|timestamp`` (§3.6)."""
    return _pipe_join(fields, QUERY_REFUND_MAC_FIELDS)


def redirect_checksum_data(params: Mapping[str, Any]) -> str:
    """The browser redirect's checksum input (§3.4).

    ``appid|apptransid|pmcid|bankcode|amount|discountamount|status``.
    """
    return _pipe_join(params, REDIRECT_CHECKSUM_FIELDS)


def gmt7_yymmdd(instant: datetime) -> str:
    """The GMT+7 calendar date of an aware instant as ``yymmdd`` (§3.2, §3.6)."""
    if instant.tzinfo is None:
        # The gateway only holds aware UTC instants; a naive one is a bug, not "local time".
        raise ValueError("naive datetime given to gmt7_yymmdd")
    return instant.astimezone(VN_TZ).strftime("%y%m%d")


def make_app_trans_id(reference: str, now: datetime) -> str:
    """``yymmdd_<reference>``, ``yymmdd`` the GMT+7 date of ``now`` (§3.2: ZaloPay refuses another day)."""
    value = f"{gmt7_yymmdd(now)}_{reference}"
    if not reference or len(value) > APP_TRANS_ID_MAX:
        raise ValueError(f"app_trans_id must be 8..{APP_TRANS_ID_MAX} characters, got {value!r}")
    return value


def reference_from_app_trans_id(app_trans_id: str) -> str:
    """Our reference: what follows the ``yymmdd_`` prefix. Raises ValueError for another shape."""
    match = _APP_TRANS_ID_RE.fullmatch(app_trans_id)
    if not match:
        raise ValueError(f"not a yymmdd_<reference> app_trans_id: {app_trans_id!r}")
    return match.group(2)


def make_m_refund_id(app_id: int | str, reference: str, now: datetime) -> str:
    """``yymmdd_<app_id>_<reference>`` (§3.6 format ``yymmdd_appid_xxxxxxxxxx``), GMT+7 date."""
    return f"{gmt7_yymmdd(now)}_{app_id}_{reference}"


def epoch_ms(instant: datetime) -> int:
    """Milliseconds since the Unix epoch, in integer arithmetic (app_time, timestamp: §3.2, §3.6)."""
    if instant.tzinfo is None:
        raise ValueError("naive datetime given to epoch_ms")
    return (instant - _EPOCH) // timedelta(milliseconds=1)


def from_epoch_ms(value: Any) -> datetime | None:
    """``server_time`` (ms, §3.3) as an aware UTC datetime; None when it is not a plausible integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    try:
        return _EPOCH + timedelta(milliseconds=value)
    except OverflowError:
        return None


def expire_duration_seconds(now: datetime, expires_at: datetime) -> int:
    """Seconds until ``expires_at``, clamped to ZaloPay's 300…2 592 000 (§3.2)."""
    remaining = (expires_at - now) // timedelta(seconds=1)
    return max(EXPIRE_MIN_SECONDS, min(EXPIRE_MAX_SECONDS, remaining))


def _code(value: Any) -> int | None:
    """A return code as an int: JSON integers, or integer strings from a lenient server; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _SIGNED_INT_RE.fullmatch(value.strip()):
        return int(value.strip())
    return None


def _as_str(value: Any) -> str:
    return "" if value is None else str(value)


def _txn_id(value: Any) -> str | None:
    # zp_trans_id is an int64 (§3.5 spec); 0 means "no ZaloPay transaction yet".
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if value > 0 else None
    if isinstance(value, str) and value.strip() and value.strip().strip("0"):
        return value.strip()
    return None


def _result_code(return_code: int, sub_code: int | None) -> str:
    # The return_code alone unless the sub code says more ("2/-54" expired, "1/-101" card refund pending).
    if sub_code is None or sub_code in (1, return_code):
        return str(return_code)
    return f"{return_code}/{sub_code}"


def _description(text: str, fallback: str) -> str:
    # §3.2: description ≤ 256, shown to the payer; ASCII only (the same sanitiser as VNPAY's order info) so
    # that no encoder or terminal can disagree on the bytes. Never empty.
    return (ascii_order_info(text) or ascii_order_info(fallback))[:DESCRIPTION_MAX]


def _utc_now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------------------------------------
# Adapter
# --------------------------------------------------------------------------------------------------------


class ZalopayProvider(PaymentProvider):
    """ZaloPay API v2: create order, JSON callback, redirect checksum, query, refund (providers.md §3).

    Args:
        clock: the current aware UTC instant, for the 48 h query window and refund timestamps (the gateway's
            clock when the app passes it; the wall clock otherwise). Creating an order does not need it: the
            ``yymmdd`` and ``app_time`` come from ``PaymentRequest.created_at``, which the service stamps
            with that same clock just before the call.
    """

    code: ClassVar[str] = "zalopay"
    display_name: ClassVar[str] = "ZaloPay"
    methods: ClassVar[tuple[str, ...]] = ("zalopayapp", "ATM", "CC", "vietqr")
    # §3.3: the callback is an HTTP POST with a JSON body.
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
        super().__init__(credentials, base_url=base_url, session=session, timeout=timeout, clock=clock)
        if credentials.emulated:
            self.app_id: int = EMULATOR_APP_ID
            self.key1s: tuple[str, ...] = (EMULATOR_KEY1,)
            self.key2s: tuple[str, ...] = (EMULATOR_KEY2,)
            self.endpoint = base_url.rstrip("/") + EMULATOR_PATH
            return
        # contract §2: keys may hold "new,old" (sign with the first, verify against each); split_secrets
        # raises ValueError when one is empty.
        self.key1s = split_secrets(credentials.get("ZALOPAY_KEY1"))
        self.key2s = split_secrets(credentials.get("ZALOPAY_KEY2"))
        raw_app_id = credentials.get("ZALOPAY_APP_ID").strip()
        if not _DIGITS_RE.fullmatch(raw_app_id):
            raise ValueError(f"zalopay: ZALOPAY_APP_ID must be an integer (§3.2), got {raw_app_id!r}")
        self.app_id = int(raw_app_id)
        self.endpoint = credentials.get("ZALOPAY_ENDPOINT").strip().rstrip("/")
        if not self.endpoint:
            raise ValueError("zalopay: missing ZALOPAY_ENDPOINT")

    @property
    def key1(self) -> str:
        """The key requests are signed with: the first of ``new,old`` (contract §2)."""
        return self.key1s[0]

    @property
    def key2(self) -> str:
        """ZaloPay's current callback key (the first of ``new,old``); the emulator signs with it."""
        return self.key2s[0]

    def url(self, path: str) -> str:
        return self.endpoint + path

    # ---- create order (§3.2) -------------------------------------------------------------------------

    def build_payment_request(self, request: PaymentRequest) -> PaymentRedirect:
        if isinstance(request.amount, bool) or not isinstance(request.amount, int) or request.amount <= 0:
            raise ValueError(f"amount must be a positive integer number of VND, got {request.amount!r}")
        # request.created_at is "now" for this attempt (the service's clock); ZaloPay wants the *current*
        # GMT+7 date in app_trans_id and app_time within 15 min of the payment (§3.2).
        now = request.created_at
        app_trans_id = make_app_trans_id(request.reference, now)
        app_time = epoch_ms(now)
        embed: dict[str, Any] = {"redirecturl": request.return_url}
        preferred = METHOD_PREFERENCES.get(request.method or "")
        if preferred:
            embed["preferred_payment_method"] = list(preferred)
        body: dict[str, Any] = {
            "app_id": self.app_id,
            "app_user": APP_USER,
            "app_trans_id": app_trans_id,
            "app_time": app_time,
            "expire_duration_seconds": expire_duration_seconds(now, request.expires_at),
            "amount": request.amount,
            "item": "[]",  # §3.2: a JSON array string, "[]" when there are no items
            # Serialised once: the exact string sent is the one signed (§3.2).
            "embed_data": json.dumps(embed, separators=(",", ":")),
            "description": _description(request.order_info, f"Thanh toan {request.reference}"),
            "bank_code": request.bank_code or "",
        }
        if request.notify_url:
            body["callback_url"] = request.notify_url  # §3.2: else the app's default callback URL
        body["mac"] = hmac_hex(self.key1, create_mac_data(body), ALGORITHM)

        try:
            resp = self.session.post(self.url(CREATE_PATH), json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            # Timeout or connection error: ZaloPay may have created the order -> unknown, never failed.
            log.warning("zalopay create %s unreachable: %s", app_trans_id, exc)
            raise ProviderUnavailable(f"zalopay unreachable: {type(exc).__name__}") from exc
        if not 200 <= resp.status_code < 300:
            log.warning("zalopay create %s answered HTTP %s", app_trans_id, resp.status_code)
            raise ProviderUnavailable(f"zalopay answered HTTP {resp.status_code}")
        try:
            data = resp.json()
        except ValueError as exc:
            raise ProviderUnavailable("zalopay answered garbage") from exc
        if not isinstance(data, dict):
            raise ProviderUnavailable("zalopay answered garbage")

        return_code = _code(data.get("return_code"))
        sub_code = _code(data.get("sub_return_code"))
        if return_code == 1:
            order_url = data.get("order_url")
            if not isinstance(order_url, str) or not order_url.startswith(("https://", "http://")):
                raise ProviderUnavailable("zalopay accepted the order without an order_url")
            return PaymentRedirect(
                redirect_url=order_url,
                qr_payload=None,
                provider_data={
                    "app_trans_id": app_trans_id,
                    "zp_trans_token": _as_str(data.get("zp_trans_token")),
                    "app_time": app_time,
                },
            )
        message = _as_str(data.get("sub_return_message")) or _as_str(data.get("return_message"))
        if return_code == 2 and sub_code not in CREATE_RETRYABLE_SUB_CODES:
            # §3.2: a definite refusal (-68 duplicate, -401 bad params, -402 bad app/signature...).
            log.warning("zalopay refused %s: %s %s", app_trans_id, sub_code, message)
            raise GatewayError(f"zalopay refused the order: {sub_code} {message}".strip())
        raise ProviderUnavailable(f"zalopay could not create the order: {return_code}/{sub_code} {message}")

    # ---- callback (§3.3) -----------------------------------------------------------------------------

    def verify_callback(self, request: CallbackRequest) -> Notification:
        # The outer body is parsed from the raw bytes only to take `data` as the exact string ZaloPay sent:
        # the MAC is over that string (never a re-serialisation), and it is checked before data is parsed.
        try:
            outer = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            outer = None
        if not isinstance(outer, dict):
            raise SignatureVerificationError("callback body is not a JSON object: no mac to check")
        data = outer.get("data")
        mac = outer.get("mac")
        if not isinstance(data, str):
            raise SignatureVerificationError("callback without a data string: nothing signed")
        verify_hmac(self.key2s, data, mac if isinstance(mac, str) else None, ALGORITHM)

        # type (1 order, 2 agreement) sits outside the signed data; only order callbacks are ours.
        kind = outer.get("type", 1)
        if _code(kind) != 1:
            raise MalformedNotification(f"not an order callback (type {kind!r})")
        try:
            payload = json.loads(data)
        except ValueError as exc:
            raise MalformedNotification("signed data is not JSON") from exc
        if not isinstance(payload, dict):
            raise MalformedNotification("signed data is not a JSON object")
        self._check_app_id(payload.get("app_id"))
        reference = self._reference(payload.get("app_trans_id"))
        amount = payload.get("amount")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            # Money is an integer number of VND: 10000.0 or "10000" is not understood, never rounded.
            raise MalformedNotification(f"amount is not a non-negative integer: {amount!r}")
        txn_id = _txn_id(payload.get("zp_trans_id"))
        if txn_id is None:
            raise MalformedNotification("signed callback without zp_trans_id")
        # §3.3: ZaloPay only calls back when the money was collected, so every callback is a success.
        return Notification(
            reference=reference,
            outcome=Outcome.SUCCEEDED,
            amount=amount,
            provider_txn_id=txn_id,
            result_code="1",
            paid_at=from_epoch_ms(payload.get("server_time")),
            raw=payload,
        )

    def _check_app_id(self, value: Any) -> None:
        # key2 is per app, so a genuine message always matches; this guards against apps sharing keys.
        if _as_str(value) != str(self.app_id):
            raise MalformedNotification(f"message for another app_id: {value!r}")

    @staticmethod
    def _reference(app_trans_id: Any) -> str:
        try:
            return reference_from_app_trans_id(app_trans_id if isinstance(app_trans_id, str) else "")
        except ValueError as exc:
            raise MalformedNotification(str(exc)) from exc

    # ---- browser redirect (§3.4) ---------------------------------------------------------------------

    def verify_return(self, request: CallbackRequest) -> Notification:
        params = {name: request.args.get(name, "") for name in (*REDIRECT_CHECKSUM_FIELDS, "checksum")}
        verify_hmac(self.key2s, redirect_checksum_data(params), params["checksum"] or None, ALGORITHM)

        self._check_app_id(params["appid"])
        reference = self._reference(params["apptransid"])
        if not _DIGITS_RE.fullmatch(params["amount"]):
            raise MalformedNotification(f"amount is not a non-negative integer: {params['amount']!r}")
        status = params["status"]
        if not status:
            raise MalformedNotification("redirect without status")
        # §3.4: status 1 is paid, anything else is not; display only (the callback/query decide).
        return Notification(
            reference=reference,
            outcome=Outcome.SUCCEEDED if status == "1" else Outcome.FAILED,
            amount=int(params["amount"]),
            provider_txn_id=None,  # the redirect carries no zp_trans_id
            result_code=status,
            raw=dict(request.args),
        )

    def acknowledge(self, ack: Ack) -> AckResponse:
        return_code, message = ACK_BODIES[ack]
        # §3.3: always HTTP 200; ZaloPay reads return_code from the compact JSON body.
        body = json.dumps({"return_code": return_code, "return_message": message}, separators=(",", ":"))
        return AckResponse(status=200, body=body.encode(), content_type="application/json")

    # ---- query (§3.5) --------------------------------------------------------------------------------

    def query(self, request: QueryRequest) -> Notification:
        reference = request.reference
        if self.clock() - request.created_at > QUERY_WINDOW:
            # §3.5: ZaloPay only answers for 48 h; after that its answer would say nothing about the payment.
            return _unknown(reference, "query_window_passed")
        stored = _as_str(request.provider_data.get("app_trans_id"))
        # When create timed out there is no provider_data: the app_trans_id is then rebuilt from the attempt's
        # creation instant, which build_payment_request used. A rebuilt id is a best guess (a create sent
        # across midnight GMT+7 would carry the next day), so "not paid" on a guess proves nothing.
        app_trans_id = stored or make_app_trans_id(reference, request.created_at)
        guessed = not stored
        body: dict[str, Any] = {"app_id": self.app_id, "app_trans_id": app_trans_id}
        body["mac"] = hmac_hex(self.key1, query_mac_data(body, self.key1), ALGORITHM)

        data = self._post(QUERY_PATH, body, f"query {app_trans_id}")
        if isinstance(data, str):
            return _unknown(reference, data)
        return _query_notification(reference, data, guessed=guessed)

    def _post(self, path: str, body: Mapping[str, Any], what: str) -> dict[str, Any] | str:
        """POST JSON; the answer object, or the result_code of an unusable answer. Never raises."""
        try:
            resp = self.session.post(self.url(path), json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            log.warning("zalopay %s unreachable: %s", what, exc)
            return "unreachable"
        if not 200 <= resp.status_code < 300:
            log.warning("zalopay %s answered HTTP %s", what, resp.status_code)
            return f"http_{resp.status_code}"
        try:
            data = resp.json()
        except ValueError:
            return "garbage"
        if not isinstance(data, dict) or _code(data.get("return_code")) is None:
            return "garbage"
        return data

    # ---- refunds (§3.6) ------------------------------------------------------------------------------

    def refund(self, request: RefundRequest) -> RefundResult:
        if isinstance(request.amount, bool) or not isinstance(request.amount, int) or request.amount <= 0:
            raise ValueError(
                f"refund amount must be a positive integer number of VND, got {request.amount!r}"
            )
        if not request.payment_txn_id:
            raise ValueError("a ZaloPay refund needs the payment's zp_trans_id (payment_txn_id)")
        m_refund_id = self.m_refund_id(request)
        body: dict[str, Any] = {
            "app_id": self.app_id,
            "m_refund_id": m_refund_id,
            "zp_trans_id": request.payment_txn_id,
            "amount": request.amount,
            "timestamp": epoch_ms(self.clock()),
            "description": _description(request.reason, f"Hoan tien {request.payment_reference}"),
        }
        what = f"refund {m_refund_id}"
        return self._refund_call(REFUND_PATH, body, refund_mac_data(body), what, m_refund_id, querying=False)

    def query_refund(self, request: RefundRequest) -> RefundResult:
        m_refund_id = self.m_refund_id(request)
        body: dict[str, Any] = {
            "app_id": self.app_id,
            "m_refund_id": m_refund_id,
            "timestamp": epoch_ms(self.clock()),
        }
        what = f"query_refund {m_refund_id}"
        mac_data = query_refund_mac_data(body)
        return self._refund_call(QUERY_REFUND_PATH, body, mac_data, what, m_refund_id, querying=True)

    def _refund_call(
        self, path: str, body: dict[str, Any], mac_data: str, what: str, m_refund_id: str, *, querying: bool
    ) -> RefundResult:
        """POST a refund or query_refund ``body`` signed with key1 over ``mac_data`` (§3.6)."""
        body["mac"] = hmac_hex(self.key1, mac_data, ALGORITHM)
        data = self._post(path, body, what)
        if isinstance(data, str):
            # The refund may or may not have been registered: query_refund will tell, never resend blindly.
            return RefundResult(Outcome.UNKNOWN, data, provider_reference=m_refund_id)
        return _refund_result(m_refund_id, data, querying=querying)

    def m_refund_id(self, request: RefundRequest) -> str:
        """``yymmdd_<app_id>_<reference>`` (§3.6).

        The date is the GMT+7 date of ``request.created_at`` (the refund's creation, stamped just before it
        is sent) rather than of the wall clock, so that :meth:`query_refund` rebuilds the same id from the
        same RefundRequest on any later day.
        """
        return make_m_refund_id(self.app_id, request.reference, request.created_at)


def _query_notification(reference: str, data: Mapping[str, Any], *, guessed: bool) -> Notification:
    return_code = _code(data.get("return_code"))
    sub_code = _code(data.get("sub_return_code"))
    if return_code is None:
        return _unknown(reference, "garbage", data)
    result_code = _result_code(return_code, sub_code)
    if return_code == 1:
        amount = data.get("amount")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            return _unknown(reference, "garbage", data)
        return Notification(
            reference=reference,
            outcome=Outcome.SUCCEEDED,
            amount=amount,
            provider_txn_id=_txn_id(data.get("zp_trans_id")),
            result_code=result_code,
            paid_at=from_epoch_ms(data.get("server_time")),
            raw=dict(data),
        )
    if return_code == 3 and sub_code != SUB_CODE_EXPIRED:
        # §3.5: not paid yet or still processing (is_processing) -> ask again later.
        outcome = Outcome.PENDING
    elif return_code in (2, 3):
        # §3.5: 2 failed; 3 with -54 expired unpaid. Unless the sub code blames ZaloPay's systems or our
        # request (-500, -402...), which says nothing about the payment; and a "failed" answer about a
        # rebuilt app_trans_id may only mean that the guess was wrong.
        trouble = sub_code in SYSTEM_TROUBLE_SUB_CODES or sub_code in REQUEST_REJECTED_SUB_CODES
        outcome = Outcome.UNKNOWN if trouble or guessed else Outcome.FAILED
    else:
        outcome = Outcome.UNKNOWN  # -500, -429, an undocumented code: the query failed, not the payment
    return Notification(
        reference=reference,
        outcome=outcome,
        amount=None,
        provider_txn_id=_txn_id(data.get("zp_trans_id")),
        result_code=result_code,
        raw=dict(data),
    )


def _refund_result(m_refund_id: str, data: Mapping[str, Any], *, querying: bool) -> RefundResult:
    return_code = _code(data.get("return_code"))
    sub_code = _code(data.get("sub_return_code"))
    if return_code is None:
        return RefundResult(Outcome.UNKNOWN, "garbage", provider_reference=m_refund_id, raw=dict(data))
    if return_code < 0 and sub_code is None:
        # zlp.yaml lists -500, -429, -40x as return codes too: read them as a refusal with that sub code.
        return_code, sub_code = 2, return_code
    if return_code == 1:
        outcome = Outcome.SUCCEEDED
    elif return_code == 3:
        # §3.6: 3 = processing, poll query_refund; -101 = done, the card issuer pays out in 3-5 working days.
        outcome = Outcome.SUCCEEDED if sub_code == SUB_CODE_REFUND_SUCCESSFUL else Outcome.PENDING
    elif return_code == 2:
        if sub_code in SYSTEM_TROUBLE_SUB_CODES:
            outcome = Outcome.UNKNOWN  # ZaloPay's trouble: whether the refund was registered is unknown
        elif sub_code == SUB_CODE_REFUND_SUCCESSFUL:
            # §3.6 reads -101 as "refund successful"; some clients read 2/-101 as "m_refund_id not found".
            # Contradictory: a person decides.
            outcome = Outcome.UNKNOWN
        elif querying and sub_code in REQUEST_REJECTED_SUB_CODES:
            outcome = Outcome.UNKNOWN  # our *query* was refused; the refund itself may be fine
        else:
            outcome = Outcome.FAILED
    else:
        outcome = Outcome.UNKNOWN
    # provider_reference is our m_refund_id (what query_refund needs); ZaloPay's refund_id stays in raw.
    return RefundResult(
        outcome=outcome,
        result_code=_result_code(return_code, sub_code),
        provider_reference=m_refund_id,
        message=_as_str(data.get("sub_return_message")) or _as_str(data.get("return_message")),
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
