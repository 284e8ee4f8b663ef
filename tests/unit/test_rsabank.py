"""The RSA-signing bank connector (providers/rsabank.py, docs/rsabank.md; providers.md §5), with keys
generated at test time: construction, signed create/query/refund calls, notifications, return, answers."""

from __future__ import annotations

import http.server
import json
import os
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from gateway.domain.errors import (
    GatewayError,
    MalformedNotification,
    ProviderUnavailable,
    SignatureVerificationError,
)
from gateway.settings import ProviderCredentials
from providers.base import (
    Ack,
    CallbackRequest,
    Outcome,
    PaymentRequest,
    QueryRequest,
    RefundRequest,
)
from providers.rsa_signing import (
    Scheme,
    generate_private_key_pem,
    load_private_key,
    public_key_pem,
    sign,
    verify,
)
from providers.rsabank import (
    DISPLAY_NAME,
    RsabankProvider,
    cached_private_key,
    emulator_key_paths,
    ensure_private_key_file,
    parse_bank_time,
    return_message,
    status_outcome,
    to_bank_time,
)

ENDPOINT = "https://bank.test/api/v1"
BASE_URL = "http://gateway.test"


@dataclass(frozen=True)
class Keys:
    """PEMs generated once per module; file paths under a module temp dir."""

    folder: Path
    bank: bytes  # the bank's current private key (the bank signs with it)
    bank_old: bytes  # its previous one, still accepted during a rotation
    gateway: bytes  # OUR private key
    stranger: bytes

    def path(self, name: str) -> str:
        return str(self.folder / name)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    folder = tmp_path_factory.mktemp("rsabank-keys")
    k = Keys(folder, *(generate_private_key_pem() for _ in range(4)))
    (folder / "bank.pub.pem").write_bytes(public_key_pem(k.bank))
    (folder / "bank_old.pub.pem").write_bytes(public_key_pem(k.bank_old))
    (folder / "gateway.pem").write_bytes(k.gateway)
    (folder / "gateway.pub.pem").write_bytes(public_key_pem(k.gateway))
    return k


def credentials(keys: Keys, **changes: str) -> ProviderCredentials:
    values = {
        "RSABANK_ENDPOINT": ENDPOINT,
        "RSABANK_PUBLIC_KEYS": keys.path("bank.pub.pem"),
        "RSABANK_PRIVATE_KEY": keys.path("gateway.pem"),
        "RSABANK_SIGNATURE_SCHEME": "",
        "RSABANK_FIELD_MAP": "",
        "RSABANK_NAME": "",
    }
    values.update(changes)
    return ProviderCredentials(code="rsabank", values=values, emulated=False)


def make_provider(keys: Keys, **changes: str) -> RsabankProvider:
    return RsabankProvider(credentials(keys, **changes), base_url=BASE_URL, session=requests.Session())


@pytest.fixture
def provider(keys: Keys) -> RsabankProvider:
    return make_provider(keys)


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def bank_signed(pem: bytes, body: bytes, scheme: Scheme = Scheme.PKCS1V15) -> str:
    return sign(cached_private_key(pem), body, scheme)


def bank_answer(
    mocked: responses.RequestsMock,
    path: str,
    payload: Any,
    *,
    status: int = 200,
    pem: bytes | None = None,
    keys: Keys,
    scheme: Scheme = Scheme.PKCS1V15,
    header: str = "X-Signature",
) -> None:
    """Register the bank's answer to POST {ENDPOINT}{path}, its raw body signed with ``pem``."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    mocked.post(
        ENDPOINT + path,
        body=body,
        status=status,
        content_type="application/json",
        headers={header: bank_signed(pem or keys.bank, body, scheme)},
    )


def assert_signed_by_us(keys: Keys, request: Any, scheme: Scheme = Scheme.PKCS1V15) -> dict[str, Any]:
    """Our request's raw body verifies with OUR public key; returns the parsed body."""
    raw = request.body
    assert isinstance(raw, bytes)
    verify((cached_private_key(keys.gateway).public_key(),), raw, request.headers["X-Signature"], scheme)
    assert request.headers["Content-Type"] == "application/json"
    assert len(request.headers["X-Request-Id"]) == 32
    return json.loads(raw)


# ---- pure helpers -------------------------------------------------------------------------------------


def test_bank_times_are_gmt7_with_offset() -> None:
    instant = datetime(2026, 11, 25, 3, 5, tzinfo=UTC)
    assert to_bank_time(instant) == "2026-11-25T10:05:00+07:00"
    assert parse_bank_time("2026-11-25T10:05:00+07:00") == instant
    assert parse_bank_time("2026-11-25T03:05:00Z") == instant
    for bad in (None, "", "2026-11-25T10:05:00", "yesterday", 1764039900):
        assert parse_bank_time(bad) is None
    with pytest.raises(ValueError, match="naive"):
        to_bank_time(datetime(2026, 11, 25))  # naive on purpose


def test_return_message() -> None:
    assert return_message("GW261125ABC123", "success") == b"GW261125ABC123|success"
    assert return_message("HS-Đ1", "failed") == "HS-Đ1|failed".encode()


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("success", Outcome.SUCCEEDED),
        ("succeeded", Outcome.SUCCEEDED),
        ("paid", Outcome.SUCCEEDED),
        ("00", Outcome.SUCCEEDED),
        ("failed", Outcome.FAILED),
        ("failure", Outcome.FAILED),
        ("cancelled", Outcome.FAILED),
        ("canceled", Outcome.FAILED),
        ("pending", Outcome.PENDING),
        ("processing", Outcome.PENDING),
        ("reversed", Outcome.UNKNOWN),
        ("", Outcome.UNKNOWN),
    ],
)
def test_status_outcome(status: str, outcome: Outcome) -> None:
    assert status_outcome(status) is outcome


# ---- construction ---------------------------------------------------------------------------------------


def test_configured_provider(keys: Keys) -> None:
    p = make_provider(keys, RSABANK_ENDPOINT=ENDPOINT + "/")
    assert p.endpoint == ENDPOINT
    assert p.scheme is Scheme.PKCS1V15
    assert p.display_name == DISPLAY_NAME == "Ngân hàng liên kết"
    assert p.methods == ("bank_account", "card")
    assert p.callback_methods == ("POST",)
    assert len(p.bank_keys) == 1
    assert p.emulator_bank_private_pem is None


def test_display_name_override_is_per_instance(keys: Keys) -> None:
    p = make_provider(keys, RSABANK_NAME="Ngân hàng TMCP Thử Nghiệm")
    assert p.display_name == "Ngân hàng TMCP Thử Nghiệm"
    assert RsabankProvider.display_name == DISPLAY_NAME
    assert make_provider(keys).display_name == DISPLAY_NAME


def test_emulated_keys_are_generated_once_and_reused(tmp_path: Path) -> None:
    creds = ProviderCredentials(
        code="rsabank", values={}, emulated=True, instance_path=str(tmp_path / "inst")
    )
    p = RsabankProvider(creds, base_url="http://127.0.0.1:8000/")
    assert p.endpoint == "http://127.0.0.1:8000/_emulator/rsabank"
    bank_path, gateway_path = emulator_key_paths(str(tmp_path / "inst"))
    assert bank_path == tmp_path / "inst" / "emulator" / "rsabank" / "bank_private.pem"
    assert gateway_path == tmp_path / "inst" / "emulator" / "rsabank" / "gateway_private.pem"
    for path in (bank_path, gateway_path):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [f.name for f in bank_path.parent.iterdir() if f.name.startswith(".")] == []  # no temp leftovers
    assert p.emulator_bank_private_pem == bank_path.read_bytes()
    # The bank verifies with its own public key; our requests are signed with the gateway key.
    signature = sign(load_private_key(bank_path.read_bytes()), b"x")
    verify(p.bank_keys, b"x", signature)
    verify((p.private_key.public_key(),), b"x", sign(load_private_key(gateway_path.read_bytes()), b"x"))

    again = RsabankProvider(creds, base_url="http://127.0.0.1:8000")
    assert again.emulator_bank_private_pem == p.emulator_bank_private_pem
    verify(again.bank_keys, b"x", signature)


def test_emulator_keys_without_hard_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(src: str, dst: str) -> None:
        raise PermissionError("hard links not supported")

    monkeypatch.setattr(os, "link", no_links)
    path = tmp_path / "keys" / "k.pem"
    pem = ensure_private_key_file(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert cached_private_key(pem).key_size == 2048
    assert ensure_private_key_file(path) == pem  # reused
    assert sorted(p.name for p in path.parent.iterdir()) == ["k.pem"]


def test_a_corrupt_emulator_key_is_a_startup_error(tmp_path: Path) -> None:
    bank_path, _ = emulator_key_paths(str(tmp_path))
    bank_path.parent.mkdir(parents=True)
    bank_path.write_text("garbage")
    creds = ProviderCredentials(code="rsabank", values={}, emulated=True, instance_path=str(tmp_path))
    with pytest.raises(ValueError, match="emulator keys"):
        RsabankProvider(creds, base_url=BASE_URL)


def write(keys: Keys, name: str, content: bytes | str) -> str:
    path = keys.folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


def small_key_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def ec_key_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("RSABANK_ENDPOINT", "", "RSABANK_ENDPOINT"),
        ("RSABANK_ENDPOINT", "bank.test/api", "RSABANK_ENDPOINT"),
        ("RSABANK_ENDPOINT", "ftp://bank.test", "RSABANK_ENDPOINT"),
        ("RSABANK_PUBLIC_KEYS", "", "no public key"),
        ("RSABANK_PUBLIC_KEYS", "/nonexistent/bank.pem", "not found"),
        ("RSABANK_PRIVATE_KEY", "", "exactly one"),
        ("RSABANK_PRIVATE_KEY", "/nonexistent/gateway.pem", "not found"),
        ("RSABANK_SIGNATURE_SCHEME", "sha1", "pkcs1v15 or pss"),
        ("RSABANK_FIELD_MAP", "/nonexistent/map.json", "RSABANK_FIELD_MAP"),
    ],
)
def test_invalid_settings_are_startup_errors(keys: Keys, name: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_provider(keys, **{name: value})


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("RSABANK_PUBLIC_KEYS", b"garbage", "RSABANK_PUBLIC_KEYS"),
        ("RSABANK_PRIVATE_KEY", b"garbage", "RSABANK_PRIVATE_KEY"),
        ("RSABANK_PRIVATE_KEY", "small", "1024 bits"),
        ("RSABANK_PUBLIC_KEYS", "small", "1024 bits"),
        ("RSABANK_PRIVATE_KEY", "ec", "not an RSA key"),
        ("RSABANK_PUBLIC_KEYS", "ec", "not an RSA key"),
        ("RSABANK_PRIVATE_KEY", "public", "RSABANK_PRIVATE_KEY"),  # a public key where ours is expected
        ("RSABANK_PUBLIC_KEYS", "ours", "public half of RSABANK_PRIVATE_KEY"),  # swapped files
        ("RSABANK_PRIVATE_KEY", "encrypted", "RSABANK_PRIVATE_KEY"),
    ],
)
def test_invalid_keys_are_startup_errors(keys: Keys, name: str, content: bytes | str, message: str) -> None:
    if content == "small":
        pem = small_key_pem()
        content = pem if name == "RSABANK_PRIVATE_KEY" else public_key_pem_unchecked(pem)
    elif content == "ec":
        pem = ec_key_pem()
        content = pem if name == "RSABANK_PRIVATE_KEY" else public_key_pem_unchecked(pem)
    elif content == "public" or content == "ours":
        content = public_key_pem(keys.gateway)
    elif content == "encrypted":
        content = load_private_key(keys.gateway).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    assert isinstance(content, bytes)
    path = write(keys, f"bad-{name}.pem", content)
    if name == "RSABANK_PUBLIC_KEYS" and message.startswith("public half"):
        path = f"{keys.path('bank.pub.pem')},{path}"
    with pytest.raises(ValueError, match=message):
        make_provider(keys, **{name: path})


def public_key_pem_unchecked(private_pem: bytes) -> bytes:
    key = serialization.load_pem_private_key(private_pem, password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_a_bank_certificate_is_accepted_as_its_public_key(keys: Keys) -> None:
    bank_key = load_private_key(keys.bank)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bank.test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(bank_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(bank_key, hashes.SHA256())
    )
    path = write(keys, "bank.crt", cert.public_bytes(serialization.Encoding.PEM))
    p = make_provider(keys, RSABANK_PUBLIC_KEYS=path)
    verify(p.bank_keys, b"x", bank_signed(keys.bank, b"x"))


def test_pss_is_selectable(keys: Keys) -> None:
    assert make_provider(keys, RSABANK_SIGNATURE_SCHEME=" PSS ").scheme is Scheme.PSS


# ---- build_payment_request ---------------------------------------------------------------------------


def payment_request(**changes: Any) -> PaymentRequest:
    created = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
    values: dict[str, Any] = {
        "reference": "GW261125ABC123",
        "amount": 58_000,
        "order_info": "Thanh toán hồ sơ H12.22-241125-0001 — Đăng ký",
        "return_url": "http://gateway.test/return/rsabank",
        "notify_url": "http://gateway.test/callbacks/rsabank",
        "client_ip": "203.0.113.10",
        "locale": "vi",
        "created_at": created,
        "expires_at": created + timedelta(hours=1),
        "method": "card",
    }
    values.update(changes)
    return PaymentRequest(**values)


CREATED = {
    "merchant_reference": "GW261125ABC123",
    "bank_reference": "BR123456789012",
    "payment_url": "https://bank.test/pay/BR123456789012",
}


def test_build_payment_request(provider: RsabankProvider, keys: Keys, mocked: responses.RequestsMock) -> None:
    bank_answer(mocked, "/payments", CREATED, keys=keys)
    redirect = provider.build_payment_request(payment_request())
    assert redirect.redirect_url == "https://bank.test/pay/BR123456789012"
    assert redirect.provider_txn_id is None
    assert redirect.qr_payload is None
    assert redirect.provider_data == {"bank_reference": "BR123456789012"}

    [call] = mocked.calls
    assert call.request.url == ENDPOINT + "/payments"
    body = assert_signed_by_us(keys, call.request)
    assert body == {
        "merchant_reference": "GW261125ABC123",
        "amount": 58000,
        "currency": "VND",
        "description": "Thanh toan ho so H12.22-241125-0001 Dang ky",
        "return_url": "http://gateway.test/return/rsabank",
        "notify_url": "http://gateway.test/callbacks/rsabank",
        "expires_at": "2026-11-25T11:00:00+07:00",
        "method": "card",
    }
    # Compact JSON: the exact bytes signed are the bytes sent.
    assert call.request.body == json.dumps(body, separators=(",", ":")).encode()


def test_unknown_method_is_left_to_the_customer(
    provider: RsabankProvider, keys: Keys, mocked: responses.RequestsMock
) -> None:
    bank_answer(mocked, "/payments", CREATED, keys=keys)
    provider.build_payment_request(payment_request(method="VNPAYQR", order_info="###"))
    body = json.loads(mocked.calls[0].request.body or b"")
    assert body["method"] is None
    assert body["description"] == "Thanh toan GW261125ABC123"  # nothing left after sanitising


def test_each_request_has_its_own_request_id(
    provider: RsabankProvider, keys: Keys, mocked: responses.RequestsMock
) -> None:
    bank_answer(mocked, "/payments", CREATED, keys=keys)
    provider.build_payment_request(payment_request())
    provider.build_payment_request(payment_request())
    ids = {c.request.headers["X-Request-Id"] for c in mocked.calls}
    assert len(ids) == 2


def test_pss_provider_signs_and_verifies_pss(keys: Keys, mocked: responses.RequestsMock) -> None:
    p = make_provider(keys, RSABANK_SIGNATURE_SCHEME="pss")
    bank_answer(mocked, "/payments", CREATED, keys=keys, scheme=Scheme.PSS)
    assert p.build_payment_request(payment_request()).redirect_url == CREATED["payment_url"]
    assert_signed_by_us(keys, mocked.calls[0].request, Scheme.PSS)


def test_an_answer_signed_with_the_old_bank_key_is_accepted(
    keys: Keys, mocked: responses.RequestsMock
) -> None:
    rotated = f"{keys.path('bank.pub.pem')},{keys.path('bank_old.pub.pem')}"
    p = make_provider(keys, RSABANK_PUBLIC_KEYS=rotated)
    bank_answer(mocked, "/payments", CREATED, keys=keys, pem=keys.bank_old)
    assert p.build_payment_request(payment_request()).provider_data == {"bank_reference": "BR123456789012"}


@pytest.mark.parametrize("amount", [0, -1, True, 58000.0])
def test_bad_amounts_are_refused_before_calling(provider: RsabankProvider, amount: Any) -> None:
    with pytest.raises(ValueError, match="amount"):
        provider.build_payment_request(payment_request(amount=amount))


def test_a_signed_refusal_is_a_definite_failure(
    provider: RsabankProvider, keys: Keys, mocked: responses.RequestsMock
) -> None:
    bank_answer(
        mocked, "/payments", {"code": "invalid_request", "message": "amount too large"}, status=400, keys=keys
    )
    with pytest.raises(GatewayError) as info:
        provider.build_payment_request(payment_request())
    assert not isinstance(info.value, ProviderUnavailable)
    assert "invalid_request" in info.value.detail


@pytest.mark.parametrize(
    "setup",
    [
        "unsigned_4xx",
        "stranger_4xx",
        "signed_429",
        "http_503",
        "http_302",
        "garbage",
        "unsigned",
        "stranger",
        "edited",
        "no_payment_url",
        "relative_payment_url",
        "no_bank_reference",
        "other_reference",
        "json_list",
        "connection_error",
        "timeout",
    ],
)
def test_trouble_is_provider_unavailable(
    provider: RsabankProvider, keys: Keys, mocked: responses.RequestsMock, setup: str
) -> None:
    url = ENDPOINT + "/payments"
    if setup == "unsigned_4xx":
        mocked.post(url, status=400, json={"code": "invalid_request"})
    elif setup == "stranger_4xx":
        bank_answer(mocked, "/payments", {"code": "x"}, status=400, keys=keys, pem=keys.stranger)
    elif setup == "signed_429":
        bank_answer(mocked, "/payments", {"code": "rate_limited"}, status=429, keys=keys)
    elif setup == "http_503":
        mocked.post(url, status=503, body="Service Unavailable")
    elif setup == "http_302":
        mocked.post(url, status=302, headers={"Location": "https://bank.test/login"})
    elif setup == "garbage":
        mocked.post(url, status=200, body="<html>oops")
    elif setup == "unsigned":
        mocked.post(url, json=CREATED)
    elif setup == "stranger":
        bank_answer(mocked, "/payments", CREATED, keys=keys, pem=keys.stranger)
    elif setup == "edited":
        body = json.dumps(CREATED).encode()
        edited = body.replace(b"bank.test", b"evil.test")
        mocked.post(url, body=edited, headers={"X-Signature": bank_signed(keys.bank, body)})
    elif setup == "no_payment_url":
        bank_answer(mocked, "/payments", {"bank_reference": "BR1"}, keys=keys)
    elif setup == "relative_payment_url":
        bank_answer(mocked, "/payments", {**CREATED, "payment_url": "/pay/BR1"}, keys=keys)
    elif setup == "no_bank_reference":
        bank_answer(mocked, "/payments", {**CREATED, "bank_reference": ""}, keys=keys)
    elif setup == "other_reference":
        bank_answer(mocked, "/payments", {**CREATED, "merchant_reference": "SOMEONE_ELSE"}, keys=keys)
    elif setup == "json_list":
        bank_answer(mocked, "/payments", b"[1,2]", keys=keys)
    elif setup == "connection_error":
        mocked.post(url, body=requests.ConnectionError("refused"))
    else:
        mocked.post(url, body=requests.Timeout("slow"))
    with pytest.raises(ProviderUnavailable):
        provider.build_payment_request(payment_request())


# ---- a real timeout on loopback ------------------------------------------------------------------------


@pytest.fixture
def slow_bank() -> Iterator[str]:
    """An HTTP server on 127.0.0.1 that answers after 2 s: the client's timeout must fire first."""

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            time.sleep(2)
            try:
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"{}")
            except OSError:
                pass  # the client gave up, as intended

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_slow_bank_the_timeout_fires(keys: Keys, slow_bank: str) -> None:
    p = RsabankProvider(credentials(keys, RSABANK_ENDPOINT=slow_bank), base_url=BASE_URL, timeout=0.2)
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable, match="unreachable"):
        p.build_payment_request(payment_request())
    n = p.query(query_request())
    assert (n.outcome, n.result_code) == (Outcome.UNKNOWN, "unreachable")
    assert p.refund(refund_request()).outcome is Outcome.UNKNOWN
    assert time.monotonic() - started < 1.9  # none of the three waited for the answer


# ---- verify_callback ----------------------------------------------------------------------------------


def notification_body(**changes: Any) -> bytes:
    body: dict[str, Any] = {
        "transaction_id": "FT2433100001",
        "account_no": "0011001234567",
        "amount": 58000,
        "currency": "VND",
        "direction": "credit",
        "status": "success",
        "reference": "GW261125ABC123",
        "remittance": "GW261125ABC123 Thanh toan ho so",
        "transacted_at": "2026-11-25T10:05:00+07:00",
    }
    body.update(changes)
    return json.dumps({k: v for k, v in body.items() if v is not ...}, separators=(",", ":")).encode()


def callback(body: bytes, signature: str | None, header: str = "X-Signature") -> CallbackRequest:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers[header] = signature
    return CallbackRequest(method="POST", args={}, headers=headers, body=body, remote_addr="203.0.113.10")


def signed_callback(keys: Keys, body: bytes | None = None, pem: bytes | None = None) -> CallbackRequest:
    raw = notification_body() if body is None else body
    return callback(raw, bank_signed(pem or keys.bank, raw))


def test_verify_callback(provider: RsabankProvider, keys: Keys) -> None:
    n = provider.verify_callback(signed_callback(keys))
    assert n.reference == "GW261125ABC123"
    assert n.outcome is Outcome.SUCCEEDED
    assert n.amount == 58000
    assert n.provider_txn_id == "FT2433100001"
    assert n.result_code == "success"
    assert n.paid_at == datetime(2026, 11, 25, 3, 5, tzinfo=UTC)
    assert n.paid_at is not None
    assert n.paid_at.tzinfo is UTC
    assert n.kind == "payment"
    assert n.raw["remittance"] == "GW261125ABC123 Thanh toan ho so"
    assert n.dedupe_key == "GW261125ABC123:FT2433100001:payment"


def test_the_old_bank_key_is_accepted_during_rotation(keys: Keys) -> None:
    p = make_provider(
        keys, RSABANK_PUBLIC_KEYS=f"{keys.path('bank.pub.pem')},{keys.path('bank_old.pub.pem')}"
    )
    assert p.verify_callback(signed_callback(keys, pem=keys.bank_old)).outcome is Outcome.SUCCEEDED
    assert p.verify_callback(signed_callback(keys, pem=keys.bank)).outcome is Outcome.SUCCEEDED
    with pytest.raises(SignatureVerificationError):
        p.verify_callback(signed_callback(keys, pem=keys.stranger))


def test_the_old_key_is_refused_once_removed(provider: RsabankProvider, keys: Keys) -> None:
    with pytest.raises(SignatureVerificationError):
        provider.verify_callback(signed_callback(keys, pem=keys.bank_old))


def test_our_own_key_is_not_the_banks(provider: RsabankProvider, keys: Keys) -> None:
    with pytest.raises(SignatureVerificationError):
        provider.verify_callback(signed_callback(keys, pem=keys.gateway))


@pytest.mark.parametrize("signature", [None, "", "not base64!", "AAAA"])
def test_missing_or_junk_signature_is_refused(provider: RsabankProvider, signature: str | None) -> None:
    with pytest.raises(SignatureVerificationError):
        provider.verify_callback(callback(notification_body(), signature))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("transaction_id", "FT2433100002"),
        ("account_no", "0011001234568"),
        ("amount", 580000),
        ("currency", "VNX"),
        ("direction", "debit"),
        ("status", "failed"),
        ("reference", "GW261125ABC124"),
        ("remittance", "GW261125ABC123 Thanh toan ho so!"),
        ("transacted_at", "2026-11-25T10:05:01+07:00"),
    ],
)
def test_each_tampered_field_is_refused(
    provider: RsabankProvider, keys: Keys, field: str, value: Any
) -> None:
    original = notification_body()
    signature = bank_signed(keys.bank, original)
    tampered = notification_body(**{field: value})
    assert tampered != original
    with pytest.raises(SignatureVerificationError):
        provider.verify_callback(callback(tampered, signature))


def test_an_added_field_or_reformatted_body_is_refused(provider: RsabankProvider, keys: Keys) -> None:
    original = notification_body()
    signature = bank_signed(keys.bank, original)
    with pytest.raises(SignatureVerificationError):
        provider.verify_callback(callback(original[:-1] + b',"extra":1}', signature))
    with pytest.raises(SignatureVerificationError):
        provider.verify_callback(callback(json.dumps(json.loads(original), indent=1).encode(), signature))


def test_the_signature_is_checked_before_parsing(provider: RsabankProvider, keys: Keys) -> None:
    signature = bank_signed(keys.bank, notification_body())
    with pytest.raises(SignatureVerificationError):
        provider.verify_callback(callback(notification_body(amount=58000.5), signature))


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("success", Outcome.SUCCEEDED),
        ("SUCCESS", Outcome.SUCCEEDED),
        ("paid", Outcome.SUCCEEDED),
        ("00", Outcome.SUCCEEDED),
        ("failed", Outcome.FAILED),
        ("failure", Outcome.FAILED),
        ("cancelled", Outcome.FAILED),
        ("canceled", Outcome.FAILED),
        ("pending", Outcome.PENDING),
        ("processing", Outcome.PENDING),
        ("reversed", Outcome.UNKNOWN),
        ("on_hold", Outcome.UNKNOWN),
    ],
)
def test_outcome_mapping(provider: RsabankProvider, keys: Keys, status: str, outcome: Outcome) -> None:
    n = provider.verify_callback(signed_callback(keys, notification_body(status=status)))
    assert n.outcome is outcome
    assert n.result_code == status.lower()


def test_a_debit_is_not_a_payment(provider: RsabankProvider, keys: Keys) -> None:
    n = provider.verify_callback(signed_callback(keys, notification_body(direction="debit")))
    assert n.outcome is Outcome.UNKNOWN
    assert n.result_code == "debit:success"


@pytest.mark.parametrize(
    "changes",
    [
        {"reference": ...},
        {"reference": ""},
        {"reference": None},
        {"status": ...},
        {"status": ""},
        {"amount": 58000.0},
        {"amount": "58000"},
        {"transaction_id": ...},
        {"currency": "USD"},
        {"transacted_at": "2026-11-25T10:05:00"},
    ],
)
def test_signed_but_unusable_is_malformed(
    provider: RsabankProvider, keys: Keys, changes: dict[str, Any]
) -> None:
    with pytest.raises(MalformedNotification):
        provider.verify_callback(signed_callback(keys, notification_body(**changes)))


def test_without_transacted_at_paid_at_is_none(provider: RsabankProvider, keys: Keys) -> None:
    assert (
        provider.verify_callback(signed_callback(keys, notification_body(transacted_at=...))).paid_at is None
    )


def test_a_custom_bank_mapping(keys: Keys) -> None:
    mapping = {
        "fields": {
            "transaction_id": "maGD",
            "amount": "soTien",
            "status": "trangThai",
            "reference": "maThanhToan",
        },
        "signature_header": "Signature",
        "success_values": ["THANH_CONG"],
        "failure_values": ["THAT_BAI"],
    }
    path = write(keys, "mapping.json", json.dumps(mapping))
    p = make_provider(keys, RSABANK_FIELD_MAP=path)
    body = json.dumps(
        {"maGD": "X1", "soTien": 58000, "trangThai": "THANH_CONG", "maThanhToan": "GW1"}
    ).encode()
    n = p.verify_callback(callback(body, bank_signed(keys.bank, body), header="signature"))
    assert (n.reference, n.amount, n.provider_txn_id, n.outcome) == ("GW1", 58000, "X1", Outcome.SUCCEEDED)
    failed = body.replace(b"THANH_CONG", b"THAT_BAI")
    assert (
        p.verify_callback(callback(failed, bank_signed(keys.bank, failed), "Signature")).outcome
        is Outcome.FAILED
    )
    # The default header is not where this bank puts its signature.
    with pytest.raises(SignatureVerificationError):
        p.verify_callback(callback(body, bank_signed(keys.bank, body), header="X-Signature"))


def test_a_pss_bank(keys: Keys) -> None:
    p = make_provider(keys, RSABANK_SIGNATURE_SCHEME="pss")
    body = notification_body()
    assert (
        p.verify_callback(callback(body, bank_signed(keys.bank, body, Scheme.PSS))).outcome
        is Outcome.SUCCEEDED
    )
    with pytest.raises(SignatureVerificationError):
        p.verify_callback(callback(body, bank_signed(keys.bank, body)))  # PKCS#1 v1.5 where PSS is configured


# ---- verify_return --------------------------------------------------------------------------------------


def return_args(keys: Keys, reference: str, status: str, pem: bytes | None = None) -> dict[str, str]:
    signature = bank_signed(pem or keys.bank, return_message(reference, status))
    return {"reference": reference, "status": status, "signature": signature}


def browser(args: dict[str, str]) -> CallbackRequest:
    return CallbackRequest(method="GET", args=args, headers={}, body=b"")


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("success", Outcome.SUCCEEDED),
        ("failed", Outcome.FAILED),
        ("cancelled", Outcome.FAILED),
        ("pending", Outcome.PENDING),
    ],
)
def test_verify_return(provider: RsabankProvider, keys: Keys, status: str, outcome: Outcome) -> None:
    n = provider.verify_return(browser(return_args(keys, "GW261125ABC123", status)))
    assert (n.reference, n.outcome, n.result_code) == ("GW261125ABC123", outcome, status)
    assert n.amount is None
    assert n.provider_txn_id is None


def test_verify_return_accepts_url_safe_signature(provider: RsabankProvider, keys: Keys) -> None:
    args = return_args(keys, "GW261125ABC123", "success")
    args["signature"] = args["signature"].translate(str.maketrans("+/", "-_")).rstrip("=")
    assert provider.verify_return(browser(args)).outcome is Outcome.SUCCEEDED


@pytest.mark.parametrize(
    "changes",
    [{"status": "failed"}, {"reference": "GW261125ABC124"}, {"signature": ""}, {"signature": "###"}],
)
def test_tampered_return_is_refused(provider: RsabankProvider, keys: Keys, changes: dict[str, str]) -> None:
    args = {**return_args(keys, "GW261125ABC123", "success"), **changes}
    with pytest.raises(SignatureVerificationError):
        provider.verify_return(browser(args))


def test_return_signed_by_a_stranger_is_refused(provider: RsabankProvider, keys: Keys) -> None:
    with pytest.raises(SignatureVerificationError):
        provider.verify_return(browser(return_args(keys, "GW1", "success", pem=keys.stranger)))
    args = return_args(keys, "GW1", "success")
    del args["signature"]
    with pytest.raises(SignatureVerificationError):
        provider.verify_return(browser(args))


@pytest.mark.parametrize(
    ("reference", "status"), [("", "success"), ("GW1", ""), ("GW1|x", "success"), ("GW1", "a|b")]
)
def test_signed_but_unusable_return_is_malformed(
    provider: RsabankProvider, keys: Keys, reference: str, status: str
) -> None:
    with pytest.raises(MalformedNotification):
        provider.verify_return(browser(return_args(keys, reference, status)))


# ---- acknowledge ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ack", "status", "body"),
    [
        (Ack.OK, 200, b'{"code":"00","message":"received"}'),
        (Ack.ALREADY, 200, b'{"code":"02","message":"already processed"}'),
        (Ack.NOT_FOUND, 200, b'{"code":"01","message":"unknown reference"}'),
        (Ack.BAD_AMOUNT, 200, b'{"code":"04","message":"amount mismatch"}'),
        (Ack.BAD_SIGNATURE, 401, b'{"code":"97","message":"invalid signature"}'),
        (Ack.ERROR, 500, b'{"code":"99","message":"error, retry"}'),
    ],
)
def test_acknowledge(provider: RsabankProvider, ack: Ack, status: int, body: bytes) -> None:
    answer = provider.acknowledge(ack)
    assert answer.status == status
    assert answer.body == body
    assert answer.content_type == "application/json"


def test_every_ack_has_its_own_code(provider: RsabankProvider) -> None:
    codes = {json.loads(provider.acknowledge(ack).body)["code"] for ack in Ack}
    assert codes == {"00", "01", "02", "04", "97", "99"}


# ---- query --------------------------------------------------------------------------------------------


def query_request() -> QueryRequest:
    return QueryRequest(
        reference="GW261125ABC123",
        amount=58_000,
        created_at=datetime(2026, 11, 25, 3, 0, tzinfo=UTC),
        order_info="Thanh toan ho so",
        provider_data={"bank_reference": "BR123456789012"},
    )


PAID = {
    "merchant_reference": "GW261125ABC123",
    "status": "success",
    "amount": 58000,
    "transaction_id": "FT2433100001",
    "transacted_at": "2026-11-25T10:05:00+07:00",
}


def test_query_succeeded_and_request_is_signed(
    provider: RsabankProvider, keys: Keys, mocked: responses.RequestsMock
) -> None:
    bank_answer(mocked, "/payments/query", PAID, keys=keys)
    n = provider.query(query_request())
    assert n.outcome is Outcome.SUCCEEDED
    assert n.reference == "GW261125ABC123"
    assert n.amount == 58000
    assert n.provider_txn_id == "FT2433100001"
    assert n.result_code == "success"
    assert n.paid_at == datetime(2026, 11, 25, 3, 5, tzinfo=UTC)
    [call] = mocked.calls
    assert call.request.url == ENDPOINT + "/payments/query"
    assert assert_signed_by_us(keys, call.request) == {"merchant_reference": "GW261125ABC123"}


@pytest.mark.parametrize(
    ("answer", "outcome", "result_code"),
    [
        ({"status": "pending", "transaction_id": None, "transacted_at": None}, Outcome.PENDING, "pending"),
        ({"status": "processing"}, Outcome.PENDING, "processing"),
        ({"status": "failed"}, Outcome.FAILED, "failed"),
        ({"status": "cancelled", "transaction_id": None}, Outcome.FAILED, "cancelled"),
        ({"status": "reversed"}, Outcome.UNKNOWN, "reversed"),
        ({"status": ""}, Outcome.UNKNOWN, "garbage"),
        ({"status": "success", "amount": 58000.0}, Outcome.UNKNOWN, "garbage"),
        ({"status": "success", "amount": "58000"}, Outcome.UNKNOWN, "garbage"),
        ({"status": "success", "amount": None}, Outcome.UNKNOWN, "garbage"),
        ({"status": "success", "transaction_id": None}, Outcome.UNKNOWN, "garbage"),
        ({"merchant_reference": "SOMEONE_ELSE"}, Outcome.UNKNOWN, "garbage"),
    ],
)
def test_query_state_mapping(
    provider: RsabankProvider,
    keys: Keys,
    mocked: responses.RequestsMock,
    answer: dict[str, Any],
    outcome: Outcome,
    result_code: str,
) -> None:
    bank_answer(mocked, "/payments/query", {**PAID, **answer}, keys=keys)
    n = provider.query(query_request())
    assert (n.outcome, n.result_code) == (outcome, result_code)


def test_query_not_found_is_unknown(
    provider: RsabankProvider, keys: Keys, mocked: responses.RequestsMock
) -> None:
    bank_answer(mocked, "/payments/query", {"code": "not_found", "message": "unknown"}, status=404, keys=keys)
    n = provider.query(query_request())
    assert (n.outcome, n.result_code) == (Outcome.UNKNOWN, "not_found")


@pytest.mark.parametrize(
    ("setup", "result_code"),
    [
        ("http_503", "http_503"),
        ("unsigned_404", "http_404"),
        ("garbage", "garbage"),
        ("empty", "garbage"),
        ("json_list", "garbage"),
        ("unsigned", "bad_signature"),
        ("stranger", "bad_signature"),
        ("edited", "bad_signature"),
        ("connection_error", "unreachable"),
        ("timeout", "unreachable"),
    ],
)
def test_query_trouble_is_unknown(
    provider: RsabankProvider, keys: Keys, mocked: responses.RequestsMock, setup: str, result_code: str
) -> None:
    url = ENDPOINT + "/payments/query"
    if setup == "http_503":
        mocked.post(url, status=503, body="down")
    elif setup == "unsigned_404":
        mocked.post(url, status=404, json={"code": "not_found"})
    elif setup == "garbage":
        mocked.post(url, body="<html>oops")
    elif setup == "empty":
        mocked.post(url, body="")
    elif setup == "json_list":
        bank_answer(mocked, "/payments/query", b"[1]", keys=keys)
    elif setup == "unsigned":
        mocked.post(url, json=PAID)
    elif setup == "stranger":
        bank_answer(mocked, "/payments/query", PAID, keys=keys, pem=keys.stranger)
    elif setup == "edited":
        body = json.dumps(PAID).encode()
        mocked.post(
            url, body=body.replace(b"58000", b"5800"), headers={"X-Signature": bank_signed(keys.bank, body)}
        )
    elif setup == "connection_error":
        mocked.post(url, body=requests.ConnectionError("refused"))
    else:
        mocked.post(url, body=requests.Timeout("slow"))
    n = provider.query(query_request())
    assert (n.outcome, n.result_code, n.amount) == (Outcome.UNKNOWN, result_code, None)


# ---- refunds ------------------------------------------------------------------------------------------


def refund_request(**changes: Any) -> RefundRequest:
    values: dict[str, Any] = {
        "reference": "RF261125XYZ1",
        "payment_reference": "GW261125ABC123",
        "payment_txn_id": "FT2433100001",
        "amount": 8_000,
        "payment_amount": 58_000,
        "already_refunded": 0,
        "reason": "Thu thừa phí bản sao",
        "actor": "finance@example.vn",
        "created_at": datetime(2026, 11, 26, 2, 0, tzinfo=UTC),
        "payment_created_at": datetime(2026, 11, 25, 3, 0, tzinfo=UTC),
    }
    values.update(changes)
    return RefundRequest(**values)


REFUNDED = {
    "refund_reference": "RF261125XYZ1",
    "merchant_reference": "GW261125ABC123",
    "bank_refund_id": "RF1234567890",
    "amount": 8000,
    "status": "success",
    "message": "refunded",
}


def test_refund_succeeded_and_request_is_signed(
    provider: RsabankProvider, keys: Keys, mocked: responses.RequestsMock
) -> None:
    bank_answer(mocked, "/refunds", REFUNDED, keys=keys)
    result = provider.refund(refund_request())
    assert result.outcome is Outcome.SUCCEEDED
    assert result.result_code == "success"
    assert result.provider_reference == "RF1234567890"
    assert result.message == "refunded"
    assert result.raw == REFUNDED
    [call] = mocked.calls
    assert call.request.url == ENDPOINT + "/refunds"
    assert assert_signed_by_us(keys, call.request) == {
        "refund_reference": "RF261125XYZ1",
        "merchant_reference": "GW261125ABC123",
        "transaction_id": "FT2433100001",
        "amount": 8000,
        "reason": "Thu thừa phí bản sao",
    }


@pytest.mark.parametrize(
    ("status", "outcome"),
    [("pending", Outcome.PENDING), ("failed", Outcome.FAILED), ("reversed", Outcome.UNKNOWN)],
)
def test_refund_status_mapping(
    provider: RsabankProvider, keys: Keys, mocked: responses.RequestsMock, status: str, outcome: Outcome
) -> None:
    bank_answer(mocked, "/refunds", {**REFUNDED, "status": status}, keys=keys)
    result = provider.refund(refund_request())
    assert (result.outcome, result.result_code) == (outcome, status)


@pytest.mark.parametrize(
    ("status", "code", "outcome"),
    [
        (422, "amount_exceeds", Outcome.FAILED),
        (404, "not_found", Outcome.FAILED),
        (401, "invalid_signature", Outcome.FAILED),
        (409, "duplicate_reference", Outcome.UNKNOWN),  # it may exist: never "failed"
        (429, "rate_limited", Outcome.UNKNOWN),
    ],
)
def test_refund_signed_refusals(
    provider: RsabankProvider,
    keys: Keys,
    mocked: responses.RequestsMock,
    status: int,
    code: str,
    outcome: Outcome,
) -> None:
    bank_answer(mocked, "/refunds", {"code": code, "message": "no"}, status=status, keys=keys)
    result = provider.refund(refund_request())
    assert (result.outcome, result.result_code, result.message) == (outcome, code, "no")


@pytest.mark.parametrize(
    ("setup", "result_code"),
    [
        ("http_503", "http_503"),
        ("unsigned_422", "http_422"),
        ("garbage", "garbage"),
        ("unsigned", "bad_signature"),
        ("stranger", "bad_signature"),
        ("other_refund", "garbage"),
        ("no_status", "garbage"),
        ("connection_error", "unreachable"),
        ("timeout", "unreachable"),
    ],
)
def test_refund_trouble_is_unknown(
    provider: RsabankProvider, keys: Keys, mocked: responses.RequestsMock, setup: str, result_code: str
) -> None:
    url = ENDPOINT + "/refunds"
    if setup == "http_503":
        mocked.post(url, status=503)
    elif setup == "unsigned_422":
        mocked.post(url, status=422, json={"code": "amount_exceeds"})
    elif setup == "garbage":
        mocked.post(url, body="<html>oops")
    elif setup == "unsigned":
        mocked.post(url, json=REFUNDED)
    elif setup == "stranger":
        bank_answer(mocked, "/refunds", REFUNDED, keys=keys, pem=keys.stranger)
    elif setup == "other_refund":
        bank_answer(mocked, "/refunds", {**REFUNDED, "refund_reference": "RF_OTHER"}, keys=keys)
    elif setup == "no_status":
        bank_answer(mocked, "/refunds", {**REFUNDED, "status": None}, keys=keys)
    elif setup == "connection_error":
        mocked.post(url, body=requests.ConnectionError("refused"))
    else:
        mocked.post(url, body=requests.Timeout("slow"))
    result = provider.refund(refund_request())
    assert (result.outcome, result.result_code) == (Outcome.UNKNOWN, result_code)


@pytest.mark.parametrize("amount", [0, -5, True])
def test_refund_refuses_bad_amounts(provider: RsabankProvider, amount: Any) -> None:
    with pytest.raises(ValueError, match="amount"):
        provider.refund(refund_request(amount=amount))


def test_query_refund(provider: RsabankProvider, keys: Keys, mocked: responses.RequestsMock) -> None:
    bank_answer(mocked, "/refunds/query", REFUNDED, keys=keys)
    result = provider.query_refund(refund_request())
    assert (result.outcome, result.provider_reference) == (Outcome.SUCCEEDED, "RF1234567890")
    [call] = mocked.calls
    assert call.request.url == ENDPOINT + "/refunds/query"
    assert assert_signed_by_us(keys, call.request) == {"refund_reference": "RF261125XYZ1"}


@pytest.mark.parametrize("status", [404, 422])
def test_query_refund_refusal_is_not_a_failure(
    provider: RsabankProvider, keys: Keys, mocked: responses.RequestsMock, status: int
) -> None:
    # "not_found" may be a refund still in flight: only the bank's own status word is final.
    bank_answer(mocked, "/refunds/query", {"code": "not_found", "message": "?"}, status=status, keys=keys)
    result = provider.query_refund(refund_request())
    assert (result.outcome, result.result_code) == (Outcome.UNKNOWN, "not_found")


def test_query_refund_trouble_is_unknown(provider: RsabankProvider, mocked: responses.RequestsMock) -> None:
    mocked.post(ENDPOINT + "/refunds/query", status=502)
    assert provider.query_refund(refund_request()).outcome is Outcome.UNKNOWN
