"""Hostile handshakes against a live server: a peer's bad requests never lock others out.

The circuit breaker sheds load when the *server* fails; a client's bad request is the
client's failure (``wslab.harness.admission.FAILURES``). These tests send real bytes over
raw loopback sockets to an in-process :class:`LiveServer`:

- 1,000 bad handshakes of every kind in ``faults/badhandshakes.py`` from one client, then a
  good client connects at once and is served;
- headers that used to crash the connection handler (a room number over 4,300 digits,
  a non-ASCII digit) are served, so they cannot be turned into server failures;
- a client that claims another open connection's ``X-Wslab-Client`` label gets a label of
  its own: both are served their own messages, and the first keeps its entry;
- the server's own failures still open the breaker: a connection handler that crashes,
  and ``accept()`` failing for want of file descriptors; an ``on_open`` hook that raises
  still leaves no session behind.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import resource
import socket
import time
import urllib.request
from collections import Counter
from collections.abc import Callable

import pytest
from faults.badhandshakes import GOOD, PEER_REQUESTS, request
from faults.rawws import GUID, RawClient, close_frame
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from wslab.config import TuningConfig
from wslab.harness.admission import CircuitBreaker
from wslab.harness.server import LiveServer
from wslab.harness.session import Session
from wslab.harness.wiring import CLIENT_HEADER, ROOM_HEADER

BAD_HANDSHAKES = 1000
AT_ONCE = 16  # connections in flight at a time, all from the one client
ORIGIN = Origin(GOOD)


async def _attempt(port: int, raw: bytes, answered: bool) -> int | None:
    """Send ``raw`` on a fresh connection; the HTTP status answered (None: no answer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    got = b""
    try:
        writer.write(raw)
        if not answered:
            writer.write_eof()
        with contextlib.suppress(ConnectionError):
            while chunk := await asyncio.wait_for(reader.read(65536), 10):
                got += chunk
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return int(got.split()[1]) if got.startswith(b"HTTP/1.1 ") else None


async def _until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def _echo(port: int, text: str = "hello") -> str:
    """What a well-behaved client gets back for one message."""
    async with connect(f"ws://127.0.0.1:{port}/", origin=ORIGIN, open_timeout=5,
                       ping_interval=None) as ws:
        await ws.send(text)
        reply = await asyncio.wait_for(ws.recv(), 5)
    return reply if isinstance(reply, str) else reply.decode()


def _metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
            if line.startswith("wslab_")}


@pytest.mark.timeout(120)
def test_a_thousand_bad_handshakes_from_one_client_lock_no_one_out() -> None:
    async def main() -> None:
        # Default breaker (20 failures in 10 s): it would have opened 50 times over if a
        # peer's failures counted.
        async with LiveServer(TuningConfig(), origins=[GOOD]) as server:
            adm = server.admission
            plan = [PEER_REQUESTS[i % len(PEER_REQUESTS)] for i in range(BAD_HANDSHAKES)]
            statuses: dict[str, set[int | None]] = {}
            gate = asyncio.Semaphore(AT_ONCE)

            async def one(name: str, raw: bytes, status: int | None) -> None:
                async with gate:
                    got = await _attempt(server.port, raw, status is not None)
                statuses.setdefault(name, set()).add(got)

            await asyncio.gather(*(one(n, raw, st) for n, raw, st, _ in plan))
            # A good client, at once: served.
            assert await _echo(server.port) == "hello"
            assert adm.counts["accepted"] == 1 and adm.counts["rejected_breaker"] == 0
            # Every bad one was answered as the library answers it (or not at all) ...
            assert statuses == {n: {st} for n, _, st, _ in PEER_REQUESTS}
            # ... and counted, once each, as the peer's failure under its own cause.
            await _until(lambda: adm.counts["failures_peer"] >= BAD_HANDSHAKES,
                         "every bad handshake to be counted")
            expected = Counter(cause for *_, cause in plan)
            assert {c: adm.counts[f"failed_{c}"] for c in expected} == dict(expected)
            assert adm.counts["failures_peer"] == BAD_HANDSHAKES
            assert adm.counts["failures_server"] == 0
            assert adm.breaker.state == "closed" and not adm.breaker.transitions
            m = await asyncio.to_thread(_metrics, server.port)
            assert m["wslab_admission_failures_peer"] == BAD_HANDSHAKES
            assert 'wslab_admission_breaker{state="closed"}' in m

    asyncio.run(main())


async def _raw_upgrade(port: int, room: str) -> RawClient:
    """Open a WebSocket by hand with a raw ``X-Wslab-Room`` header (any latin-1 bytes)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(request(Sec_WebSocket_Key=key, extra=(f"{ROOM_HEADER}: {room}",)))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101 "), head
    accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest())
    assert b"Sec-WebSocket-Accept: " + accept in head
    return RawClient(reader, writer)


# Digits int() refuses: too many of them, or the latin-1 superscripts str.isdigit() allows.
HOSTILE_ROOMS = ["9" * 5000, "0" * 4400, "\xb2", "\xb9\xb3", "-1", "7 7", ""]


@pytest.mark.timeout(60)
def test_hostile_handshake_headers_do_not_crash_the_handler() -> None:
    # A crash here would be counted as the server's own failure: a peer that can crash the
    # handler could open the breaker for everyone. So each of these must simply be served.
    async def main() -> None:
        async with LiveServer(TuningConfig(), origins=[GOOD], scenario="room",
                              rooms=4) as server:
            for room in HOSTILE_ROOMS:
                raw = await _raw_upgrade(server.port, room)
                await _until(lambda: len(server.sessions) == 1, "the session")
                assert all(0 <= r < 4 for r in server.play.room_of.values())
                raw.send(close_frame(1000))
                assert await raw.close_code() == 1000
                await _until(lambda: not server.sessions, "the session to end")
            adm = server.admission
            assert adm.counts["failures_server"] == 0, dict(adm.counts)
            assert adm.counts["accepted"] == len(HOSTILE_ROOMS)

    asyncio.run(main())


@pytest.mark.timeout(60)
def test_a_client_claiming_another_clients_label_cannot_take_its_place() -> None:
    # ``wslab bench`` joins the two sides' logs by the label, so a free one is kept as
    # sent; one an open connection holds gets a suffix, and the holder keeps its entry.
    async def main() -> None:
        async with LiveServer(TuningConfig(), origins=[GOOD], scenario="echo") as server:
            url, claim = f"ws://127.0.0.1:{server.port}/", {CLIENT_HEADER: "victim"}

            def push(conn: str, text: str) -> int:
                return server.push_to([conn], 100, time.monotonic(), "normal", "direct",
                                      text.encode(), True)

            async with connect(url, origin=ORIGIN, additional_headers=claim,
                               ping_interval=None) as victim:
                await _until(lambda: len(server.sessions) == 1, "the victim's session")
                held = server.sessions["victim"]
                async with connect(url, origin=ORIGIN, additional_headers=claim,
                                   ping_interval=None) as thief:
                    await _until(lambda: len(server.sessions) == 2, "a session of its own",
                                 timeout=5)
                    assert server.sessions["victim"] is held
                    (other,) = set(server.sessions) - {"victim"}
                    assert other.startswith("victim#")
                    for ws, text in ((victim, "echo victim"), (thief, "echo thief")):
                        await ws.send(text)
                        assert await asyncio.wait_for(ws.recv(), 5) == text
                    assert push("victim", "to victim") == 1 and push(other, "to thief") == 1
                    assert await asyncio.wait_for(victim.recv(), 5) == "to victim"
                    assert await asyncio.wait_for(thief.recv(), 5) == "to thief"
                # The second one leaving takes nothing of the first's with it.
                await _until(lambda: len(server.sessions) == 1, "the thief's session to end")
                assert server.sessions.get("victim") is held
                assert push("victim", "still yours") == 1
                assert await asyncio.wait_for(victim.recv(), 5) == "still yours"
            await _until(lambda: not server.sessions, "the victim's session to end")
            assert server.metrics.active == 0

    asyncio.run(main())


def _crash_labelled(conn: str, session: Session) -> None:
    if conn.startswith("crash"):
        raise RuntimeError(f"a bug in the server's own on_open hook ({conn})")


async def _closed_with(ws: ClientConnection) -> tuple[int | None, str]:
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 5)
    return ws.close_code, ws.close_reason or ""


@pytest.mark.timeout(60)
def test_the_servers_own_handler_crashes_still_open_the_breaker() -> None:
    async def main() -> None:
        server = LiveServer(TuningConfig(), origins=[GOOD])
        server.admission.breaker = CircuitBreaker(failure_threshold=3, window_s=30,
                                                  cooldown_s=0.5)
        server.on_open.append(_crash_labelled)
        async with server:
            adm = server.admission
            # Bad requests in between change nothing ...
            for _ in range(10):
                assert await _attempt(server.port, request(Origin="https://evil.test"),
                                      True) == 403
            for k in range(3):
                async with connect(f"ws://127.0.0.1:{server.port}/", origin=ORIGIN,
                                   additional_headers={CLIENT_HEADER: f"crash{k}"},
                                   ping_interval=None) as ws:
                    assert (await _closed_with(ws))[0] == 1011  # internal error
            await _until(lambda: adm.counts["failed_handler_error"] == 3, "three crashes")
            # ... three crashes of its own open it: the next good client is turned away,
            assert adm.breaker.state == "open"
            assert adm.active == 0  # and the crashed connections gave their slots back.
            async with connect(f"ws://127.0.0.1:{server.port}/", origin=ORIGIN,
                               ping_interval=None) as ws:
                code, reason = await _closed_with(ws)
            assert code == 1013 and "breaker open" in reason
            # After the cool-down a trial gets in, is served, and closes it again.
            await asyncio.sleep(2 * adm.breaker.cooldown_s)
            assert await _echo(server.port) == "hello"
            assert adm.breaker.state == "closed"
            assert adm.counts["failures_server"] == 3 and adm.counts["failures_peer"] == 10

    asyncio.run(main())


@pytest.mark.timeout(60)
def test_an_on_open_hook_that_raises_leaves_no_session_behind() -> None:
    async def main() -> None:
        server = LiveServer(TuningConfig(), origins=[GOOD])
        closed: list[str] = []
        server.on_open.append(_crash_labelled)
        server.on_close.append(closed.append)
        async with server:
            async with connect(f"ws://127.0.0.1:{server.port}/", origin=ORIGIN,
                               additional_headers={CLIENT_HEADER: "crash0"},
                               ping_interval=None) as ws:
                assert (await _closed_with(ws))[0] == 1011
            await _until(lambda: server.admission.counts["failed_handler_error"] == 1,
                         "the crash")
            assert server.sessions == {} and server.metrics.active == 0
            assert closed == ["crash0"]  # the hooks that did run hear it closed
            async with connect(f"ws://127.0.0.1:{server.port}/", origin=ORIGIN,
                               additional_headers={CLIENT_HEADER: "fine"},
                               ping_interval=None) as ws:
                await ws.send("hello")
                assert await asyncio.wait_for(ws.recv(), 5) == "hello"
                assert list(server.sessions) == ["fine"] and server.metrics.active == 1
            await _until(lambda: not server.sessions, "the session to end")
            assert server.metrics.active == 0 and closed == ["crash0", "fine"]
            assert server.metrics.counts["connections_total"] == 2

    asyncio.run(main())


@pytest.mark.timeout(60)
def test_accept_failing_for_want_of_file_descriptors_opens_the_breaker() -> None:
    async def main() -> None:
        server = LiveServer(TuningConfig(), origins=[GOOD])
        server.admission.breaker = CircuitBreaker(failure_threshold=2, window_s=30,
                                                  cooldown_s=60)
        async with server:
            adm = server.admission
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            # Connect while the loop is not running: the kernel queues them, unaccepted.
            waiting = [socket.create_connection(("127.0.0.1", server.port), timeout=5)
                       for _ in range(2)]
            lowest_free = os.open(os.devnull, os.O_RDONLY)
            os.close(lowest_free)
            # No new descriptor can be made now: the server's accept() fails with EMFILE
            # (asyncio retries once a second).
            resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
            try:
                await _until(lambda: adm.counts["failed_accept_error"] >= 2,
                             "accept() to fail twice", timeout=15)
            finally:
                resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
                for s in waiting:
                    s.close()
            assert adm.breaker.state == "open"
            assert adm.counts["failures_server"] == adm.counts["failed_accept_error"]
            async with connect(f"ws://127.0.0.1:{server.port}/", origin=ORIGIN,
                               ping_interval=None) as ws:
                code, reason = await _closed_with(ws)
            assert code == 1013 and "breaker open" in reason

    asyncio.run(main())
