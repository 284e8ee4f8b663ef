"""Refunds the gateway holds as succeeded must show in the provider's file (or the bank statement for a
bank-transfer refund): pending, then missing, carried forward until their line arrives, never counted twice
(reconciliation.md §5.5 "refund_unreflected", reported under the contract §9 codes)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import Engine

from gateway.storage.models import ReconRun
from reconciliation.runs import CATEGORIES
from reconciliation.service import resolve_item
from tests.conftest import count_rows
from tests.reconciliation.builders import settlement_row
from tests.reconciliation_engine.world import Entry, Paid, Tx, World

TUE, WED, FRI, MON, TUE2 = (date(2025, 10, d) for d in (14, 15, 17, 20, 21))
AWAITING = "awaiting the provider refund line"
UNREFLECTED = "refund not reflected in the provider's settlement file"


def totals(**given: tuple[int, int]) -> dict[str, dict[str, int]]:
    out = {c: {"count": 0, "amount": 0} for c in CATEGORIES}
    for category, (count, amount) in given.items():
        out[category] = {"count": count, "amount": amount}
    return out


def _momo_paid_and_settled(world: World) -> Paid:
    """A MoMo payment of 200 000 on Tuesday, in the provider file, its payout credited."""
    paid = world.attempt(provider="momo", amount=200_000)
    world.settle(
        [settlement_row("M1", paid.reference, 200_000, 2000, batch="MOMO-1", provider="momo")], "momo"
    )
    return paid


def _monday_row(txn: str, reference: str, amount: int, fee: int = 0, *, status: str = "success") -> str:
    """A MoMo file row of Monday 20 October, in payout MOMO-2."""
    return settlement_row(
        txn,
        reference,
        amount,
        fee,
        status=status,
        at="2025-10-20T09:00:00+07:00",
        settled="2025-10-20",
        batch="MOMO-2",
        provider="momo",
    )


def _payout_statement(world: World) -> Path:
    return world.statement([Entry("198000", ref="FT-M1", txs=[Tx(ustrd="MOMO MOMO-1")])], name="tue.xml")


def test_unreflected_refund_is_pending_then_missing_carried_and_closed_by_its_line(world: World) -> None:
    paid = _momo_paid_and_settled(world)
    refund_id = world.refund(paid, 80_000, provider_reference="MR-1")  # completed Tuesday 15:00

    tue = world.run(TUE, _payout_statement(world))
    (item,) = world.by_refund(tue.run_id)[refund_id]
    assert (item["level"], item["category"], item["reason"], item["rule"]) == (
        "provider",
        "pending",
        AWAITING,
        None,
    )
    assert (item["amount"], item["expected_amount"], item["order_id"]) == (80_000, None, paid.order_id)
    assert (item["business_date"], item["attempt_id"], item["line_id"], item["status"]) == (
        TUE,
        None,
        None,
        "open",
    )
    assert tue.totals == totals(matched=(2, 200_000 + 198_000), pending=(1, 80_000))
    assert not tue.discrepancies

    wed = world.run(WED)  # one business day later: still inside the window, carried
    (carried,) = world.by_refund(wed.run_id)[refund_id]
    assert (carried["category"], carried["carried_from"]) == ("pending", item["id"])
    assert wed.totals == totals(pending=(1, 80_000))

    fri = world.run(FRI)  # three business days: past the two-day window
    (missing,) = world.by_refund(fri.run_id)[refund_id]
    assert (missing["category"], missing["reason"], missing["amount"], missing["carried_from"]) == (
        "missing_in_statement",
        UNREFLECTED,
        80_000,
        carried["id"],
    )
    assert fri.totals == totals(missing_in_statement=(1, 80_000))
    assert fri.discrepancies

    # Monday's file brings the refund line (with a new payment, so that the payout stays positive).
    other = world.attempt(provider="momo", amount=300_000, paid_on=MON)
    world.settle(
        [
            _monday_row("M2", other.reference, 300_000, 3000),
            _monday_row("MR-1", paid.reference, 80_000, status="refund"),
        ],
        "momo",
    )
    credit = world.statement(
        [Entry("217000", ref="FT-M2", booking="2025-10-20", value="2025-10-20", txs=[Tx(ustrd="MOMO-2")])],
        name="mon.xml",
    )
    mon = world.run(MON, credit)
    (closed,) = world.by_refund(mon.run_id)[refund_id]
    assert (closed["category"], closed["reason"], closed["rule"], closed["status"]) == (
        "matched",
        "refund matched",
        "provider_txn_id",
        "closed",
    )
    assert (closed["amount"], closed["line_id"] is not None, closed["carried_from"]) == (
        80_000,
        True,
        missing["id"],
    )
    assert mon.totals == totals(matched=(3, 300_000 + 80_000 + 217_000))
    assert not mon.discrepancies
    assert world.run(MON).digest == mon.digest  # the same inputs again: the same items

    # Closed: the next run does not carry it, and the same line again is a duplicate, not a second refund.
    world.settle([_monday_row("MR-1-RESENT", paid.reference, 80_000, status="refund")], "momo")
    tue2 = world.run(TUE2)
    assert refund_id not in world.by_refund(tue2.run_id)
    (dup,) = [i for i in world.items(tue2.run_id) if i["category"] == "duplicate"]
    assert (dup["reason"], dup["refund_id"], dup["order_id"], dup["amount"]) == (
        "refund already matched by an earlier line",
        None,
        paid.order_id,
        80_000,
    )


def test_a_refund_line_arriving_before_the_gateway_completes_the_refund_is_not_counted_twice(
    world: World,
) -> None:
    paid = _momo_paid_and_settled(world)
    world.settle(
        [
            settlement_row(
                "MR-9",
                paid.reference,
                50_000,
                status="refund",
                at="2025-10-14T23:50:00+07:00",
                provider="momo",
                batch="MOMO-1",
            )
        ],
        "momo",
    )
    # The gateway records the provider's answer just after midnight: completed on Wednesday.
    refund_id = world.refund(paid, 50_000, provider_reference="MR-9", completed_on=WED, hour=0)
    tue = world.run(TUE)
    (line_item,) = world.by_refund(tue.run_id)[refund_id]
    assert (line_item["category"], line_item["rule"]) == ("matched", "provider_txn_id")
    wed = world.run(WED)
    assert refund_id not in world.by_refund(wed.run_id)  # dealt with on Tuesday: not taken again
    assert [i for i in world.items(wed.run_id) if i["level"] == "provider"] == []  # only the payout is left


def test_partial_refunds_of_one_payment_pair_with_their_own_lines(world: World) -> None:
    paid = world.attempt(provider="vnpay", amount=150_000)
    first = world.refund(paid, 50_000, reference="RF-PART-1")
    second = world.refund(paid, 50_000, reference="RF-PART-2")
    third = world.refund(paid, 30_000, reference="RF-PART-3")
    world.settle(
        [
            settlement_row("T1", paid.reference, 150_000, 1650),
            # no provider id or refund reference we know: by the payment's reference and the amount
            settlement_row("R-A", paid.reference, 50_000, status="refund"),
            settlement_row("R-B", paid.reference, 50_000, status="refund"),
            settlement_row("R-C", paid.reference, 50_000, status="refund"),
        ]
    )
    run = world.run(TUE)
    refunds = world.by_refund(run.run_id)
    assert [refunds[r][0]["category"] for r in (first, second)] == ["matched", "matched"]
    assert refunds[first][0]["line_id"] != refunds[second][0]["line_id"]
    (third_item,) = refunds[third]
    assert (third_item["category"], third_item["reason"], third_item["amount"]) == (
        "pending",
        AWAITING,
        30_000,
    )
    (dup,) = [i for i in world.items(run.run_id) if i["category"] == "duplicate"]
    assert (dup["reason"], dup["amount"]) == ("refund already matched by another line", 50_000)
    assert run.totals["matched"] == {"count": 3, "amount": 250_000}
    payout = 150_000 - 1650 - 3 * 50_000  # Σgross − Σfee − Σrefund of the batch: no credit yet
    assert run.totals["pending"] == {"count": 2, "amount": 30_000 + payout}


def test_refunds_not_succeeded_are_not_expected_in_a_provider_file(world: World) -> None:
    card = world.attempt(provider="vnpay", amount=100_000)
    world.refund(card, 40_000, status="failed", reference="RF-FAILED")
    world.refund(card, 20_000, status="pending", reference="RF-WAITING")
    world.settle([settlement_row("T1", card.reference, 100_000)])
    run = world.run(TUE)
    assert world.by_refund(run.run_id) == {}
    assert [i["category"] for i in world.items(run.run_id) if i["level"] == "provider"] == ["matched"]


def test_rerun_and_dry_run_with_an_unreflected_refund(world: World, engine: Engine) -> None:
    paid = _momo_paid_and_settled(world)
    world.refund(paid, 80_000)
    first = world.run(FRI)
    before = count_rows(engine)
    dry = world.run(FRI, dry_run=True)
    assert count_rows(engine) == before
    again = world.run(FRI)
    assert (dry.digest, dry.totals) == (first.digest, first.totals)
    assert (again.digest, again.totals) == (first.digest, first.totals)
    assert first.totals["missing_in_statement"] == {"count": 1, "amount": 80_000}
    assert first.totals["pending"] == {"count": 1, "amount": 198_000}  # the payout, settled on the 15th
    assert world.count(ReconRun) == 2
    assert first.inputs["refunds"] == {"count": 1, "amount": 80_000}


def test_a_resolved_unreflected_refund_stays_resolved(world: World) -> None:
    paid = _momo_paid_and_settled(world)
    refund_id = world.refund(paid, 80_000)
    fri = world.run(FRI)
    (item,) = world.by_refund(fri.run_id)[refund_id]
    with world.sessions() as session:
        resolve_item(
            session,
            item["id"],
            actor="ke.toan@so.vn",
            reason="MoMo confirmed the refund by e-mail",
            now=datetime(2025, 10, 17, 9, 0, tzinfo=UTC),
        )
        session.commit()
    assert refund_id not in world.by_refund(world.run(MON).run_id)  # resolved: not carried
    (again,) = world.by_refund(world.run(FRI).run_id)[refund_id]  # a rerun meets it again
    assert again["status"] == "resolved"


def test_bank_transfer_refund_without_its_debit(world: World) -> None:
    paid = world.attempt(provider="vietqr", amount=100_000)
    refund_id = world.refund(paid, 100_000, bank_transfer_ref="FT-REFUND-1")
    credit = world.statement([Entry("100000", ref="FT1", txs=[Tx(ustrd=f"NOP PHI {paid.reference}")])])
    tue = world.run(TUE, credit)
    (item,) = world.by_refund(tue.run_id)[refund_id]
    assert (item["level"], item["category"], item["reason"], item["amount"], item["order_id"]) == (
        "bank",
        "pending",
        "awaiting the bank debit of the refund",
        100_000,
        paid.order_id,
    )
    assert item["references"]["bank_transfer_ref"] == "FT-REFUND-1"
    assert tue.totals == totals(matched=(1, 100_000), pending=(1, 100_000))

    fri = world.run(FRI)
    (missing,) = world.by_refund(fri.run_id)[refund_id]
    assert (missing["category"], missing["reason"], missing["carried_from"]) == (
        "missing_in_statement",
        "refund not reflected in the bank statement",
        item["id"],
    )
    assert fri.totals == totals(missing_in_statement=(1, 100_000))

    debit = world.statement(
        [Entry("100000", "DBIT", ref="FT-REFUND-1", booking="2025-10-20", value="2025-10-20")], name="mon.xml"
    )
    mon = world.run(MON, debit)
    (closed,) = world.by_refund(mon.run_id)[refund_id]
    assert (closed["category"], closed["reason"], closed["rule"], closed["carried_from"]) == (
        "matched",
        "refund paid by bank transfer",
        "exact_reference",
        missing["id"],
    )
    assert mon.totals == totals(matched=(1, 100_000))

    again = world.statement(
        [Entry("100000", "DBIT", ref="FT-REFUND-1", booking="2025-10-21", value="2025-10-21")],
        name="tue2.xml",
    )
    tue2 = world.run(TUE2, again)
    (dup,) = world.items(tue2.run_id)
    assert (dup["category"], dup["reason"], dup["refund_id"], dup["order_id"]) == (
        "duplicate",
        "refund already matched by another debit",
        None,
        paid.order_id,
    )
