"""A "banking app" and collecting bank for VietQR (providers.md §4, contract §10).

The tester pastes (or is linked to) a VietQR payload; the emulator parses it like a banking app — a bad CRC
is refused visibly (§4.1) — shows bank, account, amount and transfer content, and lets the tester pay the
exact amount, pay a different amount, or cancel. Paying makes the emulator bank, which holds the gateway's
collection account, POST its signed credit notification (bank_notifications default mapping, RSA-SHA256
over the raw body, header ``X-Signature``) to the gateway, as a collecting bank's webhook would (§4.3).
Registered at ``/_emulator/vietqr``.

Routes: ``GET /scan`` (paste form; ``?payload=`` shows the transfer), ``GET /scan/<reference>`` (the QR
for a reference: the last one scanned, else a static QR where the tester types the amount), ``POST /pay``.

Fault switches in ``blueprint.faults`` (``app.blueprints["emulator_vietqr"].faults``): ``"drop"`` (truthy)
takes the transfer but never notifies; ``"slow"`` seconds to wait before notifying. A plain transfer has no
status or refund API (§4.3), so ``"status"`` and ``"garbage"`` have no endpoint to act on.
"""

from __future__ import annotations

import json
import logging
import time  # noqa: F401 - tests patch <emulator>.time.sleep, which pages.slow_down calls
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Final
from urllib.parse import quote
from zoneinfo import ZoneInfo

import flask
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from flask.typing import ResponseReturnValue

from gateway.domain.errors import MalformedNotification
from gateway.domain.money import format_vnd
from providers.bank_notifications import CANONICAL_FIELDS, DEFAULT_MAPPING
from providers.base import CallbackRequest, NotificationForge, Outcome, PaymentProvider
from providers.emqr import (
    AMOUNT_MAX_DIGITS,
    InvalidPayload,
    VietQrData,
    build_vietqr,
    parse_vietqr,
)
from providers.emulators import emulator_now
from providers.emulators.pages import (
    EMULATOR_NOTE,
    Accent,
    EmulatorBlueprint,
    invalid_page,
    page,
    post_notification,
    random_digits,
    slow_down,
)
from providers.rsa_signing import generate_private_key_pem, load_private_key, sign
from providers.vietqr import QR_PAGE_PATH, VietqrProvider, find_reference

log = logging.getLogger(__name__)

BLUEPRINT_NAME: Final = "emulator_vietqr"
NOTIFY_TIMEOUT_SECONDS: Final = 10.0
VN_TZ: Final = ZoneInfo("Asia/Ho_Chi_Minh")
REMITTANCE_SUFFIX: Final = "chuyen tien"  # what banking apps append to the content by default

ACCENT: Final = Accent("#006b3c", background="#e9f3ee")

# Autoescaped (pages.page): every value below comes from a pasted (untrusted) payload.
SCAN_BODY: Final = (
    """<div class="card">
<h1>Ứng dụng ngân hàng (giả lập)</h1>
"""
    + EMULATOR_NOTE
    + """
<form method="get" action="{{ scan_url }}">
<label for="payload">Dán nội dung mã VietQR / Paste a VietQR payload</label>
<textarea id="payload" name="payload" rows="6" required></textarea>
<button class="ok" type="submit">Đọc mã QR / Read QR</button>
</form>
</div>
"""
)

TRANSFER_BODY: Final = (
    """<div class="card">
<h1>Chuyển khoản nhanh NAPAS 247</h1>
"""
    + EMULATOR_NOTE
    + """
{% if qr.amount is not none %}<div class="amount">{{ amount }} VND</div>{% endif %}
<dl>
<dt>Ngân hàng / Bank</dt><dd>{{ bank_name }} ({{ qr.bin }})</dd>
<dt>Số tài khoản / Account</dt><dd>{{ qr.account }}</dd>
<dt>Chủ tài khoản / Name</dt><dd>{{ account_name }}</dd>
<dt>Nội dung / Content</dt><dd>{{ qr.purpose or "-" }}</dd>
</dl>
<form method="post" action="{{ pay_url }}">
<input type="hidden" name="payload" value="{{ payload }}">
{% if qr.amount is not none %}
<button class="ok" type="submit" name="choice" value="exact">Chuyển {{ amount }} VND</button>
{% endif %}
<label for="amount">
{%- if qr.amount is not none %}Số tiền khác / A different amount{% else %}Số tiền / Amount{% endif %} (VND)
</label>
<input id="amount" name="amount" inputmode="numeric" pattern="[0-9]{1,13}" autocomplete="off">
<button class="other" type="submit" name="choice" value="other">Chuyển số tiền này / Pay this amount</button>
<button class="cancel" type="submit" name="choice" value="cancel" formnovalidate>Hủy / Cancel</button>
</form>
</div>
"""
)

RESULT_BODY: Final = """<div class="card">
<h1>{{ heading }}</h1>
{% if amount %}<div class="amount">{{ amount }} VND</div>{% endif %}
<dl>
{% if transaction_id %}<dt>Mã giao dịch / Transaction</dt><dd>{{ transaction_id }}</dd>{% endif %}
<dt>Nội dung / Content</dt><dd>{{ remittance }}</dd>
</dl>
{% if back_url %}
<a class="button cancel" href="{{ back_url }}">Quay lại trang thanh toán / Back to the payment</a>
{% endif %}
</div>
"""


@dataclass
class EmulatedTransfer:
    """One transfer the emulator bank credited to the collection account, with the notification it sent."""

    transaction_id: str
    amount: int
    remittance: str
    reference: str | None
    body: bytes
    headers: Mapping[str, str]
    delivered: bool = False

    def callback_request(self) -> CallbackRequest:
        """The notification as the gateway receives it (for replaying in tests)."""
        return CallbackRequest(method="POST", args={}, headers=dict(self.headers), body=self.body)


def transaction_id() -> str:
    """A core-banking style transaction number: ``FT`` + 12 digits."""
    return "FT" + random_digits(12, leading_zero=True)


def credit_body(
    *,
    transaction_id: str,
    account_no: str,
    amount: int,
    remittance: str,
    reference: str | None = None,
    status: str = "success",
    transacted_at: datetime | None = None,
) -> dict[str, Any]:
    """A bank credit notification in the default field mapping (providers/bank_notifications.py)."""
    # The gateway's clock inside the app (tests that move time move the bank too), else the wall clock.
    when = (transacted_at or emulator_now()).astimezone(VN_TZ)
    body: dict[str, Any] = {
        "transaction_id": transaction_id,
        "account_no": account_no,
        "amount": amount,
        "currency": "VND",
        "direction": "credit",
        "status": status,
    }
    # A plain VietQR transfer has only the remittance text (bank_notifications); the field is optional.
    if reference is not None:
        body["reference"] = reference
    body["remittance"] = remittance
    body["transacted_at"] = when.isoformat(timespec="seconds")
    return body


def dump_body(body: Mapping[str, Any]) -> bytes:
    """The exact bytes the bank sends (and signs): compact UTF-8 JSON."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def signed_request(body: Mapping[str, Any], key: rsa.RSAPrivateKey) -> CallbackRequest:
    """``body`` POSTed as the bank does: raw JSON plus ``X-Signature`` = base64 RSA-SHA256(raw body)."""
    raw = dump_body(body)
    headers = {"Content-Type": "application/json", DEFAULT_MAPPING.signature_header: sign(key, raw)}
    return CallbackRequest(method="POST", args={}, headers=headers, body=raw)


def _positive_amount(raw: str) -> int | None:
    text = raw.strip()
    if not text.isascii() or not text.isdigit() or len(text) > AMOUNT_MAX_DIGITS or int(text) <= 0:
        return None
    return int(text)


class VietqrEmulatorBlueprint(EmulatorBlueprint):
    """The emulator's routes plus its state: ``transfers`` (the bank's ledger), ``faults``."""

    def __init__(self, provider: VietqrProvider, *, ipn_url: str, http: requests.Session | None) -> None:
        super().__init__(BLUEPRINT_NAME, __name__, ipn_url=ipn_url, http=http)
        self.provider = provider
        self.transfers: list[EmulatedTransfer] = []
        # reference -> the last payload scanned for it, for GET /scan/<reference>.
        self.payloads: dict[str, str] = {}
        self._key: rsa.RSAPrivateKey | None = None
        self.add_url_rule("/scan", view_func=self.scan, methods=["GET"])
        self.add_url_rule("/scan/<string:reference>", view_func=self.scan_reference, methods=["GET"])
        self.add_url_rule("/pay", view_func=self.pay, methods=["POST"])

    @property
    def private_key(self) -> rsa.RSAPrivateKey:
        """The emulator bank's signing key: the pair whose public half the emulated provider trusts."""
        with self.lock:
            if self._key is None:
                self._key = load_private_key(self.provider.emulator_private_key_pem())
            return self._key

    # ---- pages ---------------------------------------------------------------------------------------------

    @staticmethod
    def _page(title: str, body_template: str, **context: Any) -> str:
        return page(f"Ngân hàng giả lập - {title}", body_template, accent=ACCENT, noindex=True, **context)

    def _invalid(self, message: str) -> ResponseReturnValue:
        return invalid_page(
            "Ngân hàng giả lập - Mã QR không hợp lệ",
            "Mã QR không hợp lệ / Invalid QR code",
            message,
            accent=ACCENT,
            noindex=True,
            link_url=flask.url_for(".scan"),
            link_text="Quét lại / Scan again",
        )

    def _read(self, payload: str) -> VietQrData | str:
        """The parsed QR, or why a banking app would refuse it."""
        try:
            qr = parse_vietqr(payload.strip())
        except InvalidPayload as exc:
            return f"Không đọc được mã VietQR / Unreadable VietQR: {exc}"
        if (qr.bin, qr.account) != (self.provider.bank_bin, self.provider.account_no):
            # The emulator bank only holds the gateway's collection account: a transfer elsewhere would
            # never reach the gateway, so say so instead of pretending.
            return (
                "Tài khoản thụ hưởng không thuộc ngân hàng giả lập / "
                f"The beneficiary {qr.bin}/{qr.account} is not the emulator bank's collection account"
            )
        return qr

    def scan(self) -> ResponseReturnValue:
        payload = flask.request.args.get("payload", "")
        if not payload.strip():
            return self._page("Quét mã QR", SCAN_BODY, scan_url=flask.url_for(".scan"))
        qr = self._read(payload)
        if isinstance(qr, str):
            return self._invalid(qr)
        reference = _reference_in(qr.purpose)
        if reference:
            with self.lock:
                self.payloads[reference] = payload.strip()
        return self._page(
            "Chuyển khoản",
            TRANSFER_BODY,
            qr=qr,
            payload=payload.strip(),
            amount=format_vnd(qr.amount) if qr.amount is not None else "",
            bank_name=self.provider.bank_name,
            account_name=self.provider.account_name,
            pay_url=flask.url_for(".pay"),
        )

    def scan_reference(self, reference: str) -> ResponseReturnValue:
        with self.lock:
            payload = self.payloads.get(reference.upper())
        if payload is None:
            # Not scanned yet: a static QR for the collection account with the reference as content; the
            # tester types the amount, as in a banking app scanning a static VietQR (§4.1 01=11).
            try:
                payload = build_vietqr(self.provider.bank_bin, self.provider.account_no, None, reference)
            except ValueError:
                return self._invalid("Mã tham chiếu không hợp lệ / Invalid reference")
        return flask.redirect(flask.url_for(".scan") + "?payload=" + quote(payload, safe=""), code=302)

    def pay(self) -> ResponseReturnValue:
        # Re-read the QR: the hidden field came back from the browser and may have been edited.
        qr = self._read(flask.request.form.get("payload", ""))
        if isinstance(qr, str):
            return self._invalid(qr)
        choice = flask.request.form.get("choice", "")
        remittance = f"{qr.purpose} {REMITTANCE_SUFFIX}" if qr.purpose else REMITTANCE_SUFFIX
        reference = _reference_in(qr.purpose)
        back_url = self._back_url(reference)
        if choice == "cancel":
            return self._page(
                "Đã hủy",
                RESULT_BODY,
                heading="Đã hủy giao dịch / Transfer cancelled",
                amount="",
                transaction_id="",
                remittance=qr.purpose or "-",
                back_url=back_url,
            )
        if choice == "exact" and qr.amount is not None:
            amount: int | None = qr.amount
        elif choice == "other":
            amount = _positive_amount(flask.request.form.get("amount", ""))
            if amount is None:
                return self._invalid("Số tiền không hợp lệ / Invalid amount")
        else:
            return self._invalid("Yêu cầu không hợp lệ / Invalid request (choice)")
        assert amount is not None

        transfer = self.credit(amount=amount, remittance=remittance)
        return self._page(
            "Chuyển khoản thành công",
            RESULT_BODY,
            heading="Chuyển khoản thành công / Transfer done",
            amount=format_vnd(amount),
            transaction_id=transfer.transaction_id,
            remittance=remittance,
            back_url=back_url,
        )

    def _back_url(self, reference: str | None) -> str | None:
        if reference is None:
            return None
        return f"{self.provider.base_url.rstrip('/')}{QR_PAGE_PATH}{quote(reference, safe='')}"

    # ---- the bank's side -------------------------------------------------------------------------------

    def credit(self, *, amount: int, remittance: str) -> EmulatedTransfer:
        """Credit the collection account and send the signed notification (unless dropped)."""
        body = credit_body(
            transaction_id=transaction_id(),
            account_no=self.provider.account_no,
            amount=amount,
            remittance=remittance,
        )
        request = signed_request(body, self.private_key)
        transfer = EmulatedTransfer(
            transaction_id=body["transaction_id"],
            amount=amount,
            remittance=remittance,
            reference=_reference_in(remittance),
            body=request.body,
            headers=request.headers,
        )
        with self.lock:
            self.transfers.append(transfer)
        if self.faults.get("drop"):
            log.info("vietqr emulator: dropping the notification of %s", transfer.transaction_id)
            return transfer
        slow_down(self.faults)
        transfer.delivered = self.notify(transfer)
        return transfer

    def notify(self, transfer: EmulatedTransfer) -> bool:
        """POST the notification to ``ipn_url``. Failures are logged only: the bank retries on its own."""
        what = "vietqr emulator: notification"
        resp = post_notification(
            self.http,
            self.ipn_url,
            transfer.body,
            headers=transfer.headers,
            timeout=NOTIFY_TIMEOUT_SECONDS,
            log=log,
            what=what,
        )
        if resp is None:
            return False
        log.info("vietqr emulator: notification answered HTTP %s %s", resp.status_code, resp.text[:200])
        return 200 <= resp.status_code < 300


def _reference_in(text: str | None) -> str | None:
    try:
        return find_reference(text)
    except MalformedNotification:  # several references: the emulator does not guess either
        return None


def create_blueprint(
    provider: VietqrProvider, *, ipn_url: str, http: requests.Session | None = None
) -> VietqrEmulatorBlueprint:
    """The VietQR banking-app emulator, to register at ``url_prefix="/_emulator/vietqr"`` (contract §10).

    Args:
        provider: supplies the collection account and the emulator bank's key pair.
        ipn_url: where the bank's credit notifications go (configured at the bank; the QR carries no URL).
        http: the session used to send notifications (injected by tests).
    """
    return VietqrEmulatorBlueprint(provider, ipn_url=ipn_url, http=http)


class Forge(NotificationForge):
    """The collecting bank's credit notification (used by the contract suite).

    ``secret`` is the bank's RSA private key as a PEM string — for the emulated provider,
    ``provider.emulator_private_key_pem().decode()``. A ``secret=`` override that is not a PEM private key
    signs with a throwaway key, so that a "wrong key" check needs no key of its own.
    """

    # A transfer notification only reports money that arrived (bank_notifications default mapping).
    result_codes: ClassVar[Mapping[str, Outcome]] = {"success": Outcome.SUCCEEDED}
    success_code: ClassVar[str] = "success"
    # RSA over the raw body: every field of the body is signed.
    signed_fields: ClassVar[tuple[str, ...]] = CANONICAL_FIELDS

    def __init__(self, provider: PaymentProvider, secret: str) -> None:
        if not isinstance(provider, VietqrProvider):
            raise TypeError("the VietQR forge needs a VietqrProvider")
        super().__init__(provider, secret)
        self.vietqr = provider
        self._key = load_private_key(secret.encode())
        self._throwaway: rsa.RSAPrivateKey | None = None

    def _key_for(self, secret: str | None) -> rsa.RSAPrivateKey:
        if secret is None or secret == self.secret:
            return self._key
        try:
            return load_private_key(secret.encode())
        except ValueError:
            if self._throwaway is None:
                self._throwaway = load_private_key(generate_private_key_pem())
            return self._throwaway

    def notification(
        self,
        *,
        reference: str,
        amount: int,
        result_code: str,
        provider_txn_id: str,
        secret: str | None = None,
    ) -> CallbackRequest:
        body = credit_body(
            transaction_id=provider_txn_id,
            account_no=self.vietqr.account_no,
            amount=amount,
            remittance=f"{reference} {REMITTANCE_SUFFIX}",
            reference=reference,
            status=result_code,
        )
        return signed_request(body, self._key_for(secret))

    def tamper(self, request: CallbackRequest, field_name: str) -> CallbackRequest:
        data = json.loads(request.body)
        value = data.get(field_name)
        if isinstance(value, bool) or value is None:
            data[field_name] = "X"
        elif isinstance(value, int):
            data[field_name] = value + 1
        else:
            text = str(value)
            data[field_name] = text[:-1] + ("1" if text[-1:] != "1" else "2") if text else "X"
        return CallbackRequest(
            method=request.method, args=request.args, headers=request.headers, body=dump_body(data)
        )

    def strip_signature(self, request: CallbackRequest) -> CallbackRequest:
        wanted = DEFAULT_MAPPING.signature_header.lower()
        headers = {k: v for k, v in request.headers.items() if k.lower() != wanted}
        return CallbackRequest(method=request.method, args=request.args, headers=headers, body=request.body)
