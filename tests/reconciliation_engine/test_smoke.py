from __future__ import annotations

from datetime import date

from tests.reconciliation.builders import settlement_row
from tests.reconciliation_engine.world import Entry, Tx, World

D = date(2025, 10, 14)


def test_smoke(world: World) -> None:
    a = world.attempt(amount=150_000)
    b = world.attempt(amount=200_000)
    q = world.attempt(provider="vietqr", amount=50_000)
    world.attempt(amount=70_000)
    path = world.settlement(
        [
            settlement_row("T1", a.reference, 150_000, 1650, batch="B1"),
            settlement_row("T2", b.reference, 190_000, 0, batch="B1"),
            settlement_row("T3", "GW251014XXXXXX", 10_000, 0, batch="B1"),
        ]
    )
    from reconciliation.store import import_settlement
    from datetime import UTC, datetime
    with world.sessions() as s:
        conn = s.connection()
        out = import_settlement(conn, path, "vnpay", actor="t", now=datetime.now(UTC))
        s.commit()
    print(out)
    stmt = world.statement([
        Entry(str(150_000 - 1650 + 190_000 + 10_000), ref="FT1", txs=[Tx(ustrd="VNPAY THANH TOAN B1")]),
        Entry("50000", ref="FT2", txs=[Tx(ustrd=f"CHUYEN TIEN {q.reference}")]),
        Entry("3300", "DBIT", ref="FT3", info="PHI"),
    ])
    outcome = world.run(D, stmt)
    print(outcome)
    for item in world.items(outcome.run_id):
        print(item)
    assert 0
