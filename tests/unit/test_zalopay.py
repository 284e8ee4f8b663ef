"""ZaloPay adapter: §7 vector 5 and cross-checks G/H/I, create, callback, redirect, acks, query, refunds."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import responses

from gateway.domain.errors import (
    GatewayError,
    MalformedNotification,
    ProviderUnavailable,
    SignatureVerificationError,
)
from gateway.settings import ProviderCredentials
from providers.base import Ack, CallbackRequest, Outcome, PaymentRequest, QueryRequest, RefundRequest
from providers.signing import hmac_hex
from providers.zalopay import (
    EMULATOR_APP_ID,
    EMULATOR_KEY1,
    EMULATOR_KEY2,
    ZalopayProvider,
    create_mac_data,
    epoch_ms,
    expire_duration_seconds,
    from_epoch_ms,
    gmt7_yymmdd,
    make_app_trans_id,
    make_m_refund_id,
    query_mac_data,
    query_refund_mac_data,
    redirect_checksum_data,
    reference_from_app_trans_id,
    refund_mac_data,
)

ENDPOINT = "https://sb-openapi.zalopay.vn"
CREATE_URL = ENDPOINT + "/v2/create"
QUERY_URL = ENDPOINT + "/v2/query"
REFUND_URL = ENDPOINT + "/v2/refund"
QUERY_REFUND_URL = ENDPOINT + "/v2/query_refund"

# providers.md §7 item 5: ZaloPay's public sandbox app 2553 and its published keys.
KEY1 = "PcY4iZIKFCIdgZvA6ueMcMHHUbRLYjPL"
KEY2 = "kLtgPl8HHhfvMuDHPwKfgfsY4Ydm9eIz"
VECTOR_5_DATA = (
    '{"app_id":2553,"app_trans_id":"200904_2553_1598435687208","app_time":1599189392817,"app_user":"demo",'
    '"amount":10000,"embed_data":"{\\"merchantinfo\\":\\"embeddata123\\",\\"promotioninfo\\":\\"\\"}",'
    '"item":"[{\\"itemid\\":\\"knb\\",\\"itemname\\":\\"kim nguyen bao\\",\\"itemprice\\":198400,'
    '\\"itemquantity\\":1}]","zp_trans_id":200904000000389,"server_time":1599189413498,"channel":38,'
    '"merchant_user_id":"7ZMSl3nEg5sOUJzOLSoUFT8xKNQVaLOLXHB--8Eytqc","user_fee_amount":0,"discount_amount":0}'
)
VECTOR_5_MAC = "d8d33baf449b31d7f9b94fa50d7c942c08cd4d83f28fa185557da21acb104f67"
DATA_FIELDS = (
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

# 17:30 UTC on 25 Nov is 00:30 on 26 Nov in GMT+7: the yymmdd prefixes must say 261126.
NOW = datetime(2026, 11, 25, 17, 30, tzinfo=UTC)


def make_credentials(key1: str = KEY1, key2: str = KEY2, app_id: str = "2553") -> ProviderCredentials:
    return ProviderCredentials(
        code="zalopay",
        values={
            "ZALOPAY_APP_ID": app_id,
            "ZALOPAY_KEY1": key1,
            "ZALOPAY_KEY2": key2,
            "ZALOPAY_ENDPOINT": ENDPOINT + "/",
        },
        emulated=False,
    )


def make_provider(key1: str = KEY1, key2: str = KEY2, now: datetime = NOW, **kw: Any) -> ZalopayProvider:
    return ZalopayProvider(
        make_credentials(key1, key2),
        base_url="http://gateway.test",
        session=requests.Session(),
        clock=lambda: now,
        **kw,
    )


@pytest.fixture
def provider() -> ZalopayProvider:
    return make_provider()


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def callback(data: str, mac: str | None, **extra: Any) -> CallbackRequest:
    outer: dict[str, Any] = {"data": data, "type": 1, **extra}
    if mac is not None:
        outer["mac"] = mac
    return CallbackRequest(
        method="POST",
        args={},
        headers={"Content-Type": "application/json"},
        body=json.dumps(outer).encode(),
        remote_addr="203.0.113.10",
    )


def signed_callback(payload: dict[str, Any], key2: str = KEY2) -> CallbackRequest:
    data = json.dumps(payload, separators=(",", ":"))
    return callback(data, hmac_hex(key2, data, "sha256"))


def vector_payload(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(VECTOR_5_DATA)
    payload.update(changes)
    return payload


def sent_json(rsps: responses.RequestsMock, index: int = 0) -> dict[str, Any]:
    body = rsps.calls[index].request.body
    assert body is not None
    result: dict[str, Any] = json.loads(body)
    return result


# ---- §7 vector 5 and cross-checks G, H, I ----------------------------------------------------------------


def test_vector_5_callback_mac() -> None:
    assert hmac_hex(KEY2, VECTOR_5_DATA, "sha256") == VECTOR_5_MAC


def test_vector_5_verifies_with_the_sandbox_key2(provider: ZalopayProvider) -> None:
    n = provider.verify_callback(callback(VECTOR_5_DATA, VECTOR_5_MAC))
    assert n.outcome is Outcome.SUCCEEDED
    assert n.reference == "2553_1598435687208"
    assert n.amount == 10_000
    assert n.provider_txn_id == "200904000000389"
    assert n.result_code == "1"
    assert n.paid_at == datetime(2020, 9, 4, 3, 16, 53, 498000, tzinfo=UTC)
    assert n.raw["channel"] == 38
    assert n.dedupe_key == "2553_1598435687208:200904000000389:payment"


def test_cross_check_g_create_mac() -> None:
    fields = {
        "app_id": 2553,
        "app_trans_id": "240115_HS20240001",
        "app_user": "user123",
        "amount": 50000,
        "app_time": 1705300000000,
        "embed_data": "{}",
        "item": "[]",
        "description": "not signed",
        "bank_code": "not signed",
    }
    data = create_mac_data(fields)
    assert data == "2553|240115_HS20240001|user123|50000|1705300000000|{}|[]"
    assert (
        hmac_hex(KEY1, data, "sha256") == "769ceb6174de4b47ce7a74582f43000ca8918a7c4522833e7fa49bb07bd3bd7c"
    )


def test_cross_check_h_query_mac() -> None:
    data = query_mac_data({"app_id": 2553, "app_trans_id": "240115_HS20240001"}, KEY1)
    assert data == "2553|240115_HS20240001|PcY4iZIKFCIdgZvA6ueMcMHHUbRLYjPL"
    assert (
        hmac_hex(KEY1, data, "sha256") == "f5eb941b8a8d2145d2f139d217b1bfc902739b7331343577bcca046c4dc33ce6"
    )


def test_cross_check_i_refund_mac() -> None:
    fields = {
        "app_id": 2553,
        "m_refund_id": "240115_2553_RF1",
        "zp_trans_id": "240115000000123",
        "amount": 50000,
        "description": "Hoan phi ho so",
        "timestamp": 1705300000000,
    }
    data = refund_mac_data(fields)
    assert data == "2553|240115000000123|50000|Hoan phi ho so|1705300000000"
    assert (
        hmac_hex(KEY1, data, "sha256") == "1e051413a2ed80a887f0c0ffd8ed0f4d46b81a01a49ae19a59bd50ea4efde90a"
    )


def test_query_refund_and_redirect_strings() -> None:
    assert (
        query_refund_mac_data({"app_id": 2553, "m_refund_id": "240115_2553_RF1", "timestamp": 1705300000000})
        == "2553|240115_2553_RF1|1705300000000"
    )
    params = {
        "status": "1",
        "appid": "2553",
        "apptransid": "240115_HS20240001",
        "pmcid": "38",
        "bankcode": "",
        "amount": "50000",
        "discountamount": "0",
        "checksum": "ignored",
    }
    assert redirect_checksum_data(params) == "2553|240115_HS20240001|38||50000|0|1"
    # A missing field counts as empty, so that it fails the MAC rather than crashing.
    assert create_mac_data({"app_id": 1}) == "1||||||"


# ---- pure helpers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (datetime(2026, 11, 25, 16, 59, 59, tzinfo=UTC), "261125"),
        (datetime(2026, 11, 25, 17, 0, tzinfo=UTC), "261126"),
        (NOW, "261126"),
        (datetime(2026, 12, 31, 17, 0, tzinfo=UTC), "270101"),
    ],
)
def test_yymmdd_is_the_gmt7_date(instant: datetime, expected: str) -> None:
    assert gmt7_yymmdd(instant) == expected


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        gmt7_yymmdd(datetime(2026, 11, 25))  # naive on purpose
    with pytest.raises(ValueError, match="naive"):
        epoch_ms(datetime(2026, 11, 25))  # naive on purpose


def test_app_trans_id_and_reference() -> None:
    assert make_app_trans_id("GW261126ABC123", NOW) == "261126_GW261126ABC123"
    assert reference_from_app_trans_id("261126_GW261126ABC123") == "GW261126ABC123"
    assert reference_from_app_trans_id("200904_2553_1598435687208") == "2553_1598435687208"
    assert make_m_refund_id(2553, "RF1", NOW) == "261126_2553_RF1"
    for bad in ("GW261126ABC123", "26112_X", "261126_", "２６１１２６_X"):
        with pytest.raises(ValueError, match="app_trans_id"):
            reference_from_app_trans_id(bad)
    with pytest.raises(ValueError, match="40"):
        make_app_trans_id("R" * 34, NOW)
    assert len(make_app_trans_id("R" * 33, NOW)) == 40


def test_epoch_ms_round_trip() -> None:
    assert epoch_ms(datetime(2024, 1, 15, 6, 26, 40, tzinfo=UTC)) == 1705300000000
    assert from_epoch_ms(1705300000123) == datetime(2024, 1, 15, 6, 26, 40, 123000, tzinfo=UTC)
    for bad in (None, 0, -5, "1705300000000", 1.7e12, True, 10**20):
        assert from_epoch_ms(bad) is None


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (timedelta(seconds=-10), 300),
        (timedelta(seconds=60), 300),
        (timedelta(minutes=15, seconds=1), 901),
        (timedelta(days=1), 86_400),
        (timedelta(days=30), 2_592_000),
        (timedelta(days=60), 2_592_000),
    ],
)
def test_expire_duration_is_clamped(delta: timedelta, expected: int) -> None:
    assert expire_duration_seconds(NOW, NOW + delta) == expected


# ---- construction -----------------------------------------------------------------------------------


def test_emulator_defaults() -> None:
    p = ZalopayProvider(ProviderCredentials("zalopay", {}, emulated=True), base_url="http://127.0.0.1:8000/")
    assert p.app_id == EMULATOR_APP_ID == 9999
    assert p.key1s == (EMULATOR_KEY1,)
    assert p.key2s == (EMULATOR_KEY2,)
    # Never the public sandbox keys (§7 item 5).
    assert {EMULATOR_KEY1, EMULATOR_KEY2}.isdisjoint({KEY1, KEY2})
    assert p.endpoint == "http://127.0.0.1:8000/_emulator/zalopay"
    assert p.url("/v2/create") == "http://127.0.0.1:8000/_emulator/zalopay/v2/create"


def test_environment_values(provider: ZalopayProvider) -> None:
    assert provider.app_id == 2553
    assert provider.endpoint == ENDPOINT
    assert (provider.key1, provider.key2) == (KEY1, KEY2)


def test_rotated_keys_sign_with_the_first() -> None:
    p = make_provider(key1=f"new1,{KEY1}", key2=f"new2, {KEY2}")
    assert p.key1s == ("new1", KEY1)
    assert p.key1 == "new1"
    assert p.key2s == ("new2", KEY2)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"ZALOPAY_KEY1": ""}, "empty"),
        ({"ZALOPAY_KEY2": " , "}, "empty"),
        ({"ZALOPAY_APP_ID": "app2553"}, "ZALOPAY_APP_ID"),
        ({"ZALOPAY_APP_ID": ""}, "ZALOPAY_APP_ID"),
        ({"ZALOPAY_ENDPOINT": " "}, "ZALOPAY_ENDPOINT"),
    ],
)
def test_bad_configuration_is_refused(values: dict[str, str], message: str) -> None:
    creds = make_credentials()
    creds = ProviderCredentials("zalopay", {**creds.values, **values}, emulated=False)
    with pytest.raises(ValueError, match=message):
        ZalopayProvider(creds, base_url="http://gateway.test")


# ---- create order (§3.2) -------------------------------------------------------------------------------


def payment_request(**changes: Any) -> PaymentRequest:
    values: dict[str, Any] = {
        "reference": "GW261126ABC123",
        "amount": 150_000,
        "order_info": "Lệ phí hồ sơ Đăng ký #12/ABC",
        "return_url": "https://gateway.test/return/zalopay?lang=vi",
        "notify_url": "https://gateway.test/callbacks/zalopay",
        "client_ip": "203.0.113.10",
        "locale": "vi",
        "created_at": NOW,
        "expires_at": NOW + timedelta(hours=1),
    }
    values.update(changes)
    return PaymentRequest(**values)


def create_ok(**changes: Any) -> dict[str, Any]:
    body = {
        "return_code": 1,
        "return_message": "Giao dịch thành công",
        "sub_return_code": 1,
        "sub_return_message": "Giao dịch thành công",
        "order_url": "https://qcgateway.zalopay.vn/openinapp?order=eyJ6cHRyYW5zdG9rZW4iOiJ4In0=",
        "zp_trans_token": "AC2tY0x2lNb8cwsq2",
        "order_token": "AC2tY0x2lNb8cwsq2",
    }
    body.update(changes)
    return body


def test_build_payment_request(provider: ZalopayProvider, mocked: responses.RequestsMock) -> None:
    mocked.post(CREATE_URL, json=create_ok())
    redirect = provider.build_payment_request(payment_request())

    assert redirect.redirect_url == create_ok()["order_url"]
    assert redirect.qr_payload is None
    assert redirect.provider_txn_id is None
    assert redirect.provider_data == {
        "app_trans_id": "261126_GW261126ABC123",
        "zp_trans_token": "AC2tY0x2lNb8cwsq2",
        "app_time": 1795627800000,
    }
    call = mocked.calls[0].request
    assert call.headers["Content-Type"] == "application/json"
    assert call.req_kwargs["timeout"] == provider.timeout  # type: ignore[attr-defined]
    sent = sent_json(mocked)
    assert sent == {
        "app_id": 2553,
        "app_user": "dvc",
        "app_trans_id": "261126_GW261126ABC123",  # 26 Nov in GMT+7 although 25 Nov in UTC
        "app_time": 1795627800000,
        "expire_duration_seconds": 3600,
        "amount": 150_000,
        "item": "[]",
        "embed_data": '{"redirecturl":"https://gateway.test/return/zalopay?lang=vi"}',
        "description": "Le phi ho so Dang ky 12ABC",
        "bank_code": "",
        "callback_url": "https://gateway.test/callbacks/zalopay",
        "mac": sent["mac"],
    }
    assert sent["app_time"] == epoch_ms(NOW)
    assert sent["mac"] == hmac_hex(KEY1, create_mac_data(sent), "sha256")


def test_create_the_day_before_in_gmt7(provider: ZalopayProvider, mocked: responses.RequestsMock) -> None:
    mocked.post(CREATE_URL, json=create_ok())
    earlier = datetime(2026, 11, 25, 16, 59, 59, tzinfo=UTC)  # 23:59:59 on 25 Nov in GMT+7
    redirect = provider.build_payment_request(payment_request(created_at=earlier, expires_at=earlier))
    assert redirect.provider_data["app_trans_id"] == "261125_GW261126ABC123"
    assert sent_json(mocked)["expire_duration_seconds"] == 300  # clamped up to ZaloPay's minimum


@pytest.mark.parametrize(
    ("method", "bank_code", "preferred", "sent_bank_code"),
    [
        ("vietqr", None, ["vietqr"], ""),
        ("zalopayapp", None, ["zalopay_wallet"], ""),
        ("ATM", None, ["domestic_card", "account"], ""),
        ("CC", None, ["international_card"], ""),
        ("ATM", "VCB", ["domestic_card", "account"], "VCB"),
        (None, "VCB", None, "VCB"),
        ("bitcoin", None, None, ""),
    ],
)
def test_create_method_choice(
    provider: ZalopayProvider,
    mocked: responses.RequestsMock,
    method: str | None,
    bank_code: str | None,
    preferred: list[str] | None,
    sent_bank_code: str,
) -> None:
    mocked.post(CREATE_URL, json=create_ok())
    provider.build_payment_request(payment_request(method=method, bank_code=bank_code))
    sent = sent_json(mocked)
    embed = json.loads(sent["embed_data"])
    assert embed.get("preferred_payment_method") == preferred
    assert embed["redirecturl"] == "https://gateway.test/return/zalopay?lang=vi"
    assert sent["bank_code"] == sent_bank_code
    assert sent["mac"] == hmac_hex(KEY1, create_mac_data(sent), "sha256")


def test_create_description_is_never_empty(provider: ZalopayProvider, mocked: responses.RequestsMock) -> None:
    mocked.post(CREATE_URL, json=create_ok())
    provider.build_payment_request(payment_request(order_info="#@!", notify_url=""))
    sent = sent_json(mocked)
    assert sent["description"] == "Thanh toan GW261126ABC123"
    assert "callback_url" not in sent  # §3.2: ZaloPay then uses the app's default


def test_create_signs_with_the_first_rotated_key1(mocked: responses.RequestsMock) -> None:
    mocked.post(CREATE_URL, json=create_ok())
    make_provider(key1=f"new-key1,{KEY1}").build_payment_request(payment_request())
    sent = sent_json(mocked)
    assert sent["mac"] == hmac_hex("new-key1", create_mac_data(sent), "sha256")


@pytest.mark.parametrize("amount", [0, -100, True, 1.5])
def test_create_refuses_bad_amounts(provider: ZalopayProvider, amount: Any) -> None:
    with pytest.raises(ValueError, match="amount"):
        provider.build_payment_request(payment_request(amount=amount))


@pytest.mark.parametrize("sub_code", [-68, -401, -402, None])
def test_create_refusal_is_a_definite_failure(
    provider: ZalopayProvider, mocked: responses.RequestsMock, sub_code: int | None
) -> None:
    mocked.post(
        CREATE_URL,
        json={
            "return_code": 2,
            "return_message": "FAIL",
            "sub_return_code": sub_code,
            "sub_return_message": "x",
        },
    )
    with pytest.raises(GatewayError) as excinfo:
        provider.build_payment_request(payment_request())
    # ProviderUnavailable is a GatewayError too: the refusal must be the plain one (attempt failed).
    assert excinfo.type is GatewayError


@pytest.mark.parametrize("sub_code", [-429, -500, -999, "-500"])
def test_create_transient_refusal_is_unknown(
    provider: ZalopayProvider, mocked: responses.RequestsMock, sub_code: int | str
) -> None:
    mocked.post(CREATE_URL, json={"return_code": 2, "sub_return_code": sub_code})
    with pytest.raises(ProviderUnavailable):
        provider.build_payment_request(payment_request())


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 503, "body": "Service Unavailable"},
        {"status": 500, "json": {"return_code": 1}},
        {"status": 200, "body": "<html>oops"},
        {"status": 200, "body": "[1, 2]"},
        {"status": 200, "body": ""},
        {"status": 200, "json": {"return_code": 1, "order_url": ""}},
        {"status": 200, "json": {"return_code": 1, "order_url": "javascript:alert(1)"}},
        {"status": 200, "json": {"return_code": 0}},
        {"status": 200, "json": {"return_message": "no code"}},
        {"body": requests.ConnectionError("refused")},
        {"body": requests.Timeout("slow")},
    ],
)
def test_create_trouble_is_provider_unavailable(
    provider: ZalopayProvider, mocked: responses.RequestsMock, answer: dict[str, Any]
) -> None:
    mocked.post(CREATE_URL, **answer)
    with pytest.raises(ProviderUnavailable):
        provider.build_payment_request(payment_request())


# ---- callback (§3.3) -------------------------------------------------------------------------------------


def test_callback_mac_is_over_the_exact_data_string(provider: ZalopayProvider) -> None:
    # A non-compact data string with its own key order: only a re-serialising verifier would fail it.
    data = (
        '{ "amount": 10000, "app_trans_id": "200904_2553_1598435687208", "app_id": 2553, '
        '"zp_trans_id": 200904000000389, "server_time": 1599189413498, "note": "Lệ phí \\u0111" }'
    )
    mac = hmac_hex(KEY2, data, "sha256")
    n = provider.verify_callback(callback(data, mac))
    assert (n.reference, n.amount) == ("2553_1598435687208", 10_000)
    # The vector's data re-serialised compactly with sorted keys is the same JSON but another string.
    resorted = json.dumps(json.loads(VECTOR_5_DATA), separators=(",", ":"), sort_keys=True)
    with pytest.raises(SignatureVerificationError):
        provider.verify_callback(callback(resorted, VECTOR_5_MAC))


def test_callback_outer_formatting_does_not_matter(provider: ZalopayProvider) -> None:
    # The outer object may be spaced, reordered and use \u escapes: data is taken as its decoded value.
    body = (
        '{ "type" : 1 , "mac" : "' + VECTOR_5_MAC + '" , "data" : ' + json.dumps(VECTOR_5_DATA) + " }"
    ).encode()
    n = provider.verify_callback(CallbackRequest("POST", {}, {}, body))
    assert n.provider_txn_id == "200904000000389"


def test_callback_accepts_the_old_key2_during_rotation() -> None:
    p = make_provider(key2=f"brand-new-key2,{KEY2}")
    assert p.verify_callback(callback(VECTOR_5_DATA, VECTOR_5_MAC)).outcome is Outcome.SUCCEEDED


def test_callback_signed_with_neither_key_is_refused() -> None:
    p = make_provider(key2="brand-new-key2,older-key2")
    with pytest.raises(SignatureVerificationError):
        p.verify_callback(callback(VECTOR_5_DATA, VECTOR_5_MAC))


def test_callback_signed_with_key1_is_refused(provider: ZalopayProvider) -> None:
    with pytest.raises(SignatureVerificationError):
        provider.verify_callback(callback(VECTOR_5_DATA, hmac_hex(KEY1, VECTOR_5_DATA, "sha256")))


@pytest.mark.parametrize("mac", [None, "", "00", VECTOR_5_MAC[:-1], 12345])
def test_callback_without_a_valid_mac_is_refused(provider: ZalopayProvider, mac: Any) -> None:
    with pytest.raises(SignatureVerificationError):
        provider.verify_callback(callback(VECTOR_5_DATA, mac))


def test_callback_mac_is_case_insensitive_hex(provider: ZalopayProvider) -> None:
    assert provider.verify_callback(callback(VECTOR_5_DATA, VECTOR_5_MAC.upper())).amount == 10_000


@pytest.mark.parametrize("field", DATA_FIELDS)
def test_callback_rejects_each_tampered_data_field(provider: ZalopayProvider, field: str) -> None:
    payload = vector_payload()
    value = payload[field]
    payload[field] = value + 1 if isinstance(value, int) else value + "x"
    with pytest.raises(SignatureVerificationError):
        provider.verify_callback(callback(json.dumps(payload, separators=(",", ":")), VECTOR_5_MAC))


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00",
        b"[]",
        b'{"mac":"' + VECTOR_5_MAC.encode() + b'"}',
        b'{"data":{},"mac":"x"}',
    ],
)
def test_callback_body_without_signed_data_is_refused(provider: ZalopayProvider, body: bytes) -> None:
    with pytest.raises(SignatureVerificationError):
        provider.verify_callback(CallbackRequest("POST", {}, {}, body))


def test_signature_is_checked_before_parsing(provider: ZalopayProvider) -> None:
    with pytest.raises(SignatureVerificationError):
        provider.verify_callback(callback("not json at all", "0" * 64))
    with pytest.raises(MalformedNotification):
        provider.verify_callback(callback("not json at all", hmac_hex(KEY2, "not json at all", "sha256")))


@pytest.mark.parametrize(
    "changes",
    [
        {"amount": 10000.0},
        {"amount": "10000"},
        {"amount": True},
        {"amount": -1},
        {"amount": None},
        {"app_trans_id": "2553_1598435687208"},
        {"app_trans_id": 200904},
        {"app_id": 554},
        {"zp_trans_id": None},
        {"zp_trans_id": 0},
    ],
)
def test_signed_but_unusable_callback_is_malformed(
    provider: ZalopayProvider, changes: dict[str, Any]
) -> None:
    with pytest.raises(MalformedNotification):
        provider.verify_callback(signed_callback(vector_payload(**changes)))


def test_signed_non_object_data_is_malformed(provider: ZalopayProvider) -> None:
    with pytest.raises(MalformedNotification):
        provider.verify_callback(callback("[1,2]", hmac_hex(KEY2, "[1,2]", "sha256")))


def test_agreement_callbacks_are_not_ours(provider: ZalopayProvider) -> None:
    with pytest.raises(MalformedNotification, match="type"):
        provider.verify_callback(callback(VECTOR_5_DATA, VECTOR_5_MAC, type=2))
    # Without a type (older v2 samples), an order callback is assumed.
    body = json.dumps({"data": VECTOR_5_DATA, "mac": VECTOR_5_MAC}).encode()
    assert provider.verify_callback(CallbackRequest("POST", {}, {}, body)).amount == 10_000


def test_callback_server_time_is_optional(provider: ZalopayProvider) -> None:
    n = provider.verify_callback(signed_callback(vector_payload(server_time="soon", zp_trans_id="77")))
    assert n.paid_at is None
    assert n.provider_txn_id == "77"


# ---- redirect (§3.4) -------------------------------------------------------------------------------------


def redirect_args(key2: str = KEY2, **changes: str) -> dict[str, str]:
    params = {
        "appid": "2553",
        "apptransid": "261126_GW261126ABC123",
        "pmcid": "38",
        "bankcode": "",
        "amount": "150000",
        "discountamount": "0",
        "status": "1",
    }
    params.update(changes)
    params["checksum"] = hmac_hex(key2, redirect_checksum_data(params), "sha256")
    return params


@pytest.mark.parametrize(
    ("status", "outcome"), [("1", Outcome.SUCCEEDED), ("-49", Outcome.FAILED), ("2", Outcome.FAILED)]
)
def test_verify_return(provider: ZalopayProvider, status: str, outcome: Outcome) -> None:
    n = provider.verify_return(CallbackRequest("GET", redirect_args(status=status), {}, b""))
    assert n.outcome is outcome
    assert n.reference == "GW261126ABC123"
    assert n.amount == 150_000
    assert n.result_code == status
    assert n.provider_txn_id is None


def test_verify_return_accepts_the_old_key2() -> None:
    p = make_provider(key2=f"brand-new-key2,{KEY2}")
    assert p.verify_return(CallbackRequest("GET", redirect_args(), {}, b"")).outcome is Outcome.SUCCEEDED


@pytest.mark.parametrize(
    "field", ["appid", "apptransid", "pmcid", "bankcode", "amount", "discountamount", "status"]
)
def test_verify_return_rejects_each_tampered_field(provider: ZalopayProvider, field: str) -> None:
    args = redirect_args()
    args[field] = args[field] + "1"
    with pytest.raises(SignatureVerificationError):
        provider.verify_return(CallbackRequest("GET", args, {}, b""))


@pytest.mark.parametrize("checksum", [None, "", "0" * 64])
def test_verify_return_without_checksum_is_refused(provider: ZalopayProvider, checksum: str | None) -> None:
    args = redirect_args()
    del args["checksum"]
    if checksum is not None:
        args["checksum"] = checksum
    with pytest.raises(SignatureVerificationError):
        provider.verify_return(CallbackRequest("GET", args, {}, b""))


def test_verify_return_wrong_key_is_refused(provider: ZalopayProvider) -> None:
    with pytest.raises(SignatureVerificationError):
        provider.verify_return(CallbackRequest("GET", redirect_args(key2=KEY1), {}, b""))


@pytest.mark.parametrize(
    "changes",
    [{"amount": "1e5"}, {"amount": ""}, {"apptransid": "GW261126ABC123"}, {"appid": "554"}, {"status": ""}],
)
def test_verify_return_signed_but_unusable(provider: ZalopayProvider, changes: dict[str, str]) -> None:
    with pytest.raises(MalformedNotification):
        provider.verify_return(CallbackRequest("GET", redirect_args(**changes), {}, b""))


# ---- acknowledge (§3.3, contract §6) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ack", "body"),
    [
        (Ack.OK, b'{"return_code":1,"return_message":"success"}'),
        (Ack.NOT_FOUND, b'{"return_code":1,"return_message":"success: unknown order recorded for review"}'),
        (
            Ack.BAD_AMOUNT,
            b'{"return_code":1,"return_message":"success: amount mismatch recorded for review"}',
        ),
        (Ack.ALREADY, b'{"return_code":2,"return_message":"already processed"}'),
        (Ack.BAD_SIGNATURE, b'{"return_code":-1,"return_message":"mac not equal"}'),
        (Ack.ERROR, b'{"return_code":0,"return_message":"internal error, retry"}'),
    ],
)
def test_acknowledge(provider: ZalopayProvider, ack: Ack, body: bytes) -> None:
    answer = provider.acknowledge(ack)
    assert answer.status == 200
    assert answer.body == body
    assert answer.content_type == "application/json"


def test_every_ack_has_an_answer(provider: ZalopayProvider) -> None:
    assert {json.loads(provider.acknowledge(a).body)["return_code"] for a in Ack} == {1, 2, -1, 0}


# ---- query (§3.5) -----------------------------------------------------------------------------------------


def query_request(created_at: datetime = NOW - timedelta(hours=1), **provider_data: Any) -> QueryRequest:
    return QueryRequest(
        reference="GW261126ABC123",
        amount=150_000,
        created_at=created_at,
        order_info="Lệ phí hồ sơ",
        provider_data=provider_data or {"app_trans_id": "261126_GW261126ABC123", "zp_trans_token": "t"},
    )


def query_answer(**changes: Any) -> dict[str, Any]:
    body = {
        "return_code": 1,
        "return_message": "Giao dịch thành công",
        "sub_return_code": 1,
        "sub_return_message": "Giao dịch thành công",
        "is_processing": False,
        "amount": 150_000,
        "discount_amount": 0,
        "zp_trans_id": 261126000000389,
        "server_time": 1795628000000,
    }
    body.update(changes)
    return body


def test_query_succeeded_and_request_is_signed(
    provider: ZalopayProvider, mocked: responses.RequestsMock
) -> None:
    mocked.post(QUERY_URL, json=query_answer())
    n = provider.query(query_request())
    assert n.outcome is Outcome.SUCCEEDED
    assert n.amount == 150_000
    assert n.provider_txn_id == "261126000000389"
    assert n.result_code == "1"
    assert n.paid_at == from_epoch_ms(1795628000000)
    assert mocked.calls[0].request.req_kwargs["timeout"] == provider.timeout  # type: ignore[attr-defined]
    sent = sent_json(mocked)
    assert sent == {
        "app_id": 2553,
        "app_trans_id": "261126_GW261126ABC123",
        "mac": hmac_hex(KEY1, f"2553|261126_GW261126ABC123|{KEY1}", "sha256"),
    }


def test_query_with_rotated_key1_uses_the_first_as_data_and_key(mocked: responses.RequestsMock) -> None:
    mocked.post(QUERY_URL, json=query_answer())
    make_provider(key1=f"new-key1,{KEY1}").query(query_request())
    assert sent_json(mocked)["mac"] == hmac_hex("new-key1", "2553|261126_GW261126ABC123|new-key1", "sha256")


@pytest.mark.parametrize(
    ("changes", "outcome", "result_code"),
    [
        ({"return_code": 2, "sub_return_code": -329, "amount": 0}, Outcome.FAILED, "2/-329"),
        ({"return_code": 2, "sub_return_code": -54}, Outcome.FAILED, "2/-54"),
        ({"return_code": 2, "sub_return_code": None}, Outcome.FAILED, "2"),
        ({"return_code": 3, "sub_return_code": 3, "is_processing": True}, Outcome.PENDING, "3"),
        ({"return_code": 3, "sub_return_code": None, "is_processing": False}, Outcome.PENDING, "3"),
        ({"return_code": 3, "sub_return_code": -54, "is_processing": False}, Outcome.FAILED, "3/-54"),
        ({"return_code": "3", "sub_return_code": "-54"}, Outcome.FAILED, "3/-54"),
        # Trouble at ZaloPay or with our request says nothing about the payment.
        ({"return_code": 2, "sub_return_code": -402}, Outcome.UNKNOWN, "2/-402"),
        ({"return_code": 2, "sub_return_code": -500}, Outcome.UNKNOWN, "2/-500"),
        ({"return_code": 2, "sub_return_code": -429}, Outcome.UNKNOWN, "2/-429"),
        ({"return_code": -500, "sub_return_code": None}, Outcome.UNKNOWN, "-500"),
        ({"return_code": 7}, Outcome.UNKNOWN, "7"),
        # Paid without a usable amount: not trusted.
        ({"amount": 150000.0}, Outcome.UNKNOWN, "garbage"),
        ({"amount": None}, Outcome.UNKNOWN, "garbage"),
        ({"return_code": None}, Outcome.UNKNOWN, "garbage"),
        ({"return_code": True}, Outcome.UNKNOWN, "garbage"),
    ],
)
def test_query_state_mapping(
    provider: ZalopayProvider,
    mocked: responses.RequestsMock,
    changes: dict[str, Any],
    outcome: Outcome,
    result_code: str,
) -> None:
    mocked.post(QUERY_URL, json=query_answer(**changes))
    n = provider.query(query_request())
    assert n.outcome is outcome
    assert n.result_code == result_code
    if outcome is not Outcome.SUCCEEDED:
        assert n.amount is None


def test_query_after_48_hours_does_not_call(
    provider: ZalopayProvider, mocked: responses.RequestsMock
) -> None:
    mocked.post(QUERY_URL, json=query_answer())
    n = provider.query(query_request(created_at=NOW - timedelta(hours=48, seconds=1)))
    assert (n.outcome, n.result_code) == (Outcome.UNKNOWN, "query_window_passed")
    assert len(mocked.calls) == 0
    assert provider.query(query_request(created_at=NOW - timedelta(hours=48))).outcome is Outcome.SUCCEEDED


def test_query_without_provider_data_rebuilds_the_app_trans_id(
    provider: ZalopayProvider, mocked: responses.RequestsMock
) -> None:
    # create timed out: no provider_data was stored. The id is rebuilt from the attempt's creation instant.
    created = datetime(2026, 11, 25, 17, 5, tzinfo=UTC)
    request = QueryRequest("GW261126ABC123", 150_000, created, "x")
    mocked.post(QUERY_URL, json=query_answer())
    assert provider.query(request).outcome is Outcome.SUCCEEDED
    assert sent_json(mocked)["app_trans_id"] == "261126_GW261126ABC123"
    # "Failed" about a guessed id may only mean that the guess was wrong: never FAILED.
    mocked.replace(responses.POST, QUERY_URL, json=query_answer(return_code=2, sub_return_code=-329))
    assert provider.query(request).outcome is Outcome.UNKNOWN
    mocked.replace(responses.POST, QUERY_URL, json=query_answer(return_code=3, sub_return_code=3))
    assert provider.query(request).outcome is Outcome.PENDING


@pytest.mark.parametrize(
    ("answer", "result_code"),
    [
        ({"status": 503, "body": "Service Unavailable"}, "http_503"),
        ({"status": 404, "body": "Not found"}, "http_404"),
        ({"status": 200, "body": "<html>oops"}, "garbage"),
        ({"status": 200, "body": "[1, 2]"}, "garbage"),
        ({"status": 200, "body": ""}, "garbage"),
        ({"status": 200, "json": {"return_message": "no code"}}, "garbage"),
        ({"body": requests.ConnectionError("refused")}, "unreachable"),
        ({"body": requests.Timeout("slow")}, "unreachable"),
    ],
)
def test_query_trouble_is_unknown(
    provider: ZalopayProvider, mocked: responses.RequestsMock, answer: dict[str, Any], result_code: str
) -> None:
    mocked.post(QUERY_URL, **answer)
    n = provider.query(query_request())
    assert (n.outcome, n.result_code) == (Outcome.UNKNOWN, result_code)


class _SlowHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        time.sleep(1.0)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"return_code":1,"amount":1}')
        except OSError:
            pass  # the client gave up first, as intended

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - BaseHTTPRequestHandler's name
        pass


@pytest.fixture
def slow_endpoint() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_slow_provider_hits_the_requests_timeout(slow_endpoint: str) -> None:
    creds = ProviderCredentials(
        "zalopay", {**make_credentials().values, "ZALOPAY_ENDPOINT": slow_endpoint}, emulated=False
    )
    p = ZalopayProvider(creds, base_url="http://gateway.test", timeout=0.2, clock=lambda: NOW)
    started = time.monotonic()
    n = p.query(query_request())
    assert (n.outcome, n.result_code) == (Outcome.UNKNOWN, "unreachable")
    assert time.monotonic() - started < 0.9
    with pytest.raises(ProviderUnavailable):
        p.build_payment_request(payment_request())


# ---- refunds (§3.6) --------------------------------------------------------------------------------------


def refund_request(**changes: Any) -> RefundRequest:
    values: dict[str, Any] = {
        "reference": "RF261126XYZ",
        "payment_reference": "GW261126ABC123",
        "payment_txn_id": "261126000000389",
        "amount": 50_000,
        "payment_amount": 150_000,
        "already_refunded": 0,
        "reason": "Hoàn phí hồ sơ (trùng)",
        "actor": "finance@example.vn",
        "created_at": NOW,
        "payment_created_at": NOW - timedelta(days=1),
        "payment_provider_data": {"app_trans_id": "261125_GW261126ABC123"},
    }
    values.update(changes)
    return RefundRequest(**values)


def test_refund_request_is_signed(provider: ZalopayProvider, mocked: responses.RequestsMock) -> None:
    mocked.post(REFUND_URL, json={"return_code": 1, "sub_return_code": 1, "refund_id": 123456789})
    result = provider.refund(refund_request())
    assert result.outcome is Outcome.SUCCEEDED
    assert result.result_code == "1"
    assert result.provider_reference == "261126_2553_RF261126XYZ"
    assert result.raw["refund_id"] == 123456789
    assert mocked.calls[0].request.req_kwargs["timeout"] == provider.timeout  # type: ignore[attr-defined]
    sent = sent_json(mocked)
    assert sent == {
        "app_id": 2553,
        "m_refund_id": "261126_2553_RF261126XYZ",
        "zp_trans_id": "261126000000389",
        "amount": 50_000,
        "timestamp": epoch_ms(NOW),
        "description": "Hoan phi ho so trung",
        "mac": hmac_hex(KEY1, refund_mac_data(sent), "sha256"),
    }


@pytest.mark.parametrize(
    ("answer", "outcome", "result_code"),
    [
        ({"return_code": 1}, Outcome.SUCCEEDED, "1"),
        ({"return_code": 3, "sub_return_code": 3}, Outcome.PENDING, "3"),
        ({"return_code": 3, "sub_return_code": -101}, Outcome.SUCCEEDED, "3/-101"),
        ({"return_code": 1, "sub_return_code": -101}, Outcome.SUCCEEDED, "1/-101"),
        ({"return_code": 2, "sub_return_code": -13}, Outcome.FAILED, "2/-13"),
        ({"return_code": 2, "sub_return_code": -402}, Outcome.FAILED, "2/-402"),
        ({"return_code": -401}, Outcome.FAILED, "2/-401"),
        ({"return_code": 2, "sub_return_code": -500}, Outcome.UNKNOWN, "2/-500"),
        ({"return_code": -429}, Outcome.UNKNOWN, "2/-429"),
        ({"return_code": 2, "sub_return_code": -101}, Outcome.UNKNOWN, "2/-101"),
        ({"return_code": 9}, Outcome.UNKNOWN, "9"),
    ],
)
def test_refund_outcome_mapping(
    provider: ZalopayProvider,
    mocked: responses.RequestsMock,
    answer: dict[str, Any],
    outcome: Outcome,
    result_code: str,
) -> None:
    mocked.post(REFUND_URL, json=answer)
    result = provider.refund(refund_request())
    assert (result.outcome, result.result_code) == (outcome, result_code)
    assert result.provider_reference == "261126_2553_RF261126XYZ"


@pytest.mark.parametrize(
    ("answer", "result_code"),
    [
        ({"status": 503, "body": "x"}, "http_503"),
        ({"status": 200, "body": "<html>oops"}, "garbage"),
        ({"body": requests.ConnectionError("refused")}, "unreachable"),
        ({"body": requests.Timeout("slow")}, "unreachable"),
    ],
)
def test_refund_trouble_is_unknown(
    provider: ZalopayProvider, mocked: responses.RequestsMock, answer: dict[str, Any], result_code: str
) -> None:
    mocked.post(REFUND_URL, **answer)
    result = provider.refund(refund_request())
    assert (result.outcome, result.result_code) == (Outcome.UNKNOWN, result_code)
    assert result.provider_reference == "261126_2553_RF261126XYZ"  # query_refund can still find it


@pytest.mark.parametrize(
    ("changes", "match"), [({"payment_txn_id": None}, "zp_trans_id"), ({"amount": 0}, "amount")]
)
def test_refund_refuses_caller_bugs(provider: ZalopayProvider, changes: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        provider.refund(refund_request(**changes))


def test_query_refund_request_is_signed(mocked: responses.RequestsMock) -> None:
    later = NOW + timedelta(days=2)  # polled two days later: same m_refund_id, fresh timestamp
    p = make_provider(now=later)
    mocked.post(QUERY_REFUND_URL, json={"return_code": 1, "sub_return_code": 1})
    result = p.query_refund(refund_request())
    assert (result.outcome, result.provider_reference) == (Outcome.SUCCEEDED, "261126_2553_RF261126XYZ")
    sent = sent_json(mocked)
    assert sent == {
        "app_id": 2553,
        "m_refund_id": "261126_2553_RF261126XYZ",
        "timestamp": epoch_ms(later),
        "mac": hmac_hex(KEY1, f"2553|261126_2553_RF261126XYZ|{epoch_ms(later)}", "sha256"),
    }


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        ({"return_code": 1}, Outcome.SUCCEEDED),
        ({"return_code": 3, "sub_return_code": -101}, Outcome.SUCCEEDED),
        ({"return_code": 3}, Outcome.PENDING),
        ({"return_code": 2, "sub_return_code": -13}, Outcome.FAILED),
        # A refused *query* says nothing about the refund.
        ({"return_code": 2, "sub_return_code": -402}, Outcome.UNKNOWN),
        ({"return_code": 2, "sub_return_code": -401}, Outcome.UNKNOWN),
        ({"return_code": 2, "sub_return_code": -500}, Outcome.UNKNOWN),
        ({"return_code": 2, "sub_return_code": -101}, Outcome.UNKNOWN),
    ],
)
def test_query_refund_outcome_mapping(
    provider: ZalopayProvider, mocked: responses.RequestsMock, answer: dict[str, Any], outcome: Outcome
) -> None:
    mocked.post(QUERY_REFUND_URL, json=answer)
    assert provider.query_refund(refund_request()).outcome is outcome


def test_query_refund_trouble_is_unknown(provider: ZalopayProvider, mocked: responses.RequestsMock) -> None:
    mocked.post(QUERY_REFUND_URL, status=502, body="Bad Gateway")
    result = provider.query_refund(refund_request())
    assert (result.outcome, result.result_code) == (Outcome.UNKNOWN, "http_502")
