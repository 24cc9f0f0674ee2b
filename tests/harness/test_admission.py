"""Admission decisions and the circuit breaker, driven by a fake clock, and the table of
whose failure is whose (only the server's own open the breaker)."""

from __future__ import annotations

import pytest
from faults.badhandshakes import GOOD, PEER_REQUESTS, request
from websockets.exceptions import ConnectionClosedError
from websockets.server import ServerProtocol
from websockets.typing import Origin

from wslab.config import TuningConfig
from wslab.harness.admission import (
    FAILURES,
    HANDLER_ERRORS,
    HANDSHAKE_ERRORS,
    NO_ANSWER,
    UNPARSEABLE,
    Admission,
    CircuitBreaker,
    handler_cause,
    handshake_cause,
)
from wslab.harness.wiring import server_extensions


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


# -- whose failure it is: only the server's own count against the breaker ----------------

EXTENSIONS = server_extensions(TuningConfig().updated(
    {"compression.algorithm": "zstd-stream"}).compression)  # x-wslab-zstd, then deflate


@pytest.mark.parametrize(("raw", "status", "cause"), [r[1:] for r in PEER_REQUESTS],
                         ids=[r[0] for r in PEER_REQUESTS])
def test_every_bad_request_the_library_sees_is_the_peers(raw: bytes, status: int | None,
                                                        cause: str) -> None:
    # The library's own sans-I/O handshake, fed the peer's bytes: the very status and
    # exception the live server sees, classified.
    proto = ServerProtocol(origins=[Origin(GOOD)], extensions=EXTENSIONS)
    proto.receive_data(raw)
    events = proto.events_received()
    if events:  # a request: the library's verdict on it
        got: int | None = proto.accept(events[0]).status_code  # type: ignore[arg-type]
    else:  # no request: the library may still have answered (431, 414) before closing
        proto.receive_eof()  # the peer closes its side
        sent = b"".join(proto.data_to_send())
        got = int(sent.split()[1]) if sent.startswith(b"HTTP/1.1 ") else None
    assert got == status
    found = handshake_cause(got, proto.handshake_exc)
    assert found == cause
    assert FAILURES[found].party == "peer" and not FAILURES[found].breaker


def test_a_good_request_is_no_failure_and_status_decides_whose_it_is() -> None:
    proto = ServerProtocol(origins=[Origin(GOOD)], extensions=EXTENSIONS)
    proto.receive_data(request())
    (req,) = proto.events_received()
    assert proto.accept(req).status_code == 101  # type: ignore[arg-type]
    assert handshake_cause(101, proto.handshake_exc) is None
    assert handshake_cause(200, None) is None  # /metrics, /healthz: served
    assert handshake_cause(500, RuntimeError("bug")) == "server_error"
    assert handshake_cause(500, None) == "server_error"
    assert handshake_cause(503, None) == "shutting_down"
    assert handshake_cause(404, None) == "refused"
    assert handshake_cause(None, None) == "peer_gone"
    assert handshake_cause(None, TimeoutError()) == "unfinished"
    assert handshake_cause(None, ConnectionResetError()) == "peer_gone"
    # The server's own code hitting a ConnectionError (its broker, say) is still its own.
    assert handshake_cause(500, ConnectionRefusedError()) == "server_error"
    assert handler_cause(ConnectionClosedError(None, None)) == "peer_gone"
    assert handler_cause(RuntimeError("bug")) == "handler_error"


def test_the_table_counts_the_servers_own_failures_and_nothing_else() -> None:
    assert {c for c, r in FAILURES.items() if r.breaker} == {
        "server_error", "handler_error", "accept_error"}
    assert all(r.breaker == (r.party == "server") for r in FAILURES.values())
    # Every cause a classifier can name has a rule.
    named = {c for _, _, c in HANDSHAKE_ERRORS} | {c for _, c in UNPARSEABLE} | \
        {c for _, c in NO_ANSWER} | {c for _, c in HANDLER_ERRORS}
    assert named <= set(FAILURES)


def test_peer_failures_never_open_the_breaker_but_server_failures_do() -> None:
    a = Admission(10, 10, CircuitBreaker(failure_threshold=3, window_s=10, cooldown_s=5))
    peer = [c for c, r in FAILURES.items() if not r.breaker]
    for i in range(1000):
        assert a.failure(peer[i % len(peer)], i * 0.001) is False
    assert a.breaker.state == "closed" and a.arrive(1.0) == ("accept", "")
    assert a.counts["failures_peer"] + a.counts["failures_neither"] == 1000
    assert sum(a.counts[f"failed_{c}"] for c in peer) == 1000
    for t in (2.0, 2.1, 2.2):
        assert a.failure("handler_error", t) is True
    assert a.breaker.state == "open" and a.arrive(2.3) == ("reject", "breaker open")
    assert a.snapshot()["failures_server"] == 3


HOSTILE_OFFERS = [
    "permessage-deflate; server_max_window_bits=99",
    "permessage-deflate; client_max_window_bits=abc",
    "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
    "permessage-deflate; mem_level=-1",
    "x-wslab-zstd; mode=bogus",
    "x-wslab-zstd; max_window_log=99999999999999999999",
    "x-wslab-zstd; mode=message; dict=" + "9" * 5000,
    "x-wslab-zstd; mode=stream; mode=message",
    "x-wslab-zstd; dict=\xff",
    'x-wslab-zstd; mode="stream',
]


@pytest.mark.parametrize("offer", HOSTILE_OFFERS)
def test_no_extension_offer_makes_the_servers_own_code_raise(offer: str) -> None:
    # A 500 would count against the breaker: a peer must never be able to cause one.
    proto = ServerProtocol(extensions=EXTENSIONS)
    proto.receive_data(request(Sec_WebSocket_Extensions=offer))
    (req,) = proto.events_received()
    status = proto.accept(req).status_code  # type: ignore[arg-type]
    cause = handshake_cause(status, proto.handshake_exc)
    assert cause is None or not FAILURES[cause].breaker, (status, proto.handshake_exc)
