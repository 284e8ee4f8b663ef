"""Runs over time: windows, business days, carry forward, reruns, dry runs, rejected inputs."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine

from gateway.storage.models import ReconFile, ReconItem, ReconLine, ReconRun
from reconciliation.calendar import load_calendar, parse_calendar
from reconciliation.records import FileRejected
from reconciliation.service import resolve_item
from tests.conftest import count_rows
from tests.reconciliation.builders import settlement_row
from tests.reconciliation_engine.world import Entry, Tx, World

D = date(2025, 10, 14)


def test_calendar_weekends_holidays_and_make_up_days() -> None:
    cal = load_calendar(None)
    assert not cal.is_business_day(date(2025, 1, 29))  # Tết
    assert not cal.is_business_day(date(2025, 9, 2))
    assert cal.is_business_day(date(2025, 4, 26))  # a Saturday worked in exchange for 2 May
    assert not cal.is_business_day(date(2026, 1, 1))
    assert cal.add_business_days(date(2025, 12, 31), 1) == date(2026, 1, 2)
    assert cal.business_days_between(date(2025, 10, 17), date(2025, 10, 20)) == 1  # Friday -> Monday
    assert cal.business_days_between(date(2025, 10, 17), date(2025, 10, 18)) == 0  # Friday -> Saturday
    assert cal.previous_business_day(date(2025, 10, 20)) == date(2025, 10, 17)
    custom = parse_calendar(["2025-10-15  # a local holiday", "", "2025-10-18 work"])
    assert not custom.is_business_day(date(2025, 10, 15))
    assert custom.is_business_day(date(2025, 10, 18))
    with pytest.raises(ValueError, match="line 1"):
        parse_calendar(["15/10/2025"])


def test_pending_becomes_missing_after_the_settlement_window_across_new_year(world: World) -> None:
    late = world.attempt(amount=150_000, paid_on=date(2025, 12, 31))
    world.settle([settlement_row("T0", "GW-NOT-OURS", 1_000, at="2025-12-31T09:00:00+07:00")])
    first = world.run(date(2026, 1, 2))  # 1 Jan is a holiday: one business day later
    assert world.by_attempt(first.run_id)[late.attempt_id]["category"] == "pending"
    second = world.run(date(2026, 1, 5))  # 2 business days: still inside the window
    item = world.by_attempt(second.run_id)[late.attempt_id]
    assert (item["category"], item["carried_from"]) == (
        "pending",
        world.by_attempt(first.run_id)[late.attempt_id]["id"],
    )
    third = world.run(date(2026, 1, 6))  # 3 business days: missing
    item = world.by_attempt(third.run_id)[late.attempt_id]
    assert (item["category"], item["reason"]) == (
        "missing_in_statement",
        "no provider line within the settlement window",
    )
    world.with_config(settlement_window_days=5)
    assert world.by_attempt(world.run(date(2026, 1, 6)).run_id)[late.attempt_id]["category"] == "pending"


def test_december_january_mt940_statement(world: World) -> None:
    a = world.attempt(provider="vietqr", amount=100_000, paid_on=date(2025, 12, 31))
    b = world.attempt(provider="vietqr", amount=200_000, paid_on=date(2026, 1, 2))
    mt940 = f"""\
:20:STMT20260102
:25:0071000123456
:28C:00001/001
:60F:C251230VND1000000,
:61:2512311231C100000,NTRFNONREF//FT-1
:86:LE PHI {a.reference}
:61:2601020102C200000,NTRF{b.reference}//FT-2
:86:LE PHI HO SO
:61:2512310102D50000,NCHGNONREF//FT-3
:86:PHI DICH VU
:62F:C260102VND1250000,
"""
    run = world.run(date(2026, 1, 2), world.write("dec-jan.sta", mt940))
    assert run.window_from == date(2025, 12, 31)
    items = world.by_attempt(run.run_id)
    assert (items[a.attempt_id]["rule"], items[a.attempt_id]["business_date"]) == (
        "remittance_reference",
        date(2025, 12, 31),
    )
    assert (items[b.attempt_id]["rule"], items[b.attempt_id]["business_date"]) == (
        "exact_reference",
        date(2026, 1, 2),
    )
    fee = [i for i in world.items(run.run_id) if i["category"] == "unexpected_in_statement"]
    assert [(i["amount"], i["reason"]) for i in fee] == [(50_000, "debit not explained")]


def test_weekend_session_settles_on_monday(world: World) -> None:
    sat = world.attempt(amount=100_000, paid_on=date(2025, 10, 18))
    sun = world.attempt(amount=200_000, paid_on=date(2025, 10, 19))
    world.run(date(2025, 10, 17))  # Friday's run: nothing yet
    world.settle(
        [
            settlement_row(
                "T1",
                sat.reference,
                100_000,
                1000,
                at="2025-10-18T21:00:00+07:00",
                settled="2025-10-20",
                batch="WKND-20251020",
            ),
            settlement_row(
                "T2",
                sun.reference,
                200_000,
                2000,
                at="2025-10-19T07:30:00+07:00",
                settled="2025-10-20",
                batch="WKND-20251020",
            ),
        ]
    )
    statement = world.statement(
        [
            Entry(
                "297000",
                ref="FT9",
                booking="2025-10-20",
                value="2025-10-20",
                txs=[Tx(ustrd="VNPAY WKND-20251020")],
            )
        ]
    )
    run = world.run(date(2025, 10, 20), statement)
    assert run.window_from == date(2025, 10, 18)
    assert not run.discrepancies
    assert sorted(world.categories(run.run_id)) == [
        ("payout", "matched", "batch_id"),
        ("provider", "matched", "exact_reference"),
        ("provider", "matched", "exact_reference"),
    ]


def test_a_late_counterpart_closes_the_carried_item_in_the_next_run(world: World) -> None:
    on_time = world.attempt(amount=100_000)
    late = world.attempt(amount=250_000)
    world.settle([settlement_row("T1", on_time.reference, 100_000)])
    first = world.run(D)
    pending = world.by_attempt(first.run_id)[late.attempt_id]
    assert pending["category"] == "pending"
    # the provider's next file still books it on the 14th: a late line, from a file imported after the run
    world.settle([settlement_row("T2", late.reference, 250_000)])
    second = world.run(date(2025, 10, 15))
    assert second.previous_run_id == first.run_id
    item = world.by_attempt(second.run_id)[late.attempt_id]
    assert (item["category"], item["carried_from"]) == ("matched", pending["id"])
    assert on_time.attempt_id not in world.by_attempt(second.run_id)  # closed in the first run: not carried


def test_open_exceptions_are_carried_until_resolved(world: World) -> None:
    world.settle([settlement_row("T9", "GW-UNKNOWN", 5_000)])
    first = world.run(D)
    (stray,) = [i for i in world.items(first.run_id) if i["category"] == "unexpected_in_statement"]
    second = world.run(date(2025, 10, 15))
    (carried,) = [i for i in world.items(second.run_id) if i["category"] == "unexpected_in_statement"]
    assert carried["carried_from"] == stray["id"]
    with world.sessions() as session:
        resolve_item(
            session, carried["id"], actor="ke.toan@so.vn", reason="hoàn trả cho nhà cung cấp", now=_now()
        )
        session.commit()
    third = world.run(date(2025, 10, 16))
    assert [i for i in world.items(third.run_id) if i["category"] == "unexpected_in_statement"] == []
    # a rerun of the second day recreates the item but keeps the resolution
    rerun = world.run(date(2025, 10, 15))
    (again,) = [i for i in world.items(rerun.run_id) if i["category"] == "unexpected_in_statement"]
    assert again["status"] == "resolved"


def _now():  # noqa: ANN202
    from datetime import UTC, datetime

    return datetime(2025, 10, 16, 3, 0, tzinfo=UTC)


def _scenario(world: World) -> Path:
    a = world.attempt(amount=150_000)
    world.attempt(amount=70_000)
    q = world.attempt(provider="vietqr", amount=50_000, status="redirected")
    world.settle(
        [settlement_row("T1", a.reference, 150_000, 1650, batch="B1"), settlement_row("T3", "GW-X", 1)]
    )
    return world.statement(
        [
            Entry(str(150_000 - 1650 + 1), ref="FT1", txs=[Tx(ustrd="VNPAY B1")]),
            Entry("50000", ref="FT2", txs=[Tx(ustrd=f"CHUYEN TIEN {q.reference}")]),
            Entry("3300", "DBIT", ref="FT3", info="PHI"),
        ]
    )


def test_rerun_on_the_same_inputs_gives_the_same_items(world: World) -> None:
    statement = _scenario(world)
    first = world.run(D, statement)
    second = world.run(D, statement)
    assert second.statement is not None
    assert second.statement.already_imported
    assert second.previous_run_id == first.previous_run_id is None
    assert (second.digest, second.totals) == (first.digest, first.totals)
    assert [{k: v for k, v in i.items() if k != "id"} for i in world.items(first.run_id)] == [
        {k: v for k, v in i.items() if k != "id"} for i in world.items(second.run_id)
    ]


def test_dry_run_writes_nothing_and_reports_what_a_run_would(world: World, engine: Engine) -> None:
    statement = _scenario(world)
    before = count_rows(engine)
    dry = world.run(D, statement, dry_run=True)
    assert count_rows(engine) == before
    assert dry.run_id is None
    assert dry.statement is not None
    assert not dry.statement.already_imported
    real = world.run(D, statement)
    assert (real.totals, real.digest) == (dry.totals, dry.digest)
    assert world.count(ReconRun) == 1


@pytest.mark.parametrize("kind", ["camt-bomb", "mt940-broken"])
def test_rejected_statements_write_nothing(world: World, engine: Engine, kind: str) -> None:
    _scenario(world)
    if kind == "camt-bomb":
        bomb = (
            '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
            '<!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
            '<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">]>\n'
            '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>&lol2;'
            "</BkToCstmrStmt></Document>"
        )
        path = world.write("bomb.xml", bomb)
    else:
        path = world.write(
            "broken.sta",
            ":20:S1\n:25:001\n:28C:1/1\n:60F:C251013VND1000,\n:61:2510141014C500,NTRFX//FT1\n:86:X\n"
            ":62F:C251014VND1400,\n",
        )
    before = count_rows(engine)
    with pytest.raises(FileRejected) as caught:
        world.run(D, path)
    assert caught.value.errors
    assert count_rows(engine) == before
    assert world.count(ReconFile) == 1
    assert world.count(ReconLine) == 2
    assert world.count(ReconItem) == 0
