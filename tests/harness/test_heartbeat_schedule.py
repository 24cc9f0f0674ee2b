"""The server heartbeat's schedule (``wslab/harness/heartbeat.py``), with time passed in.

Held to the rules of websockets' keepalive: a ping ``interval`` after opening and every
``interval`` after; a ping unanswered ``timeout`` later expires the connection, once; a
forgotten connection is never pinged; one wake-up serves every ping due within the slack.
The live behaviour (a real client pinged, closed 1011, a frozen one dropped) is
``test_heartbeat.py``'s.
"""

from __future__ import annotations

import pytest

from wslab.errors import ConfigError
from wslab.harness.heartbeat import HeartbeatSchedule


class Peers:
    """Connections that answer each ping after ``delay`` (None: never) seconds."""

    def __init__(self) -> None:
        self.delay: dict[str, float | None] = {}
        self.pings: dict[str, list[float]] = {}

    def answered(self, key: str, since: float) -> bool:
        delay = self.delay[key]
        return delay is not None and any(t >= since for t in self.pings[key])

    def run(self, sched: HeartbeatSchedule[str], until: float, step: float = 0.001,
            start: float = 0.0) -> dict[str, float]:
        """Advance the clock in steps, calling ``due`` whenever ``next_at`` says so;
        returns when each connection expired."""
        expired: dict[str, float] = {}
        now = start
        wake = sched.next_at(now)
        while now <= until:
            if wake is not None and now >= wake:
                due = sched.due(now)
                for key in due.ping:
                    self.pings.setdefault(key, []).append(now)
                for key in due.expired:
                    assert key not in expired
                    expired[key] = now
                wake = sched.next_at(now)
            now += step
        return expired


def test_pings_every_interval_from_opening_and_never_after_forgetting() -> None:
    peers = Peers()
    sched = HeartbeatSchedule(1.0, 5.0, peers.answered, slack_s=0.05)
    for key in ("a", "b"):
        peers.delay[key] = 0.01
        sched.add(key, 0.0)
    peers.delay["c"] = 0.01
    sched.add("c", 0.3)
    peers.run(sched, until=3.5)
    for key, opened in (("a", 0.0), ("b", 0.0), ("c", 0.3)):
        times = peers.pings[key]
        assert len(times) == 3
        for k, t in enumerate(times, start=1):  # due at opened + k * interval, give or
            assert abs(t - (opened + k * 1.0)) <= 0.05 + 0.002  # take the slack (+ a step)
    sched.remove("a")
    peers.pings.clear()
    peers.run(sched, until=7.2, start=3.5)  # due 4, 5, 6, 7
    assert "a" not in peers.pings and len(peers.pings["b"]) == 4


def test_an_unanswered_ping_expires_its_connection_once_after_the_timeout() -> None:
    peers = Peers()
    sched = HeartbeatSchedule(1.0, 2.0, peers.answered, slack_s=0.05)
    peers.delay.update({"quiet": None, "alive": 0.01})
    sched.add("quiet", 0.0)
    sched.add("alive", 0.0)
    expired = peers.run(sched, until=10.0)
    assert set(expired) == {"quiet"}
    first_ping = peers.pings["quiet"][0]
    # never before ping + timeout; at most the slack late (plus one clock step)
    assert first_ping + 2.0 <= expired["quiet"] <= first_ping + 2.0 + 0.05 + 0.002
    assert sched.expired == 1 and len(sched) == 1
    # the expired one is not pinged after it expired; the live one still is
    assert max(peers.pings["quiet"]) < expired["quiet"]
    assert max(peers.pings["alive"]) > 9.0


def test_without_a_timeout_it_pings_and_never_gives_up() -> None:
    peers = Peers()
    sched = HeartbeatSchedule(0.5, None, peers.answered)
    peers.delay["quiet"] = None
    sched.add("quiet", 0.0)
    assert peers.run(sched, until=5.0) == {}
    assert len(peers.pings["quiet"]) >= 9


def test_one_wake_up_serves_every_ping_due_within_the_slack() -> None:
    peers = Peers()
    sched = HeartbeatSchedule(1.0, 5.0, peers.answered, slack_s=0.05)
    for i in range(1000):  # opened over 40 ms: all due within one slack
        key = f"c{i}"
        peers.delay[key] = 0.0
        sched.add(key, i * 0.00004)
    wake = sched.next_at(0.04)
    assert wake is not None and wake == pytest.approx(1.0)
    due = sched.due(wake)
    assert len(due.ping) == 1000 and not due.expired
    # the next wake-up is never sooner than the slack, however the queue looks
    after = sched.next_at(wake)
    assert after is not None and after >= wake + 0.05 - 1e-12


def test_nothing_scheduled_means_no_wake_up_and_bad_periods_are_refused() -> None:
    sched = HeartbeatSchedule(1.0, 1.0, lambda k, t: True)
    assert sched.next_at(0.0) is None
    sched.add("x", 0.0)
    sched.remove("x")
    assert sched.next_at(0.0) is None
    with pytest.raises(ConfigError):
        HeartbeatSchedule(0.0, 1.0, lambda k, t: True)
    with pytest.raises(ConfigError):
        HeartbeatSchedule(1.0, -1.0, lambda k, t: True)
