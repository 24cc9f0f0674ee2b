"""Admission control for the live server: capacity, a bounded pending queue, a breaker.

What lives here: the decisions, sans-I/O (time is passed in), and every state change
counted. The server asks :meth:`Admission.arrive` when a connection has finished its
handshake; the answer is ``"accept"``, ``"wait"`` (join the pending queue; the server then
waits for :meth:`Admission.release` to hand it a slot, or for ``pending_timeout_s``) or
``"reject"`` (close with 1013, "try again later", and a reason).

| state of the server                        | a new connection is     |
|--------------------------------------------|-------------------------|
| breaker open (cooling down)                | rejected ("breaker open")|
| breaker half-open, a trial already running | rejected ("breaker half-open") |
| fewer than ``max_connections`` active      | accepted                |
| full, pending queue has room               | queued (waits)          |
| full, pending queue full                   | rejected ("server full")|

Circuit breaker: ``failure_threshold`` handshake/accept failures within ``window_s`` open
it; after ``cooldown_s`` it half-opens and lets one trial connection in; the trial's success
closes it, its failure opens it again.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Literal

Decision = Literal["accept", "wait", "reject"]
BreakerState = Literal["closed", "open", "half-open"]


@dataclass(slots=True)
class CircuitBreaker:
    """Opens after repeated failures, half-opens after a cool-down.

    Args:
        failure_threshold: Failures within ``window_s`` that open the breaker.
        window_s: The sliding window for counting failures.
        cooldown_s: How long it stays open before letting a trial through.
    """

    failure_threshold: int = 20
    window_s: float = 10.0
    cooldown_s: float = 5.0
    state: BreakerState = "closed"
    opened_at: float = 0.0
    trial_running: bool = False
    transitions: Counter[str] = field(default_factory=Counter)
    _failures: deque[float] = field(default_factory=deque)

    def _move(self, to: BreakerState, now: float) -> None:
        if to != self.state:
            self.transitions[f"{self.state}->{to}"] += 1
            self.state = to
            if to == "open":
                self.opened_at = now
                self.trial_running = False

    def allow(self, now: float) -> bool:
        """May a new connection try now? (A half-open breaker lets exactly one through.)"""
        if self.state == "open" and now - self.opened_at >= self.cooldown_s:
            self._move("half-open", now)
        if self.state == "closed":
            return True
        if self.state == "half-open" and not self.trial_running:
            self.trial_running = True
            return True
        return False

    def failure(self, now: float) -> None:
        """A handshake or accept failed."""
        if self.state == "half-open":
            self._move("open", now)
            return
        self._failures.append(now)
        while self._failures and now - self._failures[0] > self.window_s:
            self._failures.popleft()
        if self.state == "closed" and len(self._failures) >= self.failure_threshold:
            self._failures.clear()
            self._move("open", now)

    def abandon(self) -> None:
        """The half-open trial ended without a verdict (it timed out waiting, or found the
        server full): let the next connection be the trial instead."""
        if self.state == "half-open":
            self.trial_running = False

    def success(self, now: float) -> None:
        """A connection was accepted and opened fine."""
        if self.state == "half-open":
            self._failures.clear()
            self._move("closed", now)


@dataclass(slots=True)
class Admission:
    """Capacity and the pending queue, with counters for every outcome.

    Args:
        max_connections: Connections served at once.
        pending_queue: Connections that may wait for a slot.
        breaker: The circuit breaker consulted first.
    """

    max_connections: int
    pending_queue: int
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    active: int = 0
    waiting: int = 0
    counts: Counter[str] = field(default_factory=Counter)

    def arrive(self, now: float) -> tuple[Decision, str]:
        """Decide for a connection that just completed its handshake."""
        if not self.breaker.allow(now):
            self.counts["rejected_breaker"] += 1
            return "reject", f"breaker {self.breaker.state}"
        if self.active < self.max_connections and self.waiting == 0:
            self.active += 1
            self.counts["accepted"] += 1
            return "accept", ""
        if self.waiting < self.pending_queue:
            self.waiting += 1
            self.counts["queued"] += 1
            return "wait", ""
        self.counts["rejected_full"] += 1
        self.breaker.abandon()
        return "reject", "server full"

    def try_take_slot(self) -> bool:
        """For a waiting connection: take a free slot if there is one."""
        if self.active < self.max_connections:
            self.waiting -= 1
            self.active += 1
            self.counts["accepted_after_wait"] += 1
            return True
        return False

    def give_up(self, *, trial: bool = False) -> None:
        """A waiting connection timed out (or went away) before a slot came free.

        Args:
            trial: It was the breaker's half-open trial, which therefore ends undecided.
        """
        self.waiting -= 1
        self.counts["rejected_timeout"] += 1
        if trial:
            self.breaker.abandon()

    def release(self) -> None:
        """An accepted connection closed: its slot is free."""
        self.active -= 1
        self.counts["closed"] += 1

    def snapshot(self) -> dict[str, int | str]:
        """Counters and state, for metrics."""
        out: dict[str, int | str] = {"active": self.active, "waiting": self.waiting,
                                     "breaker": self.breaker.state}
        out.update(self.counts)
        out.update({f"breaker_{k}": v for k, v in self.breaker.transitions.items()})
        return out
