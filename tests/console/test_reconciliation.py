"""Reconciliation review in the console (issue 7.5) and its exports (7.6).

Runs are made by the real engine on the suite's database: attempts and settlement lines through the
reconciliation tests' ``World`` (or a real VNPAY payment through the emulator where the provider has to
answer a query), then ``reconcile``; the console is driven like a browser, CSRF token included.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from openpyxl import load_workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.storage.models import AuditLog, Order, PaymentAttempt, ReconItem, ReconItemAction
from reconciliation.config import ReconConfig
from reconciliation.runs import CATEGORIES, reconcile
from tests.console.conftest import Staff, login, post
from tests.helpers import paid_order
from tests.reconciliation.builders import settlement_row
from tests.reconciliation_engine.world import World

D = date(2025, 10, 14)
LATER = date(2025, 10, 20)  # Monday after: beyond the 2-business-day settlement window


@pytest.fixture
def world(sessions: sessionmaker[Session], tmp_path: Path) -> World:
    return World(sessions, tmp_path).setup()


def _item(sessions: sessionmaker[Session], run_id: str, category: str) -> ReconItem:
    """The run's one item of ``category`` about a payment (not a payout)."""
    with sessions() as s:
        return s.scalars(
            select(ReconItem).where(
                ReconItem.run_id == run_id, ReconItem.category == category, ReconItem.level != "payout"
            )
        ).one()


def _actions(sessions: sessionmaker[Session], item_id: int) -> list[tuple[str, str, str]]:
    with sessions() as s:
        rows = s.scalars(
            select(ReconItemAction).where(ReconItemAction.item_id == item_id).order_by(ReconItemAction.id)
        )
        return [(a.action, a.actor, a.reason) for a in rows]


@pytest.fixture
def runs(world: World) -> dict[str, Any]:
    """Two runs: D (one of each kind) and LATER, which carries D's open items: by then the payment
    without a line is missing, and so is the provider's payout of the three lines (no bank statement)."""
    mismatch = world.attempt(amount=150_000)
    missing = world.attempt(amount=200_000)
    matched = world.attempt(amount=50_000)
    world.settle(
        [
            settlement_row("T-MIS", mismatch.reference, 140_000),
            settlement_row("T-OK", matched.reference, 50_000),
            settlement_row("T-UNK", "GW-NOBODY-KNOWS", 75_000),
        ]
    )
    first = world.run(D)
    second = world.run(LATER, clock=lambda: datetime(2025, 10, 21, 2, 0, tzinfo=UTC))
    assert second.totals["missing_in_statement"] == {"count": 2, "amount": 200_000 + 265_000}
    return {"first": first.run_id, "latest": second.run_id, "missing": missing, "mismatch": mismatch}


def test_runs_list_and_run_detail_show_totals_and_exceptions(
    as_finance: FlaskClient, runs: dict[str, Any]
) -> None:
    listing = as_finance.get("/console/reconciliation/runs")
    assert listing.status_code == 200
    html = listing.get_data(as_text=True)
    assert f"/console/reconciliation/runs/{runs['latest']}" in html
    assert f"/console/reconciliation/runs/{runs['first']}" in html
    assert "20/10/2025" in html
    assert "14/10/2025" in html

    page = as_finance.get(f"/console/reconciliation/runs/{runs['latest']}").get_data(as_text=True)
    assert "Tiền chưa rõ hồ sơ" in page  # unexpected_in_statement, in Vietnamese by default
    assert "75.000 ₫" in page
    assert "200.000 ₫" in page  # the missing payment
    assert "140.000 ₫" in page
    assert "150.000 ₫" in page
    assert runs["missing"].dossier in page
    assert "265.000 ₫" in page  # the payout no statement has credited
    assert page.count("/resolve") == 4  # one inline resolve form per open exception

    english = as_finance.get(f"/console/reconciliation/runs/{runs['latest']}?show=all&lang=en")
    text = english.get_data(as_text=True)
    assert "Money with no dossier" in text
    assert "Matched" in text


def test_an_older_run_is_read_only(as_finance: FlaskClient, runs: dict[str, Any], sessions: Any) -> None:
    page = as_finance.get(f"/console/reconciliation/runs/{runs['first']}").get_data(as_text=True)
    assert "/resolve" not in page
    assert f"/console/reconciliation/runs/{runs['latest']}" in page  # pointed to the run to act on
    old = _item(sessions, runs["first"], "unexpected_in_statement")
    answer = post(
        as_finance,
        f"/console/reconciliation/items/{old.id}/resolve",
        {"reason": "thử"},
        page="/console/reconciliation/runs",
    )
    assert answer.status_code == 409
    assert _actions(sessions, old.id) == []


def test_filters_and_bad_parameters(as_finance: FlaskClient, runs: dict[str, Any]) -> None:
    base = f"/console/reconciliation/runs/{runs['latest']}"
    only = as_finance.get(f"{base}?show=amount_mismatch").get_data(as_text=True)
    assert "140.000 ₫" in only
    assert "75.000 ₫" not in only.split('<h2 id="h-items">')[1]
    for query in ["?show=nonsense", "?status=weird", "?cursor=%%%", "?cursor=bm90YW51bWJlcg"]:
        answer = as_finance.get(base + query)
        assert answer.status_code in (200, 302), query
    assert as_finance.get("/console/reconciliation/runs/run_missing").status_code == 404
    assert as_finance.get("/console/reconciliation/items/999999").status_code == 404
    assert as_finance.get("/console/reconciliation/runs?cursor=garbage").status_code == 302


def test_exception_queue_is_ranked_by_priority(as_finance: FlaskClient, runs: dict[str, Any]) -> None:
    html = as_finance.get("/console/reconciliation/exceptions?lang=en").get_data(as_text=True)
    assert "4 open exceptions" in html
    order = [
        html.index(label) for label in ("Money with no dossier", "Amount mismatch", "Missing in statement")
    ]
    assert order == sorted(order)


def test_finance_resolves_with_a_reason_and_the_trail_is_kept(
    as_finance: FlaskClient, finance: Staff, runs: dict[str, Any], sessions: Any
) -> None:
    item = _item(sessions, runs["latest"], "missing_in_statement")
    path = f"/console/reconciliation/items/{item.id}"

    empty = post(as_finance, f"{path}/resolve", {"reason": "   "}, page=path)
    assert empty.status_code == 422
    assert _actions(sessions, item.id) == []

    reason = "Đã đối chiếu sao kê 21/10: tiền về muộn <b>"
    done = post(as_finance, f"{path}/resolve", {"reason": reason}, page=path)
    assert done.status_code == 303
    page = as_finance.get(path).get_data(as_text=True)
    assert "tiền về muộn &lt;b&gt;" in page  # shown, escaped
    assert finance.email in page
    resolved = _item(sessions, runs["latest"], "missing_in_statement")
    assert (resolved.status, resolved.resolved_by, resolved.resolution) == ("resolved", finance.email, reason)

    again = post(as_finance, f"{path}/resolve", {"reason": "lần hai"}, page=path)
    assert again.status_code == 303  # told it is no longer open; nothing written
    assert _actions(sessions, item.id) == [("resolve", finance.email, reason)]

    post(as_finance, f"{path}/reopen", {"reason": "Kiểm tra lại"}, page=path)
    assert _item(sessions, runs["latest"], "missing_in_statement").status == "open"
    assert [a[0] for a in _actions(sessions, item.id)] == ["resolve", "reopen"]
    with sessions() as s:
        audit = s.scalars(
            select(AuditLog.action).where(
                AuditLog.entity_type == "recon_item", AuditLog.entity_id == str(item.id)
            )
        ).all()
    assert sorted(audit) == ["recon_reopen", "recon_resolve"]


def test_manual_match_offers_the_other_side_and_resolves_both(
    as_finance: FlaskClient, finance: Staff, runs: dict[str, Any], sessions: Any
) -> None:
    money = _item(sessions, runs["latest"], "unexpected_in_statement")
    missing = _item(sessions, runs["latest"], "missing_in_statement")
    mismatch = _item(sessions, runs["latest"], "amount_mismatch")
    path = f"/console/reconciliation/items/{money.id}"
    page = as_finance.get(path).get_data(as_text=True)
    assert f'<option value="{missing.id}">' in page
    assert f'<option value="{mismatch.id}">' not in page  # a line too: not a counterpart of a line

    refused = post(as_finance, f"{path}/match", {"counterpart": str(mismatch.id), "reason": "x"}, page=path)
    assert refused.status_code == 422
    assert _actions(sessions, money.id) == []

    reason = "Chuyển khoản của hồ sơ này, ghi sai nội dung"
    done = post(as_finance, f"{path}/match", {"counterpart": str(missing.id), "reason": reason}, page=path)
    assert done.status_code == 303
    for item_id in (money.id, missing.id):
        assert _actions(sessions, item_id) == [("manual_match", finance.email, reason)]
    assert _item(sessions, runs["latest"], "missing_in_statement").status == "resolved"


def test_an_auditor_sees_everything_and_can_act_on_nothing(
    client: FlaskClient, auditor: Staff, runs: dict[str, Any], sessions: Any
) -> None:
    assert login(client, auditor).status_code == 303
    item = _item(sessions, runs["latest"], "amount_mismatch")
    run_page = client.get(f"/console/reconciliation/runs/{runs['latest']}").get_data(as_text=True)
    assert "140.000 ₫" in run_page
    assert "/resolve" not in run_page
    item_page = client.get(f"/console/reconciliation/items/{item.id}").get_data(as_text=True)
    assert "/resolve" not in item_page
    assert "/match" not in item_page
    for action in ("resolve", "reopen", "query", "match"):
        answer = post(
            client,
            f"/console/reconciliation/items/{item.id}/{action}",
            {"reason": "x"},
            page="/console/reconciliation/runs",
        )
        assert answer.status_code == 403, action
    assert _actions(sessions, item.id) == []
    with client.get(f"/console/reconciliation/runs/{runs['latest']}/export.csv") as export:
        assert export.status_code == 200


def test_exports_in_the_users_language(as_finance: FlaskClient, runs: dict[str, Any], sessions: Any) -> None:
    base = f"/console/reconciliation/runs/{runs['latest']}"
    with as_finance.get(f"{base}/export.csv") as answer:
        assert answer.status_code == 200
        assert answer.headers["Content-Disposition"].startswith("attachment;")
        rows = list(csv.reader(io.StringIO(answer.get_data().decode("utf-8-sig"))))
    with sessions() as s:
        count = s.scalar(select(func.count()).where(ReconItem.run_id == runs["latest"]))
    assert len(rows) == 1 + count
    header = rows[0]
    assert "Phân loại" in " ".join(header) or any("Số tiền" in h for h in header)
    amounts = {r[header.index(next(h for h in header if h.startswith("Số tiền")))] for r in rows[1:]}
    assert "75000" in amounts  # a plain integer in CSV

    as_finance.get("/console/?lang=en")
    with as_finance.get(f"{base}/export.xlsx?show=amount_mismatch") as answer:
        workbook = load_workbook(io.BytesIO(answer.get_data()))
    sheet = workbook.active
    assert sheet is not None
    values = list(sheet.iter_rows(values_only=True))
    assert len(values) == 2  # header + the one mismatch
    labels = [str(v) for v in values[0]]
    assert any(label.startswith("Amount") for label in labels)
    amount_cell = sheet.cell(
        row=2, column=1 + next(i for i, v in enumerate(labels) if v.startswith("Amount"))
    )
    assert amount_cell.value == 140_000
    assert '"."' in amount_cell.number_format
    with sessions() as s:
        exports = s.scalars(select(AuditLog.action).where(AuditLog.entity_type == "export")).all()
    assert sorted(exports) == ["export_reconciliation_csv", "export_reconciliation_xlsx"]


def test_dashboard_shows_open_exceptions_by_age(as_finance: FlaskClient, runs: dict[str, Any]) -> None:
    html = as_finance.get("/console/?lang=en").get_data(as_text=True)
    section = html.split('id="h-recon"')[1].split("</section>")[0]
    assert "Latest run: business day 20/10/2025." in section
    assert "Money with no dossier" in section
    assert "Amount mismatch" in section
    assert f"/console/reconciliation/runs/{runs['latest']}?show=amount_mismatch" in section


def test_a_provider_query_confirms_a_missing_payment(
    client: FlaskClient, portal: Any, finance: Staff, sessions: Any
) -> None:
    """A payment the provider file never showed: the provider itself is asked (VNPAY's querydr on the
    emulator) and confirms it; the item is resolved, and says so."""
    order = paid_order(client, portal)
    later = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    reconcile(sessions, business_date=date(2026, 11, 25), config=ReconConfig(), clock=lambda: later)
    run = reconcile(sessions, business_date=date(2026, 11, 30), config=ReconConfig(), clock=lambda: later)
    assert run.run_id is not None
    item = _item(sessions, run.run_id, "missing_in_statement")
    assert item.order_id == order["id"]
    assert login(client, finance).status_code == 303
    path = f"/console/reconciliation/items/{item.id}"
    answer = post(client, f"{path}/query", {"reason": "Hỏi VNPAY"}, page=path)
    assert answer.status_code == 303
    after = _item(sessions, run.run_id, "missing_in_statement")
    assert after.status == "resolved"
    assert after.resolved_by == finance.email
    assert _actions(sessions, item.id) == [("request_query", finance.email, "Hỏi VNPAY")]
    with sessions() as s:
        assert s.scalar(select(Order.status).where(Order.id == order["id"])) == "paid"
        assert (
            s.scalar(select(PaymentAttempt.status).where(PaymentAttempt.order_id == order["id"]))
            == "succeeded"
        )


@pytest.mark.parametrize(
    ("stored", "lang", "shown"),
    [
        ("exact match", "vi", "khớp chính xác"),
        ("exact match", "en", "exact match"),
        (
            "no provider line within the settlement window",
            "vi",
            "nhà cung cấp không báo giao dịch trong thời hạn quyết toán",
        ),
        ("fee 1200 VND, schedule 1100 VND", "vi", "phí 1.200 ₫, theo biểu phí 1.100 ₫"),
        (
            "3 lines: gross 300000 − fee 3300 − refunds 0 = 296700 VND",
            "en",
            "3 lines: gross 300.000 ₫ − fees 3.300 ₫ − refunds 0 ₫ = 296.700 ₫",
        ),
        ("order already paid through momo", "vi", "đơn đã được thanh toán qua momo"),
        ("a phrase of a newer engine", "vi", "a phrase of a newer engine"),
        (None, "vi", ""),
    ],
)
def test_the_engines_explanations_are_shown_in_the_users_language(
    app: Any, stored: str | None, lang: str, shown: str
) -> None:
    from gateway.console.recon_text import explain

    with app.test_request_context(f"/console/?lang={lang}"):
        assert explain(stored) == shown


def test_a_status_inside_an_explanation_is_translated(app: Any) -> None:
    from gateway.console.recon_text import explain

    with app.test_request_context("/console/?lang=vi"):
        text = explain("attempt failed at the gateway")
    assert text.startswith("giao dịch ở trạng thái ")
    assert "failed" not in text


def test_without_a_session_every_review_page_sends_to_the_login(
    client: FlaskClient, runs: dict[str, Any], sessions: Any
) -> None:
    item = _item(sessions, runs["latest"], "amount_mismatch")
    for path in [
        "/console/reconciliation/runs",
        f"/console/reconciliation/runs/{runs['latest']}",
        f"/console/reconciliation/runs/{runs['latest']}/export.csv",
        f"/console/reconciliation/runs/{runs['latest']}/export.xlsx",
        f"/console/reconciliation/items/{item.id}",
        "/console/reconciliation/exceptions",
    ]:
        answer = client.get(path)
        assert answer.status_code == 302, path
        assert answer.headers["Location"].startswith("/console/login?next="), path
    assert (
        client.post(f"/console/reconciliation/items/{item.id}/resolve", data={"reason": "x"}).status_code
        == 400
    )
    assert _actions(sessions, item.id) == []


def test_a_bank_transfer_cannot_be_queried_so_no_query_is_offered(
    as_finance: FlaskClient, world: World, sessions: Any
) -> None:
    world.attempt(provider="vietqr", amount=120_000)
    world.run(D)
    latest = world.run(LATER, clock=lambda: datetime(2025, 10, 21, 2, 0, tzinfo=UTC))
    assert latest.run_id is not None
    item = _item(sessions, latest.run_id, "missing_in_statement")
    assert item.attempt_id is not None
    path = f"/console/reconciliation/items/{item.id}"
    page = as_finance.get(path).get_data(as_text=True)
    assert f"{path}/resolve" in page
    assert f"{path}/query" not in page
    refused = post(as_finance, f"{path}/query", {"reason": "hỏi ngân hàng"}, page=path)
    assert refused.status_code == 303  # told why; nothing recorded
    assert _actions(sessions, item.id) == []


def _engine_phrases() -> set[str]:
    """Every fixed reason the engine writes: ``reason=`` literals in the ladder, CASE branches in SQL."""
    import ast

    root = Path(__file__).resolve().parents[2] / "reconciliation"
    phrases: set[str] = set()

    def literals(node: ast.AST) -> list[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, ast.IfExp):
            return literals(node.body) + literals(node.orelse)
        return []

    ladder = ast.parse((root / "ladder.py").read_text(encoding="utf-8"))
    for node in ast.walk(ladder):
        if isinstance(node, ast.keyword) and node.arg == "reason":
            phrases.update(literals(node.value))
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "reason" for t in node.targets
        ):
            phrases.update(literals(node.value))
    sql = (root / "matching.py").read_text(encoding="utf-8")
    for block in re.findall(r"CASE(.*?)END AS reason", sql, flags=re.S):
        phrases.update(re.findall(r"(?:THEN|ELSE) '((?:[^']|'')+)'", block))
    phrases = {p.replace("''", "'") for p in phrases}
    # A phrase ending in a space is the head of a concatenation ('refund ' || status): patterns cover those.
    return {p for p in phrases if p not in CATEGORIES and " " in p and p == p.strip()}


def test_every_fixed_reason_of_the_engine_has_a_translation(app: Any) -> None:
    from gateway.console.recon_text import explain

    phrases = _engine_phrases()
    assert "money with no dossier" in phrases  # the scan finds the ladder's
    assert "refund not reflected in the provider's settlement file" in phrases  # and the SQL's
    with app.test_request_context("/console/?lang=vi"):
        untranslated = sorted(p for p in phrases if explain(p) == p)
    assert untranslated == []


def test_the_finance_api_also_answers_a_live_staff_session(
    app: Any, client: FlaskClient, auditor: Staff, runs: dict[str, Any], clock: Any
) -> None:
    path = f"/api/v1/reconciliation/runs/{runs['latest']}?category=amount_mismatch"
    assert client.get(path).status_code == 401  # no key, no session
    assert login(client, auditor).status_code == 303
    answer = client.get(path)
    assert answer.status_code == 200, answer.get_json()
    assert [i["amount"] for i in answer.get_json()["items"]] == [140_000]
    assert client.get("/api/v1/reconciliation/runs").get_json()["items"][0]["id"] == runs["latest"]
    # A key that is presented is what counts: a wrong one is refused even with a session.
    assert client.get(path, headers={"Authorization": "Bearer gk_nope_nope"}).status_code == 401
    # The console's idle timeout ends the API access too.
    clock.now += timedelta(minutes=31)
    assert client.get(path).status_code == 401
    # The session gives no access to the portal's own API.
    assert client.get("/api/v1/orders").status_code == 401


def test_exporting_an_unknown_run_is_a_404(as_finance: FlaskClient) -> None:
    for kind in ("csv", "xlsx"):
        with as_finance.get(f"/console/reconciliation/runs/rcn_nothing/export.{kind}") as answer:
            assert answer.status_code == 404
