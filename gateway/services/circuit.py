"""A circuit breaker per payment provider: stop sending citizens to a provider that keeps failing.

States, per provider code:

* **closed** — calls go through; each ``ProviderUnavailable`` on create counts one failure, any answer
  from the provider resets the count. ``failure_threshold`` consecutive failures open the circuit.
* **open** — calls are refused at once (no attempt row is created, the citizen is asked to choose another
  method) until ``cooldown`` has passed since the circuit opened.
* **half-open** — after the cool-down, exactly one trial call is let through (:meth:`acquire` hands out a
  single permit). Its success closes the circuit, its failure opens it again for another cool-down.

Time comes from the injected clock (the gateway's :data:`~gateway.services.clock.Clock`), never from
``time.monotonic``, so tests move it with their fake clock.

The registry is in-process memory: every worker process (gunicorn worker, CLI) has its own breakers, and
each one opens after *its own* ``failure_threshold`` failures. That is fine for a protective breaker: it
only spares citizens a slow, failing round trip; it never decides anything about money, and nothing is lost
when a worker restarts with every circuit closed.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from gateway.services.clock import Clock

log = logging.getLogger(__name__)

DEFAULT_FAILURE_THRESHOLD: Final = 3
DEFAULT_COOLDOWN: Final = timedelta(seconds=60)


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class _Circuit:
    failures: int = 0  # consecutive, while closed
    opened_at: datetime | None = None  # set while open or half-open
    trial_since: datetime | None = None  # the half-open trial permit is out (and since when)


class CircuitRegistry:
    """Thread-safe breakers keyed by provider code (created closed on first use).

    Args:
        clock: returns the current aware UTC instant.
        failure_threshold: consecutive failures that open a circuit.
        cooldown: how long a circuit stays open before one trial call is allowed. A trial permit that is
            never reported back (a worker killed mid-call) lapses after the same time, so a lost trial cannot
            keep the provider switched off for good.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        failure_threshold: int = DEFAULT_FAILURE_THRESHOLD,
        cooldown: timedelta = DEFAULT_COOLDOWN,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if cooldown < timedelta(0):
            raise ValueError("cooldown must not be negative")
        self._clock = clock
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self._circuits: dict[str, _Circuit] = {}
        self._lock = threading.Lock()

    # ---- reading -------------------------------------------------------------------------------------

    def state(self, code: str) -> CircuitState:
        with self._lock:
            return self._state(self._circuits.get(code), self._clock())

    def is_available(self, code: str) -> bool:
        """Whether a call would be let through now (read only: claims no trial permit)."""
        with self._lock:
            return self._available(self._circuits.get(code), self._clock())

    # ---- gating a call -------------------------------------------------------------------------------

    def acquire(self, code: str) -> bool:
        """Ask to make one call. False while open (or while the half-open trial is already out).

        In half-open state the caller that gets True holds the single trial permit and must report back
        with :meth:`record_success`, :meth:`record_failure` or, if it never called, :meth:`release`.
        """
        with self._lock:
            now = self._clock()
            circuit = self._circuits.get(code)
            if not self._available(circuit, now):
                return False
            if circuit is not None and self._state(circuit, now) is CircuitState.HALF_OPEN:
                circuit.trial_since = now
                log.info("circuit for %s is half-open: letting one trial call through", code)
            return True

    def release(self, code: str) -> None:
        """Give back a permit that was not used for a provider call (no outcome to report)."""
        with self._lock:
            circuit = self._circuits.get(code)
            if circuit is not None:
                circuit.trial_since = None

    def record_success(self, code: str) -> None:
        """The provider answered: close the circuit and forget past failures."""
        with self._lock:
            circuit = self._circuits.get(code)
            if circuit is None:
                return
            if circuit.opened_at is not None:
                log.warning("circuit for %s closed: the provider answered again", code)
            circuit.failures = 0
            circuit.opened_at = None
            circuit.trial_since = None

    def record_failure(self, code: str) -> None:
        """The provider could not be reached (or answered nonsense)."""
        with self._lock:
            now = self._clock()
            circuit = self._circuits.setdefault(code, _Circuit())
            state = self._state(circuit, now)
            if state is CircuitState.HALF_OPEN:
                circuit.opened_at = now
                circuit.trial_since = None
                log.warning("circuit for %s opened again: the trial call failed", code)
            elif state is CircuitState.CLOSED:
                circuit.failures += 1
                if circuit.failures >= self.failure_threshold:
                    circuit.opened_at = now
                    circuit.trial_since = None
                    log.warning(
                        "circuit for %s opened after %d consecutive failures; retrying after %s",
                        code,
                        circuit.failures,
                        self.cooldown,
                    )
            # Already open: a call that started before the circuit opened; the cool-down is not extended.

    # ---- internals (caller holds the lock) -----------------------------------------------------------

    def _state(self, circuit: _Circuit | None, now: datetime) -> CircuitState:
        if circuit is None or circuit.opened_at is None:
            return CircuitState.CLOSED
        if now - circuit.opened_at < self.cooldown:
            return CircuitState.OPEN
        return CircuitState.HALF_OPEN

    def _available(self, circuit: _Circuit | None, now: datetime) -> bool:
        state = self._state(circuit, now)
        if circuit is None or state is CircuitState.CLOSED:
            return True
        if state is CircuitState.OPEN:
            return False
        # Half-open: one trial at a time; a permit that was never reported back lapses after the cool-down.
        return circuit.trial_since is None or now - circuit.trial_since >= self.cooldown


__all__ = ["DEFAULT_COOLDOWN", "DEFAULT_FAILURE_THRESHOLD", "CircuitRegistry", "CircuitState"]
