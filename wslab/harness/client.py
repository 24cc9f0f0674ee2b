"""The load client: N connections replaying a trace's client side, faster than any server.

What lives here: :class:`LoadClient`, which opens connections at a given rate (from several
127.0.0.x source addresses if asked), sends the trace's client-to-server messages on their
schedule through each connection's own :class:`~wslab.pipeline.SendPipeline`, waits for
what should come back, reads each socket's kernel counters and closes. It works against any
WebSocket server (``wslab load``), not only wslab's; batching is offered as a
``wslab.v1.*`` subprotocol and used only if agreed. ``client_extensions`` (from
``wiring.py``, re-exported here) is what every wslab client offers: ``x-wslab-zstd`` first
for the zstd algorithms, permessage-deflate behind it.

The connections themselves are picows listeners (``loadconn.py``: frames parsed, masked
and written in C; negotiation by the websockets library's own client protocol) and what
they see is kept in columns (``loadlog.py``), so the instrument is not what a benchmark
measures. ``ClientResult.recorder`` gives the same tables as the server's recorder.
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from wslab.config import TuningConfig
from wslab.errors import WslabError
from wslab.harness.eventloop import run_fast
from wslab.harness.loadconn import LoadConnection, LoadPlan, open_load_connection
from wslab.harness.loadlog import ColumnRecorder
from wslab.harness.meter import tcp_info
from wslab.harness.wiring import CLIENT_HEADER, close_timeout
from wslab.harness.wiring import client_extensions as client_extensions  # re-exported
from wslab.pipeline import Incoming, resolve_envelope
from wslab.traces.model import Message, Trace

if TYPE_CHECKING:
    from wslab.codecs.zstd_dict import DictionarySet


RUN_BYTES = 16 << 10
"""Messages due at the same instant are handed over in runs of about this many payload
bytes, so that a whole trace due at once still leaves in bursts with reads between."""


def run_load(client: LoadClient) -> ClientResult:
    """Run a load client in a process of its own, on uvloop where it is installed (libuv's
    event loop: about a fifth less CPU per message than asyncio's against a server that
    answers one message per write, measured in ``bench_harness``'s client rows).

    The trace is frozen out of the garbage collector first: it is a hundred thousand
    objects or more that live as long as the process, and every full collection the run's
    own allocations trigger would walk all of them (a fifth of the client's CPU at 16 B
    messages, measured with py-spy, before this)."""
    gc.collect()
    gc.freeze()
    return run_fast(client.run())


def check_target(url: str, allow_remote: bool) -> tuple[str, int]:
    """Host and port of a ws:// URL; refuse a non-loopback host unless allowed."""
    parsed = urlparse(url)
    if parsed.scheme not in ("ws", "wss") or not parsed.hostname:
        raise WslabError(f"{url}: expected a ws://HOST:PORT/PATH URL")
    host = parsed.hostname
    port = parsed.port or (443 if parsed.scheme == "wss" else 80)
    if not allow_remote and not _is_loopback(host):
        raise WslabError(f"{url}: {host} is not a loopback address; load goes to loopback "
                         "only unless you pass --allow-remote")
    return host, port


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class ClientResult:
    """What a load run saw: the logs and one row per connection."""

    recorder: ColumnRecorder
    connections: list[dict[str, Any]] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0
    cpu_s: float = 0.0
    """CPU time this process spent from the first connection to the last close."""


class LoadClient:
    """Open connections, replay the client side of a trace, read everything back.

    Args:
        url: Target ``ws://`` URL.
        config: Batching and compression for the client side.
        trace: Messages; the ``c2s`` ones are sent (all of them if the trace has none and
            ``c2s_only`` is False: traffic for an echo server).
        connections: How many connections.
        rate: Connections opened per second.
        speed: Trace time divided by this is the send schedule.
        expect_s2c: Messages each connection should receive (None: wait for quiet).
        drain_timeout: Longest wait for missing messages once sending is done.
        source_addresses: Local addresses to spread connections over (127.0.0.x).
        allow_remote: Permit a non-loopback target.
        prefix: Connection label prefix (labels are ``PREFIX-N``).
        send: Send the trace's messages at all (False: only read).
        c2s_only: Send only the trace's ``c2s`` messages, none when it has none (a replay
            against a server that plays the ``s2c`` side, as in ``wslab bench``).
        dictionaries: The pre-shared zstd dictionary set; required for ``zstd-dict``.
    """

    def __init__(self, url: str, config: TuningConfig, *, trace: Trace | None = None,
                 connections: int = 1, rate: float = 200.0, speed: float = 1.0,
                 expect_s2c: int | None = None, drain_timeout: float = 5.0,
                 source_addresses: list[str] | None = None, allow_remote: bool = False,
                 prefix: str = "c", send: bool = True, c2s_only: bool = False,
                 dictionaries: DictionarySet | None = None) -> None:
        check_target(url, allow_remote)
        client_extensions(config, dictionaries)  # zstd-dict without its set fails here
        self.dictionaries = dictionaries
        self.url = url
        self.config = config
        self.trace = trace
        self.connections = connections
        self.rate = rate
        self.speed = speed
        self.expect_s2c = expect_s2c
        self.drain_timeout = drain_timeout
        self.source_addresses = source_addresses or []
        self.prefix = prefix
        self.send = send
        self.recorder = ColumnRecorder(trace.messages if trace is not None else [])
        self.envelope = resolve_envelope(config, trace)
        self._outgoing = self._client_messages(trace, c2s_only) if send else []
        self.plan = LoadPlan(url, config, client_extensions(config, dictionaries),
                             self.envelope, CLIENT_HEADER)

    @staticmethod
    def _client_messages(trace: Trace | None, c2s_only: bool) -> list[tuple[int, Message]]:
        if trace is None:
            return []
        mine = [(i, m) for i, m in enumerate(trace.messages) if m.dir == "c2s"]
        return mine if mine or c2s_only else list(enumerate(trace.messages))

    async def run(self) -> ClientResult:
        """Open every connection, run them all, return what was seen."""
        result = ClientResult(self.recorder, started=time.monotonic())
        cpu = time.process_time()
        tasks = []
        for n in range(self.connections):
            tasks.append(asyncio.create_task(self._one(n, result)))
            if n + 1 < self.connections and self.rate > 0:
                await asyncio.sleep(1.0 / self.rate)
        await asyncio.gather(*tasks)
        result.finished = time.monotonic()
        result.cpu_s = time.process_time() - cpu
        return result

    async def _one(self, n: int, result: ClientResult) -> None:
        conn = f"{self.prefix}-{n}"
        row: dict[str, Any] = {"conn": conn, "error": None}
        result.connections.append(row)
        local = ((self.source_addresses[n % len(self.source_addresses)], 0)
                 if self.source_addresses else None)
        expect = self.expect_s2c
        if expect is None and self.send and self.trace is not None:
            expect = len(self._outgoing)  # an echo server sends each one back
        log = self.recorder.new_log(conn, len(self._outgoing), expect or 0)
        t0 = time.monotonic()
        try:
            ws, answer = await open_load_connection(self.plan, conn, log, expect=expect,
                                                    local_addr=local)
        except Exception as exc:  # refused, unreachable, a handshake or negotiation error
            row["error"] = f"{type(exc).__name__}: {exc}"
            return
        row["connect_s"] = time.monotonic() - t0
        row["extensions"] = answer
        row["subprotocol"] = ws.subprotocol
        try:
            await self._drive(ws, row)
        except Exception as exc:  # a per-connection failure never stops the others
            row["error"] = f"{type(exc).__name__}: {exc}"
            if ws.transport is not None:
                ws.transport.disconnect(graceful=False)

    async def _drive(self, ws: LoadConnection, row: dict[str, Any]) -> None:
        start = time.monotonic()  # the schedule starts once this connection is open
        outgoing = self._outgoing
        base = outgoing[0][1].t if outgoing else 0.0
        speed = self.speed
        clock = time.monotonic
        push_many = ws.push_many
        writer = ws.writer
        bursts = 0
        i, n = 0, len(outgoing)
        while i < n:
            t = outgoing[i][1].t
            due = start + (t - base) / speed
            delay = due - clock()
            if delay > 0:
                ws.flush_writes()  # nothing framed waits while we sleep
                await asyncio.sleep(delay)
            # Messages scheduled for the same instant go to the pipeline in one call (as
            # many as one burst holds, so the checks below still come between bursts).
            run: list[Incoming] = []
            size = 0
            while i < n and size < RUN_BYTES:
                index, m = outgoing[i]
                if m.t != t:
                    break
                run.append((index, m.priority, m.type, m.payload, m.is_text))
                size += len(m.payload)
                i += 1
            push_many(due, run)
            writable = ws.writable
            if writable is not None and not writable.done():
                ws.flush_writes()
                await writable  # the socket is behind: let the loop drain it
            elif writer is not None and writer.bursts != bursts:
                # A burst left: read what came back meanwhile, so the peer's answers never
                # pile up in its buffers while we keep sending.
                bursts = writer.bursts
                await asyncio.sleep(0)
            if ws.disconnected.done():
                break
        ws.flush()
        if self.expect_s2c is None and self.send and self.trace is not None:
            ws.expect = ws.messages_sent  # a message the batcher dropped never comes back
            if ws.received >= ws.messages_sent and not ws.complete.done():
                ws.complete.set_result(None)
        await self._await_replies(ws)
        sock = ws.socket()
        info = tcp_info(sock) if sock is not None else None
        await ws.close(close_timeout(self.config.scaling))
        comp = ws.compressor
        row.update(ws.counts())
        row.update({"messages_sent": ws.messages_sent, "frames_sent": ws.frames_sent,
                    "messages_received": ws.received, "close_code": ws.close_code,
                    "error": ws.failed,  # this side closed on the peer's protocol error
                    "compress_ns": comp.encode_ns if comp is not None else 0})
        if info is not None:
            row.update({f"tcp_{k}": v for k, v in info.as_dict().items()})

    async def _await_replies(self, ws: LoadConnection) -> None:
        """Until all expected messages came, the peer left, or it was quiet too long."""
        waiting = {ws.complete, ws.disconnected}
        while not (ws.complete.done() or ws.disconnected.done()):
            quiet_for = time.monotonic() - ws.last
            if quiet_for > self.drain_timeout:
                return
            await asyncio.wait(waiting, timeout=min(0.25, self.drain_timeout - quiet_for),
                               return_when=asyncio.FIRST_COMPLETED)


