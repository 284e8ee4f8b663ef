"""The transition tables, exhaustively: every allowed move, every forbidden pair, every repeat."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from gateway.domain.errors import IllegalTransition
from gateway.domain.status import (
    ATTEMPT_TRANSITIONS,
    ORDER_TRANSITIONS,
    REFUND_TRANSITIONS,
    AttemptStatus,
    OrderStatus,
    RefundStatus,
    transition,
)

AT = datetime(2026, 11, 25, tzinfo=UTC)


@dataclass
class Thing:
    id: str
    status: str


TABLES = {
    "order": (OrderStatus, ORDER_TRANSITIONS),
    "attempt": (AttemptStatus, ATTEMPT_TRANSITIONS),
    "refund": (RefundStatus, REFUND_TRANSITIONS),
}


def _pairs(kind: str, allowed: bool) -> list[tuple[str, str, str]]:
    statuses, table = TABLES[kind]
    return [
        (kind, a.value, b.value)
        for a, b in itertools.product(statuses, statuses)
        if (b in table[a]) == allowed and not (a == b and b not in table[a])
    ]


ALLOWED = [p for kind in TABLES for p in _pairs(kind, True)]
FORBIDDEN = [p for kind in TABLES for p in _pairs(kind, False)]
REPEATS = [
    (kind, s.value) for kind, (statuses, table) in TABLES.items() for s in statuses if s not in table[s]
]


def test_the_contract_edges_are_in_the_table() -> None:
    # contract §8, spelled out so that an accidental edit of the table fails loudly
    o = OrderStatus
    assert {o.PROCESSING, o.PAID, o.EXPIRED, o.CANCELLED} <= ORDER_TRANSITIONS[o.PENDING]
    assert {o.PAID, o.EXPIRED, o.CANCELLED} <= ORDER_TRANSITIONS[o.PROCESSING]
    assert ORDER_TRANSITIONS[o.PAID] == {o.PARTIALLY_REFUNDED, o.REFUNDED}
    assert o.REFUNDED in ORDER_TRANSITIONS[o.PARTIALLY_REFUNDED]
    for final in (o.EXPIRED, o.CANCELLED, o.REFUNDED):
        assert ORDER_TRANSITIONS[final] == frozenset()
    a = AttemptStatus
    assert a.REDIRECTED in ATTEMPT_TRANSITIONS[a.CREATED]
    assert ATTEMPT_TRANSITIONS[a.REDIRECTED] == {a.SUCCEEDED, a.FAILED, a.UNKNOWN}
    assert ATTEMPT_TRANSITIONS[a.UNKNOWN] == {a.SUCCEEDED, a.FAILED}
    assert ATTEMPT_TRANSITIONS[a.SUCCEEDED] == frozenset()
    assert ATTEMPT_TRANSITIONS[a.FAILED] == frozenset()


@pytest.mark.parametrize(("kind", "current", "target"), ALLOWED)
def test_allowed_transition_changes_status_and_returns_audit(kind: str, current: str, target: str) -> None:
    thing = Thing("x1", current)
    entry = transition(kind, thing, target, actor="vnpay", source="ipn", reason="because", at=AT)
    assert thing.status == target
    assert entry is not None
    assert (entry.entity, entry.entity_id, entry.from_status, entry.to_status) == (
        kind,
        "x1",
        current,
        target,
    )
    assert (entry.actor, entry.source, entry.reason, entry.at) == ("vnpay", "ipn", "because", AT)


@pytest.mark.parametrize(("kind", "current", "target"), FORBIDDEN)
def test_forbidden_transition_raises_and_leaves_status(kind: str, current: str, target: str) -> None:
    thing = Thing("x1", current)
    with pytest.raises(IllegalTransition) as info:
        transition(kind, thing, target, actor="a", source="s", reason="r", at=AT)
    assert thing.status == current
    assert (info.value.current, info.value.target) == (current, target)
    assert info.value.status == 409


@pytest.mark.parametrize(("kind", "status"), REPEATS)
def test_repeat_of_same_status_is_a_noop(kind: str, status: str) -> None:
    thing = Thing("x1", status)
    assert transition(kind, thing, status, actor="a", source="s", reason="r", at=AT) is None
    assert thing.status == status


def test_unknown_target_is_refused() -> None:
    thing = Thing("x1", "pending")
    with pytest.raises(IllegalTransition):
        transition("order", thing, "teleported", actor="a", source="s", reason="r", at=AT)


def test_counts_cover_the_whole_product() -> None:
    total = len(OrderStatus) ** 2 + len(AttemptStatus) ** 2 + len(RefundStatus) ** 2
    assert len(ALLOWED) + len(FORBIDDEN) + len(REPEATS) == total
    assert len(FORBIDDEN) > 20
