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

Circuit breaker: ``failure_threshold`` of the server's *own* failures within ``window_s``
open it; after ``cooldown_s`` it half-opens and lets one trial connection in; the trial's
success closes it, its failure opens it again.

Whose failure it is decides whether the breaker hears of it (:data:`FAILURES`, the table
below; :meth:`Admission.failure` counts every one by cause). A peer's bad request is
answered (or dropped) and counted, but never opens the breaker: otherwise one hostile
client sending garbage could lock every user out.

| cause                | whose   | breaker | what happened                                 |
|----------------------|---------|---------|-----------------------------------------------|
| ``bad_request``      | peer    | no      | not an HTTP request (garbage bytes, a body)   |
| ``oversized_request``| peer    | no      | a request line or header over the limits      |
| ``bad_method``       | peer    | no      | not GET (405)                                 |
| ``bad_http_version`` | peer    | no      | not HTTP/1.1 (505)                            |
| ``bad_upgrade``      | peer    | no      | no websocket ``Upgrade``/``Connection`` (426) |
| ``bad_key``          | peer    | no      | ``Sec-WebSocket-Key`` missing/malformed (400) |
| ``bad_version``      | peer    | no      | ``Sec-WebSocket-Version`` not 13 (400)        |
| ``bad_origin``       | peer    | no      | ``Origin`` not in the allowed list (403)      |
| ``bad_header``       | peer    | no      | another malformed handshake header (400)      |
| ``bad_negotiation``  | peer    | no      | an extension/subprotocol offer refused (400)  |
| ``refused``          | peer    | no      | another 4xx answer the server chose to give   |
| ``unfinished``       | peer    | no      | handshake not finished within ``open_timeout``|
| ``peer_gone``        | peer    | no      | closed the connection while it opened         |
| ``shutting_down``    | neither | no      | 503: the server is stopping                   |
| ``server_error``     | server  | yes     | 500: the server's own code raised             |
| ``handler_error``    | server  | yes     | the server's connection handler crashed       |
| ``accept_error``     | server  | yes     | ``accept()`` failed (no file descriptors...)  |

A handshake is classified by :func:`handshake_cause` from the exception the library
recorded (:data:`HANDSHAKE_ERRORS`: the peer's, whatever the status) and else the HTTP
status the server answered (5xx but 503: the server's; 4xx or no answer: the peer's). A
peer must never be able to make the server's own code raise; where it can, that is a bug
to fix, not a reason to count the peer's requests.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Literal

from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidHeader,
    InvalidMessage,
    InvalidMethod,
    InvalidOrigin,
    InvalidProtocol,
    InvalidUpgrade,
    NegotiationError,
    SecurityError,
)

Decision = Literal["accept", "wait", "reject"]
BreakerState = Literal["closed", "open", "half-open"]
Party = Literal["peer", "server", "neither"]
Cause = Literal["bad_request", "oversized_request", "bad_method", "bad_http_version",
                "bad_upgrade", "bad_key", "bad_version", "bad_origin", "bad_header",
                "bad_negotiation", "refused", "unfinished", "peer_gone", "shutting_down",
                "server_error", "handler_error", "accept_error"]


@dataclass(frozen=True, slots=True)
class FailureRule:
    """Whose doing a failure is, and whether it counts against the breaker."""

    party: Party
    breaker: bool
    what: str


# The table of the module docstring, as data: cause -> whose, counts against the breaker.
FAILURES: dict[Cause, FailureRule] = {
    "bad_request": FailureRule("peer", False, "not an HTTP request"),
    "oversized_request": FailureRule("peer", False, "request line or headers too large"),
    "bad_method": FailureRule("peer", False, "method is not GET"),
    "bad_http_version": FailureRule("peer", False, "protocol is not HTTP/1.1"),
    "bad_upgrade": FailureRule("peer", False, "no websocket upgrade asked"),
    "bad_key": FailureRule("peer", False, "Sec-WebSocket-Key missing or malformed"),
    "bad_version": FailureRule("peer", False, "Sec-WebSocket-Version is not 13"),
    "bad_origin": FailureRule("peer", False, "Origin not allowed"),
    "bad_header": FailureRule("peer", False, "malformed handshake header"),
    "bad_negotiation": FailureRule("peer", False, "extension or subprotocol offer refused"),
    "refused": FailureRule("peer", False, "another 4xx answer"),
    "unfinished": FailureRule("peer", False, "handshake not finished in time"),
    "peer_gone": FailureRule("peer", False, "peer closed the connection"),
    "shutting_down": FailureRule("neither", False, "server stopping (503)"),
    "server_error": FailureRule("server", True, "server code raised in the handshake (500)"),
    "handler_error": FailureRule("server", True, "connection handler crashed"),
    "accept_error": FailureRule("server", True, "accept() failed"),
}

# The peer's handshake errors, most specific first: (exception type, the header it names
# or "" for any, cause). The first row the recorded exception matches names the cause.
HANDSHAKE_ERRORS: tuple[tuple[type[BaseException], str, Cause], ...] = (
    (InvalidOrigin, "", "bad_origin"),
    (InvalidUpgrade, "", "bad_upgrade"),
    (InvalidHeader, "sec-websocket-key", "bad_key"),
    (InvalidHeader, "sec-websocket-version", "bad_version"),
    (InvalidHeader, "", "bad_header"),
    (InvalidMethod, "", "bad_method"),
    (InvalidProtocol, "", "bad_http_version"),
    (NegotiationError, "", "bad_negotiation"),
    (SecurityError, "", "oversized_request"),
    (InvalidHandshake, "", "bad_request"),
)

# Why a handshake ended with no answer sent, the library having no verdict on the request.
NO_ANSWER: tuple[tuple[type[BaseException], Cause], ...] = (
    (TimeoutError, "unfinished"),  # open_timeout ran out
    (BaseException, "peer_gone"),  # the connection was lost (reset, closed)
)

# Why a request could not even be parsed (the ``__cause__`` of ``InvalidMessage``).
UNPARSEABLE: tuple[tuple[type[BaseException], Cause], ...] = (
    (SecurityError, "oversized_request"),
    (EOFError, "peer_gone"),
    (BaseException, "bad_request"),
)

# Why a connection handler ended with an exception.
HANDLER_ERRORS: tuple[tuple[type[BaseException], Cause], ...] = (
    (ConnectionClosed, "peer_gone"),  # the peer went away mid-send: not the server's fault
    (BaseException, "handler_error"),
)


def _first(table: tuple[tuple[type[BaseException], Cause], ...],
           error: BaseException) -> Cause:
    return next(cause for kind, cause in table if isinstance(error, kind))


def handshake_cause(status: int | None, error: BaseException | None) -> Cause | None:
    """Why an opening handshake failed, or ``None`` if it did not fail.

    Args:
        status: The HTTP status the server answered (``None``: it sent no answer).
        error: The exception the library recorded for the handshake, if any.

    The recorded exception decides first: one of :data:`HANDSHAKE_ERRORS` is the peer's
    whatever the status (the library answers HTTP/1.0 with a 505). Otherwise the status
    does: none at all (:data:`NO_ANSWER`), or a 4xx, is the peer's; 503 means the server is
    stopping; any other 5xx is the server's own code raising (even a ``ConnectionError``
    it hit itself). A 101 upgraded and a 2xx or 3xx is an HTTP
    answer the server chose to give (``/metrics``, ``/healthz``): neither is a failure.
    """
    if error is not None:
        if isinstance(error, InvalidMessage) and error.__cause__ is not None:
            return _first(UNPARSEABLE, error.__cause__)
        header = error.name.lower() if isinstance(error, InvalidHeader) else ""
        for kind, name, cause in HANDSHAKE_ERRORS:
            if isinstance(error, kind) and name in ("", header):
                return cause
    if status is None:
        return "peer_gone" if error is None else _first(NO_ANSWER, error)
    if status == 503:
        return "shutting_down"
    if status >= 500:
        return "server_error"
    return "refused" if status >= 400 else None


def handler_cause(error: BaseException) -> Cause:
    """Why a connection handler ended with ``error`` (:data:`HANDLER_ERRORS`)."""
    return _first(HANDLER_ERRORS, error)


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
        """The server itself failed (only causes whose :data:`FAILURES` rule says so)."""
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

    def failure(self, cause: Cause, now: float) -> bool:
        """Count a failed connection by cause; tell the breaker only of the server's own.

        Returns:
            Whether it counted against the breaker (:data:`FAILURES`).
        """
        rule = FAILURES[cause]
        self.counts[f"failed_{cause}"] += 1
        self.counts[f"failures_{rule.party}"] += 1
        if rule.breaker:
            self.breaker.failure(now)
        return rule.breaker

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
