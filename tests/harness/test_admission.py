"""Admission decisions and the circuit breaker, driven by a fake clock."""

from __future__ import annotations

from wslab.harness.admission import Admission, CircuitBreaker


def test_capacity_queue_and_rejection() -> None:
    a = Admission(max_connections=2, pending_queue=1)
    assert [a.arrive(0)[0] for _ in range(4)] == ["accept", "accept", "wait", "reject"]
    assert a.arrive(0) == ("reject", "server full")
    assert not a.try_take_slot()
    a.release()
    assert a.try_take_slot()
    assert (a.active, a.waiting) == (2, 0)
    snap = a.snapshot()
    assert snap["accepted"] == 2 and snap["accepted_after_wait"] == 1
    assert snap["rejected_full"] == 2 and snap["closed"] == 1


def test_waiting_connection_that_gives_up_is_counted() -> None:
    a = Admission(max_connections=1, pending_queue=2)
    a.arrive(0)
    assert a.arrive(0)[0] == "wait"
    a.give_up()
    assert a.waiting == 0 and a.counts["rejected_timeout"] == 1


def test_breaker_opens_half_opens_and_closes() -> None:
    b = CircuitBreaker(failure_threshold=3, window_s=10, cooldown_s=5)
    for t in (0.0, 1.0):
        b.failure(t)
    assert b.state == "closed" and b.allow(2.0)
    b.failure(2.0)
    assert b.state == "open"
    assert not b.allow(6.9)
    assert b.allow(7.0) and b.state == "half-open"
    assert not b.allow(7.1)  # one trial at a time
    b.failure(7.2)
    assert b.state == "open"
    assert b.allow(12.3)
    b.success(12.4)
    assert b.state == "closed"
    assert dict(b.transitions) == {"closed->open": 1, "open->half-open": 2,
                                   "half-open->open": 1, "half-open->closed": 1}


def test_old_failures_fall_out_of_the_window() -> None:
    b = CircuitBreaker(failure_threshold=3, window_s=10, cooldown_s=5)
    for t in (0.0, 5.0, 11.0, 16.0):
        b.failure(t)
    assert b.state == "closed"


def test_an_open_breaker_rejects_before_capacity() -> None:
    a = Admission(10, 10, CircuitBreaker(failure_threshold=1))
    a.breaker.failure(0.0)
    assert a.arrive(0.5) == ("reject", "breaker open")
    assert a.snapshot()["breaker"] == "open"
