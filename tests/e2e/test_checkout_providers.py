"""The citizen checkout's provider choices (issue 4, point 9): names and our own logos, MoMo's two methods,
nothing remembered about the citizen, and the circuit breaker's "temporarily unavailable" instead of errors.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, ClassVar
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway.app import create_app
from gateway.domain.errors import SignatureVerificationError
from gateway.services.circuit import CircuitRegistry, CircuitState
from gateway.services.registry import ProviderRegistry
from gateway.settings import ProviderCredentials, Settings
from providers import REGISTRY
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
from tests.conftest import FakeClock, PortalKey, count_rows
from tests.helpers import create_order

UNAVAILABLE_VI = "Tạm thời gián đoạn, vui lòng chọn phương thức khác"
UNAVAILABLE_EN = "Temporarily unavailable, please choose another method"
NOT_RESPONDING_VI = "Đơn vị thanh toán không phản hồi"
MOMO_PAY_URL = "http://gateway.test/_emulator/momo/pay/"

# What each registered provider is called on the page, per language.
NAMES = {
    "vi": {
        "vnpay": ["VNPAY"],
        "momo": ["Ví MoMo", "Thẻ ATM qua MoMo"],
        "zalopay": ["ZaloPay"],
        "vietqr": ["Chuyển khoản VietQR"],
        "rsabank": ["Ngân hàng liên kết"],
    },
    "en": {
        "vnpay": ["VNPAY"],
        "momo": ["MoMo wallet", "ATM card via MoMo"],
        "zalopay": ["ZaloPay"],
        "vietqr": ["VietQR bank transfer"],
        "rsabank": ["Linked bank"],
    },
}


# ---- helpers -------------------------------------------------------------------------------------------


def circuits(app: Flask) -> CircuitRegistry:
    registry: CircuitRegistry = app.extensions["gateway"].circuits
    return registry


def momo_faults(app: Flask) -> dict[str, Any]:
    faults: dict[str, Any] = app.blueprints["emulator_momo"].faults  # type: ignore[attr-defined]
    return faults


def pay(client: FlaskClient, order_id: str, **form: str) -> Any:
    return client.post(f"/pay/{order_id}", data=form)


def choices_html(html: str) -> str:
    """The list of payment choices on the page."""
    match = re.search(r'<ul class="choices">.*?</ul>', html, re.S)
    assert match is not None, html
    return match.group(0)


def choice_items(html: str) -> list[str]:
    return re.findall(r'<li class="choice[^"]*">.*?</li>', choices_html(html), re.S)


def item_for(html: str, provider: str, method: str | None = None) -> str:
    """The one choice for ``provider`` (and ``method``), as rendered."""
    found = [
        item
        for item in choice_items(html)
        if f'name="provider" value="{provider}"' in item
        and (method is None or f'name="method" value="{method}"' in item)
    ]
    assert len(found) == 1, (provider, method, found)
    return found[0]


def attempts(client: FlaskClient, portal: PortalKey, order_id: str) -> list[dict[str, Any]]:
    r = client.get(f"/api/v1/orders/{order_id}", headers=portal.headers)
    assert r.status_code == 200
    attempts_: list[dict[str, Any]] = r.get_json()["attempts"]
    return attempts_


def open_momo_circuit(app: Flask, client: FlaskClient, order_id: str) -> None:
    """Three consecutive create failures (MoMo answers 503) open MoMo's circuit."""
    momo_faults(app)["status"] = 503
    for _ in range(3):
        assert circuits(app).state("momo") is CircuitState.CLOSED
        r = pay(client, order_id, provider="momo", method="payWithATM")
        assert r.status_code == 503
        assert NOT_RESPONDING_VI in r.get_data(as_text=True)  # the existing friendly page, never a 500
    assert circuits(app).state("momo") is CircuitState.OPEN


# ---- names and logos -----------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_every_registered_provider_is_offered_with_its_name_and_logo(app, client, portal, lang):
    assert set(app.extensions["gateway"].providers.codes()) == set(REGISTRY)  # all enabled in the tests
    order = create_order(client, portal)
    r = client.get(f"/pay/{order['id']}?lang={lang}")
    assert r.status_code == 200
    html = r.get_data(as_text=True)

    items = choice_items(html)
    assert len(items) == sum(len(names) for names in NAMES[lang].values())
    for code in REGISTRY:
        offered = [item for item in items if f'name="provider" value="{code}"' in item]
        assert [re.search(r">([^<>]+)</button>", item).group(1) for item in offered] == NAMES[lang][code]  # type: ignore[union-attr]
        for item in offered:
            # Our own drawing, decorative (the button names the choice), served by this site.
            assert f'<img class="logo" src="/assets/citizen/providers/{code}.svg" alt=""' in item
            assert "disabled" not in item
    for src in set(re.findall(r'<img[^>]* src="([^"]+)"', html)):
        logo = client.get(src)
        assert logo.status_code == 200
        assert logo.mimetype == "image/svg+xml"
        svg = logo.get_data(as_text=True)
        logo.close()
        assert svg.startswith("<svg ")
        assert "<text" in svg  # the name, written out
        # Self-contained: no script, no image or font fetched from anywhere.
        assert "<script" not in svg
        assert "href" not in svg
        assert "url(" not in svg
    assert "<script" not in html


def test_the_logo_list_covers_every_provider_and_the_fallback(client):
    for name in [*REGISTRY, "generic"]:
        r = client.get(f"/assets/citizen/providers/{name}.svg")
        assert r.status_code == 200, name
        assert r.mimetype == "image/svg+xml"
        r.close()


class _PlainProvider(PaymentProvider):
    """A provider the gateway has no logo for."""

    code: ClassVar[str] = "fakeplain"
    display_name: ClassVar[str] = "Ví thử nghiệm"
    methods: ClassVar[tuple[str, ...]] = ("fake",)

    def build_payment_request(self, request: PaymentRequest) -> PaymentRedirect:
        return PaymentRedirect(redirect_url=f"https://pay.example/{request.reference}")

    def verify_callback(self, request: CallbackRequest) -> Notification:
        raise SignatureVerificationError("signs nothing")

    def verify_return(self, request: CallbackRequest) -> Notification:
        raise SignatureVerificationError("signs nothing")

    def acknowledge(self, ack: Ack) -> AckResponse:
        return AckResponse(status=200, body=b"")

    def query(self, request: QueryRequest) -> Notification:
        raise NotImplementedError


@pytest.fixture
def plain_app(settings: Settings, engine: Any, clock: FakeClock) -> Iterator[Flask]:
    provider = _PlainProvider(
        ProviderCredentials(code="fakeplain", values={}, emulated=False), base_url=settings.base_url
    )
    application = create_app(settings, clock=clock, providers=ProviderRegistry({"fakeplain": provider}))
    yield application
    application.extensions["gateway"].engine.dispose()


def test_a_provider_without_its_own_logo_gets_the_generic_one(plain_app, portal):
    client = plain_app.test_client()
    order = create_order(client, portal)
    html = client.get(f"/pay/{order['id']}").get_data(as_text=True)
    item = item_for(html, "fakeplain")
    assert '<img class="logo" src="/assets/citizen/providers/generic.svg" alt=""' in item
    assert '<button type="submit" name="provider" value="fakeplain">Ví thử nghiệm</button>' in item
    assert 'name="method"' not in item  # a single choice: the provider's default method


# ---- MoMo's two methods --------------------------------------------------------------------------------


def test_momo_offers_the_wallet_and_atm_cards(client, portal):
    order = create_order(client, portal)
    html = client.get(f"/pay/{order['id']}").get_data(as_text=True)
    wallet = item_for(html, "momo", "captureWallet")
    atm = item_for(html, "momo", "payWithATM")
    assert '<button type="submit" name="provider" value="momo">Ví MoMo</button>' in wallet
    assert '<button type="submit" name="provider" value="momo">Thẻ ATM qua MoMo</button>' in atm
    # Every other provider is one choice, without a method field.
    for code in ("vnpay", "zalopay", "vietqr", "rsabank"):
        assert 'name="method"' not in item_for(html, code)


@pytest.mark.parametrize(
    ("form", "request_type"),
    [
        ({"method": "payWithATM"}, "payWithATM"),
        ({"method": "captureWallet"}, "captureWallet"),
        ({}, "captureWallet"),  # no method: MoMo's default
    ],
    ids=["atm", "wallet", "default"],
)
def test_the_chosen_momo_method_reaches_momo(app, client, portal, form, request_type):
    order = create_order(client, portal)
    r = pay(client, order["id"], provider="momo", **form)
    assert r.status_code == 303, r.get_data(as_text=True)
    assert r.headers["Location"].startswith(MOMO_PAY_URL)
    (attempt,) = attempts(client, portal, order["id"])
    assert (attempt["provider"], attempt["status"]) == ("momo", "redirected")
    # The emulator received the create request over HTTP, as MoMo would.
    payment = app.blueprints["emulator_momo"].payments[attempt["reference"]]
    assert payment.request_type == request_type
    assert urlsplit(r.headers["Location"]).path.endswith(f"/pay/{attempt['reference']}")


@pytest.mark.parametrize(
    "form",
    [
        {"provider": "momo", "method": "payWithCC"},
        {"provider": "vnpay", "method": "payWithATM"},
        {"provider": "vnpay", "method": "VNBANK"},  # a VNPAY method, but not one the page offers
    ],
    ids=["momo-unknown", "vnpay-momo-method", "vnpay-unoffered"],
)
def test_a_method_the_page_does_not_offer_is_422_without_an_attempt(client, portal, engine, form):
    order = create_order(client, portal)
    before = count_rows(engine)
    r = pay(client, order["id"], **form)
    assert r.status_code == 422
    assert "Vui lòng chọn phương thức thanh toán." in r.get_data(as_text=True)
    assert count_rows(engine) == before


# ---- remembers nothing about the citizen ---------------------------------------------------------------


def test_the_checkout_remembers_nothing_about_the_citizen(client, portal):
    order = create_order(client, portal)
    first = client.get(f"/pay/{order['id']}")
    assert first.status_code == 200
    assert first.headers.getlist("Set-Cookie") == []  # no session, no tracking, nothing
    assert first.headers["Cache-Control"] == "no-store"
    before = choices_html(first.get_data(as_text=True))
    for attribute in ("checked", "selected", "autofocus", "autocomplete"):
        assert attribute not in before

    # Paying sets no cookie either...
    r = pay(client, order["id"], provider="momo", method="payWithATM")
    assert r.status_code == 303
    assert r.headers.getlist("Set-Cookie") == []

    # ...and the page the citizen comes back to offers the same choices, nothing pre-selected.
    again = client.get(f"/pay/{order['id']}")
    assert again.headers.getlist("Set-Cookie") == []
    assert again.headers["Cache-Control"] == "no-store"
    assert choices_html(again.get_data(as_text=True)) == before
    assert client.get_cookie("session") is None


def test_the_language_preference_is_the_only_cookie(client, portal):
    order = create_order(client, portal)
    r = client.get(f"/pay/{order['id']}?lang=en")
    (cookie,) = r.headers.getlist("Set-Cookie")
    assert cookie.startswith("lang=en;")
    assert r.headers["Cache-Control"] == "no-store"
    # The language sticks; nothing else does.
    r = pay(client, order["id"], provider="vnpay", lang="en")
    assert r.status_code == 303
    assert r.headers.getlist("Set-Cookie") == []
    html = client.get(f"/pay/{order['id']}").get_data(as_text=True)
    assert "MoMo wallet" in html
    for attribute in ("checked", "selected", "autofocus"):
        assert attribute not in choices_html(html)


# ---- the circuit breaker -------------------------------------------------------------------------------


def test_three_failures_open_the_circuit_and_the_choice_is_disabled(app, client, portal, engine):
    order = create_order(client, portal)
    open_momo_circuit(app, client, order["id"])
    assert [a["status"] for a in attempts(client, portal, order["id"])] == ["unknown"] * 3

    r = client.get(f"/pay/{order['id']}")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    for method in ("captureWallet", "payWithATM"):
        item = item_for(html, "momo", method)
        assert 'class="choice unavailable"' in item
        assert " disabled " in item
        assert UNAVAILABLE_VI in item
        (described,) = re.findall(r'aria-describedby="([^"]+)"', item)
        assert f'id="{described}"' in item
    # The others stay open.
    vnpay = item_for(html, "vnpay")
    assert '<button type="submit" name="provider" value="vnpay">VNPAY</button>' in vnpay
    assert UNAVAILABLE_VI not in vnpay

    english = client.get(f"/pay/{order['id']}?lang=en").get_data(as_text=True)
    assert UNAVAILABLE_EN in item_for(english, "momo", "payWithATM")


@pytest.mark.parametrize("method", ["payWithATM", "captureWallet", ""])
def test_choosing_an_open_circuit_anyway_is_a_503_page_without_an_attempt(
    app, client, portal, engine, method
):
    order = create_order(client, portal)
    open_momo_circuit(app, client, order["id"])
    momo_faults(app).clear()  # MoMo would answer now, but the circuit is still open: it is not asked
    before = count_rows(engine)
    payments = dict(app.blueprints["emulator_momo"].payments)

    r = pay(client, order["id"], provider="momo", method=method)
    assert r.status_code == 503
    assert r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    assert '<p class="notice error" role="alert">' + UNAVAILABLE_VI + "</p>" in html
    assert " disabled " in item_for(html, "momo", "payWithATM")
    assert 'name="provider" value="vnpay">VNPAY</button>' in html  # choose another one right here
    assert r.headers["Cache-Control"] == "no-store"
    assert count_rows(engine) == before
    assert app.blueprints["emulator_momo"].payments == payments

    # Another provider still works from the same page.
    assert pay(client, order["id"], provider="vnpay").status_code == 303


def test_an_open_circuit_does_not_hide_that_the_order_is_no_longer_payable(app, client, portal, clock):
    order = create_order(client, portal)
    open_momo_circuit(app, client, order["id"])
    clock.advance(seconds=30)  # still open
    assert client.post(f"/api/v1/orders/{order['id']}/cancel", headers=portal.headers).status_code == 200
    r = pay(client, order["id"], provider="momo", method="payWithATM")
    assert r.status_code == 409
    assert "Yêu cầu thanh toán đã bị hủy" in r.get_data(as_text=True)


def test_after_the_cooldown_one_trial_goes_through_and_closes_the_circuit(app, client, portal, clock, engine):
    order = create_order(client, portal)
    open_momo_circuit(app, client, order["id"])
    momo_faults(app).clear()

    clock.advance(seconds=59)
    assert pay(client, order["id"], provider="momo", method="payWithATM").status_code == 503
    assert len(attempts(client, portal, order["id"])) == 3

    clock.advance(seconds=2)
    assert circuits(app).state("momo") is CircuitState.HALF_OPEN
    html = client.get(f"/pay/{order['id']}").get_data(as_text=True)
    assert UNAVAILABLE_VI not in html
    assert "disabled" not in item_for(html, "momo", "payWithATM")

    r = pay(client, order["id"], provider="momo", method="payWithATM")
    assert r.status_code == 303
    assert r.headers["Location"].startswith(MOMO_PAY_URL)
    assert circuits(app).state("momo") is CircuitState.CLOSED
    assert [a["status"] for a in attempts(client, portal, order["id"])] == ["unknown"] * 3 + ["redirected"]
    assert pay(client, order["id"], provider="momo", method="captureWallet").status_code == 303


def test_a_failed_trial_opens_the_circuit_again(app, client, portal, clock, engine):
    order = create_order(client, portal)
    open_momo_circuit(app, client, order["id"])

    clock.advance(seconds=61)
    r = pay(client, order["id"], provider="momo", method="payWithATM")  # the one trial: MoMo still fails
    assert r.status_code == 503
    assert NOT_RESPONDING_VI in r.get_data(as_text=True)
    assert len(attempts(client, portal, order["id"])) == 4
    assert circuits(app).state("momo") is CircuitState.OPEN

    before = count_rows(engine)
    r = pay(client, order["id"], provider="momo", method="payWithATM")
    assert r.status_code == 503
    assert UNAVAILABLE_VI in r.get_data(as_text=True)
    assert count_rows(engine) == before


def test_a_definite_refusal_does_not_count_as_a_failure(app, client, portal):
    # MoMo's ATM payments start at 10 000 VND: the adapter refuses 5 000 outright (attempt "failed").
    order = create_order(
        client, portal, items=[{"code": "LP", "kind": "fee", "description": "Lệ phí", "amount": 5000}]
    )
    for _ in range(4):
        assert pay(client, order["id"], provider="momo", method="payWithATM").status_code == 503
    assert [a["status"] for a in attempts(client, portal, order["id"])] == ["failed"] * 4
    assert circuits(app).state("momo") is CircuitState.CLOSED
    assert pay(client, order["id"], provider="momo", method="captureWallet").status_code == 303


def test_the_api_answers_503_problem_json_while_the_circuit_is_open(app, client, portal, engine, clock):
    order = create_order(client, portal)
    momo_faults(app)["status"] = 503
    url = f"/api/v1/orders/{order['id']}/attempts"
    for _ in range(3):
        r = client.post(url, json={"provider": "momo", "method": "payWithATM"}, headers=portal.headers)
        assert r.status_code == 201
        assert r.get_json()["status"] == "unknown"
    assert circuits(app).state("momo") is CircuitState.OPEN

    before = count_rows(engine)
    r = client.post(url, json={"provider": "momo"}, headers=portal.headers)
    assert r.status_code == 503
    assert r.mimetype == "application/problem+json"
    body = r.get_json()
    assert body["status"] == 503
    assert body["title"] == "Payment provider temporarily unavailable"
    assert "momo" in body["detail"]
    assert count_rows(engine) == before

    # Other providers are not affected; after the cool-down MoMo gets its trial.
    assert client.post(url, json={"provider": "vnpay"}, headers=portal.headers).status_code == 201
    momo_faults(app).clear()
    clock.advance(seconds=60)
    r = client.post(url, json={"provider": "momo"}, headers=portal.headers)
    assert r.status_code == 201
    assert r.get_json()["status"] == "redirected"
    assert circuits(app).state("momo") is CircuitState.CLOSED


def test_page_and_api_share_one_circuit_per_provider(app, client, portal):
    order = create_order(client, portal)
    momo_faults(app)["status"] = 503
    url = f"/api/v1/orders/{order['id']}/attempts"
    assert client.post(url, json={"provider": "momo"}, headers=portal.headers).status_code == 201
    assert pay(client, order["id"], provider="momo", method="payWithATM").status_code == 503
    assert client.post(url, json={"provider": "momo"}, headers=portal.headers).status_code == 201
    assert circuits(app).state("momo") is CircuitState.OPEN
    html = client.get(f"/pay/{order['id']}").get_data(as_text=True)
    assert UNAVAILABLE_VI in item_for(html, "momo", "captureWallet")
