"""Heartbeat: a peer that stops answering is closed after interval + timeout, both ways.

Server side: a raw client (``tests/faults/rawws.py``) completes the handshake and then never
answers a ping; the wslab server closes it with 1011 once ``heartbeat_interval_s`` (first
ping) + ``heartbeat_timeout_s`` (no pong) have passed, while a client that answers stays.
One that is frozen (reads and writes nothing after its handshake, as a hung process whose
kernel still holds the socket) leaves the close frame unanswered too: the server drops it
after its close timeout, the heartbeat timeout, not websockets' default 10 s.
Client side: a real websockets server in a child process is stopped with SIGSTOP (the
kernel still holds its sockets, as with a hung process); wslab's ``LoadClient`` and the
scale holders (``HoldClient``) give up on it after interval + timeout, and once the server
is let go (SIGCONT) it reads their close frames: 1011, the keepalive's code.

Intervals are a fraction of a second so the file takes seconds; the upper bounds leave
``MARGIN_S`` for a loaded 2-core machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import struct
import subprocess
import sys
import time

from faults.rawws import RawClient
from websockets.asyncio.client import connect
from websockets.protocol import State

from wslab.config import TuningConfig
from wslab.harness.client import LoadClient
from wslab.harness.holder import HoldClient
from wslab.harness.linepipe import LinePipe
from wslab.harness.server import LiveServer
from wslab.harness.wiring import serve_kwargs

INTERVAL_S = 0.3
TIMEOUT_S = 0.8
MARGIN_S = 3.0
CONFIG = TuningConfig().updated({"scaling.heartbeat_interval_s": INTERVAL_S,
                                 "scaling.heartbeat_timeout_s": TIMEOUT_S,
                                 "compression.algorithm": "none"})


async def _frames_until_close(raw: RawClient, started: float) -> tuple[list[int], float, int]:
    """Opcodes read until the server's close frame; when it came and its code."""
    opcodes: list[int] = []
    while True:
        opcode, payload = await asyncio.wait_for(raw.read_frame(), MARGIN_S + 10 * TIMEOUT_S)
        opcodes.append(opcode)
        if opcode == 0x8:
            return opcodes, time.monotonic() - started, struct.unpack("!H", payload[:2])[0]


def test_server_closes_a_client_that_never_answers_pings_and_keeps_one_that_does() -> None:
    async def main() -> dict[str, object]:
        async with LiveServer(CONFIG, scenario="echo") as server:
            healthy = await connect(f"ws://127.0.0.1:{server.port}/", compression=None,
                                    ping_interval=None)  # answers pings, sends none
            raw = await RawClient.open(server.port)
            started = time.monotonic()
            assert raw.handshake.status == 101
            opcodes, closed_after, code = await _frames_until_close(raw, started)
            raw.writer.close()
            # Hold on past a few more heartbeats: the client that answers is kept.
            await asyncio.sleep(max(0.0, started + 2 * (INTERVAL_S + TIMEOUT_S)
                                    - time.monotonic()))
            await healthy.send("still here")
            echoed = await asyncio.wait_for(healthy.recv(), MARGIN_S)
            for _ in range(int(MARGIN_S / 0.01)):
                if len(server.sessions) == 1:
                    break
                await asyncio.sleep(0.01)
            kept = next(iter(server.sessions.values())).ws
            state = {"opcodes": opcodes, "closed_after": closed_after, "code": code,
                     "echoed": echoed, "healthy": healthy.state, "latency": kept.latency,
                     "sessions": len(server.sessions), "active": server.metrics.active}
            await healthy.close()
            return state

    got = asyncio.run(main())
    assert got["code"] == 1011  # websockets' "keepalive ping timeout"
    assert 0x9 in got["opcodes"]  # it was pinged first ...
    assert 0xA not in got["opcodes"]
    # ... and closed once the first ping (after the interval) went unanswered for the timeout.
    due = INTERVAL_S + TIMEOUT_S
    assert due - 0.1 <= got["closed_after"] <= due + MARGIN_S  # type: ignore[operator]
    assert got["echoed"] == "still here" and got["healthy"] is State.OPEN
    assert got["sessions"] == 1 and got["active"] == 1
    # the pongs of the one that answers give its round trip, where websockets keeps it
    assert 0 < got["latency"] < MARGIN_S  # type: ignore[operator]


def test_close_timeout_follows_the_heartbeat_timeout_never_above_it() -> None:
    assert serve_kwargs(CONFIG)["close_timeout"] == TIMEOUT_S
    slow = TuningConfig().updated({"scaling.heartbeat_timeout_s": 60.0})
    assert serve_kwargs(slow)["close_timeout"] == 10.0  # websockets' default, at most
    none = TuningConfig().updated({"scaling.heartbeat_timeout_s": None})
    assert serve_kwargs(none)["close_timeout"] == 10.0


def test_server_drops_a_frozen_client_within_interval_timeout_and_margin() -> None:
    async def main() -> tuple[float | None, float, int]:
        async with LiveServer(CONFIG, scenario="echo") as server:
            raw = await RawClient.open(server.port)  # then never reads nor writes again
            opened = time.monotonic()
            assert raw.handshake.status == 101
            assert await _when(lambda: len(server.sessions) == 1, MARGIN_S) is not None
            gone = await _when(lambda: not server.sessions and server.metrics.active == 0,
                               INTERVAL_S + TIMEOUT_S + MARGIN_S)
            raw.writer.close()
            return gone, opened, server.metrics.counts["connections_total"]

    gone, opened, total = asyncio.run(main())
    assert total == 1
    # Ping after the interval, no pong within the timeout: close 1011 sent; then no close
    # frame back within the close timeout (the heartbeat timeout): TCP cut, session gone.
    assert gone is not None, "the frozen client was still held after interval + timeout + margin"
    assert INTERVAL_S + TIMEOUT_S - 0.1 <= gone - opened <= INTERVAL_S + TIMEOUT_S + MARGIN_S


SERVER = """
import asyncio
from websockets.asyncio.server import serve

async def handler(ws):
    try:
        async for message in ws:
            await ws.send(message)
    finally:
        print(ws.request.headers.get("X-Wslab-Client"), ws.close_code, flush=True)

async def main():
    async with serve(handler, "127.0.0.1", 0, ping_interval=None, compression=None) as s:
        print(s.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()

asyncio.run(main())
"""


def _lines(proc: subprocess.Popen[str], count: int, timeout: float) -> list[list[str]]:
    """Up to ``count`` lines of the child's output, for at most ``timeout`` seconds."""
    assert proc.stdout is not None
    return [line.split() for line in LinePipe(proc.stdout).lines(count, timeout)]


async def _when(check: object, timeout: float) -> float | None:
    """The time ``check()`` first held (polled every 10 ms), or None after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return time.monotonic()
        await asyncio.sleep(0.01)
    return None


def test_load_client_and_holders_close_a_server_that_stops_answering() -> None:
    proc = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        url = f"ws://127.0.0.1:{int(proc.stdout.readline())}/"

        async def main() -> dict[str, object]:
            holders = HoldClient(url, CONFIG, connections=2, prefix="held")
            await holders.ramp()
            load = LoadClient(url, CONFIG, send=False, expect_s2c=1, drain_timeout=60,
                              prefix="load")
            loading = asyncio.create_task(load.run())
            # Alive and answering (though it never pings): everyone stays connected.
            await asyncio.sleep(2 * (INTERVAL_S + TIMEOUT_S))
            alive = (len(holders.open), holders.stats.closed_early, loading.done())
            os.kill(proc.pid, signal.SIGSTOP)
            stopped = time.monotonic()
            limit = 2 * (INTERVAL_S + TIMEOUT_S) + MARGIN_S
            held_gone = await _when(lambda: not holders.open, limit)
            load_gone = await _when(loading.done, limit)
            result = await loading if loading.done() else None
            loading.cancel()
            await asyncio.gather(loading, return_exceptions=True)
            await holders.close()
            return {"alive": alive, "stopped": stopped, "held_gone": held_gone,
                    "load_gone": load_gone, "result": result, "stats": holders.stats}

        got = asyncio.run(main())
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
    # Let go, the server reads what the clients sent before they hung up: their close frames.
    lines = _lines(proc, 3, MARGIN_S)
    proc.terminate()
    proc.wait(10)

    assert got["alive"] == (2, 0, False)
    stopped = float(got["stopped"])  # type: ignore[arg-type]
    held_gone, load_gone = got["held_gone"], got["load_gone"]
    assert isinstance(held_gone, float) and isinstance(load_gone, float), got
    # Holders: nothing heard for interval + timeout after the last pong (at most
    # interval + timeout / 2 before the stop, when they last pinged).
    held_after, load_after = held_gone - stopped, load_gone - stopped
    assert TIMEOUT_S / 2 - 0.1 <= held_after <= INTERVAL_S + TIMEOUT_S + MARGIN_S
    stats = got["stats"]
    assert stats.keepalive_timeouts == 2 and stats.closed_early == 2  # type: ignore[attr-defined]
    # LoadClient (its own keepalive, as websockets' does it): the next ping within the
    # interval, no pong within the timeout, then at most the timeout again to close.
    assert TIMEOUT_S - 0.1 <= load_after <= INTERVAL_S + 2 * TIMEOUT_S + MARGIN_S
    row = got["result"].connections[0]  # type: ignore[union-attr]
    # the row says this side gave up on the server, and why
    assert row["close_code"] == 1011 and "1011" in row["error"], row
    assert row["messages_received"] == 0
    assert sorted(lines) == [["held-0", "1011"], ["held-1", "1011"], ["load-0", "1011"]]
