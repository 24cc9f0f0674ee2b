"""Every line ``/metrics`` serves moves when what it counts happens.

One room server (hybrid batching in a json-array envelope, permessage-deflate, a processing
queue that lingers, tight admission limits, a short slow-consumer timeout) is driven
through traffic, faulty peers, every admission outcome, the circuit breaker and a stalled
consumer, and ``/metrics`` is scraped between the steps over real HTTP. Each step checks
its own figures, exactly where they are known; at the end every series of every scrape
must have differed from the first scrape (or be new since it), and every figure the
server is meant to export must be among them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from wslab import envelopes
from wslab.config import TuningConfig
from wslab.harness.events import Aggregator, ProcessingQueue
from wslab.harness.livemetrics import COUNTERS, GAUGES, PROCESSING
from wslab.harness.server import LiveServer
from wslab.harness.wiring import CLIENT_HEADER, ROOM_HEADER
from wslab.traces.model import Message, Trace

CONFIG = TuningConfig().updated({
    "batching.strategy": "hybrid", "batching.interval_ms": 1000,
    "batching.envelope": "json-array", "scaling.max_connections": 3,
    "scaling.pending_queue": 1, "scaling.pending_timeout_s": 0.3, "scaling.max_size": 4096,
    "scaling.write_limit": 16384, "scaling.slow_consumer_timeout_s": 0.3})
JSON_ARRAY = [Subprotocol(envelopes.subprotocol("json-array"))]
DOCS = [json.dumps({"i": i, "price": i / 4, "note": "hello room " * 8},
                   separators=(",", ":")).encode() for i in range(20)]
# Big, incompressible, background: what a stalled consumer is shed of.
BIG = [json.dumps({"n": i, "pad": os.urandom(1900).hex()}).encode() for i in range(400)]
TRACE = Trace([Message(i * 0.001, "c2s", "blob", "background", p, True)
               for i, p in enumerate(BIG)])
BALLAST_MIB = 32


def _parse(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


async def _scrape(port: int) -> dict[str, float]:
    url = f"http://127.0.0.1:{port}/metrics"
    text = await asyncio.to_thread(
        lambda: urllib.request.urlopen(url, timeout=10).read().decode())
    return _parse(text)


async def _until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


async def _join(port: int, name: str, room: str, **kw: Any) -> ClientConnection:
    """A member of ``room``, speaking the server's envelope (it accepts no other)."""
    return await connect(f"ws://127.0.0.1:{port}/", open_timeout=10, subprotocols=JSON_ARRAY,
                         additional_headers={CLIENT_HEADER: name, ROOM_HEADER: room}, **kw)


async def _close_code(ws: ClientConnection) -> int | None:
    with contextlib.suppress(ConnectionClosed, TimeoutError):
        while True:
            await asyncio.wait_for(ws.recv(), 10)
    return ws.close_code


async def _drive(server: LiveServer, queue: ProcessingQueue) -> list[dict[str, float]]:
    port, m = server.port, server.metrics
    scrapes = [await _scrape(port)]
    a = await _join(port, "a", "0")
    b = await _join(port, "b", "0")
    b_got: list[bytes] = []

    async def read_b() -> None:
        with contextlib.suppress(ConnectionClosed):
            async for frame in b:
                raw = frame.encode() if isinstance(frame, str) else frame
                b_got.extend(p for p, _ in envelopes.decode("json-array", raw))

    reader = asyncio.create_task(read_b())
    await _until(lambda: len(server.sessions) == 2, "both members")
    # Traffic: ten frames of two messages each from a to b.
    for k in range(0, len(DOCS), 2):
        await a.send(b"[" + DOCS[k] + b"," + DOCS[k + 1] + b"]", text=True)
    await _until(lambda: m.counts["messages_received"] == len(DOCS), "the messages")
    held = await _scrape(port)  # b's batch and the processing queue still hold them
    assert held["wslab_messages_received"] == 20 and held["wslab_frames_received"] == 10
    assert held["wslab_queued"] >= 1
    assert held["wslab_processing_waiting"] > 0
    assert held["wslab_processing_waiting"] + held["wslab_processing_items"] == 20
    await _until(lambda: len(b_got) == len(DOCS) and queue.items == len(DOCS), "delivery")
    ballast = b"\x01" * (BALLAST_MIB << 20)  # resident: every byte written
    sent = await _scrape(port)
    assert b_got == DOCS
    assert sent["wslab_messages_sent"] == 20 and sent["wslab_queued"] == 0
    assert sent["wslab_payload_bytes_sent"] == sum(len(d) for d in DOCS)
    assert 1 <= sent["wslab_frames_sent"] < 20  # batched
    into, out = sent["wslab_compressed_bytes_in"], sent["wslab_compressed_bytes_out"]
    assert 0 < out < into and sent["wslab_compression_ratio"] == out / into
    assert sent["wslab_processing_items"] == 20 and sent["wslab_processing_waiting"] == 0
    assert sent["wslab_processing_batches"] >= 1 and sent["wslab_processing_handler_s"] > 0
    assert isinstance(queue.handler, Aggregator)
    assert queue.handler.committed["message"]["i"] == (20, sum(range(20)), 0, 19)
    assert sent["wslab_rss_kib"] - scrapes[0]["wslab_rss_kib"] >= 0.9 * BALLAST_MIB * 1024
    assert sent["wslab_active"] == 2 and sent["wslab_connections_total"] == 2
    scrapes += [held, sent]
    del ballast

    # Faulty peers: a malformed envelope (1007), an oversized message (1009), no handshake.
    c = await _join(port, "c", "1")
    await c.send(b"[not json", text=True)
    assert await _close_code(c) == 1007
    await _until(lambda: m.active == 2, "c gone")
    d = await _join(port, "d", "1", compression=None)
    await d.send(b"x" * 5000)
    assert await _close_code(d) == 1009
    await _until(lambda: m.active == 2, "d gone")
    try:
        await asyncio.to_thread(urllib.request.urlopen, f"http://127.0.0.1:{port}/", None, 10)
    except urllib.error.HTTPError as exc:
        assert exc.code == 426  # Upgrade Required
    faults = await _scrape(port)
    assert faults["wslab_closes_1007"] == 1 and faults["wslab_closes_1009"] == 1
    assert faults["wslab_connections_failed"] >= 1
    scrapes.append(faults)

    # Admission: the third is accepted, the fourth waits, the fifth is refused at once;
    # the waiting one times out; another waits and gets the slot the third gives back.
    e = await _join(port, "e", "1")
    await _until(lambda: m.active == 3, "e admitted")
    f = await _join(port, "f", "1")
    await _until(lambda: server.admission.waiting == 1, "f queued")
    waiting = await _scrape(port)
    assert waiting["wslab_admission_waiting"] == 1 and waiting["wslab_admission_active"] == 3
    g = await _join(port, "g", "1")
    assert await _close_code(g) == 1013 and await _close_code(f) == 1013
    f2 = await _join(port, "f2", "1")
    await _until(lambda: server.admission.waiting == 1, "f2 queued")
    await e.close()
    await _until(lambda: m.active == 3 and server.admission.waiting == 0, "f2 admitted")
    admitted = await _scrape(port)
    assert admitted["wslab_connections_rejected"] == 2 and admitted["wslab_closes_1013"] == 2
    assert admitted["wslab_admission_accepted_after_wait"] == 1
    assert admitted["wslab_admission_rejected_timeout"] == 1
    scrapes += [waiting, admitted]

    # The breaker: no peer can open it (only the server's own failures count), so the
    # server's failures are reported to it directly; then it refuses, half-opens, closes.
    breaker = server.admission.breaker
    breaker.cooldown_s = 0.2
    for _ in range(breaker.failure_threshold):
        breaker.failure(time.monotonic())
    opened = await _scrape(port)
    assert opened['wslab_admission_breaker{state="open"}'] == 1
    await f2.close()
    await _until(lambda: m.active == 2, "f2 gone")
    assert await _close_code(await _join(port, "h", "1")) == 1013
    await asyncio.sleep(breaker.cooldown_s)
    trial = await _join(port, "trial", "1")
    await _until(lambda: breaker.state == "closed", "the trial to close the breaker")
    await trial.close()
    await _until(lambda: m.active == 2, "trial gone")
    closed = await _scrape(port)
    assert closed['wslab_admission_breaker{state="closed"}'] == 1
    assert closed["wslab_admission_rejected_breaker"] == 1
    scrapes += [opened, closed]

    # A stalled consumer (tiny receive buffer, reads nothing) is shed, then closed 1008.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    stalled = await _join(port, "s", "0", sock=sock, compression=None, max_queue=1)
    await _until(lambda: "s" in server.sessions, "the stalled member")
    session = server.sessions["s"]
    # Until the kernel's socket buffers (megabytes on loopback) and the library's are full
    # and the backlog has stayed stuck for the timeout.
    for i in range(20 * len(BIG)):
        if session.closed_slow:
            break
        await a.send(b"[" + BIG[i % len(BIG)] + b"]", text=True)
        await asyncio.sleep(0.0005)
    assert session.closed_slow
    shed = await _scrape(port)  # still open: its drops are counted live
    assert shed["wslab_messages_dropped"] > 0
    assert stalled.transport is not None
    stalled.transport.abort()
    await _until(lambda: m.counts["closes_1008"] == 1, "the 1008 close")
    for ws in (a, b):
        await ws.close()
    await reader
    await _until(lambda: m.active == 0, "everyone gone")
    final = await _scrape(port)
    assert final["wslab_messages_dropped"] >= shed["wslab_messages_dropped"]
    assert final["wslab_admission_active"] == 0 and final["wslab_active"] == 0
    assert final["wslab_cpu_s"] > scrapes[0]["wslab_cpu_s"]
    return [*scrapes, shed, final]


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))


def test_every_metrics_line_moves() -> None:
    async def main() -> list[dict[str, float]]:
        queue = ProcessingQueue(max_batch=100, linger_ms=1000)
        async with LiveServer(CONFIG, scenario="room", rooms=2, trace=TRACE,
                              processing=queue) as server:
            return await _drive(server, queue)

    scrapes = asyncio.run(main())
    first = scrapes[0]
    assert math.isnan(first["wslab_compression_ratio"])
    series = sorted({key for s in scrapes for key in s})
    still = [k for k in series if all(_same(s.get(k, 0.0), first.get(k, 0.0)) for s in scrapes)]
    assert still == [], f"exported but never moved: {still}"
    names = {key.split("{")[0] for key in series}
    meant = {f"wslab_{n}" for n in (*COUNTERS, *GAUGES, *PROCESSING, "compression_ratio")}
    meant |= {f"wslab_admission_{n}" for n in ("active", "waiting", "breaker", "accepted",
                                               "queued", "rejected_full", "closed")}
    assert meant <= names, f"not exported: {sorted(meant - names)}"
