"""A ZaloPay emulator speaking the real API v2 wire protocol (providers.md §3, contract §10).

``POST /v2/create`` checks our key1 MAC and the ``yymmdd`` prefix like ZaloPay (§3.2) and answers an
``order_url`` on this emulator; ``/pay/<app_trans_id>`` is the checkout page (success / cancel). On success it
POSTs the callback ``{"data", "mac", "type": 1}`` signed with key2 (§3.3: ZaloPay only calls back when the
money was collected) and, in every case, redirects the browser to ``embed_data.redirecturl`` with the §3.4
parameters and checksum. ``/v2/query``, ``/v2/refund`` and ``/v2/query_refund`` (§3.5, §3.6) answer from an
in-memory ledger. Registered at ``/_emulator/zalopay``.

Fault switches for tests live in ``blueprint.faults`` (``app.blueprints["emulator_zalopay"].faults``):
``"slow"`` seconds to sleep on the ``/v2/*`` API endpoints, ``"status"`` an HTTP status to answer there
instead (e.g. 503), ``"garbage"`` (truthy) to answer ``<html>oops`` with 200, ``"drop"`` (truthy) to accept
a payment but never send its callback.

Answer codes the emulator uses beyond §3: a cancelled order answers query ``2/-329`` ("user cancelled",
zlp.yaml) and redirects with ``status=-49``; an unknown ``app_trans_id``/``m_refund_id`` answers ``2/-401``;
an unpaid order answers ``3`` and, once expired, ``2/-54``. ZaloPay's exact codes for these cases are not
published [INF].
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time  # noqa: F401 - tests patch <emulator>.time.sleep, which pages.apply_faults calls
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final
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
from providers.signing import hmac_hex, verify_hmac
from providers.zalopay import (
    ALGORITHM,
    APP_TRANS_ID_MAX,
    DESCRIPTION_MAX,
    EXPIRE_MAX_SECONDS,
    EXPIRE_MIN_SECONDS,
    ZalopayProvider,
    create_mac_data,
    epoch_ms,
    gmt7_yymmdd,
    query_mac_data,
    query_refund_mac_data,
    redirect_checksum_data,
    refund_mac_data,
)

log = logging.getLogger(__name__)

BLUEPRINT_NAME: Final = "emulator_zalopay"
CALLBACK_TIMEOUT_SECONDS: Final = 10.0
DEFAULT_EXPIRE_SECONDS: Final = 900  # when the create request has no expire_duration_seconds [INF]
# Refunds of at least this amount answer "processing" (3) first, so that query_refund polling is exercised.
SLOW_REFUND_AMOUNT: Final = 1_000_000

# Redirect status per button (§3.4: 1 = paid; -49 for a cancel is the emulator's choice [INF]).
STATUS_PAID: Final = "1"
STATUS_CANCELLED: Final = "-49"
# pmcid / callback `channel` per preferred payment method: 38 = ZaloPay wallet (the §7 item 5 example);
# 39 ATM and 36 credit card are the usual ZaloPay channel ids [INF].
CHANNELS: Final[Mapping[str, int]] = {
    "zalopay_wallet": 38,
    "vietqr": 38,
    "domestic_card": 39,
    "account": 39,
    "international_card": 36,
}
DEFAULT_CHANNEL: Final = 38

# §3.2 / zlp.yaml sub_return_codes used in answers.
SUB_DUPLICATE: Final = -68
SUB_BAD_DATA: Final = -401
SUB_BAD_APP_OR_MAC: Final = -402
SUB_EXPIRED: Final = -54
SUB_USER_CANCELLED: Final = -329
RETURN_MESSAGES: Final[Mapping[int, str]] = {
    1: "Giao dịch thành công",
    2: "Giao dịch thất bại",
    3: "Giao dịch đang xử lý",
}

_TRANS_ID_RE: Final = re.compile(r"([0-9]{6})_(.+)", re.DOTALL)
_DIGITS_RE: Final = re.compile(r"[0-9]+")

ACCENT: Final = Accent("#0068ff", background="#eaf3ff", button="#0068ff")

# Autoescaped (pages.page): every value below came from a (merchant-supplied) create request.
CHECKOUT_BODY: Final = (
    """<div class="card">
<h1>Cổng thanh toán ZaloPay</h1>
"""
    + EMULATOR_NOTE
    + """
<div class="amount">{{ amount }} VND</div>
<dl>
<dt>Mã giao dịch / app_trans_id</dt><dd>{{ app_trans_id }}</dd>
<dt>Nội dung / Description</dt><dd>{{ description }}</dd>
<dt>Phương thức / Method</dt><dd>{{ method }}</dd>
<dt>Hết hạn / Expires</dt><dd>{{ expires }}</dd>
</dl>
<form method="post" action="{{ pay_url }}">
<button class="ok" type="submit" name="outcome" value="success">Thanh toán thành công</button>
<button class="cancel" type="submit" name="outcome" value="cancel">Hủy giao dịch</button>
</form>
</div>
"""
)


@dataclass
class EmulatedOrder:
    """What the emulator remembers of one app_trans_id (§3.2), to answer query and refund."""

    app_trans_id: str
    app_id: int
    app_user: str
    app_time: int
    amount: int
    embed_data: str  # the exact JSON string of the create request (it goes back in the callback data)
    item: str
    description: str
    bank_code: str
    callback_url: str
    redirect_url: str
    preferred: tuple[str, ...]
    expire_at_ms: int
    zp_trans_token: str
    status: str = "unpaid"  # unpaid | paid | cancelled
    zp_trans_id: int = 0
    server_time: int = 0
    channel: int = DEFAULT_CHANNEL
    refunded: int = 0
    callback_body: bytes = b""  # the signed callback, kept so that a test can replay it
    callbacks_sent: int = 0


@dataclass
class EmulatedRefund:
    m_refund_id: str
    zp_trans_id: int
    amount: int
    refund_id: int
    status: str = "done"  # processing | done
    queries: list[int] = field(default_factory=list)


def callback_body(key2: str, data: Mapping[str, Any]) -> bytes:
    """The callback body ZaloPay POSTs (§3.3): ``data`` serialised once, compactly, signed as that string."""
    data_str = json.dumps(data, separators=(",", ":"))
    mac = hmac_hex(key2, data_str, ALGORITHM)
    return json.dumps({"data": data_str, "mac": mac, "type": 1}, separators=(",", ":")).encode()


def _int(value: Any) -> int | None:
    """A JSON integer or a form's digit string (ZaloPay takes both encodings, §3.1); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _DIGITS_RE.fullmatch(value):
        return int(value)
    return None


def _json_of(text: Any, kind: type) -> Any:
    if not isinstance(text, str):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, kind) else None


class ZalopayEmulatorBlueprint(EmulatorBlueprint):
    """The emulator's routes plus its state: ``orders`` (by app_trans_id), ``refunds`` and ``faults``."""

    def __init__(self, provider: ZalopayProvider, *, ipn_url: str, http: requests.Session | None) -> None:
        super().__init__(BLUEPRINT_NAME, __name__, ipn_url=ipn_url, http=http)
        self.provider = provider
        self.orders: dict[str, EmulatedOrder] = {}
        self.refunds: dict[str, EmulatedRefund] = {}
        self.add_url_rule("/v2/create", view_func=self.create, methods=["POST"])
        self.add_url_rule("/v2/query", view_func=self.query, methods=["POST"])
        self.add_url_rule("/v2/refund", view_func=self.refund, methods=["POST"])
        self.add_url_rule("/v2/query_refund", view_func=self.query_refund, methods=["POST"])
        self.add_url_rule("/pay/<app_trans_id>", view_func=self.pay, methods=["GET", "POST"])

    # ZaloPay holds one key pair per app: the provider's current keys (contract §2, first of "new,old").
    @property
    def key1(self) -> str:
        return self.provider.key1

    @property
    def key2(self) -> str:
        return self.provider.key2

    # ---- API plumbing --------------------------------------------------------------------------------

    @staticmethod
    def _fields() -> dict[str, Any] | None:
        # §3.1: JSON or application/x-www-form-urlencoded.
        if flask.request.is_json:
            data = flask.request.get_json(silent=True)
            return data if isinstance(data, dict) else None
        return flask.request.form.to_dict()

    @staticmethod
    def _answer(return_code: int, sub_code: int, sub_message: str, **extra: Any) -> flask.Response:
        body = {
            "return_code": return_code,
            "return_message": RETURN_MESSAGES.get(return_code, ""),
            "sub_return_code": sub_code,
            "sub_return_message": sub_message,
            **extra,
        }
        return flask.Response(
            json.dumps(body, ensure_ascii=False, separators=(",", ":")),
            status=200,
            content_type="application/json",
        )

    def _signed(self, fields: Mapping[str, Any], data: str) -> bool:
        mac = fields.get("mac")
        try:
            verify_hmac((self.key1,), data, mac if isinstance(mac, str) else None, ALGORITHM)
        except SignatureVerificationError:
            return False
        # A MAC made with our key but for another app_id is still "illegal app" (-402).
        return str(fields.get("app_id")) == str(self.provider.app_id)

    def _api_request(self, mac_data: Callable[[Mapping[str, Any]], str]) -> dict[str, Any] | flask.Response:
        """Faults, then the fields (-401 if none), then the key1 MAC over ``mac_data``'s string (-402).

        The MAC first, like ZaloPay: nothing of an unsigned request is looked at."""
        fault = apply_faults(self.faults)
        if fault is not None:
            return fault
        fields = self._fields()
        if fields is None:
            return self._bad_data("body")
        if not self._signed(fields, mac_data(fields)):
            return self._bad_mac()
        return fields

    def _query_mac_data(self, fields: Mapping[str, Any]) -> str:
        return query_mac_data(fields, self.key1)

    def _bad_mac(self) -> flask.Response:
        return self._answer(2, SUB_BAD_APP_OR_MAC, "ILLEGAL_APP/SIGNATURE_REQUEST")

    def _bad_data(self, why: str) -> flask.Response:
        return self._answer(2, SUB_BAD_DATA, f"ILLEGAL_DATA_REQUEST: {why}")

    # ---- /v2/create (§3.2) ---------------------------------------------------------------------------

    def create(self) -> ResponseReturnValue:
        fields = self._api_request(create_mac_data)
        if isinstance(fields, flask.Response):
            return fields
        problem, order = self._new_order(fields)
        if order is None:
            return self._bad_data(problem)
        with self.lock:
            if order.app_trans_id in self.orders:
                return self._answer(2, SUB_DUPLICATE, "Mã giao dịch đã tồn tại / app_trans_id already exists")
            self.orders[order.app_trans_id] = order
        order_url = flask.url_for(".pay", app_trans_id=order.app_trans_id, _external=True)
        return self._answer(
            1,
            1,
            "Giao dịch thành công",
            order_url=order_url,
            zp_trans_token=order.zp_trans_token,
            order_token=order.zp_trans_token,
        )

    def _new_order(self, fields: Mapping[str, Any]) -> tuple[str, EmulatedOrder | None]:
        """The order a signed create request describes, or why ZaloPay would refuse it (-401)."""
        app_trans_id = fields.get("app_trans_id")
        if not isinstance(app_trans_id, str) or len(app_trans_id) > APP_TRANS_ID_MAX:
            return "app_trans_id", None
        match = _TRANS_ID_RE.fullmatch(app_trans_id)
        # §3.2: must start with yymmdd of the *current* GMT+7 date (the gateway's clock inside the app).
        if not match or match.group(1) != gmt7_yymmdd(emulator_now()):
            return "app_trans_id must start with today's yymmdd (GMT+7)", None
        amount = _int(fields.get("amount"))
        app_time = _int(fields.get("app_time"))
        app_user = fields.get("app_user")
        if amount is None or amount <= 0:
            return "amount", None
        if app_time is None or app_time <= 0:
            return "app_time", None
        if not isinstance(app_user, str) or not 0 < len(app_user) <= 50:
            return "app_user", None
        embed = _json_of(fields.get("embed_data"), dict)
        if embed is None or _json_of(fields.get("item"), list) is None:
            return "embed_data/item must be a JSON object/array string", None
        description = fields.get("description")
        if not isinstance(description, str) or len(description) > DESCRIPTION_MAX:
            return "description", None
        expire = fields.get("expire_duration_seconds")
        expire_seconds = DEFAULT_EXPIRE_SECONDS if expire in (None, "") else _int(expire)
        if expire_seconds is None or not EXPIRE_MIN_SECONDS <= expire_seconds <= EXPIRE_MAX_SECONDS:
            return "expire_duration_seconds", None
        preferred = embed.get("preferred_payment_method")
        return "", EmulatedOrder(
            app_trans_id=app_trans_id,
            app_id=self.provider.app_id,
            app_user=app_user,
            app_time=app_time,
            amount=amount,
            embed_data=str(fields["embed_data"]),
            item=str(fields["item"]),
            description=description,
            bank_code=str(fields.get("bank_code") or ""),
            callback_url=str(fields.get("callback_url") or ""),
            redirect_url=str(embed.get("redirecturl") or ""),
            preferred=tuple(str(p) for p in preferred) if isinstance(preferred, list) else (),
            expire_at_ms=epoch_ms(emulator_now()) + expire_seconds * 1000,
            zp_trans_token=secrets.token_urlsafe(16),
        )

    # ---- checkout page, callback, redirect (§3.3, §3.4) ----------------------------------------------

    def _page(self, title: str, message: str, status: int = 400) -> ResponseReturnValue:
        return invalid_page("ZaloPay (giả lập)", title, message, accent=ACCENT, status=status)

    def pay(self, app_trans_id: str) -> ResponseReturnValue:
        with self.lock:
            order = self.orders.get(app_trans_id)
            if order is None:
                return self._page("Không tìm thấy giao dịch / Order not found", app_trans_id, 404)
            if order.status == "paid":
                return self._page("Giao dịch đã được thanh toán / Already paid", app_trans_id)
            if order.status == "cancelled":
                return self._page("Giao dịch đã bị hủy / Order cancelled", app_trans_id)
            if epoch_ms(emulator_now()) > order.expire_at_ms:
                return self._page("Giao dịch đã hết hạn / Order expired", app_trans_id)
            if flask.request.method == "GET":
                return page(
                    "ZaloPay (giả lập) - Thanh toán",
                    CHECKOUT_BODY,
                    accent=ACCENT,
                    amount=format_vnd(order.amount),
                    app_trans_id=order.app_trans_id,
                    description=order.description,
                    method=", ".join(order.preferred) or order.bank_code or "-",
                    expires=f"{(order.expire_at_ms - epoch_ms(emulator_now())) // 60000} phút / min",
                    pay_url=flask.url_for(".pay", app_trans_id=app_trans_id),
                )
            outcome = flask.request.form.get("outcome", "")
            if outcome not in ("success", "cancel"):
                return self._page("Yêu cầu không hợp lệ / Invalid request", "outcome")
            order.channel = next((CHANNELS[p] for p in order.preferred if p in CHANNELS), DEFAULT_CHANNEL)
            if outcome == "success":
                order.status = "paid"
                order.server_time = epoch_ms(emulator_now())
                order.zp_trans_id = int(gmt7_yymmdd(emulator_now()) + random_digits(9))
                order.callback_body = callback_body(self.key2, self._callback_data(order))
                status = STATUS_PAID
            else:
                # §3.3: no callback for an unpaid order; the browser still comes back (§3.4).
                order.status = "cancelled"
                status = STATUS_CANCELLED
            body = order.callback_body if outcome == "success" else b""
            redirect_query = self._redirect_query(order, status)
            callback_url = order.callback_url or self.ipn_url
            redirect_url = order.redirect_url
        if body and not self.faults.get("drop"):
            self.send_callback(callback_url, body)
            with self.lock:
                order.callbacks_sent += 1
        if not redirect_url:
            title = "Thanh toán thành công / Paid" if status == STATUS_PAID else "Đã hủy / Cancelled"
            return self._page(title, app_trans_id, 200)
        return flask.redirect(with_query(redirect_url, redirect_query), code=302)

    @staticmethod
    def _callback_data(order: EmulatedOrder) -> dict[str, Any]:
        # §3.3: the data fields, in ZaloPay's order (the §7 item 5 example).
        return {
            "app_id": order.app_id,
            "app_trans_id": order.app_trans_id,
            "app_time": order.app_time,
            "app_user": order.app_user,
            "amount": order.amount,
            "embed_data": order.embed_data,
            "item": order.item,
            "zp_trans_id": order.zp_trans_id,
            "server_time": order.server_time,
            "channel": order.channel,
            "merchant_user_id": secrets.token_urlsafe(32),
            "user_fee_amount": 0,
            "discount_amount": 0,
        }

    def _redirect_query(self, order: EmulatedOrder, status: str) -> str:
        # §3.4: the redirect parameters and their key2 checksum.
        params = {
            "appid": str(order.app_id),
            "apptransid": order.app_trans_id,
            "pmcid": str(order.channel),
            "bankcode": order.bank_code,
            "amount": str(order.amount),
            "discountamount": "0",
            "status": status,
        }
        params["checksum"] = hmac_hex(self.key2, redirect_checksum_data(params), ALGORITHM)
        return urlencode(params)

    def send_callback(self, url: str, body: bytes) -> None:
        """POST the signed callback (§3.3). Failures are logged only: ZaloPay retries on its own."""
        what = "zalopay emulator: callback"
        resp = post_notification(
            self.http, url, body, headers=JSON_HEADERS, timeout=CALLBACK_TIMEOUT_SECONDS, log=log, what=what
        )
        if resp is not None:
            log.info("%s answered HTTP %s %s", what, resp.status_code, resp.text[:200])

    # ---- /v2/query (§3.5) ----------------------------------------------------------------------------

    def query(self) -> ResponseReturnValue:
        fields = self._api_request(self._query_mac_data)
        if isinstance(fields, flask.Response):
            return fields
        with self.lock:
            order = self.orders.get(str(fields.get("app_trans_id")))
            if order is None:
                return self._bad_data("app_trans_id not found")
            if order.status == "paid":
                return self._answer(
                    1,
                    1,
                    "Giao dịch thành công",
                    is_processing=False,
                    amount=order.amount,
                    discount_amount=0,
                    zp_trans_id=order.zp_trans_id,
                    server_time=order.server_time,
                )
            if order.status == "cancelled":
                return self._answer(
                    2, SUB_USER_CANCELLED, "User huỷ giao dịch thanh toán", is_processing=False
                )
            if epoch_ms(emulator_now()) > order.expire_at_ms:
                return self._answer(2, SUB_EXPIRED, "Giao dịch hết hạn", is_processing=False)
            return self._answer(3, 3, "Giao dịch chưa được thanh toán", is_processing=False, amount=0)

    # ---- /v2/refund, /v2/query_refund (§3.6) ---------------------------------------------------------

    def refund(self) -> ResponseReturnValue:
        fields = self._api_request(refund_mac_data)
        if isinstance(fields, flask.Response):
            return fields
        m_refund_id = fields.get("m_refund_id")
        # §3.6: m_refund_id is yymmdd_appid_xxxxxxxxxx.
        if not isinstance(m_refund_id, str) or not re.fullmatch(
            rf"[0-9]{{6}}_{self.provider.app_id}_.+", m_refund_id, re.DOTALL
        ):
            return self._bad_data("m_refund_id")
        amount = _int(fields.get("amount"))
        zp_trans_id = _int(fields.get("zp_trans_id"))
        if amount is None or amount <= 0 or zp_trans_id is None or _int(fields.get("timestamp")) is None:
            return self._bad_data("amount/zp_trans_id/timestamp")
        if not fields.get("description"):
            return self._bad_data("description")
        with self.lock:
            known = self.refunds.get(m_refund_id)
            if known is not None:
                if (known.zp_trans_id, known.amount) != (zp_trans_id, amount):
                    return self._bad_data("m_refund_id reused for another refund")
                return self._refund_answer(known)  # idempotent: the same refund's current state
            order = next(
                (o for o in self.orders.values() if o.status == "paid" and o.zp_trans_id == zp_trans_id), None
            )
            if order is None:
                return self._bad_data("zp_trans_id not found or not paid")
            if amount > order.amount - order.refunded:
                return self._bad_data("amount exceeds the refundable amount")
            order.refunded += amount
            refund = EmulatedRefund(
                m_refund_id=m_refund_id,
                zp_trans_id=zp_trans_id,
                amount=amount,
                refund_id=int(random_digits(15)),
                status="processing" if amount >= SLOW_REFUND_AMOUNT else "done",
            )
            self.refunds[m_refund_id] = refund
            return self._refund_answer(refund)

    def query_refund(self) -> ResponseReturnValue:
        fields = self._api_request(query_refund_mac_data)
        if isinstance(fields, flask.Response):
            return fields
        with self.lock:
            refund = self.refunds.get(str(fields.get("m_refund_id")))
            if refund is None:
                return self._bad_data("m_refund_id not found")
            refund.queries.append(epoch_ms(emulator_now()))
            refund.status = "done"  # a processing refund completes by the first poll
            return self._refund_answer(refund)

    def _refund_answer(self, refund: EmulatedRefund) -> ResponseReturnValue:
        if refund.status == "processing":
            return self._answer(3, 3, "Đang xử lý hoàn tiền", refund_id=refund.refund_id)
        return self._answer(1, 1, "Hoàn tiền thành công", refund_id=refund.refund_id)


def create_blueprint(
    provider: ZalopayProvider, *, ipn_url: str, http: requests.Session | None = None
) -> ZalopayEmulatorBlueprint:
    """The ZaloPay emulator, to register at ``url_prefix="/_emulator/zalopay"`` (contract §10).

    Args:
        provider: supplies the app_id and the key1/key2 the emulator shares with the gateway.
        ipn_url: where callbacks go when a create request carried no ``callback_url`` (§3.2: the app default).
        http: the session used to send callbacks (injected by tests).
    """
    return ZalopayEmulatorBlueprint(provider, ipn_url=ipn_url, http=http)


RETURN_URL_PLACEHOLDER: Final = "https://example.invalid/return/zalopay"


class Forge(NotificationForge):
    """ZaloPay's callback as ZaloPay sends it: POST JSON ``{data, mac, type: 1}``, mac = key2 HMAC of data.

    ``secret`` is key2 (the callback key, §3.3). ZaloPay only calls back for a collected payment, so the one
    documented result is "1" (paid).
    """

    result_codes: ClassVar[Mapping[str, Outcome]] = {"1": Outcome.SUCCEEDED}
    success_code: ClassVar[str] = "1"
    # §3.3: the keys inside the signed data string.
    signed_fields: ClassVar[tuple[str, ...]] = (
        "app_id",
        "app_trans_id",
        "app_time",
        "app_user",
        "amount",
        "embed_data",
        "item",
        "zp_trans_id",
        "server_time",
        "channel",
        "merchant_user_id",
        "user_fee_amount",
        "discount_amount",
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
        if result_code not in self.result_codes:
            raise ValueError(f"ZaloPay sends no callback with result {result_code!r} (§3.3: paid only)")
        now = emulator_now()
        # zp_trans_id is an int64 on the wire; keep a non-numeric or zero-padded id as a string so that it
        # survives the round trip unchanged.
        txn: int | str = (
            int(provider_txn_id)
            if _DIGITS_RE.fullmatch(provider_txn_id) and not provider_txn_id.startswith("0")
            else provider_txn_id
        )
        provider: ZalopayProvider = self.provider  # type: ignore[assignment]
        data = {
            "app_id": provider.app_id,
            "app_trans_id": f"{gmt7_yymmdd(now)}_{reference}",
            "app_time": epoch_ms(now) - 60_000,
            "app_user": "dvc",
            "amount": amount,
            "embed_data": json.dumps(
                {"redirecturl": "https://example.invalid/return"}, separators=(",", ":")
            ),
            "item": "[]",
            "zp_trans_id": txn,
            "server_time": epoch_ms(now),
            "channel": DEFAULT_CHANNEL,
            "merchant_user_id": "emulator-user",
            "user_fee_amount": 0,
            "discount_amount": 0,
        }
        body = callback_body(secret or self.secret, data)
        return CallbackRequest(
            method="POST", args={}, headers={"Content-Type": "application/json"}, body=body
        )

    def tamper(self, request: CallbackRequest, field_name: str) -> CallbackRequest:
        outer = json.loads(request.body)
        data = json.loads(outer["data"])
        value = data[field_name]
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(f"cannot tamper with {field_name!r}")
        if isinstance(value, int):
            data[field_name] = value + 1
        else:
            data[field_name] = value[:-1] + ("1" if value[-1:] != "1" else "2") if value else "X"
        # The data string changes; the mac is left as it was.
        outer["data"] = json.dumps(data, separators=(",", ":"))
        return _with_body(request, outer)

    def strip_signature(self, request: CallbackRequest) -> CallbackRequest:
        outer = json.loads(request.body)
        outer.pop("mac", None)
        return _with_body(request, outer)


def _with_body(request: CallbackRequest, outer: Mapping[str, Any]) -> CallbackRequest:
    body = json.dumps(outer, separators=(",", ":")).encode()
    return CallbackRequest(
        method=request.method,
        args=request.args,
        headers=request.headers,
        body=body,
        remote_addr=request.remote_addr,
    )
