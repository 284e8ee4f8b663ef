"""Citizen pages end to end (contract §5): order page, starting a payment, the return page, i18n."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from gateway.app import create_app
from gateway.domain.errors import ProviderUnavailable, SignatureVerificationError
from gateway.services.registry import ProviderRegistry
from gateway.settings import ProviderCredentials, Settings
from gateway.storage.models import InboundNotification
from gateway.web.i18n import TRANSLATIONS_DIR, compile_catalogs
from providers.base import (
    Ack,
    AckResponse,
    CallbackRequest,
    Notification,
    PaymentProvider,
    PaymentRedirect,
    PaymentRequest,
    QueryRequest,
)
from providers.emulators.vnpay import build_ipn_query
from providers.vnpay import EMULATOR_HASH_SECRET
from tests.conftest import PortalKey, count_rows, order_body
from tests.helpers import vnpay_ipn_params

ROOT = Path(__file__).resolve().parents[2]
VNPAY_PAY_URL = "http://gateway.test/_emulator/vnpay/paymentv2/vpcpay.html?"
XSS = "<script>alert(1)</script>"


# ---- helpers -------------------------------------------------------------------------------------------


def create_order(client: FlaskClient, portal: PortalKey, **overrides: Any) -> dict[str, Any]:
    r = client.post("/api/v1/orders", json=order_body(**overrides), headers=portal.headers)
    assert r.status_code == 201, r.get_data(as_text=True)
    return r.get_json()


def api_order(client: FlaskClient, portal: PortalKey, order_id: str) -> dict[str, Any]:
    r = client.get(f"/api/v1/orders/{order_id}", headers=portal.headers)
    assert r.status_code == 200
    return r.get_json()


def page(client: FlaskClient, url: str, status: int = 200) -> str:
    r = client.get(url)
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.mimetype == "text/html"
    return r.get_data(as_text=True)


def pay(client: FlaskClient, order_id: str, **form: str) -> Any:
    return client.post(f"/pay/{order_id}", data=form)


def paying(client: FlaskClient, portal: PortalKey) -> tuple[dict[str, Any], dict[str, Any]]:
    """An order with one VNPAY attempt started from the citizen page."""
    order = create_order(client, portal)
    r = pay(client, order["id"], provider="vnpay")
    assert r.status_code == 303, r.get_data(as_text=True)
    attempt = api_order(client, portal, order["id"])["attempts"][0]
    return order, attempt


def signed_return(reference: str, amount: int = 58000, **overrides: str) -> str:
    return build_ipn_query(EMULATOR_HASH_SECRET, vnpay_ipn_params(reference, amount, **overrides))


def return_rows(sessions: Any) -> list[InboundNotification]:
    with sessions() as s:
        return list(s.scalars(select(InboundNotification).order_by(InboundNotification.id)))


# ---- the order page ------------------------------------------------------------------------------------


def test_order_page_is_vietnamese_by_default(client, portal):
    order = create_order(client, portal)
    r = client.get(f"/pay/{order['id']}", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert r.status_code == 200
    assert r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    # Vietnamese although the browser asks for English: the contract makes Vietnamese the default.
    assert '<html lang="vi">' in html
    for text in (
        "Cổng thanh toán phí, lệ phí",
        "Thanh toán phí, lệ phí hồ sơ",
        "Cơ quan",
        "Mã hồ sơ",
        "Người nộp",
        "Tổng cộng",
        "Chọn phương thức thanh toán",
        "Quay lại cổng dịch vụ công",
        "SO-TU-PHAP",
        "H12.22-241125-0001",
        "Nguyễn Văn An",
        "Lệ phí hộ tịch",
        "Phí bản sao",
        "50.000 ₫",
        "8.000 ₫",
        "58.000 ₫",
        # expires_in 3600 from 03:00 UTC = 11:00 in Asia/Ho_Chi_Minh
        "25/11/2026 11:00",
        'href="https://dichvucong.example.vn/ho-so/H12.22-241125-0001"',
        'href="/pay/{}?lang=en"'.format(order["id"]),
    ):
        assert text in html, text
    # API kind "fee" is lệ phí, "charge" is phí.
    assert '<span class="kind">Lệ phí</span>' in html
    assert '<span class="kind">Phí</span>' in html
    assert f'action="/pay/{order["id"]}"' in html
    assert '<button type="submit" name="provider" value="vnpay">VNPAY</button>' in html


def test_order_page_works_on_a_phone_without_scripts(client, portal):
    order = create_order(client, portal)
    r = client.get(f"/pay/{order['id']}")
    html = r.get_data(as_text=True)
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert "<script" not in html.lower()
    # No external assets: everything the head loads comes from this site.
    head = html.split("</head>")[0]
    assert re.findall(r'(?:href|src)="([^"]+)"', head) == ["/assets/citizen/citizen.css"]
    assert "script-src" not in r.headers["Content-Security-Policy"]
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    assert r.headers["Cache-Control"] == "no-store"
    css_href = re.search(r'<link rel="stylesheet" href="([^"]+)"', html)
    assert css_href is not None
    css = client.get(css_href.group(1))
    assert css.status_code == 200
    assert css.mimetype == "text/css"
    assert b"system-ui" in css.data
    css.close()


def test_english_with_lang_and_the_choice_sticks(client, portal):
    order = create_order(client, portal)
    r = client.get(f"/pay/{order['id']}?lang=en")
    html = r.get_data(as_text=True)
    assert '<html lang="en">' in html
    assert "Pay dossier fees and charges" in html
    assert "Choose a payment method" in html
    assert "Back to the public service portal" in html
    assert '<span class="kind">Fee</span>' in html
    assert "Tiếng Việt" in html  # the switch back, named in its own language
    cookie = client.get_cookie("lang")
    assert cookie is not None
    assert cookie.value == "en"
    assert cookie.http_only

    # The next page, without ?lang, is still English; ?lang=vi switches back and sticks too.
    assert "Pay dossier fees and charges" in page(client, f"/pay/{order['id']}")
    assert "Thanh toán phí, lệ phí hồ sơ" in page(client, f"/pay/{order['id']}?lang=vi")
    assert "Thanh toán phí, lệ phí hồ sơ" in page(client, f"/pay/{order['id']}")


def test_an_unsupported_lang_falls_back_to_vietnamese(client, portal):
    order = create_order(client, portal)
    r = client.get(f"/pay/{order['id']}?lang=fr")
    assert "Thanh toán phí, lệ phí hồ sơ" in r.get_data(as_text=True)
    assert client.get_cookie("lang") is None


def test_unknown_order_is_a_friendly_html_404(client):
    r = client.get("/pay/ord_doesnotexist")
    assert r.status_code == 404
    assert r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    assert "Không tìm thấy trang" in html
    assert "not found" not in html  # the developer's detail goes to the log, not to the citizen
    assert "<script" not in html
    assert client.post("/pay/ord_doesnotexist", data={"provider": "vnpay"}).status_code == 404
    # Other unknown pages too, in English when asked.
    assert "Page not found" in page(client, "/nothing-here?lang=en", status=404)


def test_api_errors_stay_problem_json(client, portal):
    r = client.get("/api/v1/orders/ord_doesnotexist", headers=portal.headers)
    assert r.status_code == 404
    assert r.mimetype == "application/problem+json"


def test_dossier_code_and_payer_are_escaped(client, portal):
    order = create_order(
        client,
        portal,
        dossier_code=XSS,
        agency_code=f"A{XSS}",
        payer={"name": XSS},
        items=[{"code": "X", "kind": "fee", "description": XSS, "amount": 10000}],
    )
    html = page(client, f"/pay/{order['id']}")
    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("&lt;script&gt;") >= 4  # title, agency, dossier, payer, item


# ---- POST /pay -----------------------------------------------------------------------------------------


def test_paying_with_vnpay_redirects_303_to_the_provider(client, portal, engine):
    order = create_order(client, portal)
    r = pay(client, order["id"], provider="vnpay")
    assert r.status_code == 303
    location = r.headers["Location"]
    assert location.startswith(VNPAY_PAY_URL)
    params = parse_qs(urlsplit(location).query)
    assert params["vnp_Amount"] == ["5800000"]
    assert params["vnp_Locale"] == ["vn"]  # Vietnamese page, Vietnamese provider page
    assert params["vnp_ReturnUrl"] == ["http://gateway.test/return/vnpay"]
    assert params["vnp_IpAddr"] == ["127.0.0.1"]

    body = api_order(client, portal, order["id"])
    assert body["status"] == "processing"
    assert [a["status"] for a in body["attempts"]] == ["redirected"]
    assert body["attempts"][0]["provider"] == "vnpay"
    assert count_rows(engine)["payment_attempts"] == 1


def test_the_page_language_goes_to_the_provider(client, portal):
    order = create_order(client, portal)
    r = pay(client, order["id"], provider="vnpay", lang="en")
    assert r.status_code == 303
    assert parse_qs(urlsplit(r.headers["Location"]).query)["vnp_Locale"] == ["en"]
    # The form's lang sticks like ?lang= does.
    assert "Pay dossier fees and charges" in page(client, f"/pay/{order['id']}")


def test_processing_order_offers_the_choices_again_with_a_notice(client, portal):
    order, _ = paying(client, portal)
    html = page(client, f"/pay/{order['id']}")
    assert "Một giao dịch thanh toán đang chờ xác nhận" in html
    assert 'name="provider" value="vnpay"' in html
    # The citizen abandoned VNPAY's page and tries again: a second attempt.
    assert pay(client, order["id"], provider="vnpay").status_code == 303
    assert len(api_order(client, portal, order["id"])["attempts"]) == 2


@pytest.mark.parametrize(
    "form", [{"provider": "paypal"}, {"provider": ""}, {}], ids=["unknown", "empty", "missing"]
)
def test_unknown_or_missing_provider_is_422_without_an_attempt(client, portal, engine, form):
    order = create_order(client, portal)
    before = count_rows(engine)
    r = pay(client, order["id"], **form)
    assert r.status_code == 422
    assert r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    assert "Vui lòng chọn phương thức thanh toán." in html
    assert 'name="provider" value="vnpay"' in html  # the choices are there to fix it
    assert count_rows(engine) == before
    assert api_order(client, portal, order["id"])["status"] == "pending"


def test_expired_order_shows_expired_and_refuses_payment(client, portal, engine, clock):
    order = create_order(client, portal)
    clock.advance(seconds=3601)
    html = page(client, f"/pay/{order['id']}")
    assert "Yêu cầu thanh toán đã hết hạn" in html
    assert 'name="provider"' not in html
    assert "Quay lại cổng dịch vụ công" in html

    r = pay(client, order["id"], provider="vnpay")
    assert r.status_code == 409
    assert "Yêu cầu thanh toán đã hết hạn" in r.get_data(as_text=True)
    assert count_rows(engine)["payment_attempts"] == 0
    assert api_order(client, portal, order["id"])["status"] == "expired"


def test_cancelled_order_shows_cancelled(client, portal, engine):
    order = create_order(client, portal)
    assert client.post(f"/api/v1/orders/{order['id']}/cancel", headers=portal.headers).status_code == 200
    html = page(client, f"/pay/{order['id']}")
    assert "Yêu cầu thanh toán đã bị hủy" in html
    assert 'name="provider"' not in html
    assert pay(client, order["id"], provider="vnpay").status_code == 409
    assert count_rows(engine)["payment_attempts"] == 0


def test_paid_order_shows_paid(client, portal, engine):
    order, attempt = paying(client, portal)
    ipn = client.get(f"/callbacks/vnpay?{signed_return(attempt['reference'])}")
    assert ipn.get_json()["RspCode"] == "00"
    html = page(client, f"/pay/{order['id']}?lang=vi")
    assert "Hồ sơ đã được thanh toán" in html
    assert 'name="provider"' not in html
    assert "Hạn thanh toán" not in html
    r = pay(client, order["id"], provider="vnpay")
    assert r.status_code == 409
    assert "Hồ sơ đã được thanh toán" in r.get_data(as_text=True)
    assert count_rows(engine)["payment_attempts"] == 1


# ---- GET /return/<provider> ----------------------------------------------------------------------------


def test_signed_success_return_shows_confirming_and_changes_nothing(client, portal, engine, sessions):
    order, attempt = paying(client, portal)
    before = count_rows(engine)

    html = page(client, f"/return/vnpay?{signed_return(attempt['reference'])}")
    assert "Đang chờ xác nhận từ ngân hàng/ví" in html
    assert "Ngân hàng đã báo thanh toán thành công" in html
    assert "Kiểm tra lại" in html  # a plain refresh link, no script, no meta refresh
    assert "http-equiv" not in html
    assert "<script" not in html
    assert 'href="https://dichvucong.example.vn/ho-so/H12.22-241125-0001"' in html
    assert "Quay lại cổng dịch vụ công" in html
    assert "58.000 ₫" in html

    # Display only: the order waits for the IPN; only the raw redirect was kept.
    body = api_order(client, portal, order["id"])
    assert body["status"] == "processing"
    assert [a["status"] for a in body["attempts"]] == ["redirected"]
    after = count_rows(engine)
    assert after.pop("inbound_notifications") == before.pop("inbound_notifications") + 1
    assert after == before
    (row,) = return_rows(sessions)
    assert row.channel == "return"
    assert row.provider == "vnpay"
    assert row.method == "GET"
    assert row.query_string == signed_return(attempt["reference"])
    assert row.dedupe_key is None


def test_return_after_the_ipn_shows_paid(client, portal):
    order, attempt = paying(client, portal)
    query = signed_return(attempt["reference"])
    assert client.get(f"/callbacks/vnpay?{query}").get_json()["RspCode"] == "00"
    html = page(client, f"/return/vnpay?{query}&lang=en")
    assert "Payment successful" in html
    assert "This dossier has been paid" in html
    assert api_order(client, portal, order["id"])["status"] == "paid"


def test_failed_return_offers_to_try_again_without_changing_state(client, portal):
    order, attempt = paying(client, portal)
    query = signed_return(
        attempt["reference"], vnp_ResponseCode="24", vnp_TransactionStatus="02", vnp_TransactionNo="0"
    )
    html = page(client, f"/return/vnpay?{query}")
    assert "Thanh toán không thành công" in html
    assert f'href="/pay/{order["id"]}"' in html
    assert api_order(client, portal, order["id"])["status"] == "processing"


def test_undecided_return_shows_processing(client, portal):
    order, attempt = paying(client, portal)
    # 07: debited but suspected; neither paid nor failed (providers.md §1.6).
    html = page(client, f"/return/vnpay?{signed_return(attempt['reference'], vnp_ResponseCode='07')}")
    assert "Giao dịch đang được xử lý" in html
    assert api_order(client, portal, order["id"])["status"] == "processing"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda q: q.replace("vnp_Amount=5800000", "vnp_Amount=100"),
        lambda q: q.replace("vnp_ResponseCode=24", "vnp_ResponseCode=00"),
        lambda q: q.split("&vnp_SecureHash=")[0],
    ],
    ids=["amount", "result", "no-hash"],
)
def test_tampered_return_is_400_and_trusts_nothing(client, portal, sessions, tamper):
    order, attempt = paying(client, portal)
    query = tamper(signed_return(attempt["reference"], vnp_ResponseCode="24", vnp_TransactionStatus="02"))
    html = page(client, f"/return/vnpay?{query}", status=400)
    assert "Không thể xác minh kết quả thanh toán" in html
    assert "H12.22-241125-0001" not in html  # nothing read from an unverified message, nothing looked up
    assert api_order(client, portal, order["id"])["status"] == "processing"
    (row,) = return_rows(sessions)
    assert row.channel == "return"
    assert row.verified is False


def test_signed_return_for_an_unknown_reference_is_404(client, portal):
    paying(client, portal)
    html = page(client, f"/return/vnpay?{signed_return('GW261125NOPE00')}", status=404)
    assert "Không tìm thấy giao dịch" in html


def test_return_for_an_unknown_provider_is_an_html_404(client, engine):
    before = count_rows(engine)
    html = page(client, "/return/paypal?token=x", status=404)
    assert "Không tìm thấy trang" in html
    assert count_rows(engine) == before


# ---- providers that answer with a QR code or not at all ------------------------------------------------


class _FakeProvider(PaymentProvider):
    methods: ClassVar[tuple[str, ...]] = ("fake",)

    def build_payment_request(self, request: PaymentRequest) -> PaymentRedirect:
        raise NotImplementedError

    def verify_callback(self, request: CallbackRequest) -> Notification:
        raise SignatureVerificationError("fake provider signs nothing")

    def verify_return(self, request: CallbackRequest) -> Notification:
        raise SignatureVerificationError("fake provider signs nothing")

    def acknowledge(self, ack: Ack) -> AckResponse:
        return AckResponse(status=200, body=b"")

    def query(self, request: QueryRequest) -> Notification:
        raise NotImplementedError


class QrProvider(_FakeProvider):
    code: ClassVar[str] = "fakeqr"
    display_name: ClassVar[str] = "Chuyển khoản QR"

    def build_payment_request(self, request: PaymentRequest) -> PaymentRedirect:
        return PaymentRedirect(
            redirect_url=None, qr_payload=f"00020101021238570010A000000727<{request.reference}>"
        )


class DownProvider(_FakeProvider):
    code: ClassVar[str] = "fakedown"
    display_name: ClassVar[str] = "Ví ngừng hoạt động"

    def build_payment_request(self, request: PaymentRequest) -> PaymentRedirect:
        raise ProviderUnavailable("connect timeout")


class RefusingProvider(_FakeProvider):
    code: ClassVar[str] = "fakeno"
    display_name: ClassVar[str] = "Ví từ chối"

    def build_payment_request(self, request: PaymentRequest) -> PaymentRedirect:
        raise SignatureVerificationError("merchant not allowed")


@pytest.fixture
def fake_app(settings: Settings, engine: Any, clock: Any) -> Iterator[Flask]:
    # Not "emulated": the app would look for an emulator module for each of them.
    providers = {
        cls.code: cls(
            ProviderCredentials(code=cls.code, values={}, emulated=False), base_url=settings.base_url
        )
        for cls in (QrProvider, DownProvider, RefusingProvider)
    }
    application = create_app(settings, clock=clock, providers=ProviderRegistry(providers))
    yield application
    application.extensions["gateway"].engine.dispose()


def test_a_qr_only_provider_shows_the_payload(fake_app, portal):
    client = fake_app.test_client()
    order = create_order(client, portal)
    html = page(client, f"/pay/{order['id']}")
    assert '<button type="submit" name="provider" value="fakeqr">Chuyển khoản QR</button>' in html
    r = pay(client, order["id"], provider="fakeqr")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    attempt = api_order(client, portal, order["id"])["attempts"][0]
    assert attempt["status"] == "redirected"
    assert "Quét mã để thanh toán" in html
    assert f"00020101021238570010A000000727&lt;{attempt['reference']}&gt;" in html
    assert "58.000 ₫" in html


@pytest.mark.parametrize(("provider", "attempt_status"), [("fakedown", "unknown"), ("fakeno", "failed")])
def test_an_unreachable_provider_is_a_friendly_503(fake_app, portal, provider, attempt_status):
    client = fake_app.test_client()
    order = create_order(client, portal)
    r = pay(client, order["id"], provider=provider)
    assert r.status_code == 503
    assert r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    assert "Đơn vị thanh toán không phản hồi" in html
    assert "chọn phương thức thanh toán khác" in html
    assert f'href="/pay/{order["id"]}"' in html
    assert [a["status"] for a in api_order(client, portal, order["id"])["attempts"]] == [attempt_status]
    # The citizen can go back and choose again.
    assert 'name="provider" value="fakeqr"' in page(client, f"/pay/{order['id']}")


# ---- message catalogs ----------------------------------------------------------------------------------


def _catalog(lang: str) -> Any:
    with (TRANSLATIONS_DIR / lang / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        return read_po(fh, locale=lang)


def _extracted_msgids() -> set[str]:
    with (ROOT / "babel.cfg").open(encoding="utf-8") as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    ids: set[str] = set()
    for _filename, _lineno, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=DEFAULT_KEYWORDS
    ):
        ids.update(m for m in (message if isinstance(message, tuple) else (message,)) if m)
    return ids


def test_every_vietnamese_message_is_translated():
    catalog = _catalog("vi")
    messages = [m for m in catalog if m.id]
    assert messages
    untranslated = [m.id for m in messages if not (m.string if isinstance(m.string, str) else all(m.string))]
    assert untranslated == []
    assert [m.id for m in messages if m.fuzzy] == []
    assert list(catalog.check()) == []  # placeholders agree between msgid and msgstr


def test_every_page_string_is_in_the_catalogs():
    extracted = _extracted_msgids()
    assert "Choose a payment method" in extracted  # the extraction itself works
    for lang in ("vi", "en"):
        known = {m.id for m in _catalog(lang) if m.id}
        assert sorted(extracted - known) == [], f"missing from the {lang} catalog"


def test_catalogs_are_compiled_when_missing_or_stale(tmp_path):
    source = tmp_path / "translations"
    shutil.copytree(TRANSLATIONS_DIR, source, ignore=shutil.ignore_patterns("*.mo"))
    written = compile_catalogs(source)
    mo = source / "vi" / "LC_MESSAGES" / "messages.mo"
    assert mo in written
    assert mo.stat().st_size > 0
    assert compile_catalogs(source) == []  # up to date: nothing rewritten
    po = source / "vi" / "LC_MESSAGES" / "messages.po"
    stamp = mo.stat().st_mtime + 10
    os.utime(po, (stamp, stamp))
    assert compile_catalogs(source) == [mo]
    # An explicit target (the read-only fallback) mirrors the layout.
    assert compile_catalogs(source, tmp_path / "out") == [
        tmp_path / "out" / lang / "LC_MESSAGES" / "messages.mo" for lang in ("en", "vi")
    ]


def test_the_app_compiles_its_catalogs(app):
    assert (TRANSLATIONS_DIR / "vi" / "LC_MESSAGES" / "messages.mo").exists()
