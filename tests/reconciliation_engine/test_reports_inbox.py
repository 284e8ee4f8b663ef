"""Exports (CSV/XLSX, Vietnamese labels) and the nightly inbox job."""

from __future__ import annotations

import csv
import io
import os
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from flask import Flask
from openpyxl import load_workbook
from sqlalchemy import select

from gateway.domain.errors import NotFound
from gateway.jobs.tasks import run_job
from gateway.storage.db import transaction
from gateway.storage.models import OutboxEvent, ReconRun
from reconciliation.inbox import nightly
from reconciliation.reports import export_run_csv, export_run_xlsx, vnd_number_format
from tests.conftest import FakeClock
from tests.reconciliation.builders import SETTLEMENT_HEADER, settlement_row
from tests.reconciliation_engine.world import Entry, Tx, World, vn

D = date(2025, 10, 14)


def _run(world: World) -> str:
    a = world.attempt(amount=1_234_567, dossier="=HYPERLINK(1)")
    world.settle([settlement_row("T1", a.reference, 1_234_000)])
    run = world.run(D)
    assert run.run_id
    return run.run_id


def test_csv_export_vietnamese_and_english(world: World) -> None:
    run_id = _run(world)
    out = io.BytesIO()
    with world.sessions() as session:
        assert export_run_csv(session, run_id, out) == 2
    text = out.getvalue().decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    header, first = rows[0], rows[1]
    assert header[:4] == ["STT", "Mã mục", "Cấp đối soát", "Kết quả"]
    row = dict(zip(header, first, strict=True))
    assert row["Kết quả"] == "Lệch số tiền"
    assert row["Mã kết quả"] == "amount_mismatch"
    assert (row["Số tiền (VND)"], row["Số tiền của cổng (VND)"]) == ("1234000", "1234567")  # plain integers
    assert row["Mã hồ sơ"] == "'=HYPERLINK(1)"  # a formula is defused
    assert row["Ngày nghiệp vụ"] == "2025-10-14"

    english = io.BytesIO()
    with world.sessions() as session:
        export_run_csv(session, run_id, english, lang="en", category="amount_mismatch")
    lines = english.getvalue().decode("utf-8-sig").splitlines()
    assert lines[0].startswith("No.,Item ID,Level,Category,Category code")
    assert len(lines) == 2
    with world.sessions() as session, pytest.raises(NotFound):
        export_run_csv(session, "rcn_missing", io.BytesIO())


def test_xlsx_export_has_numbers_shown_with_dots(world: World) -> None:
    run_id = _run(world)
    out = io.BytesIO()
    with world.sessions() as session:
        export_run_xlsx(session, run_id, out)
    sheet = load_workbook(io.BytesIO(out.getvalue())).active
    assert sheet is not None
    header = [c.value for c in sheet[1]]
    amount = sheet.cell(row=2, column=header.index("Số tiền (VND)") + 1)
    assert amount.value == 1_234_000
    assert isinstance(amount.value, int)
    assert amount.number_format == '#"."###"."##0'
    day = sheet.cell(row=2, column=header.index("Ngày nghiệp vụ") + 1)
    assert day.value.date() == D
    assert vnd_number_format(999) == "0"
    assert vnd_number_format(1000) == '#"."##0'


@pytest.fixture
def inbox_world(world: World, tmp_path: Path) -> World:
    return world.with_config(inbox=tmp_path / "inbox")


def _drop(inbox: Path, source: str, name: str, content: str) -> Path:
    folder = inbox / source
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(content, encoding="utf-8")
    return path


def test_nightly_imports_moves_files_reconciles_and_emits(
    inbox_world: World, app: Flask, clock: FakeClock
) -> None:
    world = inbox_world
    inbox = world.config.inbox
    q = world.attempt(provider="vietqr", amount=50_000)
    a = world.attempt(amount=150_000)
    _drop(
        inbox,
        "vnpay",
        "vnpay-20251014.csv",
        "\n".join([SETTLEMENT_HEADER, settlement_row("T1", a.reference, 150_000)]) + "\n",
    )
    _drop(
        inbox,
        "statement",
        "sao-ke.xml",
        world.statement([Entry("50000", txs=[Tx(ustrd=f"NOP {q.reference}")])]).read_text(),
    )
    _drop(inbox, "statement", "broken.sta", ":20:S\n:25:1\n:28C:1\n:60F:C251013VND1,\n:62F:C251014VND2,\n")
    _drop(inbox, "elsewhere", "x.csv", "?")
    _drop(inbox, "vnpay", "upload.csv.part", "still uploading")
    clock.now = vn(date(2025, 10, 15), 2)  # 02:00 on Wednesday: reconcile Tuesday
    svc = app.extensions["gateway"]

    result = nightly(svc, config=world.config, settle_seconds=0)
    assert len(result.imported) == 2
    assert len(result.rejected) == 2
    assert sorted(p.name for p in (inbox / "processed").rglob("*") if p.is_file()) == [
        "sao-ke.xml",
        "vnpay-20251014.csv",
    ]
    rejected = inbox / "rejected" / "statement"
    assert (rejected / "broken.sta").exists()
    assert "nothing was imported" in (rejected / "broken.sta.errors.txt").read_text()
    assert (inbox / "rejected" / "elsewhere" / "x.csv.errors.txt").exists()
    assert (inbox / "vnpay" / "upload.csv.part").exists()  # not picked up while being written
    assert result.run is not None
    assert result.run.business_date == D
    assert result.run.totals["matched"]["count"] == 2
    with transaction(world.sessions) as session:
        events = session.scalars(
            select(OutboxEvent).where(OutboxEvent.type == "reconciliation.completed")
        ).all()
        assert [e.client_id for e in events] == [world.client_id]  # the finance client only
        assert events[0].order_id is None
        assert events[0].payload["data"]["run"]["totals"]["matched"]["count"] == 2
    # The portal finds it through the events API too, filtered by its type.
    listed = app.test_client().get(
        "/api/v1/events?type=reconciliation.completed",
        headers={"Authorization": f"Bearer {world.api_key}"},
    )
    assert listed.status_code == 200, listed.get_json()
    assert [e["id"] for e in listed.get_json()["items"]] == [events[0].id]

    again = nightly(svc, config=world.config, settle_seconds=0)
    assert again.handled == 0  # nothing new, Tuesday already reconciled
    clock.now = vn(date(2025, 10, 16), 0, 30)  # before RECON_NIGHTLY_AFTER (01:00): no run yet
    assert nightly(svc, config=world.config, settle_seconds=0).run is None


def test_the_scheduled_job_reads_its_settings_from_the_environment(
    inbox_world: World, app: Flask, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = inbox_world
    inbox = world.config.inbox
    a = world.attempt(amount=150_000)
    path = _drop(
        inbox,
        "vnpay",
        "v.csv",
        "\n".join([SETTLEMENT_HEADER, settlement_row("T1", a.reference, 150_000)]) + "\n",
    )
    old = time.time() - 120
    os.utime(path, (old, old))
    monkeypatch.setenv("RECON_INBOX", str(inbox))
    clock.now = vn(date(2025, 10, 15), 3)
    assert run_job(app.extensions["gateway"], "reconcile_nightly") == 2  # one file and one run
    with transaction(world.sessions) as session:
        assert session.scalars(select(ReconRun.business_date)).all() == [D]
    assert datetime.now(UTC)  # clock untouched
