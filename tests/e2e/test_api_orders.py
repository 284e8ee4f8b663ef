"""The portal API end to end (contract §4, issue 5.5 and 5.11): orders, attempts, cancel, providers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openapi_spec_validator import validate as validate_openapi

from providers.emulators.vnpay import build_ipn_query
from providers.vnpay import EMULATOR_HASH_SECRET
from tests.conftest import count_rows, order_body
from tests.helpers import vnpay_ipn_params

ORDERS = "/api/v1/orders"
T0 = "2026-11-25T03:00:00Z"  # the FakeClock's start
PAY_DATE = "20261125100500"  # 03:05 UTC in VNPAY's GMT+7, before the default one-hour deadline


def create(client, portal, **overrides: Any) -> dict[str, Any]:
    r = client.post(ORDERS, json=order_body(**overrides), headers=portal.headers)
    assert r.status_code == 201, r.get_data(as_text=True)
    assert r.mimetype == "application/json"
    return r.get_json()


def read(client, portal, order_id: str) -> dict[str, Any]:
    r = client.get(f"{ORDERS}/{order_id}", headers=portal.headers)
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_json()


def attempt(client, portal, order_id: str, **body: Any):
    return client.post(
        f"{ORDERS}/{order_id}/attempts", json={"provider": "vnpay", **body}, headers=portal.headers
    )


def cancel(client, portal, order_id: str):
    return client.post(f"{ORDERS}/{order_id}/cancel", headers=portal.headers)


def listing(client, portal, query: str = "") -> dict[str, Any]:
    r = client.get(f"{ORDERS}?{query}", headers=portal.headers)
    assert r.status_code == 200, r.get_data(as_text=True)
    page = r.get_json()
    assert set(page) == {"items", "next_cursor"}
    return page


def assert_problem(r, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.mimetype == "application/problem+json"
    body = r.get_json()
    assert {"type", "title", "status", "detail", "errors"} <= body.keys()
    assert body["status"] == status
    return body


def pay_with_vnpay(client, portal, order: dict[str, Any]) -> dict[str, Any]:
    """Start a VNPAY attempt and deliver a forged, correctly signed successful IPN for it."""
    started = attempt(client, portal, order["id"])
    assert started.status_code == 201, started.get_data(as_text=True)
    params = vnpay_ipn_params(started.get_json()["reference"], order["amount"], vnp_PayDate=PAY_DATE)
    r = client.get(f"/callbacks/vnpay?{build_ipn_query(EMULATOR_HASH_SECRET, params)}")
    assert r.status_code == 200
    assert r.get_json() == {"RspCode": "00", "Message": "Confirm Success"}
    paid = read(client, portal, order["id"])
    assert paid["status"] == "paid"
    assert paid["paid_amount"] == order["amount"]
    return paid


# ---- create and read ----


def test_create_answers_the_contract_shape(client, portal, engine):
    r = client.post(ORDERS, json=order_body(), headers=portal.headers)
    assert r.status_code == 201, r.get_data(as_text=True)
    order = r.get_json()
    required = {
        "id",
        "status",
        "amount",
        "currency",
        "dossier_code",
        "items",
        "checkout_url",
        "expires_at",
        "created_at",
        "attempts",
    }
    assert required <= order.keys()
    assert order["id"]
    assert order["status"] == "pending"
    assert order["amount"] == 50000 + 8000
    assert order["currency"] == "VND"
    assert order["dossier_code"] == "H12.22-241125-0001"
    assert order["agency_code"] == "SO-TU-PHAP"
    assert order["payer"]["name"] == "Nguyễn Văn An"
    assert [(i["code"], i["kind"], i["amount"]) for i in order["items"]] == [
        ("LP-01", "fee", 50000),
        ("PH-02", "charge", 8000),
    ]
    assert order["items"][0]["description"] == "Lệ phí hộ tịch"
    assert order["checkout_url"] == f"http://gateway.test/pay/{order['id']}"
    assert order["created_at"] == T0
    assert order["expires_at"] == "2026-11-25T04:00:00Z"  # expires_in 3600
    assert order["attempts"] == []
    assert order["paid_amount"] == 0
    rows = count_rows(engine)
    assert (rows["orders"], rows["order_items"]) == (1, 2)


def test_read_returns_the_created_order(client, portal):
    created = create(client, portal)
    assert read(client, portal, created["id"]) == created


def test_money_stays_an_integer_at_the_maximum(client, portal):
    items = [
        {"code": "A", "kind": "fee", "amount": 9_999_999_999},
        {"code": "B", "kind": "charge", "amount": 1},
    ]
    r = client.post(ORDERS, json=order_body(items=items), headers=portal.headers)
    assert r.status_code == 201, r.get_data(as_text=True)
    text = r.get_data(as_text=True)
    assert '"amount": 10000000000' in text or '"amount":10000000000' in text
    order = r.get_json()
    assert type(order["amount"]) is int
    assert order["amount"] == 10_000_000_000
    again = read(client, portal, order["id"])
    assert type(again["amount"]) is int
    assert [type(i["amount"]) for i in again["items"]] == [int, int]
    assert [i["amount"] for i in again["items"]] == [9_999_999_999, 1]


def test_expiry_defaults_to_a_day_and_expires_at_is_taken_as_given(client, portal):
    body = order_body()
    del body["expires_in"]
    r = client.post(ORDERS, json=body, headers=portal.headers)
    assert r.status_code == 201
    assert r.get_json()["expires_at"] == "2026-11-26T03:00:00Z"

    body = order_body(dossier_code="H-AT", expires_at="2026-11-25T12:30:00+07:00")
    del body["expires_in"]
    r = client.post(ORDERS, json=body, headers=portal.headers)
    assert r.status_code == 201, r.get_data(as_text=True)
    assert r.get_json()["expires_at"] == "2026-11-25T05:30:00Z"


def test_optional_fields_are_echoed(client, portal):
    order = create(
        client,
        portal,
        payer={"name": "Trần Thị Bình", "email": "binh@example.vn"},
        items=[{"code": "LP", "kind": "fee", "amount": 20000, "revenue_code": "2651", "chapter_code": "418"}],
        metadata={"ho_so": {"so": 12, "loai": "hộ tịch"}},
        return_url="http://portal.local/back",
    )
    assert order["payer"] == {
        "name": "Trần Thị Bình",
        "id_number": None,
        "phone": None,
        "email": "binh@example.vn",
    }
    assert order["items"][0]["revenue_code"] == "2651"
    assert order["items"][0]["chapter_code"] == "418"
    assert order["metadata"] == {"ho_so": {"so": 12, "loai": "hộ tịch"}}
    assert order["return_url"] == "http://portal.local/back"


# ---- authentication and isolation ----


BAD_AUTH = [
    pytest.param(lambda key: {}, id="missing"),
    pytest.param(lambda key: {"Authorization": "Bearer not-a-key"}, id="garbage-key"),
    pytest.param(lambda key: {"Authorization": "Bearer gk_000000000000_wrong"}, id="well-formed-unknown"),
    pytest.param(lambda key: {"Authorization": f"Bearer {key[:-1]}x"}, id="wrong-last-char"),
    pytest.param(lambda key: {"Authorization": f"Bearer {key}x"}, id="key-plus-suffix"),
    pytest.param(lambda key: {"Authorization": f"Basic {key}"}, id="basic-scheme"),
    pytest.param(lambda key: {"Authorization": key}, id="no-scheme"),
    pytest.param(lambda key: {"Authorization": "Bearer"}, id="bearer-no-token"),
    pytest.param(lambda key: {"Authorization": "Bearer    "}, id="bearer-blank"),
    pytest.param(lambda key: {"Authorization": ""}, id="empty-header"),
    pytest.param(lambda key: {"X-Api-Key": key}, id="key-in-other-header"),
]


@pytest.mark.parametrize("make_headers", BAD_AUTH)
def test_wrong_or_missing_key_is_401_everywhere_and_writes_nothing(client, portal, engine, make_headers):
    order = create(client, portal)
    headers = make_headers(portal.api_key)
    before = count_rows(engine)
    responses = [
        client.post(ORDERS, json=order_body(dossier_code="H-401"), headers=headers),
        client.get(ORDERS, headers=headers),
        client.get(f"{ORDERS}/{order['id']}", headers=headers),
        client.post(f"{ORDERS}/{order['id']}/cancel", headers=headers),
        client.post(f"{ORDERS}/{order['id']}/attempts", json={"provider": "vnpay"}, headers=headers),
        client.get("/api/v1/providers", headers=headers),
    ]
    for r in responses:
        assert_problem(r, 401)
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert order["id"] not in r.get_data(as_text=True)
    assert count_rows(engine) == before
    assert read(client, portal, order["id"])["status"] == "pending"


def test_the_bearer_scheme_is_case_insensitive(client, portal):
    r = client.get(ORDERS, headers={"Authorization": f"bearer {portal.api_key}"})
    assert r.status_code == 200


def test_unknown_order_is_404_on_every_endpoint(client, portal, engine):
    before = count_rows(engine)
    for r in (
        client.get(f"{ORDERS}/ord_doesnotexist", headers=portal.headers),
        cancel(client, portal, "ord_doesnotexist"),
        attempt(client, portal, "ord_doesnotexist"),
    ):
        assert_problem(r, 404)
    assert count_rows(engine) == before


def test_another_clients_order_is_404_and_untouched(client, portal, other_portal, engine):
    theirs = create(client, other_portal)
    mine = create(client, portal, dossier_code="H-MINE")
    before = count_rows(engine)
    unknown = assert_problem(client.get(f"{ORDERS}/ord_doesnotexist", headers=portal.headers), 404)
    for r in (
        client.get(f"{ORDERS}/{theirs['id']}", headers=portal.headers),
        cancel(client, portal, theirs["id"]),
        attempt(client, portal, theirs["id"]),
    ):
        body = assert_problem(r, 404)
        # indistinguishable from a missing order
        assert (body["title"], body["type"]) == (unknown["title"], unknown["type"])
    assert count_rows(engine) == before
    assert read(client, other_portal, theirs["id"])["status"] == "pending"
    assert [o["id"] for o in listing(client, portal)["items"]] == [mine["id"]]
    assert [o["id"] for o in listing(client, other_portal)["items"]] == [theirs["id"]]
    assert listing(client, portal, f"dossier_code={theirs['dossier_code']}")["items"] == []


# ---- list ----


def test_list_filters(client, portal, clock):
    first = create(client, portal, dossier_code="H-A", expires_in=604_800)
    clock.advance(hours=1)
    second = create(client, portal, dossier_code="H-B", expires_in=604_800)
    clock.advance(hours=1)
    third = create(
        client,
        portal,
        dossier_code="H-A",
        items=[{"code": "Z", "kind": "fee", "amount": 1000}],
        expires_in=604_800,
    )
    assert cancel(client, portal, second["id"]).status_code == 200

    def ids(query: str) -> list[str]:
        return [o["id"] for o in listing(client, portal, query)["items"]]

    assert ids("") == [third["id"], second["id"], first["id"]]  # newest first
    assert ids("dossier_code=H-A") == [third["id"], first["id"]]
    assert ids("dossier_code=H-NONE") == []
    assert ids("status=cancelled") == [second["id"]]
    assert ids("status=pending") == [third["id"], first["id"]]
    assert ids("status=paid") == []
    assert ids("created_from=2026-11-25T04:00:00Z") == [third["id"], second["id"]]
    assert ids("created_to=2026-11-25T04:00:00Z") == [first["id"]]
    assert ids("created_from=2026-11-25T03:30:00Z&created_to=2026-11-25T04:30:00Z") == [second["id"]]
    assert ids("created_from=2026-11-25T11:00:00%2B07:00") == [third["id"], second["id"]]
    assert ids("dossier_code=H-A&status=pending&created_from=2026-11-25T04:00:00Z") == [third["id"]]
    page = listing(client, portal, "limit=1")
    assert [o["id"] for o in page["items"]] == [third["id"]]
    assert page["next_cursor"]
    full = listing(client, portal, "dossier_code=H-B")["items"][0]
    assert full == read(client, portal, second["id"])


def walk(client, portal, query: str) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor = None
    while True:
        q = query + (f"&cursor={cursor}" if cursor else "")
        page = listing(client, portal, q)
        pages.append([o["id"] for o in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 20, "pagination does not terminate"


@pytest.mark.parametrize("step_seconds", [0, 60], ids=["same-instant", "one-a-minute"])
def test_cursor_pagination_walks_every_order_once(client, portal, clock, step_seconds):
    created = []
    for n in range(7):
        created.append(create(client, portal, dossier_code=f"H-PAGE-{n}")["id"])
        clock.advance(seconds=step_seconds)
    pages = walk(client, portal, "limit=3")
    assert [len(p) for p in pages] == [3, 3, 1]
    seen = [order_id for page in pages for order_id in page]
    assert len(seen) == len(set(seen)) == 7
    assert set(seen) == set(created)
    assert seen == [o["id"] for o in listing(client, portal, "limit=100")["items"]]
    if step_seconds:
        assert seen == list(reversed(created))
    # an exact multiple: the last full page still ends with next_cursor null, no empty page after
    exact = walk(client, portal, "limit=7")
    assert exact == [seen]
    # filters survive paging
    assert walk(client, portal, "limit=1&dossier_code=H-PAGE-3") == [[created[3]]]


def test_default_limit_is_50_and_100_is_allowed(client, portal):
    for n in range(51):
        create(client, portal, dossier_code=f"H-L-{n}")
    page = listing(client, portal)
    assert len(page["items"]) == 50
    assert page["next_cursor"] is not None
    rest = listing(client, portal, f"cursor={page['next_cursor']}")
    assert len(rest["items"]) == 1
    assert rest["next_cursor"] is None
    everything = listing(client, portal, "limit=100")
    assert len(everything["items"]) == 51
    assert everything["next_cursor"] is None


# ---- one open order per dossier and item codes ----


def test_second_open_order_for_the_same_dossier_is_409_with_the_existing_id(
    client, portal, other_portal, engine
):
    first = create(client, portal)
    before = count_rows(engine)
    # same dossier and item codes, different amounts and item order: still the same fees
    items = list(reversed(order_body()["items"]))
    items[0] = {**items[0], "amount": 9000}
    body = assert_problem(client.post(ORDERS, json=order_body(items=items), headers=portal.headers), 409)
    assert body["order_id"] == first["id"]
    assert count_rows(engine) == before

    # a different set of item codes is another order
    other_fees = create(client, portal, items=[{"code": "LP-03", "kind": "fee", "amount": 30000}])
    assert other_fees["id"] != first["id"]
    # the same dossier at another portal client is independent
    create(client, other_portal)

    assert cancel(client, portal, first["id"]).status_code == 200
    again = create(client, portal)
    assert again["id"] not in {first["id"], other_fees["id"]}


def test_a_processing_order_also_blocks_and_an_expired_one_does_not(client, portal, clock):
    first = create(client, portal)
    assert attempt(client, portal, first["id"]).status_code == 201
    assert (
        assert_problem(client.post(ORDERS, json=order_body(), headers=portal.headers), 409)["order_id"]
        == (first["id"])
    )
    clock.advance(hours=2)  # past expires_at and the processing grace
    again = create(client, portal)
    assert again["id"] != first["id"]
    assert read(client, portal, first["id"])["status"] == "expired"


# ---- cancel ----


def test_cancel_then_cancel_again_is_a_no_op(client, portal, clock):
    order = create(client, portal)
    r = cancel(client, portal, order["id"])
    assert r.status_code == 200, r.get_data(as_text=True)
    cancelled = r.get_json()
    assert cancelled["id"] == order["id"]
    assert cancelled["status"] == "cancelled"
    clock.advance(minutes=5)
    r2 = cancel(client, portal, order["id"])
    assert r2.status_code == 200
    assert r2.get_json() == cancelled  # nothing changed, not even updated_at
    assert read(client, portal, order["id"])["status"] == "cancelled"
    assert_problem(attempt(client, portal, order["id"]), 409)


def test_cancel_a_processing_order(client, portal):
    order = create(client, portal)
    assert attempt(client, portal, order["id"]).status_code == 201
    r = cancel(client, portal, order["id"])
    assert r.status_code == 200
    assert r.get_json()["status"] == "cancelled"


def test_cancel_of_a_paid_order_is_409(client, portal, engine):
    order = create(client, portal)
    paid = pay_with_vnpay(client, portal, order)
    before = count_rows(engine)
    assert_problem(cancel(client, portal, order["id"]), 409)
    assert count_rows(engine) == before
    assert read(client, portal, order["id"]) == paid
    assert_problem(attempt(client, portal, order["id"]), 409)


def test_cancel_of_an_expired_order_is_409(client, portal, clock):
    order = create(client, portal)
    clock.advance(seconds=3600)
    assert_problem(cancel(client, portal, order["id"]), 409)
    assert read(client, portal, order["id"])["status"] == "expired"


# ---- attempts ----


def test_attempt_answers_the_contract_shape_and_the_order_is_processing(client, portal):
    order = create(client, portal)
    r = attempt(client, portal, order["id"], locale="en", bank_code="NCB", client_ip="203.0.113.9")
    assert r.status_code == 201, r.get_data(as_text=True)
    started = r.get_json()
    assert {"id", "provider", "reference", "status", "redirect_url", "expires_at"} <= started.keys()
    assert started["provider"] == "vnpay"
    assert started["status"] == "redirected"
    assert started["reference"]
    assert started["redirect_url"].startswith("http://gateway.test/_emulator/vnpay/")
    assert f"vnp_TxnRef={started['reference']}" in started["redirect_url"]
    assert "vnp_Amount=5800000" in started["redirect_url"]  # VNPAY's wire amount is VND x 100
    assert started["expires_at"] == order["expires_at"]
    now = read(client, portal, order["id"])
    assert now["status"] == "processing"
    assert [a["id"] for a in now["attempts"]] == [started["id"]]
    assert now["attempts"][0]["status"] == "redirected"
    # a second attempt gets a fresh reference
    second = attempt(client, portal, order["id"]).get_json()
    assert second["reference"] != started["reference"]
    assert len(read(client, portal, order["id"])["attempts"]) == 2


# ---- expiry (issue 5.11) ----


def test_an_order_is_expired_when_read_at_its_deadline(client, portal, clock):
    order = create(client, portal)
    clock.advance(seconds=3599)
    assert read(client, portal, order["id"])["status"] == "pending"
    clock.advance(seconds=1)
    assert read(client, portal, order["id"])["status"] == "expired"


def test_an_expired_order_refuses_attempts_with_409_and_writes_nothing(client, portal, clock, engine):
    order = create(client, portal)
    clock.advance(seconds=3601)
    r = attempt(client, portal, order["id"])
    assert_problem(r, 409)
    assert "expired" in r.get_json()["detail"]
    before = count_rows(engine)
    assert_problem(attempt(client, portal, order["id"]), 409)
    assert count_rows(engine) == before
    assert count_rows(engine)["payment_attempts"] == 0
    assert read(client, portal, order["id"])["status"] == "expired"


def test_a_processing_order_past_its_deadline_refuses_new_attempts(client, portal, clock):
    order = create(client, portal)
    assert attempt(client, portal, order["id"]).status_code == 201
    clock.advance(seconds=3600)
    assert_problem(attempt(client, portal, order["id"]), 409)
    assert len(read(client, portal, order["id"])["attempts"]) == 1


def test_an_expired_order_is_listed_as_expired(client, portal, clock):
    order = create(client, portal)
    clock.advance(seconds=3600)
    page = listing(client, portal)
    assert [(o["id"], o["status"]) for o in page["items"]] == [(order["id"], "expired")]
    assert listing(client, portal, "status=pending")["items"] == []
    assert [o["id"] for o in listing(client, portal, "status=expired")["items"]] == [order["id"]]


# ---- providers, health, OpenAPI ----


def test_providers_lists_vnpay(client, portal):
    r = client.get("/api/v1/providers", headers=portal.headers)
    assert r.status_code == 200
    page = r.get_json()
    assert set(page) == {"items", "next_cursor"}
    assert page["next_cursor"] is None
    by_code = {p["code"]: p for p in page["items"]}
    assert "vnpay" in by_code
    vnpay = by_code["vnpay"]
    assert vnpay["name"] == "VNPAY"
    assert vnpay["methods"]
    assert all(isinstance(m, str) and m for m in vnpay["methods"])


def test_healthz_needs_no_key(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.get_json() == {"status": "ok", "database": "ok"}


def test_openapi_document(client):
    r = client.get("/api/v1/openapi.json")
    assert r.status_code == 200
    spec = json.loads(r.get_data(as_text=True))
    assert spec["openapi"].startswith("3.")
    validate_openapi(spec)
    paths = spec["paths"]
    for path, methods in {
        "/api/v1/orders": {"get", "post"},
        "/api/v1/orders/{order_id}": {"get"},
        "/api/v1/orders/{order_id}/attempts": {"post"},
        "/api/v1/orders/{order_id}/cancel": {"post"},
        "/api/v1/providers": {"get"},
    }.items():
        assert path in paths, sorted(paths)
        assert methods <= paths[path].keys()
    schemas = spec["components"]["schemas"]
    assert {
        "OrderCreate",
        "OrderOut",
        "OrderPage",
        "AttemptCreate",
        "AttemptOut",
        "ProviderList",
    } <= schemas.keys()
    # generated from the marshmallow schemas: the request body's required fields and types
    create_schema = schemas["OrderCreate"]
    assert {"dossier_code", "agency_code", "payer", "items"} <= set(create_schema["required"])
    assert create_schema["properties"]["expires_in"]["type"] == "integer"
    item_schema = schemas["Item"]
    assert item_schema["properties"]["amount"]["type"] == "integer"
    assert item_schema["properties"]["kind"]["enum"] == ["fee", "charge"]
    post = paths["/api/v1/orders"]["post"]
    assert "201" in post["responses"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/OrderCreate")
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
