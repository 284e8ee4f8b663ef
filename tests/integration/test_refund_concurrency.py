"""20 concurrent refunds that together exceed the paid amount never over-refund (issue 4.5)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import requests
from sqlalchemy import func, select

from gateway.storage.models import Refund
from tests.helpers import paid_order

N = 20


def test_concurrent_refunds_never_exceed_the_paid_amount(client, portal, live_server, sessions):
    order = paid_order(client, portal)  # 58 000 VND paid
    barrier = Barrier(N)

    def fire(i: int) -> int:
        with requests.Session() as http:
            barrier.wait(timeout=30)
            r = http.post(
                f"{live_server.url}/api/v1/orders/{order['id']}/refunds",
                json={"amount": 7000, "reason": f"hoàn phí lần {i}"},
                headers={**portal.headers, "Idempotency-Key": f"concurrent-{i}"},
                timeout=60,
            )
            assert r.status_code in {201, 409}, r.text
            return r.status_code

    with ThreadPoolExecutor(max_workers=N) as pool:
        statuses = list(pool.map(fire, range(N)))

    # 58 000 // 7 000 = 8 refunds fit; the other 12 are refused under the order's row lock.
    assert statuses.count(201) == 8
    assert statuses.count(409) == N - 8
    with sessions() as s:
        total = s.scalar(select(func.sum(Refund.amount)).where(Refund.status == "succeeded"))
        rows = s.scalar(select(func.count()).select_from(Refund))
    assert (total, rows) == (56000, 8)
    state = client.get(f"/api/v1/orders/{order['id']}", headers=portal.headers).get_json()
    assert (state["status"], state["refunded_amount"]) == ("partially_refunded", 56000)
