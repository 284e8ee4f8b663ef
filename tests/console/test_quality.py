"""Quality of the console pages (issue 7.8): both languages complete, labels on inputs, no external assets."""

from __future__ import annotations

from datetime import UTC, date, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po
from sqlalchemy import select

from gateway.storage.db import transaction
from gateway.storage.models import ReconItem, RefundApproval
from gateway.web.i18n import TRANSLATIONS_DIR
from reconciliation.config import ReconConfig
from reconciliation.runs import reconcile
from tests.console.conftest import login, post
from tests.helpers import create_order, paid_order

ROOT = Path(__file__).resolve().parents[2]


def _console_msgids() -> set[str]:
    keywords = {**DEFAULT_KEYWORDS, "lazy_gettext": None}
    method_map = [("gateway/console/**.py", "python"), ("gateway/console/templates/**.html", "jinja2")]
    ids: set[str] = set()
    for _f, _l, message, _c, _ctx in extract_from_dir(str(ROOT), method_map, {}, keywords=keywords):
        ids.update(m for m in (message if isinstance(message, tuple) else (message,)) if m)
    return ids


def _catalog(lang: str) -> Any:
    with (TRANSLATIONS_DIR / lang / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        return read_po(fh, locale=lang)


def test_every_console_string_is_in_both_catalogs_and_translated():
    ids = _console_msgids()
    assert "Sign in to the finance console" in ids
    assert "Reason" in ids
    vi = {m.id: m.string for m in _catalog("vi") if m.id}
    en = {m.id for m in _catalog("en") if m.id}
    assert sorted(ids - set(vi)) == []
    assert sorted(ids - en) == []
    assert sorted(i for i in ids if not vi[i]) == []


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self.labels: set[str] = set()
        self.fields: list[dict[str, str | None]] = []
        self.assets: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in {"style", "script"}:
            self._skip += 1
        if tag == "label" and a.get("for"):
            self.labels.add(a["for"] or "")
        if tag in {"input", "select", "textarea"} and a.get("type") not in {"hidden", "submit", "button"}:
            self.fields.append(a)
        if tag in {"link", "script", "img"}:
            self.assets.append(a.get("href") or a.get("src") or "")
        for name in ("aria-label", "title", "placeholder"):
            if a.get(name):
                self.texts.append(a[name] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in {"style", "script"}:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.texts.append(" ".join(data.split()))


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


@pytest.fixture
def every_page(app, client, portal, finance, finance2, admin, clock, sessions) -> Any:
    """Fetch every console page in a language, with data on it, from the right role."""
    big = [{"code": "LP-9", "kind": "fee", "description": "Lệ phí cấp phép", "amount": 6_000_000}]
    order = paid_order(client, portal, items=big)
    create_order(client, portal, dossier_code="HS-2")
    login(client, finance)
    post(
        client,
        f"/console/orders/{order['id']}/refunds",
        {"amount": "5000000", "reason": "Hồ sơ sai"},
        page="/console/",
    )
    post(
        client,
        f"/console/orders/{order['id']}/refunds",
        {"amount": "1000", "reason": "Một phần"},
        page="/console/",
    )
    with sessions() as s:
        approval_id = s.scalars(select(RefundApproval.id).where(RefundApproval.status == "pending")).one()
    adminc = app.test_client()
    login(adminc, admin, clock)
    # A reconciliation run with an open exception (the paid order no provider file mentions) and one
    # item resolved, so that the review pages show every part.
    later = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    reconcile(sessions, business_date=date(2026, 11, 25), config=ReconConfig(), clock=lambda: later)
    run = reconcile(sessions, business_date=date(2026, 11, 30), config=ReconConfig(), clock=lambda: later)
    with transaction(sessions) as s:
        item_id = s.scalars(select(ReconItem.id).where(ReconItem.run_id == run.run_id)).first()
    assert item_id is not None

    def fetch(lang: str) -> dict[str, str]:
        pages: dict[str, str] = {}
        for _who, c in (("finance", client), ("admin", adminc)):
            c.get(f"/console/?lang={lang}")
        for path in [
            "/console/",
            "/console/orders",
            "/console/orders?date_from=bad",
            f"/console/orders/{order['id']}",
            "/console/refunds",
            "/console/account",
            "/console/account/totp",
            "/console/admin/users",  # 403 for finance
            "/console/orders/ord_missing",  # 404
            "/console/reconciliation/runs",
            f"/console/reconciliation/runs/{run.run_id}",
            f"/console/reconciliation/runs/{run.run_id}?show=all",
            f"/console/reconciliation/items/{item_id}",
            "/console/reconciliation/exceptions",
        ]:
            pages[f"finance {path}"] = client.get(path).get_data(as_text=True)
        pages["finance own approval"] = post(
            client, f"/console/refund-requests/{approval_id}/approve", page="/console/"
        ).get_data(as_text=True)
        pages["finance empty reason"] = post(
            client, f"/console/reconciliation/items/{item_id}/resolve", {"reason": ""}, page="/console/"
        ).get_data(as_text=True)
        pages["finance csrf"] = client.post("/console/logout").get_data(as_text=True)
        for path in ["/console/admin/users", "/console/admin/clients", "/console/account/totp"]:
            pages[f"admin {path}"] = adminc.get(path).get_data(as_text=True)
        pages["admin secret"] = post(
            adminc, "/console/admin/clients", {"name": "Cổng"}, page="/console/admin/clients"
        ).get_data(as_text=True)
        anon = app.test_client()
        pages["login"] = anon.get(f"/console/login?lang={lang}").get_data(as_text=True)
        return pages

    return fetch


def test_no_untranslated_text_and_labels_on_every_input(every_page):
    vi_catalog = {m.id: m.string for m in _catalog("vi") if m.id and m.string and m.string != m.id}
    console_ids = _console_msgids()
    english_only = {i for i in console_ids if i in vi_catalog and len(i) > 3}
    vietnamese = {vi_catalog[i] for i in console_ids if i in vi_catalog and len(vi_catalog[i]) > 3}
    for lang, foreign in (("vi", english_only), ("en", vietnamese)):
        pages = every_page(lang)
        for name, html in pages.items():
            assert f'<html lang="{lang}">' in html, (lang, name)
            page = _parse(html)
            leftovers = sorted(t for t in page.texts if t in foreign)
            assert leftovers == [], (lang, name, leftovers)
            unlabelled = [
                f for f in page.fields if f.get("id") not in page.labels and not f.get("aria-label")
            ]
            assert unlabelled == [], (name, unlabelled)
            assert all(a.startswith("/console/assets/") for a in page.assets), (name, page.assets)
            assert 'name="viewport" content="width=device-width, initial-scale=1"' in html


def test_css_is_served_locally_and_narrow_screens_are_handled(client):
    with client.get("/console/assets/console.css") as css:
        assert css.status_code == 200
        text = css.get_data(as_text=True)
    assert "http" not in text
    assert "@import" not in text
    assert "overflow-x:auto" in text  # wide tables scroll inside their box at 360 px
    assert "focus-visible" in text  # a visible keyboard focus
