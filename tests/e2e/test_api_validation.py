"""Bad input changes nothing (issue 5.6, contract §4 and §12).

Every bad request answers ``application/problem+json`` naming the offending field (413 for an
oversized body, else 400 or 422), and the row count of every table is the same afterwards.
No input produces a 500.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.conftest import count_rows, order_body

ORDERS = "/api/v1/orders"
MAX_AMOUNT = 10_000_000_000
PROBLEM_KEYS = {"type", "title", "status", "detail", "errors"}


@dataclass(frozen=True)
class Req:
    """One request to send: a raw body (or none), its content type and extra headers."""

    data: bytes | None
    content_type: str | None = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def as_json(body: Any) -> Req:
    return Req(json.dumps(body, ensure_ascii=False).encode())


def with_item(**changes: Any) -> Req:
    body = order_body()
    body["items"][0].update(changes)
    return as_json(body)


def without(name: str) -> Req:
    body = order_body()
    del body[name]
    return as_json(body)


def without_payer_name() -> Req:
    body = order_body()
    del body["payer"]["name"]
    return as_json(body)


def item(amount: Any, code: str = "X") -> dict[str, Any]:
    return {"code": code, "kind": "fee", "description": "Lệ phí", "amount": amount}


def raw(text: str, content_type: str | None = "application/json") -> Req:
    return Req(text.encode(), content_type)


VALID_TEXT = json.dumps(order_body(), ensure_ascii=False)

# (id, request, expected statuses, the field the errors must name)
CREATE_CASES: list[tuple[str, Callable[[], Req], set[int], str]] = [
    ("invalid-json", lambda: raw('{"dossier_code": "H1", '), {400}, "body"),
    ("invalid-json-trailing-garbage", lambda: raw(VALID_TEXT + "}"), {400}, "body"),
    ("empty-body", lambda: raw(""), {400}, "body"),
    ("not-utf8", lambda: Req(b'{"dossier_code": "\xff\xfe"}'), {400}, "body"),
    ("wrong-content-type", lambda: raw(VALID_TEXT, "text/plain"), {400, 415}, "Content-Type"),
    (
        "form-content-type",
        lambda: raw("dossier_code=H1", "application/x-www-form-urlencoded"),
        {400, 415},
        "Content-Type",
    ),
    ("no-content-type", lambda: raw(VALID_TEXT, None), {400, 415}, "Content-Type"),
    ("oversize-body", lambda: as_json(order_body(metadata={"pad": "x" * (64 * 1024)})), {413}, "body"),
    ("missing-dossier_code", lambda: without("dossier_code"), {400, 422}, "dossier_code"),
    ("empty-dossier_code", lambda: as_json(order_body(dossier_code="")), {400, 422}, "dossier_code"),
    ("blank-dossier_code", lambda: as_json(order_body(dossier_code="   ")), {400, 422}, "dossier_code"),
    ("null-dossier_code", lambda: as_json(order_body(dossier_code=None)), {400, 422}, "dossier_code"),
    ("number-dossier_code", lambda: as_json(order_body(dossier_code=12)), {400, 422}, "dossier_code"),
    ("missing-agency_code", lambda: without("agency_code"), {400, 422}, "agency_code"),
    ("empty-agency_code", lambda: as_json(order_body(agency_code="")), {400, 422}, "agency_code"),
    ("missing-payer", lambda: without("payer"), {400, 422}, "payer"),
    ("null-payer", lambda: as_json(order_body(payer=None)), {400, 422}, "payer"),
    ("payer-not-object", lambda: as_json(order_body(payer="Nguyễn Văn An")), {400, 422}, "payer"),
    ("missing-payer.name", without_payer_name, {400, 422}, "payer.name"),
    ("empty-payer.name", lambda: as_json(order_body(payer={"name": ""})), {400, 422}, "payer.name"),
    ("blank-payer.name", lambda: as_json(order_body(payer={"name": " \t "})), {400, 422}, "payer.name"),
    ("missing-items", lambda: without("items"), {400, 422}, "items"),
    ("empty-items", lambda: as_json(order_body(items=[])), {400, 422}, "items"),
    ("items-not-list", lambda: as_json(order_body(items={"0": item(1000)})), {400, 422}, "items"),
    ("null-item", lambda: as_json(order_body(items=[None])), {400, 422}, "items.0"),
    ("item-not-object", lambda: as_json(order_body(items=[5])), {400, 422}, "items.0"),
    (
        "too-many-items",
        lambda: as_json(order_body(items=[item(1000, f"C{i}") for i in range(51)])),
        {400, 422},
        "items",
    ),
    ("amount-float", lambda: with_item(amount=10000.5), {400, 422}, "items.0.amount"),
    ("amount-integral-float", lambda: with_item(amount=10000.0), {400, 422}, "items.0.amount"),
    (
        "amount-exponent",
        lambda: raw(VALID_TEXT.replace('"amount": 50000', '"amount": 5e4')),
        {400, 422},
        "items.0.amount",
    ),
    ("amount-string", lambda: with_item(amount="10000"), {400, 422}, "items.0.amount"),
    ("amount-thousands-string", lambda: with_item(amount="10.000"), {400, 422}, "items.0.amount"),
    ("amount-zero", lambda: with_item(amount=0), {400, 422}, "items.0.amount"),
    ("amount-negative", lambda: with_item(amount=-50000), {400, 422}, "items.0.amount"),
    ("amount-above-max", lambda: with_item(amount=MAX_AMOUNT + 1), {400, 422}, "items.0.amount"),
    ("amount-huge", lambda: with_item(amount=10**40), {400, 422}, "items.0.amount"),
    ("amount-true", lambda: with_item(amount=True), {400, 422}, "items.0.amount"),
    ("amount-false", lambda: with_item(amount=False), {400, 422}, "items.0.amount"),
    ("amount-null", lambda: with_item(amount=None), {400, 422}, "items.0.amount"),
    (
        "amount-missing",
        lambda: as_json(order_body(items=[{"code": "A", "kind": "fee"}])),
        {400, 422},
        "items.0.amount",
    ),
    (
        "second-item-bad",
        lambda: as_json(order_body(items=[item(1000, "A"), item(-1, "B")])),
        {400, 422},
        "items.1.amount",
    ),
    ("amount-NaN", lambda: raw(VALID_TEXT.replace('"amount": 50000', '"amount": NaN')), {400, 422}, "body"),
    (
        "amount-Infinity",
        lambda: raw(VALID_TEXT.replace('"amount": 50000', '"amount": Infinity')),
        {400, 422},
        "body",
    ),
    (
        "amount-minus-Infinity",
        lambda: raw(VALID_TEXT.replace('"amount": 50000', '"amount": -Infinity')),
        {400, 422},
        "body",
    ),
    (
        "total-above-max",
        lambda: as_json(order_body(items=[item(MAX_AMOUNT, "A"), item(1, "B")])),
        {400, 422},
        "items",
    ),
    ("currency-usd", lambda: as_json(order_body(currency="USD")), {400, 422}, "currency"),
    ("currency-lowercase", lambda: as_json(order_body(currency="vnd")), {400, 422}, "currency"),
    ("currency-null", lambda: as_json(order_body(currency=None)), {400, 422}, "currency"),
    ("kind-tax", lambda: with_item(kind="tax"), {400, 422}, "items.0.kind"),
    (
        "kind-missing",
        lambda: as_json(order_body(items=[{"code": "A", "amount": 1000}])),
        {400, 422},
        "items.0.kind",
    ),
    (
        "return_url-ftp",
        lambda: as_json(order_body(return_url="ftp://portal.example.vn/x")),
        {400, 422},
        "return_url",
    ),
    (
        "return_url-javascript",
        lambda: as_json(order_body(return_url="javascript:alert(1)")),
        {400, 422},
        "return_url",
    ),
    ("return_url-relative", lambda: as_json(order_body(return_url="/ho-so/1")), {400, 422}, "return_url"),
    ("return_url-no-host", lambda: as_json(order_body(return_url="https://")), {400, 422}, "return_url"),
    ("expires_in-too-small", lambda: as_json(order_body(expires_in=299)), {400, 422}, "expires_in"),
    ("expires_in-too-large", lambda: as_json(order_body(expires_in=604_801)), {400, 422}, "expires_in"),
    ("expires_in-negative", lambda: as_json(order_body(expires_in=-3600)), {400, 422}, "expires_in"),
    ("expires_in-float", lambda: as_json(order_body(expires_in=3600.5)), {400, 422}, "expires_in"),
    ("expires_in-string", lambda: as_json(order_body(expires_in="3600")), {400, 422}, "expires_in"),
    ("expires_in-bool", lambda: as_json(order_body(expires_in=True)), {400, 422}, "expires_in"),
    # The FakeClock starts at 2026-11-25T03:00:00Z.
    ("expires_at-past", lambda: as_json(_expires_at("2026-11-24T03:00:00Z")), {400, 422}, "expires_at"),
    ("expires_at-too-soon", lambda: as_json(_expires_at("2026-11-25T03:01:00Z")), {400, 422}, "expires_at"),
    ("expires_at-too-far", lambda: as_json(_expires_at("2027-11-25T03:00:00Z")), {400, 422}, "expires_at"),
    ("expires_at-naive", lambda: as_json(_expires_at("2026-11-25T09:00:00")), {400, 422}, "expires_at"),
    ("expires_at-garbage", lambda: as_json(_expires_at("tomorrow")), {400, 422}, "expires_at"),
    ("metadata-over-4kb", lambda: as_json(order_body(metadata={"note": "ư" * 2100})), {400, 422}, "metadata"),
    ("metadata-not-object", lambda: as_json(order_body(metadata=[1, 2])), {400, 422}, "metadata"),
    ("unknown-top-level-field", lambda: as_json(order_body(discount=1000)), {400, 422}, "discount"),
    ("unknown-item-field", lambda: with_item(vat=10), {400, 422}, "items.0.vat"),
    (
        "unknown-payer-field",
        lambda: as_json(order_body(payer={"name": "An", "age": 30})),
        {400, 422},
        "payer.age",
    ),
    ("body-array", lambda: as_json([order_body()]), {400, 422}, "body"),
    ("body-string", lambda: as_json("order"), {400, 422}, "body"),
    ("body-null", lambda: raw("null"), {400, 422}, "body"),
    ("body-number", lambda: raw("58000"), {400, 422}, "body"),
    ("body-deeply-nested", lambda: raw("[" * 30_000 + "]" * 30_000), {400, 422}, "body"),
    (
        "metadata-deeply-nested",
        lambda: raw(VALID_TEXT[:-1] + ', "metadata": {"a": ' + "[" * 3000 + "]" * 3000 + "}}"),
        {400, 422},
        "body",
    ),
    (
        "idempotency-key-256",
        lambda: Req(as_json(order_body()).data, headers={"Idempotency-Key": "k" * 256}),
        {400, 422},
        "Idempotency-Key",
    ),
    (
        "idempotency-key-blank",
        lambda: Req(as_json(order_body()).data, headers={"Idempotency-Key": "  "}),
        {400, 422},
        "Idempotency-Key",
    ),
    (
        "nul-in-dossier_code",
        lambda: as_json(order_body(dossier_code="H12\u0000")),
        {400, 422},
        "dossier_code",
    ),
    ("nul-in-payer.name", lambda: as_json(order_body(payer={"name": "An\u0000"})), {400, 422}, "payer.name"),
    (
        "lone-surrogate",
        lambda: raw(VALID_TEXT.replace('"SO-TU-PHAP"', '"\\ud800"')),
        {400, 422},
        "agency_code",
    ),
    (
        "too-long-dossier_code",
        lambda: as_json(order_body(dossier_code="H" * 101)),
        {400, 422},
        "dossier_code",
    ),
]


def _expires_at(instant: str) -> dict[str, Any]:
    body = order_body(expires_at=instant)
    del body["expires_in"]
    return body


def send(client, portal, req: Req, path: str = ORDERS):
    headers = {**portal.headers, **req.headers}
    kwargs: dict[str, Any] = {"headers": headers}
    if req.data is not None:
        kwargs["data"] = req.data
    if req.content_type is not None:
        kwargs["content_type"] = req.content_type
    return client.post(path, **kwargs)


def assert_problem(response, statuses: set[int], field_name: str) -> dict[str, Any]:
    text = response.get_data(as_text=True)
    assert response.status_code in statuses, text
    assert response.mimetype == "application/problem+json", text
    problem = json.loads(text)
    assert problem.keys() >= PROBLEM_KEYS, problem
    assert problem["status"] == response.status_code
    assert isinstance(problem["title"], str)
    assert problem["title"]
    assert isinstance(problem["detail"], str)
    assert problem["detail"]
    assert isinstance(problem["errors"], dict)
    assert field_name in problem["errors"], problem["errors"]
    messages = problem["errors"][field_name]
    assert isinstance(messages, list)
    assert messages
    assert all(isinstance(m, str) and m for m in messages)
    return problem


@pytest.mark.parametrize(
    ("make", "statuses", "field_name"),
    [pytest.param(make, statuses, name, id=case) for case, make, statuses, name in CREATE_CASES],
)
def test_bad_create_is_a_problem_naming_the_field_and_writes_nothing(
    client, portal, engine, make, statuses, field_name
):
    before = count_rows(engine)
    assert before["portal_clients"] == 1
    assert_problem(send(client, portal, make()), statuses, field_name)
    assert count_rows(engine) == before


def test_the_unmodified_body_is_accepted(client, portal, engine):
    """The cases above differ from a valid order by exactly the change each one names."""
    before = count_rows(engine)
    r = send(client, portal, as_json(order_body()))
    assert r.status_code == 201, r.get_data(as_text=True)
    assert count_rows(engine)["orders"] == before["orders"] + 1


def test_bad_input_leaves_an_idempotency_key_unused(client, portal, engine):
    """A request refused by validation stores nothing under its key; the key still works afterwards."""
    headers = {**portal.headers, "Idempotency-Key": "retry-after-fix"}
    bad = client.post(ORDERS, json=order_body(currency="USD"), headers=headers)
    assert bad.status_code == 422
    assert count_rows(engine)["idempotency_records"] == 0
    good = client.post(ORDERS, json=order_body(), headers=headers)
    assert good.status_code == 201, good.get_data(as_text=True)


ATTEMPT_CASES: list[tuple[str, Any, str]] = [
    ("unknown-provider", {"provider": "nosuchbank"}, "provider"),
    ("provider-case", {"provider": "VNPAY"}, "provider"),
    ("empty-provider", {"provider": ""}, "provider"),
    ("missing-provider", {}, "provider"),
    ("null-provider", {"provider": None}, "provider"),
    ("number-provider", {"provider": 7}, "provider"),
    ("bad-locale", {"provider": "vnpay", "locale": "fr"}, "locale"),
    ("unknown-field", {"provider": "vnpay", "amount": 1}, "amount"),
    ("array-body", [{"provider": "vnpay"}], "body"),
]


@pytest.mark.parametrize(
    ("body", "field_name"), [pytest.param(body, name, id=case) for case, body, name in ATTEMPT_CASES]
)
def test_bad_attempt_is_a_problem_naming_the_field_and_writes_nothing(
    client, portal, engine, body, field_name
):
    order = client.post(ORDERS, json=order_body(), headers=portal.headers)
    assert order.status_code == 201
    order_id = order.get_json()["id"]
    before = count_rows(engine)
    r = client.post(f"{ORDERS}/{order_id}/attempts", json=body, headers=portal.headers)
    assert_problem(r, {400, 422}, field_name)
    assert count_rows(engine) == before
    assert client.get(f"{ORDERS}/{order_id}", headers=portal.headers).get_json()["status"] == "pending"


@pytest.mark.parametrize(
    ("make", "field_name"),
    [
        pytest.param(lambda: raw('{"provider": '), "body", id="invalid-json"),
        pytest.param(lambda: raw('{"provider": "vnpay"}', "text/plain"), "Content-Type", id="content-type"),
    ],
)
def test_bad_attempt_body_encoding(client, portal, engine, make, field_name):
    order_id = client.post(ORDERS, json=order_body(), headers=portal.headers).get_json()["id"]
    before = count_rows(engine)
    assert_problem(send(client, portal, make(), f"{ORDERS}/{order_id}/attempts"), {400, 415}, field_name)
    assert count_rows(engine) == before


@pytest.mark.parametrize(
    ("query", "field_name"),
    [
        pytest.param("limit=0", "limit", id="limit-0"),
        pytest.param("limit=101", "limit", id="limit-101"),
        pytest.param("limit=-1", "limit", id="limit-negative"),
        pytest.param("limit=ten", "limit", id="limit-text"),
        pytest.param("cursor=not-a-cursor", "cursor", id="cursor-garbage"),
        pytest.param("cursor=%25%25%25", "cursor", id="cursor-percent"),
        pytest.param("cursor=bm9waXBl", "cursor", id="cursor-base64-no-separator"),
        pytest.param("cursor=eHx5", "cursor", id="cursor-base64-bad-date"),
        pytest.param("cursor=%F0%9F%92%A5", "cursor", id="cursor-emoji"),
        pytest.param("status=unpaid", "status", id="status-unknown"),
        pytest.param("created_from=yesterday", "created_from", id="created_from-garbage"),
        pytest.param("created_to=2026-11-25T03:00:00", "created_to", id="created_to-naive"),
        pytest.param("colour=red", "colour", id="unknown-parameter"),
    ],
)
def test_bad_list_query_is_a_problem_naming_the_parameter(client, portal, engine, query, field_name):
    assert client.post(ORDERS, json=order_body(), headers=portal.headers).status_code == 201
    before = count_rows(engine)
    r = client.get(f"{ORDERS}?{query}", headers=portal.headers)
    assert_problem(r, {400, 422}, field_name)
    assert count_rows(engine) == before


# ---- random input: never a 500, always problem+json when refused ----

FIELD_NAMES = [
    "dossier_code",
    "agency_code",
    "payer",
    "name",
    "items",
    "code",
    "kind",
    "amount",
    "description",
    "currency",
    "return_url",
    "expires_in",
    "expires_at",
    "metadata",
    "revenue_code",
    "chapter_code",
]
json_primitives = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["fee", "charge", "VND", "https://x.vn/r", "", " ", "2026-11-26T03:00:00Z"])
)
json_values = st.recursive(
    json_primitives,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)


def _near_valid(draw_map: dict[str, Any]) -> dict[str, Any]:
    body = order_body()
    body.update(draw_map)
    return body


bodies = (
    json_values
    | st.dictionaries(st.sampled_from(FIELD_NAMES), json_values, max_size=8)
    | st.dictionaries(st.sampled_from(FIELD_NAMES), json_values, max_size=3).map(_near_valid)
)


@hsettings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies)
def test_random_json_never_500(client, portal, body):
    r = client.post(
        ORDERS,
        data=json.dumps(body, ensure_ascii=False),
        content_type="application/json",
        headers=portal.headers,
    )
    assert r.status_code < 500, r.get_data(as_text=True)
    if r.status_code != 201:
        assert r.mimetype == "application/problem+json"
        assert r.get_json().keys() >= PROBLEM_KEYS
    else:
        created = r.get_json()
        assert isinstance(created["amount"], int)
        assert created["amount"] == sum(i["amount"] for i in created["items"])


@pytest.mark.parametrize("depth", [50, 500, 900, 990, 1100, 20_000])
def test_nesting_depth_never_500(client, portal, engine, depth):
    """Deep JSON (within 64 KB) is refused or accepted, never a RecursionError turned into a 500."""
    nested = "[" * depth + "]" * depth
    text = VALID_TEXT[:-1] + f', "metadata": {{"a": {nested}}}}}'
    before = count_rows(engine)
    r = send(client, portal, raw(text))
    assert r.status_code in {201, 400, 413, 422}, r.get_data(as_text=True)
    if r.status_code != 201:
        assert r.mimetype == "application/problem+json"
        assert count_rows(engine) == before
