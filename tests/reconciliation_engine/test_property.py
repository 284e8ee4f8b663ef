"""Property (issue 6.7): for any set of payments, refunds, provider lines and statement lines, every VND of
input is accounted for in exactly one item — each paid attempt, each succeeded refund, each line and each
payout in exactly one item, with its own amount — and the totals add up."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.storage.db import transaction
from gateway.storage.models import ReconLine
from tests.conftest import _wipe
from tests.reconciliation.builders import settlement_row
from tests.reconciliation_engine.world import Entry, Tx, World, fee_schedule

D = date(2025, 10, 14)
AMOUNTS = st.sampled_from([10_000, 20_000, 30_000, 50_000])

attempt_plan = st.tuples(
    st.sampled_from(["vnpay", "vietqr"]),
    AMOUNTS,
    st.sampled_from(["succeeded"] * 4 + ["redirected"]),
    # what the outside world says about it
    st.sampled_from(["none", "exact", "off", "twice", "fee", "text_only", "amount_only"]),
    st.sampled_from(["B1", "B2"]),
    # a refund of half the payment, and what the provider file / the bank statement says about it
    st.sampled_from(["none", "none", "reflected", "unreflected", "twice", "off", "not_succeeded"]),
)
stray_line = st.tuples(st.sampled_from(["settlement", "credit", "debit"]), AMOUNTS)


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    plans=st.lists(attempt_plan, max_size=8),
    strays=st.lists(stray_line, max_size=3),
    payout=st.sampled_from(["right", "wrong", "none"]),
    with_fees=st.booleans(),
)
def test_every_vnd_is_in_exactly_one_item(
    engine: Engine,
    sessions: sessionmaker[Session],
    tmp_path: Path,
    plans: list[tuple[str, int, str, str, str, str]],
    strays: list[tuple[str, int]],
    payout: str,
    with_fees: bool,
) -> None:
    _wipe(engine)
    world = World(sessions, tmp_path).setup()
    if with_fees:
        world.with_config(fee_schedule=fee_schedule(vnpay={"percent_bps": 100}))
    rows: list[str] = []
    entries: list[Entry] = []
    batches: Counter[str] = Counter()
    for n, (provider, amount, status, outside, batch, refund) in enumerate(plans):
        a = world.attempt(provider=provider, amount=amount, status=status)
        if status == "succeeded" and refund != "none":
            part = amount // 2
            world.refund(
                a,
                part,
                status="succeeded" if refund != "not_succeeded" else "pending",
                provider_reference=f"R{n}" if refund == "off" else None,
                bank_transfer_ref=f"RT{n}",
            )
            if refund != "unreflected":
                gross = part + 1_000 if refund == "off" else part
                for k in range(2 if refund == "twice" else 1):
                    if provider == "vnpay":  # by the provider's id ("off"), else the payment's reference
                        txn = f"R{n}" if k == 0 else f"R{n}-{k}"  # twice: another id, the same refund
                        rows.append(settlement_row(txn, a.reference, gross, 0, status="refund", batch=batch))
                        batches[batch] -= gross
                    else:  # a bank-transfer refund: a debit naming the transfer
                        entries.append(Entry(str(gross), "DBIT", ref=f"RT{n}"))
        if provider == "vnpay" and outside != "none":
            gross = amount + 1_000 if outside == "off" else amount
            fee = 7 if outside == "fee" else gross // 100
            for _ in range(2 if outside == "twice" else 1):
                rows.append(settlement_row(f"T{n}", a.reference, gross, fee, batch=batch))
                batches[batch] += gross - fee
        elif provider == "vietqr" and outside != "none":
            text = "NOP TIEN" if outside == "amount_only" else f"NOP PHI {a.reference}"
            gross = amount + 1_000 if outside == "off" else amount
            for _ in range(2 if outside == "twice" else 1):
                entries.append(Entry(str(gross), ref=f"FT{n}", txs=[Tx(ustrd=text)]))
    for n, (kind, amount) in enumerate(strays):
        if kind == "settlement":
            rows.append(settlement_row(f"S{n}", f"GW-STRAY-{n}", amount, 0, batch="B1"))
            batches["B1"] += amount
        else:
            entries.append(Entry(str(amount), "CRDT" if kind == "credit" else "DBIT", ref=f"FS{n}"))
    for batch, credit in sorted(batches.items()):
        if payout != "none" and credit > 0:
            entries.append(
                Entry(str(credit + (0 if payout == "right" else 1)), ref=f"P{batch}", txs=[Tx(ustrd=batch)])
            )
    if rows:
        world.settle(rows)
    run = world.run(D, world.statement(entries))
    assert run.run_id is not None
    items = world.items(run.run_id)

    with transaction(sessions) as session:
        lines = {ln.id: ln for ln in session.scalars(select(ReconLine))}
        from gateway.storage.models import PaymentAttempt, Refund

        paid = {a.id: a.amount for a in session.scalars(select(PaymentAttempt)) if a.status == "succeeded"}
        refunded = {r.id: r.amount for r in session.scalars(select(Refund)) if r.status == "succeeded"}

    # each line in exactly one item, with the line's own amount
    by_line = Counter(i["line_id"] for i in items if i["line_id"] is not None)
    assert set(by_line) == set(lines)
    assert set(by_line.values()) <= {1}
    for item in items:
        if item["line_id"] is not None:
            assert item["amount"] == lines[item["line_id"]].gross
    # each paid attempt in exactly one item, for its own amount
    by_attempt = Counter(i["attempt_id"] for i in items if i["attempt_id"] in paid)
    assert set(by_attempt) == set(paid)
    assert set(by_attempt.values()) <= {1}
    for item in items:
        if item["attempt_id"] in paid:
            ours = item["expected_amount"] if item["expected_amount"] is not None else item["amount"]
            assert ours == paid[item["attempt_id"]]
    # each succeeded refund in exactly one item, for its own amount (its line, or pending/missing)
    by_refund = Counter(i["refund_id"] for i in items if i["refund_id"] in refunded)
    assert set(by_refund) == set(refunded)
    assert set(by_refund.values()) <= {1}
    for item in items:
        if item["refund_id"] in refunded:
            ours = item["expected_amount"] if item["expected_amount"] is not None else item["amount"]
            assert ours == refunded[item["refund_id"]]
    # each payout batch in exactly one item
    payouts = Counter(i["batch_key"] for i in items if i["level"] == "payout")
    assert set(payouts) == {b for b, c in batches.items() if c or b in payouts}
    assert set(payouts.values()) <= {1}
    # one category each, and the totals are the sum of the items
    assert {i["category"] for i in items} <= set(run.totals)
    for category, total in run.totals.items():
        mine = [i for i in items if i["category"] == category]
        assert total == {"count": len(mine), "amount": sum(i["amount"] for i in mine)}
