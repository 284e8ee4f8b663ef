"""The three levels and the ladder, on fixtures the tests generate (issue 6, points 2 and 7)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from gateway.storage.db import transaction
from gateway.storage.models import Order, OutboxEvent, PaymentAttempt
from providers.base import Outcome
from tests.reconciliation.builders import settlement_row
from tests.reconciliation_engine.world import Entry, StubProvider, StubRegistry, Tx, World, fee_schedule, vn

D = date(2025, 10, 14)  # a Tuesday


def test_provider_level_matched_mismatch_unexpected_and_pending(world: World) -> None:
    ok = world.attempt(amount=150_000)
    under = world.attempt(amount=200_000)
    by_txn = world.attempt(amount=80_000, provider_txn_id="VNP-777")
    waiting = world.attempt(amount=70_000)
    world.settle(
        [
            settlement_row("T1", ok.reference, 150_000, 1650),
            settlement_row("T2", under.reference, 190_000),
            settlement_row("VNP-777", "SOMETHING-ELSE", 80_000),
            settlement_row("T9", "GW251014ZZZZZZ", 10_000),
        ]
    )
    run = world.run(D)
    items = world.by_attempt(run.run_id)
    assert (items[ok.attempt_id]["category"], items[ok.attempt_id]["rule"]) == ("matched", "exact_reference")
    assert items[under.attempt_id]["category"] == "amount_mismatch"
    assert (items[under.attempt_id]["amount"], items[under.attempt_id]["expected_amount"]) == (
        190_000,
        200_000,
    )
    assert items[under.attempt_id]["reason"] == "provider amount below ours"
    assert (items[by_txn.attempt_id]["category"], items[by_txn.attempt_id]["rule"]) == (
        "matched",
        "provider_txn_id",
    )
    assert (items[waiting.attempt_id]["category"], items[waiting.attempt_id]["reason"]) == (
        "pending",
        "awaiting the provider line",
    )
    stray = [i for i in world.items(run.run_id) if i["category"] == "unexpected_in_statement"]
    assert [(i["amount"], i["level"]) for i in stray] == [(10_000, "provider")]
    assert run.totals["matched"] == {"count": 2, "amount": 230_000}
    assert run.discrepancies


def test_duplicate_provider_rows_are_flagged_once_and_the_attempt_counted_once(world: World) -> None:
    a = world.attempt(amount=150_000)
    row = settlement_row("T1", a.reference, 150_000)
    world.settle([row, row])
    run = world.run(D)
    cats = [i["category"] for i in world.items(run.run_id) if i["level"] == "provider"]
    assert sorted(cats) == ["duplicate", "matched"]
    dup = next(i for i in world.items(run.run_id) if i["category"] == "duplicate")
    assert dup["attempt_id"] is None
    assert dup["order_id"] == a.order_id
    assert dup["reason"] == "same provider transaction as an earlier line"


def test_fee_variance_only_with_a_fee_schedule(world: World) -> None:
    a = world.attempt(amount=150_000)
    b = world.attempt(amount=150_000)
    world.settle(
        [settlement_row("T1", a.reference, 150_000, 1650), settlement_row("T2", b.reference, 150_000, 2000)]
    )
    assert world.run(D).totals["fee_variance"]["count"] == 0  # no RECON_FEE_SCHEDULE: no fee check

    world.with_config(fee_schedule=fee_schedule(vnpay={"percent_bps": 110, "min": 1100}))
    run = world.run(D)
    items = world.by_attempt(run.run_id)
    assert items[a.attempt_id]["category"] == "matched"
    assert items[b.attempt_id]["category"] == "fee_variance"
    assert items[b.attempt_id]["reason"] == "fee above the schedule"


def test_fee_rule_rounds_half_up_and_clamps() -> None:
    rule = fee_schedule(x={"percent_bps": 110, "fixed": 0, "min": 1100, "max": 5000}).rules["x"]
    assert rule.expected(150_000) == 1650
    assert rule.expected(150_050) == 1651  # 1650.55 -> 1651
    assert rule.expected(149_950) == 1649  # 1649.45 -> 1649
    assert rule.expected(50_000) == 1100  # 550 raised to the minimum
    assert rule.expected(10_000_000) == 5000  # 110,000 lowered to the maximum
    assert (
        fee_schedule(y={"percent_bps": 50, "fixed": 1000}).rules["y"].expected(100_001) == 1500
    )  # 500.005 -> 500


def test_refund_in_the_settlement_file_and_the_payout_arithmetic(world: World) -> None:
    a = world.attempt(amount=150_000)
    b = world.attempt(amount=300_000)
    world.refund(a, 150_000, provider_reference="R-1")
    world.settle(
        [
            settlement_row("T1", a.reference, 150_000, 1650, batch="B7"),
            settlement_row("T2", b.reference, 300_000, 3300, batch="B7"),
            settlement_row("R-1", a.reference, 150_000, status="refund", batch="B7"),
        ]
    )
    credit = 150_000 + 300_000 - 1650 - 3300 - 150_000  # Σgross − Σfee − Σrefund
    statement = world.statement(
        [Entry(str(credit), ref="FT-B7", txs=[Tx(ustrd="VNPAY DOI SOAT b7 NGAY 15/10")])]
    )
    run = world.run(D, statement)
    levels = world.categories(run.run_id)
    assert ("provider", "matched", "provider_txn_id") in levels  # the refund line, by the provider's id
    payout = next(i for i in world.items(run.run_id) if i["level"] == "payout")
    assert (payout["category"], payout["rule"], payout["amount"]) == ("matched", "batch_id", credit)
    assert run.totals["matched"]["count"] == 4
    assert not run.discrepancies


def test_payout_with_a_wrong_total_and_one_found_by_amount_and_window(world: World) -> None:
    a = world.attempt(amount=100_000)
    b = world.attempt(amount=200_000, provider="momo")
    world.settle([settlement_row("T1", a.reference, 100_000, 1000, batch="VNP-1")])
    world.settle([settlement_row("M1", b.reference, 200_000, 2000, batch="MOMO-9", provider="momo")], "momo")
    statement = world.statement(
        [
            Entry("99500", ref="FT1", txs=[Tx(ustrd="TT VNP-1")]),  # 500 short
            Entry("198000", ref="FT2", txs=[Tx(ustrd="CHUYEN TIEN DOI SOAT")], booking="2025-10-16"),
        ]
    )
    run = world.run(date(2025, 10, 16), statement)
    payouts = {i["batch_key"]: i for i in world.items(run.run_id) if i["level"] == "payout"}
    assert (payouts["VNP-1"]["category"], payouts["VNP-1"]["expected_amount"]) == ("amount_mismatch", 99_000)
    assert (payouts["MOMO-9"]["category"], payouts["MOMO-9"]["rule"]) == ("matched", "batch_amount_window")


def test_bank_transfers_exact_reference_remittance_dossier_and_amount_window(world: World) -> None:
    exact = world.attempt(provider="vietqr", amount=50_000)
    in_text = world.attempt(provider="vietqr", amount=60_000)
    dossier = world.attempt(provider="vietqr", amount=70_000, dossier="H12.22-251014-ĐB01")
    twin_a = world.attempt(provider="vietqr", amount=80_000, hour=9)
    twin_b = world.attempt(provider="vietqr", amount=80_000, hour=11)
    statement = world.statement(
        [
            Entry("50000", ref="FT1", txs=[Tx(e2e=exact.reference, ustrd="THANH TOAN")]),
            Entry("60000", ref="FT2", txs=[Tx(ustrd=f"chuyen khoan {in_text.reference.lower()} nop phi")]),
            Entry("70000", ref="FT3", txs=[Tx(ustrd="Lệ phí hồ sơ h12.22-251014-đb01 Nguyễn Văn An")]),
            # two identical legitimate rows: both kept, each pairs with its own attempt
            Entry("80000", ref="FT4", txs=[Tx(ustrd="NOP TIEN")]),
            Entry("80000", ref="FT4", txs=[Tx(ustrd="NOP TIEN")]),
            Entry("42000", ref="FT5", txs=[Tx(ustrd="KHONG RO NOI DUNG")]),
        ]
    )
    run = world.run(D, statement)
    items = world.by_attempt(run.run_id)
    assert (items[exact.attempt_id]["category"], items[exact.attempt_id]["rule"]) == (
        "matched",
        "exact_reference",
    )
    assert items[in_text.attempt_id]["rule"] == "remittance_reference"
    assert (items[dossier.attempt_id]["category"], items[dossier.attempt_id]["rule"]) == (
        "matched",
        "remittance_dossier",
    )
    assert {items[twin_a.attempt_id]["rule"], items[twin_b.attempt_id]["rule"]} == {"amount_date_window"}
    assert items[twin_a.attempt_id]["line_id"] != items[twin_b.attempt_id]["line_id"]
    stray = [i for i in world.items(run.run_id) if i["category"] == "unexpected_in_statement"]
    assert [(i["amount"], i["reason"]) for i in stray] == [(42_000, "money with no dossier")]


def test_batch_booking_is_matched_transaction_by_transaction(world: World) -> None:
    a = world.attempt(provider="vietqr", amount=150_000)
    b = world.attempt(provider="vietqr", amount=200_000)
    c = world.attempt(provider="vietqr", amount=100_000)
    batch = Entry(
        "450000",
        ref="FT-BATCH",
        batch=("3", "450000"),
        batch_id="PMT-1",
        txs=[
            Tx(amount="150000", indicator="CRDT", ustrd=f"LE PHI {a.reference}"),
            Tx(amount="200000", indicator="CRDT", ustrd=f"LE PHI {b.reference}"),
            Tx(amount="100000", indicator="CRDT", creditor_ref=c.reference),
        ],
    )
    run = world.run(D, world.statement([batch]))
    items = world.by_attempt(run.run_id)
    assert [items[x.attempt_id]["category"] for x in (a, b, c)] == ["matched"] * 3
    assert items[c.attempt_id]["rule"] == "exact_reference"
    assert len({items[x.attempt_id]["line_id"] for x in (a, b, c)}) == 3


def test_open_bank_transfer_confirmed_by_the_statement_is_paid_normally(world: World) -> None:
    waiting = world.attempt(provider="vietqr", amount=58_000, status="redirected")
    statement = world.statement([Entry("58000", ref="FT1", txs=[Tx(ustrd=f"{waiting.reference} NOP PHI")])])
    run = world.run(D, statement)
    item = world.by_attempt(run.run_id)[waiting.attempt_id]
    assert (item["category"], item["reason"]) == ("matched", "confirmed by bank statement")
    with transaction(world.sessions) as session:
        attempt = session.get(PaymentAttempt, waiting.attempt_id)
        order = session.get(Order, waiting.order_id)
        assert attempt is not None
        assert order is not None
        assert (attempt.status, order.status) == ("succeeded", "paid")
        events = session.scalars(
            select(OutboxEvent.type).where(OutboxEvent.order_id == waiting.order_id)
        ).all()
    assert events == ["order.paid"]
    # the same inputs again: the same items (the attempt is now paid, and the reason is remembered)
    again = world.run(D)
    assert again.digest == run.digest


def test_money_naming_an_unpaid_order_is_a_status_conflict(world: World) -> None:
    card = world.attempt(provider="vnpay", amount=90_000, status="redirected")
    statement = world.statement([Entry("90000", ref="FT1", txs=[Tx(ustrd=f"NOP PHI HO SO {card.dossier}")])])
    run = world.run(D, statement)
    item = next(i for i in world.items(run.run_id) if i["level"] == "bank")
    assert (item["category"], item["reason"], item["order_id"]) == (
        "status_conflict",
        "order not paid at the gateway",
        card.order_id,
    )


def test_status_conflict_is_queried_first_and_applied_when_paid(world: World) -> None:
    paid_there = world.attempt(amount=150_000, status="redirected")
    still_open = world.attempt(amount=90_000, status="redirected")
    world.settle(
        [
            settlement_row("T1", paid_there.reference, 150_000),
            settlement_row("T2", still_open.reference, 90_000),
        ]
    )
    vnpay = StubProvider("vnpay", Outcome.SUCCEEDED, paid_at=vn(D, 10))
    run = world.run(D, registry=StubRegistry(vnpay))
    assert sorted(vnpay.asked) == sorted([paid_there.reference, still_open.reference])
    items = world.by_attempt(run.run_id)
    assert (items[paid_there.attempt_id]["category"], items[paid_there.attempt_id]["reason"]) == (
        "matched",
        "confirmed by query",
    )
    with transaction(world.sessions) as session:
        order = session.get(Order, paid_there.order_id)
        assert order is not None
        assert order.status == "paid"

    pending = StubProvider("vnpay", Outcome.PENDING)
    rerun = world.run(D, registry=StubRegistry(pending))
    items = world.by_attempt(rerun.run_id)
    assert pending.asked == []  # both are paid now: nothing left to ask
    assert items[still_open.attempt_id]["reason"] == "confirmed by query"
    assert items[paid_there.attempt_id]["reason"] == "confirmed by query"


def test_status_conflict_stays_when_the_provider_says_pending(world: World) -> None:
    a = world.attempt(amount=150_000, status="redirected")
    world.settle([settlement_row("T1", a.reference, 150_000)])
    run = world.run(D, registry=StubRegistry(StubProvider("vnpay", Outcome.PENDING)))
    item = world.by_attempt(run.run_id)[a.attempt_id]
    assert (item["category"], item["reason"]) == ("status_conflict", "provider query: pending")
    no_registry = world.run(D)
    assert (
        world.by_attempt(no_registry.run_id)[a.attempt_id]["reason"]
        == "provider not queried (no provider registry)"
    )
