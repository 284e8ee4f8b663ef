"""The provider contract (issue 4, points 6-8): every registered provider, VNPAY included, held to the same
checks through its emulator's ``Forge`` and its emulator's fault switches.

Per provider: a payment request gives a redirect or a QR; a correctly signed notification verifies; each
tampered signed field, a wrong key and a missing signature are rejected; every documented result code maps to
the declared outcome; the acknowledgements are the provider's exact answers (also over HTTP through
``/callbacks/<code>``); ``new,old`` keys both verify and a third key does not (contract §2); and a slow,
failing (5xx) or garbage-answering provider API gives ``unknown`` — never ``failed``, never a 500 to the
citizen.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any, ClassVar

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse

import providers
from gateway.domain.errors import ProviderUnavailable, SignatureVerificationError
from gateway.domain.references import new_reference
from gateway.storage.models import AuditLog
from providers.base import (
    Ack,
    AckResponse,
    CallbackRequest,
    Notification,
    NotificationForge,
    Outcome,
    PaymentProvider,
    PaymentRedirect,
    PaymentRequest,
    QueryRequest,
    RefundRequest,
)
from tests.conftest import FakeClock, PortalKey
from tests.contract.conftest import (
    CODES,
    CONTRACT,
    FAULTS,
    PROVIDERS,
    ContractProvider,
    ContractSetupError,
    CountingSession,
    EmulatorServer,
    RotatedFactory,
    RotationKeys,
    contract_providers,
)
from tests.helpers import create_order, start_attempt

AMOUNT = 58_000
TXN_ID = "4000000123"

every_provider = pytest.mark.parametrize("code", CODES)
TAMPER_CASES = [
    pytest.param(c.code, name, id=f"{c.code}-{name}")
    for c in CONTRACT
    for name in c.forge_class.signed_fields
]
FAULT_CASES = [pytest.param(code, fault, id=f"{code}-{fault}") for code in CODES for fault in FAULTS]
REFUND_FAULT_CASES = [
    pytest.param(c.code, fault, id=f"{c.code}-{fault}")
    for c in CONTRACT
    if not c.provider_class.manual_refunds
    for fault in FAULTS
]
# Through the app, whose providers reach their emulators in-process (no socket, so no timeout to fire).
APP_FAULT_CASES = [
    pytest.param(code, fault, id=f"{code}-{fault}") for code in CODES for fault in ("status", "garbage")
]


def payment_request(code: str) -> PaymentRequest:
    now = datetime.now(UTC)
    return PaymentRequest(
        reference=new_reference(now),
        amount=AMOUNT,
        order_info="Thanh toán hồ sơ H12.22-241125-0001",
        return_url=f"http://gateway.test/return/{code}",
        notify_url=f"http://gateway.test/callbacks/{code}",
        client_ip="203.0.113.10",
        locale="vi",
        created_at=now,
        expires_at=now + timedelta(hours=1),
    )


def query_request() -> QueryRequest:
    now = datetime.now(UTC)
    return QueryRequest(
        reference=new_reference(now),
        amount=AMOUNT,
        created_at=now,
        order_info="Thanh toan ho so",
    )


def refund_request() -> RefundRequest:
    now = datetime.now(UTC)
    return RefundRequest(
        reference=new_reference(now),
        payment_reference=new_reference(now),
        payment_txn_id=TXN_ID,
        amount=10_000,
        payment_amount=AMOUNT,
        already_refunded=0,
        reason="Hoan phi ho so",
        actor="contract-suite",
        created_at=now,
        payment_created_at=now - timedelta(minutes=10),
    )


def signed(
    forge: NotificationForge, reference: str, *, code: str | None = None, **changes: Any
) -> CallbackRequest:
    values: dict[str, Any] = {
        "reference": reference,
        "amount": AMOUNT,
        "result_code": forge.success_code if code is None else code,
        "provider_txn_id": TXN_ID,
    }
    values.update(changes)
    return forge.notification(**values)


# ---- the suite picks up every provider ------------------------------------------------------------------


def test_every_registered_provider_is_under_contract() -> None:
    assert sorted(providers.REGISTRY) == CODES
    assert "vnpay" in CODES
    stale = set(PROVIDERS) - set(providers.REGISTRY)
    assert not stale, f"rows in tests/contract/conftest.py PROVIDERS for unregistered providers: {stale}"


class _Dummy(PaymentProvider):
    code: ClassVar[str] = "dummy"
    display_name: ClassVar[str] = "Dummy"
    methods: ClassVar[tuple[str, ...]] = ("dummy",)

    def build_payment_request(self, request: PaymentRequest) -> PaymentRedirect:
        raise NotImplementedError

    def verify_callback(self, request: CallbackRequest) -> Notification:
        raise NotImplementedError

    def verify_return(self, request: CallbackRequest) -> Notification:
        raise NotImplementedError

    def acknowledge(self, ack: Ack) -> AckResponse:
        raise NotImplementedError

    def query(self, request: QueryRequest) -> Notification:
        raise NotImplementedError


class _DummyForge(NotificationForge):
    result_codes: ClassVar[dict[str, Outcome]] = {"ok": Outcome.SUCCEEDED}
    success_code: ClassVar[str] = "ok"
    signed_fields: ClassVar[tuple[str, ...]] = ("amount",)

    def notification(self, **kwargs: Any) -> CallbackRequest:
        raise NotImplementedError

    def tamper(self, request: CallbackRequest, field_name: str) -> CallbackRequest:
        raise NotImplementedError

    def strip_signature(self, request: CallbackRequest) -> CallbackRequest:
        raise NotImplementedError


def _emulator_module(**members: Any) -> ModuleType:
    module = ModuleType("providers.emulators.dummy")
    for name, value in members.items():
        setattr(module, name, value)
    return module


@pytest.fixture
def dummy_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new provider registered with one REGISTRY line (on a copy, so nothing else sees it)."""
    monkeypatch.setattr(providers, "REGISTRY", {**providers.REGISTRY, "dummy": _Dummy})


@pytest.mark.usefixtures("dummy_registered")
def test_a_registered_provider_without_an_emulator_stops_the_suite() -> None:
    with pytest.raises(ContractSetupError, match=r"'dummy'.*providers/emulators/dummy\.py"):
        contract_providers()


@pytest.mark.usefixtures("dummy_registered")
def test_a_registered_provider_without_a_forge_stops_the_suite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "providers.emulators.dummy", _emulator_module(create_blueprint=print))
    with pytest.raises(ContractSetupError, match=r"'dummy'.*no Forge\(NotificationForge\)"):
        contract_providers()


@pytest.mark.usefixtures("dummy_registered")
def test_a_registered_provider_without_a_table_row_stops_the_suite(monkeypatch: pytest.MonkeyPatch) -> None:
    module = _emulator_module(create_blueprint=print, Forge=_DummyForge)
    monkeypatch.setitem(sys.modules, "providers.emulators.dummy", module)
    with pytest.raises(ContractSetupError, match=r"'dummy' has no row .* add a row here"):
        contract_providers()
    # With its row it is under contract like the others.
    found = contract_providers(table={**PROVIDERS, "dummy": PROVIDERS["vnpay"]})
    assert [c.code for c in found] == sorted([*CODES, "dummy"])


# ---- building a payment ------------------------------------------------------------------------------------


@every_provider
def test_a_payment_request_gives_a_redirect_or_a_qr(
    code: str, provider: PaymentProvider, faults: dict[str, Any], emulator_server: EmulatorServer
) -> None:
    redirect = provider.build_payment_request(payment_request(code))
    assert redirect.redirect_url or redirect.qr_payload
    if redirect.redirect_url and redirect.redirect_url.startswith(f"{emulator_server.url}/_emulator/"):
        # The emulator checked our signature (or knows the payment we created) and shows its pay page.
        page = requests.get(redirect.redirect_url, timeout=5)
        assert page.status_code == 200, page.text


# ---- verifying notifications ----------------------------------------------------------------------------


@every_provider
def test_a_correctly_signed_notification_verifies(
    provider: PaymentProvider, forge: NotificationForge
) -> None:
    reference = new_reference(datetime.now(UTC))
    note = provider.verify_callback(signed(forge, reference))
    assert (note.reference, note.amount, note.outcome) == (reference, AMOUNT, Outcome.SUCCEEDED)
    assert note.provider_txn_id == TXN_ID
    assert note.result_code == forge.success_code


@pytest.mark.parametrize(("code", "field_name"), TAMPER_CASES)
def test_each_tampered_signed_field_is_rejected(
    provider: PaymentProvider, forge: NotificationForge, field_name: str
) -> None:
    genuine = signed(forge, new_reference(datetime.now(UTC)))
    tampered = forge.tamper(genuine, field_name)
    assert tampered != genuine
    with pytest.raises(SignatureVerificationError):
        provider.verify_callback(tampered)


@every_provider
def test_a_wrong_key_is_rejected(provider: PaymentProvider, forge: NotificationForge) -> None:
    with pytest.raises(SignatureVerificationError):
        provider.verify_callback(signed(forge, new_reference(datetime.now(UTC)), secret="not-the-key"))


@every_provider
def test_a_missing_signature_is_rejected(provider: PaymentProvider, forge: NotificationForge) -> None:
    stripped = forge.strip_signature(signed(forge, new_reference(datetime.now(UTC))))
    with pytest.raises(SignatureVerificationError):
        provider.verify_callback(stripped)


@every_provider
def test_every_documented_result_code_maps_as_declared(
    provider: PaymentProvider, forge: NotificationForge
) -> None:
    reference = new_reference(datetime.now(UTC))
    got = {
        result: provider.verify_callback(signed(forge, reference, code=result)).outcome
        for result in forge.result_codes
    }
    assert got == dict(forge.result_codes)


@every_provider
def test_an_undocumented_result_code_is_never_final(
    provider: PaymentProvider, forge: NotificationForge
) -> None:
    try:
        request = signed(forge, new_reference(datetime.now(UTC)), code="987654")
    except ValueError:
        pytest.skip("the provider sends no notification with another result code")
    assert provider.verify_callback(request).outcome not in {Outcome.SUCCEEDED, Outcome.FAILED}


# ---- acknowledgements (contract §6) ---------------------------------------------------------------------


@every_provider
def test_acknowledgements_are_the_providers_exact_answers(
    contract: ContractProvider, provider: PaymentProvider
) -> None:
    answers = {ack: provider.acknowledge(ack) for ack in Ack}
    for ack, answer in answers.items():
        assert answer == provider.acknowledge(ack), f"{ack}: not stable"
        assert isinstance(answer.body, bytes)
        assert 200 <= answer.status < 600
        if answer.content_type == "application/json":
            json.loads(answer.body)
        if answer.body == b"":
            assert answer.content_type is None, f"{ack}: an empty body has no content type"
    assert 200 <= answers[Ack.OK].status < 300
    # The provider must be able to tell "taken" from "bad signature" and from "our error, retry".
    assert answers[Ack.BAD_SIGNATURE] != answers[Ack.OK]
    assert answers[Ack.ERROR] != answers[Ack.OK]
    for ack, (status, body) in contract.entry.acks.items():
        assert answers[ack].status == status, ack
        if isinstance(body, bytes):
            assert answers[ack].body == body, ack
        else:
            assert json.loads(answers[ack].body).items() >= body.items(), ack


def _post(client: FlaskClient, code: str, request: CallbackRequest) -> TestResponse:
    return client.open(
        f"/callbacks/{code}",
        method=request.method,
        query_string=dict(request.args),
        data=request.body,
        headers=dict(request.headers),
    )


def _answered(response: TestResponse, expected: AckResponse) -> None:
    assert (response.status_code, response.get_data()) == (expected.status, expected.body)
    assert response.headers.get("Content-Type") == expected.content_type


@every_provider
def test_callbacks_answer_with_the_providers_exact_acknowledgement(
    code: str,
    contract: ContractProvider,
    app: Flask,
    client: FlaskClient,
    portal: PortalKey,
    clock: FakeClock,
    sessions: sessionmaker[Session],
) -> None:
    # Some forges stamp the payment time with the wall clock: keep the order open at that time.
    clock.now = datetime.now(UTC).replace(microsecond=0)
    provider = app.extensions["gateway"].providers.get(code)
    forge = contract.forge_class(provider, contract.entry.emulator_secret(provider))
    order = create_order(client, portal)
    attempt = start_attempt(client, portal, order["id"], code)
    assert attempt["status"] == "redirected", attempt
    reference, amount = attempt["reference"], order["amount"]

    unknown = signed(forge, new_reference(clock()), amount=amount)
    _answered(_post(client, code, unknown), provider.acknowledge(Ack.NOT_FOUND))
    forged = signed(forge, reference, amount=amount, secret="not-the-key")
    _answered(_post(client, code, forged), provider.acknowledge(Ack.BAD_SIGNATURE))
    short = signed(forge, reference, amount=amount - 1_000, provider_txn_id="4000000999")
    _answered(_post(client, code, short), provider.acknowledge(Ack.BAD_AMOUNT))
    with sessions() as session:
        actions = session.scalars(select(AuditLog.action).where(AuditLog.entity_id == attempt["id"])).all()
    assert "amount_mismatch" in actions
    assert client.get(f"/api/v1/orders/{order['id']}", headers=portal.headers).get_json()["status"] != "paid"

    paid = signed(forge, reference, amount=amount)
    _answered(_post(client, code, paid), provider.acknowledge(Ack.OK))
    assert client.get(f"/api/v1/orders/{order['id']}", headers=portal.headers).get_json()["status"] == "paid"
    _answered(_post(client, code, paid), provider.acknowledge(Ack.ALREADY))


# ---- key rotation (contract §2) -------------------------------------------------------------------------


def _verify_with(
    contract: ContractProvider, provider: PaymentProvider, keys: RotationKeys, secret: str
) -> Notification:
    forge = contract.forge_class(provider, keys.new)
    return provider.verify_callback(signed(forge, new_reference(datetime.now(UTC)), secret=secret))


@every_provider
def test_new_and_old_keys_verify_and_no_other(
    contract: ContractProvider, rotated_provider: RotatedFactory, rotation_keys: RotationKeys
) -> None:
    provider = rotated_provider([rotation_keys.new, rotation_keys.old])
    assert _verify_with(contract, provider, rotation_keys, rotation_keys.new).outcome is Outcome.SUCCEEDED
    assert _verify_with(contract, provider, rotation_keys, rotation_keys.old).outcome is Outcome.SUCCEEDED
    with pytest.raises(SignatureVerificationError):
        _verify_with(contract, provider, rotation_keys, rotation_keys.neither)


@every_provider
def test_once_rotated_out_the_old_key_is_rejected(
    contract: ContractProvider, rotated_provider: RotatedFactory, rotation_keys: RotationKeys
) -> None:
    provider = rotated_provider([rotation_keys.new])
    assert _verify_with(contract, provider, rotation_keys, rotation_keys.new).outcome is Outcome.SUCCEEDED
    with pytest.raises(SignatureVerificationError):
        _verify_with(contract, provider, rotation_keys, rotation_keys.old)


# ---- a provider in trouble: slow, 5xx, garbage -------------------------------------------------------------


def _sent(provider: PaymentProvider) -> list[str]:
    assert isinstance(provider.session, CountingSession)
    return provider.session.sent


@pytest.mark.parametrize(("code", "fault"), FAULT_CASES)
def test_a_query_in_trouble_is_unknown(provider: PaymentProvider, faults: dict[str, Any], fault: str) -> None:
    faults[fault] = FAULTS[fault]
    note = provider.query(query_request())
    assert note.outcome is Outcome.UNKNOWN
    # A provider that can be asked really was (the fault answered), one that cannot was not.
    assert bool(_sent(provider)) is provider.supports_query


@pytest.mark.parametrize(("code", "fault"), REFUND_FAULT_CASES)
def test_a_refund_in_trouble_is_unknown_never_failed(
    provider: PaymentProvider, faults: dict[str, Any], fault: str
) -> None:
    faults[fault] = FAULTS[fault]
    request = refund_request()
    assert provider.refund(request).outcome is Outcome.UNKNOWN
    assert provider.query_refund(request).outcome is Outcome.UNKNOWN
    assert _sent(provider)


@pytest.mark.parametrize(("code", "fault"), FAULT_CASES)
def test_a_payment_request_in_trouble_is_provider_unavailable(
    code: str, provider: PaymentProvider, faults: dict[str, Any], fault: str
) -> None:
    faults[fault] = FAULTS[fault]
    try:
        redirect = provider.build_payment_request(payment_request(code))
    except ProviderUnavailable:
        assert _sent(provider), "ProviderUnavailable without asking the provider"
    else:
        # Only a provider whose payment request is built locally (a signed URL, a QR) may shrug it off.
        assert _sent(provider) == [], "a redirect from a provider whose API is failing"
        assert redirect.redirect_url or redirect.qr_payload


@pytest.fixture
def creates_remotely(code: str, provider: PaymentProvider, faults: dict[str, Any]) -> bool:
    """Whether this provider's payment request calls its API (found out against the healthy emulator)."""
    provider.build_payment_request(payment_request(code))
    return bool(_sent(provider))


@pytest.mark.parametrize(("code", "fault"), APP_FAULT_CASES)
def test_the_citizen_gets_a_friendly_503_never_a_500(
    code: str, fault: str, app: Flask, client: FlaskClient, portal: PortalKey, creates_remotely: bool
) -> None:
    blueprint = app.blueprints.get(f"emulator_{code}")
    assert blueprint is not None, f"the {code} emulator is not mounted at /_emulator/{code}"
    blueprint.faults[fault] = FAULTS[fault]  # type: ignore[attr-defined]
    order = create_order(client, portal)

    response = client.post(f"/pay/{order['id']}", data={"provider": code})

    attempts = client.get(f"/api/v1/orders/{order['id']}", headers=portal.headers).get_json()["attempts"]
    if creates_remotely:
        assert response.status_code == 503, response.get_data(as_text=True)
        assert response.mimetype == "text/html"
        assert f'href="/pay/{order["id"]}"' in response.get_data(as_text=True)  # choose again
        assert [a["status"] for a in attempts] == ["unknown"]
        # Retrying is safe: the provider recovers, the citizen tries again, and the new attempt never
        # reuses the reference of the one whose outcome is unknown (it may still be paid later).
        blueprint.faults.clear()  # type: ignore[attr-defined]
        again = client.post(f"/pay/{order['id']}", data={"provider": code})
        assert again.status_code == 303, again.get_data(as_text=True)
        retried = client.get(f"/api/v1/orders/{order['id']}", headers=portal.headers).get_json()["attempts"]
        assert [a["status"] for a in retried] == ["unknown", "redirected"]
        assert retried[0]["reference"] != retried[1]["reference"]
    else:
        assert response.status_code == 303
        assert [a["status"] for a in attempts] == ["redirected"]
