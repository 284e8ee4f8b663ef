"""A citizen pays through every registered provider, offline, the way a tester would (issue 4, point 7).

Through the real app: the portal creates an order, the citizen chooses the provider on ``/pay/<id>`` and is
sent to the provider's emulator (for VietQR: the QR page, then the emulated banking app that scans it), the
tester presses a button on the emulator's own HTML form, the emulator sends its signed notification through
the app's HTTP session to ``/callbacks/<code>`` and redirects back; the portal then reads the order.
Nothing here knows a provider's field names: the forms are read from the pages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse

from gateway.storage.models import AuditLog, InboundNotification, PaymentAttempt
from tests.conftest import PortalKey
from tests.contract.conftest import BY_CODE, CODES
from tests.helpers import create_order

# The emulators' "the money moved" button: "success" on the wallets', card gateways' and bank's pages,
# "exact" (transfer the QR's amount) in the emulated banking app. Every other button is a way not to pay,
# except "other", which pays an amount the tester types (tested on its own below).
PAY_BUTTONS = frozenset({"success", "exact"})
TYPED_AMOUNT_BUTTONS = frozenset({"other"})


# ---- reading the emulators' pages like a browser -------------------------------------------------------


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: list[tuple[str, str]] = field(default_factory=list)  # (name, value) of the submit buttons

    def button_values(self) -> list[str]:
        return [value for _, value in self.buttons]


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self.links: list[str] = []
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(action=a.get("action", ""), method=a.get("method", "get").lower()))
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])
        elif not self.forms or "name" not in a:
            return
        elif tag == "button" and a.get("type", "submit") == "submit":
            self.forms[-1].buttons.append((a["name"], a.get("value", "")))
        elif tag == "input" and a.get("type", "text") not in {"submit", "button"}:
            self.forms[-1].fields[a["name"]] = a.get("value", "")
        elif tag == "textarea":
            self._textarea = a["name"]
            self.forms[-1].fields[a["name"]] = ""

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self.forms[-1].fields[self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._textarea = None


@dataclass
class Page:
    url: str
    html: str
    forms: list[Form]
    links: list[str]

    @classmethod
    def of(cls, url: str, response: TestResponse) -> Page:
        assert response.status_code == 200, f"{url}: {response.status_code} {response.get_data(as_text=True)}"
        parser = _PageParser()
        html = response.get_data(as_text=True)
        parser.feed(html)
        return cls(url, html, parser.forms, parser.links)

    def payment_form(self) -> Form | None:
        return next((f for f in self.forms if f.method == "post" and f.buttons), None)


def get(client: FlaskClient, url: str) -> Page:
    return Page.of(url, client.get(url))


def open_provider_page(client: FlaskClient, order_id: str, code: str) -> tuple[Page, Form]:
    """Choose ``code`` on the citizen page and follow it to the emulator's form with the outcome buttons."""
    chosen = client.post(f"/pay/{order_id}", data={"provider": code})
    assert chosen.status_code == 303, chosen.get_data(as_text=True)
    page = get(client, urljoin(f"http://gateway.test/pay/{order_id}", chosen.headers["Location"]))
    form = page.payment_form()
    if form is None:
        # A QR page: open the emulated banking app that scans it.
        scan = next((link for link in page.links if "/_emulator/" in link), None)
        assert scan is not None, f"{code}: neither a payment form nor a link to the emulator on {page.url}"
        page = get(client, urljoin(page.url, scan))
        form = page.payment_form()
    assert form is not None, f"{code}: no payment form on {page.url}"
    return page, form


def press(client: FlaskClient, page: Page, form: Form, value: str, **typed: str) -> TestResponse:
    """Press the button ``value`` of ``form``; a redirect back to the gateway is followed once."""
    name = next((n for n, v in form.buttons if v == value), None)
    assert name is not None, f"no button {value!r} on {page.url}: {form.buttons}"
    response = client.post(urljoin(page.url, form.action), data={**form.fields, **typed, name: value})
    assert response.status_code in {200, 302, 303}, response.get_data(as_text=True)
    if response.status_code in {302, 303}:
        # Back to the gateway's return page: display only, it must show, whatever the outcome.
        back = client.get(response.headers["Location"])
        assert back.status_code == 200, back.get_data(as_text=True)
    return response


def pay_button(form: Form) -> str:
    [value] = [v for v in form.button_values() if v in PAY_BUTTONS]
    return value


def not_paying_buttons(form: Form) -> list[str]:
    return [v for v in form.button_values() if v not in PAY_BUTTONS | TYPED_AMOUNT_BUTTONS]


# ---- reading the outcome ----------------------------------------------------------------------------------


def api_order(client: FlaskClient, portal: PortalKey, order_id: str) -> dict[str, Any]:
    r = client.get(f"/api/v1/orders/{order_id}", headers=portal.headers)
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_json()


def notifications(sessions: sessionmaker[Session], code: str, reference: str) -> list[InboundNotification]:
    with sessions() as session:
        return list(
            session.scalars(
                select(InboundNotification).where(
                    InboundNotification.provider == code,
                    InboundNotification.channel == "ipn",
                    InboundNotification.reference == reference,
                )
            )
        )


def new_order(client: FlaskClient, portal: PortalKey, n: int = 1) -> dict[str, Any]:
    # One open order per dossier and items (contract §4): each order of a test has its own dossier.
    return create_order(client, portal, dossier_code=f"H12.22-241125-{n:04d}")


# ---- the tests ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", CODES)
def test_a_citizen_pays_through_every_provider(
    code: str, client: FlaskClient, portal: PortalKey, sessions: sessionmaker[Session]
) -> None:
    order = new_order(client, portal)
    page, form = open_provider_page(client, order["id"], code)

    press(client, page, form, pay_button(form))

    body = api_order(client, portal, order["id"])
    assert body["status"] == "paid", body
    [attempt] = body["attempts"]
    assert (attempt["provider"], attempt["status"]) == (code, "succeeded")
    [ipn] = notifications(sessions, code, attempt["reference"])
    assert ipn.verified
    assert ipn.ack_code == "ok"


@pytest.mark.parametrize("code", CODES)
def test_a_failed_or_cancelled_payment_leaves_the_order_payable(
    code: str, client: FlaskClient, portal: PortalKey, sessions: sessionmaker[Session]
) -> None:
    notified = BY_CODE[code].notifies_failures
    _, probe = open_provider_page(client, new_order(client, portal, 0)["id"], code)
    choices = not_paying_buttons(probe)
    assert "cancel" in choices, f"{code}: the emulator offers no way not to pay: {probe.buttons}"

    for n, choice in enumerate(choices, start=1):
        order = new_order(client, portal, n)
        page, form = open_provider_page(client, order["id"], code)
        press(client, page, form, choice)

        body = api_order(client, portal, order["id"])
        [attempt] = body["attempts"]
        received = notifications(sessions, code, attempt["reference"])
        if notified:
            # The signed failure was recorded; the citizen may choose again.
            assert (body["status"], attempt["status"]) == ("pending", "failed"), (choice, body)
            assert [(r.verified, r.ack_code) for r in received] == [(True, "ok")]
        else:
            # No notification for money that never moved (ZaloPay §3.3, a bank credit): nothing changes.
            assert (body["status"], attempt["status"]) == ("processing", "redirected"), (choice, body)
            assert received == []
        assert 'name="provider"' in client.get(f"/pay/{order['id']}").get_data(as_text=True)


def test_a_vietqr_transfer_of_another_amount_is_a_discrepancy_not_a_payment(
    client: FlaskClient, portal: PortalKey, sessions: sessionmaker[Session]
) -> None:
    order = new_order(client, portal)
    page, form = open_provider_page(client, order["id"], "vietqr")
    assert set(TYPED_AMOUNT_BUTTONS) <= set(form.button_values())

    press(client, page, form, "other", amount=str(order["amount"] - 8_000))

    body = api_order(client, portal, order["id"])
    assert body["status"] == "processing", body
    [attempt] = body["attempts"]
    assert attempt["status"] == "redirected"
    [ipn] = notifications(sessions, "vietqr", attempt["reference"])
    assert (ipn.verified, ipn.ack_code) == (True, "bad_amount")
    with sessions() as session:
        attempt_id = session.scalars(
            select(PaymentAttempt.id).where(PaymentAttempt.reference == attempt["reference"])
        ).one()
        [mismatch] = session.scalars(
            select(AuditLog).where(AuditLog.entity_id == attempt_id, AuditLog.action == "amount_mismatch")
        ).all()
    assert f"{order['amount'] - 8_000} VND" in mismatch.reason
