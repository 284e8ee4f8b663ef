"""The per-provider circuit breaker's state machine, driven by a fake clock (no sleeping)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from gateway.services.circuit import CircuitRegistry, CircuitState
from tests.conftest import FakeClock


@pytest.fixture
def circuits(clock: FakeClock) -> CircuitRegistry:
    return CircuitRegistry(clock)


def fail(circuits: CircuitRegistry, code: str, times: int) -> None:
    for _ in range(times):
        assert circuits.acquire(code)
        circuits.record_failure(code)


def test_an_unknown_provider_is_closed_and_available(circuits):
    assert circuits.state("momo") is CircuitState.CLOSED
    assert circuits.is_available("momo")
    assert circuits.acquire("momo")
    assert circuits.acquire("momo")  # closed: no permit to hold


def test_defaults():
    circuits = CircuitRegistry(FakeClock())
    assert circuits.failure_threshold == 3
    assert circuits.cooldown == timedelta(seconds=60)


def test_opens_after_three_consecutive_failures(circuits):
    fail(circuits, "momo", 2)
    assert circuits.state("momo") is CircuitState.CLOSED
    assert circuits.is_available("momo")
    fail(circuits, "momo", 1)
    assert circuits.state("momo") is CircuitState.OPEN
    assert not circuits.is_available("momo")
    assert not circuits.acquire("momo")
    # One provider's trouble switches off only that provider.
    assert circuits.state("zalopay") is CircuitState.CLOSED
    assert circuits.acquire("zalopay")


def test_a_success_resets_the_count(circuits):
    fail(circuits, "momo", 2)
    circuits.record_success("momo")
    fail(circuits, "momo", 2)
    assert circuits.state("momo") is CircuitState.CLOSED


def test_half_open_after_the_cooldown_lets_exactly_one_trial_through(circuits, clock):
    fail(circuits, "momo", 3)
    clock.advance(seconds=59)
    assert circuits.state("momo") is CircuitState.OPEN
    assert not circuits.acquire("momo")
    clock.advance(seconds=1)
    assert circuits.state("momo") is CircuitState.HALF_OPEN
    assert circuits.is_available("momo")
    assert circuits.is_available("momo")  # reading claims nothing
    assert circuits.acquire("momo")  # the trial
    assert not circuits.is_available("momo")
    assert not circuits.acquire("momo")  # a second caller while the trial is out
    assert circuits.state("momo") is CircuitState.HALF_OPEN


def test_a_successful_trial_closes_the_circuit(circuits, clock):
    fail(circuits, "momo", 3)
    clock.advance(seconds=61)
    assert circuits.acquire("momo")
    circuits.record_success("momo")
    assert circuits.state("momo") is CircuitState.CLOSED
    assert circuits.acquire("momo")
    assert circuits.acquire("momo")
    # Forgotten failures: it takes three new ones to open again.
    fail(circuits, "momo", 2)
    assert circuits.state("momo") is CircuitState.CLOSED


def test_a_failed_trial_opens_it_again_for_a_full_cooldown(circuits, clock):
    fail(circuits, "momo", 3)
    clock.advance(seconds=61)
    assert circuits.acquire("momo")
    circuits.record_failure("momo")  # one failure is enough in half-open state
    assert circuits.state("momo") is CircuitState.OPEN
    clock.advance(seconds=59)
    assert not circuits.acquire("momo")
    clock.advance(seconds=1)
    assert circuits.state("momo") is CircuitState.HALF_OPEN
    assert circuits.acquire("momo")


def test_a_released_trial_permit_goes_to_the_next_caller(circuits, clock):
    fail(circuits, "momo", 3)
    clock.advance(seconds=60)
    assert circuits.acquire("momo")
    circuits.release("momo")  # e.g. the order turned out not to be payable: no provider call was made
    assert circuits.state("momo") is CircuitState.HALF_OPEN
    assert circuits.acquire("momo")


def test_a_trial_never_reported_back_lapses_after_another_cooldown(circuits, clock):
    fail(circuits, "momo", 3)
    clock.advance(seconds=60)
    assert circuits.acquire("momo")
    clock.advance(seconds=59)
    assert not circuits.acquire("momo")
    clock.advance(seconds=1)
    assert circuits.acquire("momo")


def test_late_failures_while_open_do_not_extend_the_cooldown(circuits, clock):
    fail(circuits, "momo", 3)
    clock.advance(seconds=30)
    circuits.record_failure("momo")  # a call that started before the circuit opened
    clock.advance(seconds=30)
    assert circuits.state("momo") is CircuitState.HALF_OPEN


def test_release_and_success_on_a_closed_circuit_are_harmless(circuits):
    circuits.release("momo")
    circuits.record_success("momo")
    assert circuits.state("momo") is CircuitState.CLOSED


def test_custom_threshold_and_cooldown(clock):
    circuits = CircuitRegistry(clock, failure_threshold=1, cooldown=timedelta(seconds=5))
    fail(circuits, "vnpay", 1)
    assert circuits.state("vnpay") is CircuitState.OPEN
    clock.advance(seconds=5)
    assert circuits.state("vnpay") is CircuitState.HALF_OPEN


@pytest.mark.parametrize("kwargs", [{"failure_threshold": 0}, {"cooldown": timedelta(seconds=-1)}])
def test_nonsense_settings_are_refused(kwargs):
    with pytest.raises(ValueError):  # noqa: PT011 - two different messages
        CircuitRegistry(FakeClock(), **kwargs)


def test_concurrent_callers_get_one_trial_and_count_every_failure(circuits, clock):
    threads = 16
    barrier = threading.Barrier(threads)

    def failing() -> None:
        barrier.wait()
        circuits.record_failure("momo")

    workers = [threading.Thread(target=failing) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert circuits.state("momo") is CircuitState.OPEN

    clock.advance(seconds=60)
    granted: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def trying() -> None:
        barrier.wait()
        ok = circuits.acquire("momo")
        with lock:
            granted.append(ok)

    workers = [threading.Thread(target=trying) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sorted(granted) == [False] * (threads - 1) + [True]
