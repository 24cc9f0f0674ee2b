"""The live server's heartbeat: one schedule and one timer for all its connections.

What lives here: :class:`HeartbeatSchedule`, sans-I/O (time is passed in), which says whom
to ping and whom to give up on, and :class:`Heartbeat`, which runs it on the event loop
for a :class:`~wslab.harness.server.LiveServer`. What must not live here: how a ping or
the keepalive close is written (``wsadapter.py``: :func:`~wslab.harness.wsadapter.send_ping`,
:func:`~wslab.harness.wsadapter.fail_keepalive`), and the client side's heartbeat
(``held.py``, ``loadconn.py``).

The rules are websockets' keepalive (``ping_interval`` / ``ping_timeout``):

| event                                       | the server                                  |
|---------------------------------------------|---------------------------------------------|
| ``interval`` after the connection opened,   | pings it                                    |
| then every ``interval``                     |                                             |
| no pong ``timeout`` after a ping            | closes it 1011 "keepalive ping timeout"     |
|                                             | (then TCP is cut after the close timeout)   |
| no ``interval``                             | never pings                                 |
| no ``timeout``                              | pings, never gives up                       |

Why not the library's own keepalive: it runs a task per connection that wakes twice per
ping (a sleep, then a wait for the pong under a timeout). Measured with py-spy on a scale
worker holding 2,000 connections at a 5 s interval, one ping cost about ten times one
broadcast write (docs/performance.md, ``scale``), so at 50,000 connections the heartbeat
alone took most of a core. Here every connection shares one timer: every interval has the
same length, so pings and deadlines fall due in the order they were scheduled and two
queues (no heap) hold them; one wake-up serves every ping due within ``slack_s``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from wslab.errors import ConfigError

K = TypeVar("K", bound=Hashable)

SLACK_S = 0.05
"""Wake-ups are at least this far apart, and one serves every ping due within it: a ping
goes out at most this early or late, a dead connection is closed at most this late
(capped at a twentieth of the interval)."""


@dataclass
class Due(Generic[K]):
    """What :meth:`HeartbeatSchedule.due` found: connections to ping, and to give up on."""

    ping: list[K] = field(default_factory=list)
    expired: list[K] = field(default_factory=list)


class HeartbeatSchedule(Generic[K]):
    """Whom to ping and whom to give up on, at a time passed in.

    Args:
        interval_s: Ping each connection this long after it opened, then as often.
        timeout_s: A ping unanswered this long expires its connection (None: never).
        answered: ``answered(key, since)``: has the connection's pong arrived at or after
            ``since`` (the ping's time)?
        slack_s: How early or late a ping may go so that one call serves several.
    """

    def __init__(self, interval_s: float, timeout_s: float | None,
                 answered: Callable[[K, float], bool], slack_s: float = SLACK_S) -> None:
        if interval_s <= 0 or (timeout_s is not None and timeout_s <= 0):
            raise ConfigError("heartbeat interval and timeout must be > 0 s")
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.slack_s = min(slack_s, interval_s / 20)
        self._answered = answered
        self._live: set[K] = set()
        self._pings: deque[tuple[float, K]] = deque()  # (due, key), due never decreasing
        self._checks: deque[tuple[float, K, float]] = deque()  # (deadline, key, pinged at)
        self.expired = 0  # connections given up on, in all

    def __len__(self) -> int:
        return len(self._live)

    def add(self, key: K, now: float) -> None:
        """Start the heartbeat of a connection that opened at ``now``."""
        if key not in self._live:
            self._live.add(key)
            due = now + self.interval_s
            if self._pings:  # a ping sent early was rescheduled up to the slack later
                due = max(due, self._pings[-1][0])
            self._pings.append((due, key))

    def remove(self, key: K) -> None:
        """Forget a connection (its queued entries are dropped as they come up)."""
        self._live.discard(key)

    def due(self, now: float) -> Due[K]:
        """Connections to ping now (due within the slack) and those whose ping went
        unanswered past the timeout (expired ones are forgotten)."""
        out: Due[K] = Due()
        live, pings, checks = self._live, self._pings, self._checks
        while checks and checks[0][0] <= now:
            _deadline, key, pinged = checks.popleft()
            if key in live and not self._answered(key, pinged):
                live.discard(key)
                out.expired.append(key)
        horizon = now + self.slack_s
        timeout = self.timeout_s
        while pings and pings[0][0] <= horizon:
            was_due, key = pings.popleft()
            if key not in live:
                continue
            out.ping.append(key)
            # from when it was due, so pings sent early do not drift earlier and earlier
            pings.append((max(was_due, now) + self.interval_s, key))
            if timeout is not None:
                checks.append((now + timeout, key, now))
        self.expired += len(out.expired)
        return out

    def next_at(self, now: float) -> float | None:
        """When :meth:`due` has something to do next (not sooner than the slack from
        ``now``, so wake-ups are spaced); None when nothing is scheduled."""
        self._drop_gone()
        heads = [self._pings[0][0]] if self._pings else []
        if self._checks:
            heads.append(self._checks[0][0])
        if not heads:
            return None
        return max(min(heads), now + self.slack_s)

    def _drop_gone(self) -> None:
        live = self._live
        while self._pings and self._pings[0][1] not in live:
            self._pings.popleft()
        while self._checks and self._checks[0][1] not in live:
            self._checks.popleft()


class Heartbeat(Generic[K]):
    """A :class:`HeartbeatSchedule` on the running loop: one timer, re-armed for the next
    moment that matters.

    Args:
        interval_s, timeout_s: As for :class:`HeartbeatSchedule`.
        answered: As for :class:`HeartbeatSchedule`.
        ping: Writes a ping to a connection.
        expire: Gives up on a connection (close 1011).
    """

    def __init__(self, interval_s: float, timeout_s: float | None,
                 answered: Callable[[K, float], bool], ping: Callable[[K], None],
                 expire: Callable[[K], object]) -> None:
        self.schedule: HeartbeatSchedule[K] = HeartbeatSchedule(interval_s, timeout_s,
                                                                answered)
        self._ping = ping
        self._expire = expire
        self._timer: asyncio.TimerHandle | None = None
        self._armed_at: float | None = None

    def watch(self, key: K) -> None:
        """Start pinging a connection that has just opened."""
        now = time.monotonic()
        self.schedule.add(key, now)
        self._arm(now)

    def forget(self, key: K) -> None:
        """Stop pinging a connection (it closed)."""
        self.schedule.remove(key)

    def stop(self) -> None:
        """Cancel the timer (the server is stopping)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._armed_at = None

    def _arm(self, now: float) -> None:
        at = self.schedule.next_at(now)
        if at is None or (self._armed_at is not None and self._armed_at <= at):
            return
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        # the loop's clock is time.monotonic() on asyncio and uvloop alike; convert anyway
        self._timer = loop.call_at(loop.time() + (at - now), self._tick)
        self._armed_at = at

    def _tick(self) -> None:
        self._timer = None
        self._armed_at = None
        now = time.monotonic()
        due = self.schedule.due(now)
        for key in due.expired:
            self._expire(key)
        for key in due.ping:
            self._ping(key)
        self._arm(now)
