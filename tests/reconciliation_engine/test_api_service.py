"""``/api/v1/reconciliation`` (finance scope) and the console's service functions (append-only actions)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from gateway.domain.errors import Conflict, ValidationProblem
from gateway.services.clients import create_client
from gateway.storage.db import transaction
from gateway.storage.models import AuditLog, Order, ReconItemAction
from providers.base import Outcome
from reconciliation import service
from tests.reconciliation.builders import settlement_row
from tests.reconciliation_engine.world import StubProvider, StubRegistry, World, vn

D = date(2025, 10, 14)
NOW = datetime(2025, 10, 16, 3, 0, tzinfo=UTC)


def _key(world: World, *scopes: str) -> dict[str, str]:
    with transaction(world.sessions) as session:
        issued = create_client(session, "Kho bạc", webhook_url=None, scopes=scopes, now=NOW)
    return {"Authorization": f"Bearer {issued.api_key}"}


def _run(world: World) -> str:
    a = world.attempt(amount=150_000)
    world.attempt(amount=70_000)
    world.settle([settlement_row("T1", a.reference, 150_000), settlement_row("T2", "GW-NONE", 9_000)])
    run = world.run(D)
    assert run.run_id is not None
    return run.run_id


def test_runs_api_with_a_finance_key(world: World, client: FlaskClient) -> None:
    run_id = _run(world)
    second = world.run(date(2025, 10, 15)).run_id
    headers = _key(world, "orders", "finance")

    r = client.get("/api/v1/reconciliation/runs?limit=1", headers=headers)
    assert r.status_code == 200, r.get_data(as_text=True)
    page = r.get_json()
    assert [x["id"] for x in page["items"]] == [second]
    assert page["next_cursor"]
    older = client.get(
        f"/api/v1/reconciliation/runs?limit=1&cursor={page['next_cursor']}", headers=headers
    ).get_json()
    assert [x["id"] for x in older["items"]] == [run_id]
    assert older["next_cursor"] is None

    detail = client.get(f"/api/v1/reconciliation/runs/{run_id}", headers=headers).get_json()
    assert detail["business_date"] == "2025-10-14"
    assert detail["totals"]["matched"] == {"count": 1, "amount": 150_000}
    assert [(i["level"], i["category"]) for i in detail["items"]] == [
        ("provider", "pending"),
        ("provider", "matched"),
        ("provider", "unexpected_in_statement"),
        ("payout", "pending"),  # batch B20251015 settles on the 15th: no statement credit yet
    ]
    assert detail["items"][1]["references"]["provider_txn_id"] == "T1"
    assert detail["inputs"]["files"][0]["sha256"]

    only = client.get(
        f"/api/v1/reconciliation/runs/{run_id}?category=unexpected_in_statement", headers=headers
    )
    assert [i["amount"] for i in only.get_json()["items"]] == [9_000]
    first = client.get(f"/api/v1/reconciliation/runs/{run_id}?limit=2", headers=headers).get_json()
    rest = client.get(
        f"/api/v1/reconciliation/runs/{run_id}?limit=2&cursor={first['next_cursor']}", headers=headers
    ).get_json()
    assert len(first["items"]) == 2
    assert len(rest["items"]) == 2
    assert rest["next_cursor"] is None

    assert client.get("/api/v1/reconciliation/runs/rcn_nope", headers=headers).status_code == 404
    assert (
        client.get(f"/api/v1/reconciliation/runs/{run_id}?category=odd", headers=headers).status_code == 422
    )
    assert client.get("/api/v1/reconciliation/runs?colour=red", headers=headers).status_code == 422


def test_runs_api_needs_the_finance_scope(world: World, client: FlaskClient) -> None:
    _run(world)
    assert client.get("/api/v1/reconciliation/runs", headers=_key(world, "orders")).status_code == 403
    assert client.get("/api/v1/reconciliation/runs").status_code == 401
    spec = client.get("/api/v1/openapi.json").get_json()
    assert "/api/v1/reconciliation/runs/{run_id}" in spec["paths"]


def test_resolve_reopen_and_manual_match_are_append_only(world: World) -> None:
    run_id = _run(world)
    with world.sessions() as session:
        items = service.list_items(session, run_id, limit=10).items
    pending = next(i for i in items if i["category"] == "pending")
    stray = next(i for i in items if i["category"] == "unexpected_in_statement")

    with world.sessions() as session:
        with pytest.raises(ValidationProblem):
            service.resolve_item(session, stray["id"], actor="kt@so.vn", reason="  ", now=NOW)
        done = service.resolve_item(session, stray["id"], actor="kt@so.vn", reason="phí ngân hàng", now=NOW)
        session.commit()
    assert (done["status"], done["resolved_by"], done["resolution"]) == (
        "resolved",
        "kt@so.vn",
        "phí ngân hàng",
    )
    with world.sessions() as session, pytest.raises(Conflict):
        service.resolve_item(session, stray["id"], actor="kt@so.vn", reason="again", now=NOW)
    with world.sessions() as session:
        reopened = service.reopen_item(session, stray["id"], actor="lead@so.vn", reason="nhầm", now=NOW)
        matched = service.manual_match(
            session, [stray["id"], pending["id"]], actor="lead@so.vn", reason="cùng một khoản", now=NOW
        )
        session.commit()
    assert reopened["status"] == "open"
    assert {m["status"] for m in matched} == {"resolved"}
    with world.sessions() as session:
        detail = service.get_item(session, stray["id"])
        actions = [a["action"] for a in detail["actions"]]
        audit = session.scalars(select(AuditLog.action).where(AuditLog.entity_type == "recon_item")).all()
        trail = session.scalars(select(ReconItemAction)).all()
    assert actions == ["resolve", "reopen", "manual_match"]
    assert detail["actions"][0]["before"]["status"] == "open"
    assert detail["actions"][0]["after"]["status"] == "resolved"
    assert detail["actions"][2]["after"]["matched_with"] == [pending["id"]]
    assert sorted(audit) == sorted(
        ["recon_resolve", "recon_reopen", "recon_manual_match", "recon_manual_match"]
    )
    assert len(trail) == 4


def test_request_provider_query_applies_a_paid_answer(world: World) -> None:
    a = world.attempt(amount=150_000, status="redirected")
    world.settle([settlement_row("T1", a.reference, 150_000)])
    run = world.run(D, registry=StubRegistry(StubProvider("vnpay", Outcome.PENDING)))
    item = world.by_attempt(run.run_id)[a.attempt_id]
    assert item["category"] == "status_conflict"
    answer = service.request_provider_query(
        world.sessions,
        item["id"],
        registry=StubRegistry(StubProvider("vnpay", Outcome.SUCCEEDED, paid_at=vn(D, 10))),
        actor="kt@so.vn",
        reason="nhà cung cấp xác nhận qua điện thoại",
        now=NOW,
        base_url="http://gateway.test",
    )
    assert answer["status"] == "resolved"
    assert answer["actions"][0]["after"]["provider_outcome"] == "succeeded"
    with transaction(world.sessions) as session:
        order = session.get(Order, a.order_id)
        assert order is not None
        assert order.status == "paid"
    rerun = world.run(D)
    assert world.by_attempt(rerun.run_id)[a.attempt_id]["reason"] == "confirmed by query"


def test_open_exceptions_by_age_for_the_dashboard(world: World) -> None:
    with world.sessions() as session:
        assert service.open_exceptions_by_age(session, date(2025, 10, 20)) is None
    _run(world)
    with world.sessions() as session:
        panel = service.open_exceptions_by_age(session, date(2025, 10, 20))
    assert panel is not None
    assert panel["categories"] == [("unexpected_in_statement", {"0-1": 0, "2-7": 1, ">7": 0})]
