"""The citizen's VietQR page: ``GET /pay/qr/<reference>`` (providers.md §4, contract §5).

Shows the attempt's VietQR as an inline SVG (no external assets) and, for a citizen who cannot scan it
(the QR is on the phone they would scan with), every transfer detail as text in a read-only field that a
phone can select. A small inline script adds "copy" buttons; without it the page is fully usable (the
buttons stay hidden). The script and the stylesheet are allowed by their SHA-256 in the page's CSP, so no
other script can run.

Vietnamese by default, English with ``?lang=en`` (the same selector as the other citizen pages).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from urllib.parse import quote, urlencode

import segno
from flask import Blueprint, abort, current_app, make_response, render_template, request, url_for
from markupsafe import Markup
from werkzeug.wrappers import Response

from gateway.container import Services, services
from gateway.domain.money import format_vnd
from gateway.domain.status import AttemptStatus
from gateway.services.orders import get_order
from gateway.services.payments import find_attempt
from gateway.storage.db import transaction
from gateway.storage.models import PaymentAttempt
from gateway.web.i18n import LANG_PARAM, SUPPORTED_LOCALES, current_locale
from gateway.web.pages import local_time, order_view

PROVIDER_CODE: Final = "vietqr"
EMULATOR_SCAN_PATH: Final = "/_emulator/vietqr/scan"
QR_SCALE: Final = 4  # SVG units per module; the CSS scales the drawing to the screen
QR_ERROR_LEVEL: Final = "m"  # 15 % recovery: survives a cracked phone screen, keeps the code small

bp = Blueprint("vietqr_page", __name__, template_folder="templates")

# Plain strings per language (contract §5: Vietnamese default). Kept here rather than in the gettext
# catalogs so that the page stays one self-contained unit.
TEXTS: Final[dict[str, dict[str, str]]] = {
    "vi": {
        "title": "Chuyển khoản bằng mã VietQR",
        "brand": "Cổng thanh toán phí, lệ phí",
        "scan": "Mở ứng dụng ngân hàng, chọn quét mã QR và quét mã dưới đây. "
        "Số tiền và nội dung chuyển khoản đã có sẵn trong mã.",
        "manual": "Không quét được? Chuyển khoản với các thông tin sau:",
        "qr_label": "Mã VietQR để chuyển khoản",
        "bank": "Ngân hàng",
        "account_no": "Số tài khoản",
        "account_name": "Chủ tài khoản",
        "amount": "Số tiền",
        "content": "Nội dung chuyển khoản",
        "content_note": "Ghi đúng nội dung chuyển khoản {reference} để hệ thống tự động xác nhận. "
        "Chuyển đúng số tiền, trong một lần chuyển.",
        "copy": "Sao chép",
        "copied": "Đã sao chép",
        "deadline": "Hạn thanh toán",
        "status": "Trạng thái",
        "awaiting": "đang chờ chuyển khoản",
        "paid": "đã thanh toán",
        "paid_note": "Hệ thống đã nhận được khoản chuyển. Cảm ơn bạn.",
        "expired": "đã hết hạn",
        "expired_note": "Yêu cầu thanh toán đã hết hạn. Vui lòng không chuyển khoản theo mã này.",
        "cancelled": "đã hủy",
        "cancelled_note": "Yêu cầu thanh toán đã bị hủy. Vui lòng không chuyển khoản theo mã này.",
        "confirming": "đang chờ ngân hàng xác nhận",
        "confirming_note": "Đã quá hạn thanh toán. Nếu bạn đã chuyển khoản, hệ thống đang chờ ngân hàng "
        "xác nhận. Vui lòng không chuyển khoản thêm.",
        "failed": "không còn hiệu lực",
        "failed_note": "Mã này không còn hiệu lực. Vui lòng quay lại và chọn lại cách thanh toán.",
        "check": "Tôi đã chuyển khoản - kiểm tra trạng thái",
        "emulator": "Mở ứng dụng ngân hàng giả lập",
        "back": "Quay lại trang thanh toán",
        "other_lang": "English",
    },
    "en": {
        "title": "Pay by VietQR bank transfer",
        "brand": "Fee payment gateway",
        "scan": "Open your banking app, choose scan QR and scan the code below. "
        "The amount and the transfer content are already in the code.",
        "manual": "Cannot scan it? Make a transfer with these details:",
        "qr_label": "VietQR code for the transfer",
        "bank": "Bank",
        "account_no": "Account number",
        "account_name": "Account name",
        "amount": "Amount",
        "content": "Transfer content",
        "content_note": "Enter the transfer content {reference} exactly so that the payment is confirmed "
        "automatically. Transfer the exact amount, in one transfer.",
        "copy": "Copy",
        "copied": "Copied",
        "deadline": "Pay before",
        "status": "Status",
        "awaiting": "waiting for your transfer",
        "paid": "paid",
        "paid_note": "Your transfer has been received. Thank you.",
        "expired": "expired",
        "expired_note": "This payment request has expired. Please do not transfer money with this code.",
        "cancelled": "cancelled",
        "cancelled_note": "This payment request was cancelled. Please do not transfer money with this code.",
        "confirming": "waiting for the bank's confirmation",
        "confirming_note": "The deadline has passed. If you have already transferred, we are waiting for "
        "the bank to confirm it. Please do not transfer again.",
        "failed": "no longer valid",
        "failed_note": "This code is no longer valid. Please go back and choose a payment method again.",
        "check": "I have transferred - check the status",
        "emulator": "Open the emulated banking app",
        "back": "Back to the payment page",
        "other_lang": "Tiếng Việt",
    },
}

STYLE: Final = """
body{font-family:system-ui,"Segoe UI",Roboto,sans-serif;margin:0;background:#f2f4f7;color:#1d2939;
line-height:1.45}
header{background:#a50e0e;color:#fff}
header .bar{max-width:30rem;margin:0 auto;padding:.75rem 1rem;display:flex;justify-content:space-between;
align-items:center;gap:.75rem;flex-wrap:wrap}
.brand{font-weight:700}
.lang{color:#fff;font-size:.9rem;padding:.25rem .5rem;border:1px solid rgba(255,255,255,.6);border-radius:4px;
text-decoration:none;white-space:nowrap}
main{max-width:30rem;margin:0 auto;padding:1rem}
.card{background:#fff;border-radius:12px;padding:1.1rem;margin:0 0 1rem;box-shadow:0 1px 3px rgba(0,0,0,.12)}
h1{font-size:1.25rem;margin:0 0 .5rem;color:#a50e0e}
.state{display:inline-block;padding:.15rem .6rem;border-radius:999px;background:#fef0c7;color:#93370d;
font-weight:600}
.state-paid{background:#d1fadf;color:#05603a}
.state-closed{background:#fee4e2;color:#912018}
figure{margin:0}
.qr{display:block;width:100%;max-width:18rem;height:auto;margin:.75rem auto;background:#fff}
.field{margin:.75rem 0}
.field label{display:block;color:#475467;font-size:.9rem;margin:0 0 .2rem}
.row{display:flex;gap:.5rem}
.row input{flex:1;min-width:0;font-size:1.05rem;padding:.55rem;border:1px solid #d0d5dd;border-radius:8px;
background:#f9fafb;color:#1d2939;font-family:ui-monospace,Menlo,Consolas,monospace}
.row button{padding:.55rem .8rem;border:0;border-radius:8px;background:#005baa;color:#fff;font-size:.95rem}
.big{font-size:1.6rem;font-weight:700;margin:.1rem 0}
.note{font-size:.9rem;color:#475467}
.actions a{display:block;text-align:center;padding:.8rem;margin:.5rem 0;border-radius:8px;
background:#e4e7ec;color:#1d2939;text-decoration:none}
.actions a.primary{background:#005baa;color:#fff}
""".strip()

# Reveals the copy buttons and wires them to the clipboard; the fields stay selectable without it.
SCRIPT: Final = """
(function () {
  var buttons = document.querySelectorAll("button[data-copy]");
  for (var i = 0; i < buttons.length; i++) {
    (function (button) {
      var field = document.getElementById(button.getAttribute("data-copy"));
      if (!field) { return; }
      field.addEventListener("focus", function () { field.select(); });
      button.hidden = false;
      button.addEventListener("click", function () {
        var done = function () { button.textContent = button.getAttribute("data-done"); };
        field.select();
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(field.value).then(done, function () {});
        } else {
          try { if (document.execCommand("copy")) { done(); } } catch (e) { /* selected: copy by hand */ }
        }
      });
    })(buttons[i]);
  }
})();
""".strip()


def _csp_hash(source: str) -> str:
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


# Only this page's own style and script, by hash (CSP level 2): no nonce, no 'unsafe-inline'.
CSP: Final = (
    f"default-src 'none'; style-src {_csp_hash(STYLE)}; script-src {_csp_hash(SCRIPT)}; "
    "img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class Field:
    id: str
    label: str
    value: str  # what the copy button copies and the read-only input shows
    display: str | None = None  # shown above the input when it reads better than the raw value


@dataclass(frozen=True)
class QrPageView:
    reference: str
    order_id: str
    amount: int
    payload: str
    bank_name: str
    account_no: str
    account_name: str
    expires_at: datetime
    # awaiting | paid | expired | cancelled | confirming | failed
    state: str


def _stored(data: dict[str, Any] | None, key: str, default: str) -> str:
    # provider_data holds what the citizen was shown when the attempt started (the account may change later).
    value = (data or {}).get(key)
    return str(value) if value else default


def _page_state(attempt: PaymentAttempt, order_state: str) -> str:
    if order_state == "paid" or attempt.status == AttemptStatus.SUCCEEDED:
        return "paid"
    if order_state in {"expired", "cancelled", "confirming"}:
        # "confirming": past the deadline, open only for a payment already under way; a new transfer now
        # would arrive late, so the QR is no longer shown.
        return order_state
    if attempt.status == AttemptStatus.FAILED:
        return "failed"
    return "awaiting"


def load_view(svc: Services, reference: str) -> QrPageView | None:
    """The page's data, read inside one transaction (get_order may expire the order on read)."""
    now = svc.clock()
    defaults: dict[str, str] = {}
    if PROVIDER_CODE in svc.providers:
        provider = svc.providers.get(PROVIDER_CODE)
        defaults = {
            name: str(getattr(provider, name, ""))
            for name in ("bank_name", "account_no", "account_name", "bank_bin")
        }
    with transaction(svc.sessions) as session:
        attempt = find_attempt(session, PROVIDER_CODE, reference)
        if attempt is None or not attempt.qr_payload:
            return None
        order = order_view(get_order(session, None, attempt.order_id, now=now, base_url=svc.base_url), now)
        data = attempt.provider_data
        return QrPageView(
            reference=attempt.reference,
            order_id=attempt.order_id,
            amount=attempt.amount,
            payload=attempt.qr_payload,
            bank_name=_stored(data, "bank_name", defaults.get("bank_name") or defaults.get("bank_bin", "")),
            account_no=_stored(data, "account_no", defaults.get("account_no", "")),
            account_name=_stored(data, "account_name", defaults.get("account_name", "")),
            expires_at=order.expires_at,
            state=_page_state(attempt, order.state),
        )


def qr_svg(payload: str, label: str) -> Markup:
    """The QR as inline SVG markup (segno escapes the title), black on white for any banking app."""
    code = segno.make(payload, error=QR_ERROR_LEVEL)
    svg = code.svg_inline(
        scale=QR_SCALE, border=4, dark="#000", light="#fff", omitsize=True, svgclass="qr", title=label
    )
    return Markup(svg)  # noqa: S704 - segno's own output; the payload is escaped by segno


def _fields(view: QrPageView, text: dict[str, str]) -> list[Field]:
    return [
        Field("f-bank", text["bank"], view.bank_name),
        Field("f-account", text["account_no"], view.account_no),
        Field("f-name", text["account_name"], view.account_name),
        # Banking apps want bare digits; the formatted amount is shown above the field.
        Field("f-amount", text["amount"], str(view.amount), display=f"{format_vnd(view.amount)} ₫"),
        Field("f-content", text["content"], view.reference),
    ]


def _harden(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    # The reference is in the URL: do not hand it to other sites as a Referer.
    response.headers["Referrer-Policy"] = "same-origin"
    # The status changes when the bank's notification arrives; a cached page would show a stale one.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/pay/qr/<string:reference>")
def qr_page(reference: str) -> Response:
    view = load_view(services(), reference)
    if view is None:
        abort(404)
    lang = current_locale()
    other = next(code for code in SUPPORTED_LOCALES if code != lang)
    text = TEXTS[lang]
    emulator_url = None
    if current_app.config.get("GATEWAY_EMULATORS") and view.state == "awaiting":
        emulator_url = f"{request.script_root}{EMULATOR_SCAN_PATH}?payload={quote(view.payload, safe='')}"
    page_url = f"{request.script_root}{quote(request.path)}"
    html = render_template(
        "vietqr_page.html",
        lang=lang,
        t=text,
        view=view,
        state_label=text[view.state],
        state_note=text.get(f"{view.state}_note", ""),
        content_note=text["content_note"].format(reference=view.reference),
        fields=_fields(view, text) if view.state == "awaiting" else [],
        qr=qr_svg(view.payload, text["qr_label"]) if view.state == "awaiting" else None,
        amount_text=f"{format_vnd(view.amount)} ₫",
        deadline=local_time(view.expires_at),
        style=Markup(STYLE),  # noqa: S704 - a constant of this module, hashed into the CSP
        script=Markup(SCRIPT),  # noqa: S704 - idem
        switch_url=f"{page_url}?{urlencode({LANG_PARAM: other})}",
        other_lang=other,
        refresh_url=page_url,
        emulator_url=emulator_url,
        back_url=url_for("citizen.order_page", order_id=view.order_id),
    )
    return _harden(make_response(html, 200))
