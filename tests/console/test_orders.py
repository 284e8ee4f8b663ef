"""Orders in the console (issue 7.3, 7.6, 7.8): search, masking, detail, escaping, exports."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from gateway.storage.models import AuditLog, OutboxEvent
from tests.console.conftest import login, post
from tests.helpers import create_order, paid_order, vnpay_ipn_query

XSS_DOSSIER = "<script>alert('hs')</script>"
XSS_NAME = '<img src=x onerror="alert(1)">Bà Ba'


@pytest.fixture
def orders(client, portal, clock):
    """Three orders on two days: paid (VNPAY), pending, and one with hostile text."""
    first = paid_order(
        client,
        portal,
        dossier_code="H12.22-241125-0001",
        payer={"name": "Nguyễn Văn An", "id_number": "079201001234", "phone": "0901234567"},
        items=[{"code": "LP-01", "kind": "fee", "description": "Lệ phí", "amount": 1_234_567}],
    )
    clock.advance(days=1)
    second = create_order(
        client,
        portal,
        dossier_code="H12.22-241126-0002",
        agency_code="SO-XAY-DUNG",
        payer={"name": "Trần Thị Bình", "id_number": "001099004321", "phone": "0987654321"},
    )
    third = create_order(
        client, portal, dossier_code=XSS_DOSSIER, payer={"name": XSS_NAME}, agency_code="=CMD()"
    )
    return first, second, third


def dossiers(client, query: str = "") -> list[str]:
    resp = client.get(f"/console/orders{query}")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return re.findall(r'<a href="/console/orders/ord_[0-9a-f]+">([^<]*)</a>', resp.get_data(as_text=True))


def test_search_filters(client, finance, orders):
    login(client, finance)
    assert len(dossiers(client)) == 3
    assert dossiers(client, "?dossier_code=241126") == ["H12.22-241126-0002"]
    assert dossiers(client, "?payer_name=v%C4%83n%20an") == ["H12.22-241125-0001"]  # "văn an", any case
    assert dossiers(client, "?phone_or_id=4321") == ["H12.22-241126-0002"]  # last digits of the ID number
    assert dossiers(client, "?phone_or_id=0901234567") == ["H12.22-241125-0001"]
    assert dossiers(client, "?status=paid") == ["H12.22-241125-0001"]
    assert dossiers(client, "?provider=vnpay") == ["H12.22-241125-0001"]
    assert dossiers(client, "?agency_code=SO-XAY-DUNG") == ["H12.22-241126-0002"]
    # Vietnam calendar days: the first order was made 25/11 10:00 GMT+7, the others 26/11.
    assert dossiers(client, "?date_from=2026-11-25&date_to=2026-11-25") == ["H12.22-241125-0001"]
    assert len(dossiers(client, "?date_from=2026-11-26")) == 2
    assert dossiers(client, "?dossier_code=%25") == []  # LIKE wildcards are literal
    bad = client.get("/console/orders?date_from=25/11/2026&status=bogus")
    assert bad.status_code == 422
    assert "Vui lòng nhập theo định dạng YYYY-MM-DD." in bad.get_data(as_text=True)


def test_phone_and_id_number_are_masked_except_the_last_four(client, finance, orders):
    login(client, finance)
    html = client.get("/console/orders").get_data(as_text=True)
    detail = client.get(f"/console/orders/{orders[0]['id']}").get_data(as_text=True)
    for page in (html, detail):
        assert "0901234567" not in page
        assert "079201001234" not in page
        assert "••••••4567" in page
        assert "••••••••1234" in page


def test_pagination(client, finance, portal):
    for n in range(55):
        create_order(client, portal, dossier_code=f"HS-{n:03d}")
    login(client, finance)
    first = dossiers(client)
    assert len(first) == 50
    html = client.get("/console/orders").get_data(as_text=True)
    assert "Trang 1/2" in html
    assert 'href="/console/orders?page=2"' in html
    second = dossiers(client, "?page=2")
    assert len(second) == 5
    assert not set(first) & set(second)
    assert len(dossiers(client, "?page=99")) == 5  # past the end: the last page
    filtered = client.get("/console/orders?dossier_code=HS-0&page=1").get_data(as_text=True)
    assert 'href="/console/orders?dossier_code=HS-0&amp;page=2"' in filtered


def test_user_supplied_text_is_escaped_everywhere(client, finance, orders, portal):
    login(client, finance)
    for path in [
        "/console/orders",
        f"/console/orders/{orders[2]['id']}",
        "/console/orders?payer_name=%3Cimg",
    ]:
        html = client.get(path).get_data(as_text=True)
        assert "<script>alert" not in html, path
        assert "<img src=x" not in html, path
        assert "&lt;script&gt;alert(&#39;hs&#39;)&lt;/script&gt;" in html or "&lt;img" in html, path
    search = client.get("/console/orders?dossier_code=%22%3E%3Cscript%3E").get_data(as_text=True)
    assert '"><script>' not in search
    assert 'value="&#34;&gt;&lt;script&gt;"' in search
    assert "Content-Security-Policy" in client.get("/console/orders").headers


def test_detail_shows_items_attempts_notifications_events_and_audit(client, finance, orders, sessions):
    login(client, finance)
    order = orders[0]
    html = client.get(f"/console/orders/{order['id']}").get_data(as_text=True)
    assert "Lệ phí" in html
    assert "1.234.567 ₫" in html
    reference = order["attempts"][0]["reference"]
    assert reference in html
    assert "Thành công" in html
    # The IPN the emulator sent is stored and shown, its signature redacted.
    assert "vnp_TxnRef=" + reference in html
    assert "vnp_SecureHash=[redacted]" in html
    assert not re.search(r"vnp_SecureHash=[0-9a-f]{32,}", html)
    assert "order.paid" in html  # the event to the portal
    assert "Nhật ký thao tác" in html
    assert "Đang chờ → Đã thanh toán" in html or "Đang xử lý → Đã thanh toán" in html  # audit trail


def test_redeliver_an_event_from_the_detail_page(client, finance, orders, sessions, clock):
    order = orders[0]
    with sessions.begin() as s:
        event = s.scalars(select(OutboxEvent).where(OutboxEvent.order_id == order["id"])).first()
        event.status = "dead"
        event.attempts = 11
        event_id = event.id
    login(client, finance)
    dash = client.get("/console/").get_data(as_text=True)
    assert "1 sự kiện không chuyển được đến cổng." in dash
    assert f"/console/events/{event_id}/redeliver" in dash
    resp = post(client, f"/console/events/{event_id}/redeliver", page=f"/console/orders/{order['id']}")
    assert resp.status_code == 303
    assert resp.headers["Location"] == f"/console/orders/{order['id']}"
    with sessions() as s:
        event = s.get(OutboxEvent, event_id)
        assert (event.status, event.attempts, event.next_attempt_at) == ("pending", 0, clock())
        entry = s.scalars(select(AuditLog).where(AuditLog.action == "redeliver")).one()
    assert (entry.actor, entry.source, entry.entity_id) == (finance.email, "console", event_id)


def test_dashboard_totals_chart_and_placeholder(client, finance, orders):
    login(client, finance)
    html = client.get("/console/").get_data(as_text=True)
    assert "1.234.567 ₫" in html  # collected this month (the payment was yesterday in Vietnam time)
    assert "Chưa có dữ liệu đối soát." in html  # reconciliation: phase 2
    svg = re.search(r"<svg class=\"chart\".*?</svg>", html, re.S)
    assert svg
    assert svg.group(0).count("<rect") == 30
    assert "25/11/2026: 1.234.567 ₫ (1)" in svg.group(0)
    assert "<script" not in html
    assert "http://" not in html.split("<body>")[0].replace("http://www.w3.org", "")


def test_a_rejected_notification_naming_the_order_is_listed_too(client, finance, portal):
    order = create_order(client, portal)
    from tests.helpers import start_attempt

    attempt = start_attempt(client, portal, order["id"])
    client.get("/callbacks/vnpay?" + vnpay_ipn_query(attempt["reference"], 58000, secret="not-the-secret"))
    login(client, finance)
    html = client.get(f"/console/orders/{order['id']}").get_data(as_text=True)
    assert "chưa xác thực" in html
    assert "bad_signature" in html


# ---- exports ----------------------------------------------------------------------------------------------


def test_csv_export_vietnamese_labels_integers_local_time(client, finance, orders, sessions):
    login(client, finance)
    resp = client.get("/console/orders/export.csv?status=paid")
    assert resp.status_code == 200
    assert resp.mimetype == "text/csv"
    assert re.match(r'attachment; filename="orders-\d{8}-\d{4}\.csv"', resp.headers["Content-Disposition"])
    rows = list(csv.reader(io.StringIO(resp.get_data().decode("utf-8-sig"))))
    header, *body = rows
    assert header[:5] == ["Mã đơn", "Thời điểm tạo (GMT+7)", "Mã hồ sơ", "Cơ quan", "Người nộp"]
    assert len(body) == 1
    row = dict(zip(header, body[0], strict=True))
    assert row["Số tiền (VND)"] == "1234567"
    assert row["Đã thanh toán (VND)"] == "1234567"
    assert row["Thời điểm tạo (GMT+7)"] == "2026-11-25 10:00:00"  # 03:00 UTC
    assert row["Số điện thoại"] == "••••••4567"
    assert row["Trạng thái"] == "Đã thanh toán"
    with sessions() as s:
        entry = s.scalars(select(AuditLog).where(AuditLog.action == "export_csv")).one()
    assert entry.actor == finance.email
    assert "status=paid" in entry.reason


def test_csv_export_defuses_formulas(client, finance, orders):
    login(client, finance)
    text = client.get("/console/orders/export.csv?agency_code=%3DCMD()").get_data().decode("utf-8-sig")
    [_, row] = list(csv.reader(io.StringIO(text)))
    assert (row[2], row[3], row[4]) == (XSS_DOSSIER, "'=CMD()", XSS_NAME)
    sheet = load_workbook(
        io.BytesIO(client.get("/console/orders/export.xlsx?agency_code=%3DCMD()").get_data())
    ).active
    assert sheet["D2"].value == "'=CMD()"
    assert sheet["D2"].data_type == "s"


def test_xlsx_export_formats_money_and_dates(client, finance, orders):
    login(client, finance)
    resp = client.get("/console/orders/export.xlsx?dossier_code=H12")
    assert resp.status_code == 200
    assert resp.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    sheet = load_workbook(io.BytesIO(resp.get_data())).active
    header = [c.value for c in sheet[1]]
    assert header[2] == "Mã hồ sơ"
    assert header[7] == "Số tiền (VND)"
    rows = {r[2].value: r for r in sheet.iter_rows(min_row=2)}
    assert set(rows) == {"H12.22-241125-0001", "H12.22-241126-0002"}
    paid = rows["H12.22-241125-0001"]
    assert paid[7].value == 1_234_567
    assert isinstance(paid[7].value, int)
    assert paid[7].number_format == '#"."###"."##0'  # shows 1.234.567
    assert rows["H12.22-241126-0002"][7].number_format == '#"."##0'  # 58.000
    assert paid[1].value == datetime(2026, 11, 25, 10, 0, 0)  # Asia/Ho_Chi_Minh
    assert paid[1].number_format == "dd/mm/yyyy hh:mm:ss"


def test_exports_follow_the_users_language(client, finance, orders):
    login(client, finance)
    client.get("/console/?lang=en")
    text = client.get("/console/orders/export.csv").get_data().decode("utf-8-sig")
    assert text.splitlines()[0].startswith("Order ID,Created (GMT+7),Dossier code,Agency,Payer")
    sheet = load_workbook(io.BytesIO(client.get("/console/orders/export.xlsx").get_data())).active
    assert sheet.title == "Orders"
    assert sheet["H1"].value == "Amount (VND)"
