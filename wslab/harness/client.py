"""The load client: N real websockets connections replaying a trace's client side.

What lives here: :class:`LoadClient`, which opens connections at a given rate (from several
127.0.0.x source addresses if asked), sends the trace's client-to-server messages through
each connection's own :class:`~wslab.pipeline.SendPipeline`, takes apart every frame it
receives, records both sides for the integrity and latency join, and reads each socket's
kernel counters before closing. It works against any WebSocket server (``wslab load``), not
only wslab's; batching is offered as a ``wslab.v1.*`` subprotocol and used only if agreed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from websockets.asyncio.client import connect
from websockets.extensions.base import ClientExtensionFactory
from websockets.typing import Subprotocol

from wslab import envelopes
from wslab.codecs.negotiation import offer_from_config
from wslab.config import TuningConfig
from wslab.errors import WslabError
from wslab.harness.broker import jittered_backoff
from wslab.harness.extension import SelectiveClientDeflateFactory
from wslab.harness.meter import count_connection, tcp_info
from wslab.harness.recorder import Recorder
from wslab.harness.server import CLIENT_HEADER, resolve_envelope, uses_live_deflate
from wslab.harness.session import Session, receive_loop
from wslab.pipeline import SendPipeline
from wslab.traces.model import Message, Trace


def client_extensions(config: TuningConfig) -> list[ClientExtensionFactory]:
    """What a wslab client offers for this compression config."""
    c = config.compression
    if not uses_live_deflate(c):
        return []
    offer = offer_from_config(c)
    return [SelectiveClientDeflateFactory(
        mem_level=c.mem_level, level=c.level,
        server_no_context_takeover=offer.server_no_context_takeover,
        client_no_context_takeover=offer.client_no_context_takeover,
        server_max_window_bits=offer.server_max_window_bits,
        client_max_window_bits=offer.client_max_window_bits,
    )]


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

    recorder: Recorder
    connections: list[dict[str, Any]] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0


class LoadClient:
    """Open connections, replay the client side of a trace, read everything back.

    Args:
        url: Target ``ws://`` URL.
        config: Batching and compression for the client side.
        trace: Messages; the ``c2s`` ones are sent (all of them if the trace has none).
        connections: How many connections.
        rate: Connections opened per second.
        speed: Trace time divided by this is the send schedule.
        expect_s2c: Messages each connection should receive (None: wait for quiet).
        drain_timeout: Longest wait for missing messages once sending is done.
        source_addresses: Local addresses to spread connections over (127.0.0.x).
        allow_remote: Permit a non-loopback target.
        prefix: Connection label prefix (labels are ``PREFIX-N``).
    """

    def __init__(self, url: str, config: TuningConfig, *, trace: Trace | None = None,
                 connections: int = 1, rate: float = 200.0, speed: float = 1.0,
                 expect_s2c: int | None = None, drain_timeout: float = 5.0,
                 source_addresses: list[str] | None = None, allow_remote: bool = False,
                 prefix: str = "c", send: bool = True) -> None:
        check_target(url, allow_remote)
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
        self.recorder = Recorder()
        self.envelope = resolve_envelope(config, trace)
        self._outgoing = self._client_messages(trace) if send else []

    @staticmethod
    def _client_messages(trace: Trace | None) -> list[tuple[int, Message]]:
        if trace is None:
            return []
        mine = [(i, m) for i, m in enumerate(trace.messages) if m.dir == "c2s"]
        return mine or list(enumerate(trace.messages))

    async def run(self) -> ClientResult:
        """Open every connection, run them all, return what was seen."""
        result = ClientResult(self.recorder, started=time.monotonic())
        tasks = []
        for n in range(self.connections):
            tasks.append(asyncio.create_task(self._one(n, result)))
            if n + 1 < self.connections and self.rate > 0:
                await asyncio.sleep(1.0 / self.rate)
        await asyncio.gather(*tasks)
        result.finished = time.monotonic()
        return result

    async def _one(self, n: int, result: ClientResult) -> None:
        conn = f"{self.prefix}-{n}"
        row: dict[str, Any] = {"conn": conn, "error": None}
        result.connections.append(row)
        kwargs: dict[str, Any] = {}
        if self.source_addresses:
            kwargs["local_addr"] = (self.source_addresses[n % len(self.source_addresses)], 0)
        subprotocols = ([Subprotocol(envelopes.subprotocol(self.envelope))]
                        if self.envelope else None)
        s = self.config.scaling
        t0 = time.monotonic()
        try:
            async with connect(
                self.url, extensions=client_extensions(self.config), compression=None,
                subprotocols=subprotocols, additional_headers={CLIENT_HEADER: conn},
                max_size=s.max_size, max_queue=s.max_queue, write_limit=s.write_limit,
                ping_interval=s.heartbeat_interval_s, ping_timeout=s.heartbeat_timeout_s,
                open_timeout=30, **kwargs,
            ) as ws:
                row["connect_s"] = time.monotonic() - t0
                await self._drive(ws, conn, row)
        except (OSError, TimeoutError) as exc:
            row["error"] = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # a handshake refusal or protocol error, per connection
            row["error"] = f"{type(exc).__name__}: {exc}"

    async def _drive(self, ws: Any, conn: str, row: dict[str, Any]) -> None:
        counter = count_connection(ws, frames=True)
        row["extensions"] = ws.response.headers.get("Sec-WebSocket-Extensions")
        row["subprotocol"] = ws.subprotocol
        envelope = envelopes.envelope_of(ws.subprotocol)
        pipe = SendPipeline(self.config, envelope=envelope, batching=envelope is not None)
        session = Session(ws, conn, "c2s", pipe, self.recorder)
        got = 0
        last = time.monotonic()

        def on_message(payload: bytes, is_text: bool, t: float, key: int) -> None:
            nonlocal got, last
            got += 1
            last = t

        reader = asyncio.create_task(
            receive_loop(ws, conn, "s2c", envelope, self.recorder, on_message))
        sender = asyncio.create_task(session.run())
        start = time.monotonic() + 0.01
        base = self._outgoing[0][1].t if self._outgoing else 0.0
        for index, m in self._outgoing:
            due = start + (m.t - base) / self.speed
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            session.push(index, due, m.priority, m.type, m.payload, m.is_text)
        session.close()
        await sender
        expected = self.expect_s2c
        if expected is None and self.send and self.trace is not None:
            expected = session.messages_sent  # an echo server sends each one back
        while not reader.done():
            if expected is not None and got >= expected:
                break
            if time.monotonic() - last > self.drain_timeout:
                break
            await asyncio.sleep(0.01)
        sock = ws.transport.get_extra_info("socket")
        info = tcp_info(sock) if sock is not None else None
        await ws.close()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        row.update(counter.as_dict())
        row.update({"messages_sent": session.messages_sent, "frames_sent": session.frames_sent,
                    "messages_received": got, "close_code": ws.close_code,
                    "compress_ns": session.ext.encode_ns if session.ext else 0})
        if info is not None:
            row.update({f"tcp_{k}": v for k, v in info.as_dict().items()})


@dataclass
class HoldStats:
    """What a holding client saw (see :class:`HoldClient`)."""

    opened: int = 0
    failed: int = 0
    first_error: str | None = None
    started: float = 0.0
    done: list[float] = field(default_factory=list)
    closed_early: int = 0
    close_codes: dict[str, int] = field(default_factory=dict)
    receipts: list[tuple[int, str, int, float, float]] = field(default_factory=list)
    reconnects: int = 0
    reconnect_attempts: int = 0
    reconnect_failed: int = 0
    reconnect_delays: list[float] = field(default_factory=list)
    outages: list[tuple[int, float, float | None]] = field(default_factory=list)

    def reconnect_s(self) -> list[float]:
        """Time from each drop to the connection being open again (closed outages only)."""
        return [back - down for _n, down, back in self.outages if back is not None]


class HoldClient:
    """Many idle connections that only listen: the client side of ``wslab scale``.

    Messages are JSON objects with ``k`` (``b`` broadcast, ``d`` direct), ``seq`` and ``t``
    (the sender's ``time.monotonic()`` when it handed the message over); each receipt is
    kept as (connection number, kind, seq, t sent, t received). Anything else is counted
    but not kept. The client answers pings and sends none (as browsers do).

    With ``reconnect=True`` a connection that closes before :meth:`close` (its worker
    died, a proxy dropped it) is opened again to the same URL under the same label, after
    an exponential backoff with jitter (:func:`~wslab.harness.broker.jittered_backoff`),
    retried until it succeeds or :meth:`close` is called. Every drop is kept in
    ``stats.outages`` as (connection number, dropped at, open again at), so a run can
    say which messages went out while a connection was away; ``closed_early`` and
    ``close_codes`` still count every drop.

    Args:
        url: Target ``ws://`` URL (loopback unless ``allow_remote``).
        config: Compression and limits for the client side.
        connections: How many to open.
        rate: Connections started per second (0: as fast as ``concurrency`` allows).
        concurrency: Handshakes in flight at most.
        source_addresses: 127.0.0.x addresses to spread connections over.
        prefix: Labels are ``PREFIX-N`` (sent in the ``X-Wslab-Client`` header).
        allow_remote: Permit a non-loopback target.
        reconnect: Open a connection again when it closes before :meth:`close`.
        backoff_base_s: First reconnect delay ceiling.
        backoff_max_s: Largest reconnect delay ceiling.
        seed: Seed of the reconnect jitter (None: unpredictable).
    """

    def __init__(self, url: str, config: TuningConfig, *, connections: int,
                 rate: float = 0.0, concurrency: int = 200,
                 source_addresses: list[str] | None = None, prefix: str = "h",
                 allow_remote: bool = False, reconnect: bool = False,
                 backoff_base_s: float = 0.1, backoff_max_s: float = 5.0,
                 seed: int | None = None) -> None:
        check_target(url, allow_remote)
        if backoff_base_s <= 0 or backoff_max_s < backoff_base_s:
            raise WslabError("reconnect backoff needs 0 < backoff_base_s <= backoff_max_s")
        self.reconnect = reconnect
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._rng = random.Random(seed)
        self._stop = asyncio.Event()
        self._streak: dict[int, int] = {}
        self.url = url
        self.config = config
        self.connections = connections
        self.rate = rate
        self.concurrency = max(1, concurrency)
        self.source_addresses = source_addresses or []
        self.prefix = prefix
        self.stats = HoldStats()
        self.open: dict[int, Any] = {}
        self.other_messages = 0
        self._readers: list[asyncio.Task[None]] = []
        self._closing = False

    async def ramp(self) -> HoldStats:
        """Open every connection (failures counted, not raised); return the stats."""
        self.stats.started = time.monotonic()
        gate = asyncio.Semaphore(self.concurrency)
        tasks = []
        for n in range(self.connections):
            await gate.acquire()
            tasks.append(asyncio.create_task(self._open(n, gate)))
            if self.rate > 0:
                await asyncio.sleep(1.0 / self.rate)
        await asyncio.gather(*tasks)
        return self.stats

    async def _connect(self, n: int, open_timeout: float = 60) -> Any:
        kwargs: dict[str, Any] = {}
        if self.source_addresses:
            kwargs["local_addr"] = (self.source_addresses[n % len(self.source_addresses)], 0)
        s = self.config.scaling
        return await connect(
            self.url, extensions=client_extensions(self.config), compression=None,
            additional_headers={CLIENT_HEADER: f"{self.prefix}-{n}"},
            max_size=s.max_size, max_queue=s.max_queue, write_limit=s.write_limit,
            ping_interval=None, open_timeout=open_timeout, close_timeout=5, **kwargs)

    async def _open(self, n: int, gate: asyncio.Semaphore) -> None:
        try:
            ws = await self._connect(n)
        except Exception as exc:  # refused, reset, timed out: counted per connection
            self.stats.failed += 1
            if self.stats.first_error is None:
                self.stats.first_error = f"{type(exc).__name__}: {exc}"
            return
        finally:
            gate.release()
        self.stats.opened += 1
        self.stats.done.append(time.monotonic())
        self.open[n] = ws
        self._readers.append(asyncio.create_task(self._read(n, ws)))

    async def _read(self, n: int, ws: Any) -> None:
        while ws is not None:
            opened = time.monotonic()
            await self._listen(n, ws)
            if self._closing or not self.reconnect:
                return
            if time.monotonic() - opened >= self.backoff_max_s:
                self._streak.pop(n, None)  # it lived: the next drop starts from the base
            ws = await self._reopen(n)

    async def _listen(self, n: int, ws: Any) -> None:
        import json

        receipts = self.stats.receipts
        try:
            async for data in ws:
                t = time.monotonic()
                try:
                    msg = json.loads(data)
                    receipts.append((n, msg["k"], int(msg["seq"]), float(msg["t"]), t))
                except (ValueError, KeyError, TypeError):
                    self.other_messages += 1
        except Exception:
            pass
        if self.open.get(n) is ws:
            del self.open[n]
        code = str(ws.close_code)
        self.stats.close_codes[code] = self.stats.close_codes.get(code, 0) + 1
        if not self._closing:
            self.stats.closed_early += 1

    async def _reopen(self, n: int) -> Any:
        """Open connection ``n`` again after backing off; None if :meth:`close` came first."""
        down = time.monotonic()
        self.stats.outages.append((n, down, None))
        slot = len(self.stats.outages) - 1
        # A connection refused again right after reopening (e.g. 1013) keeps backing off.
        attempt = self._streak.get(n, 0)
        while not self._closing:
            delay = jittered_backoff(attempt, self.backoff_base_s, self.backoff_max_s,
                                     self._rng)
            self.stats.reconnect_delays.append(delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
            if self._closing:
                break
            attempt += 1
            self.stats.reconnect_attempts += 1
            try:
                ws = await self._connect(n, open_timeout=10)
            except Exception:  # the server is still away: back off further
                self.stats.reconnect_failed += 1
                continue
            if self._closing:
                await ws.close()
                break
            self.open[n] = ws
            self._streak[n] = attempt
            self.stats.reconnects += 1
            self.stats.outages[slot] = (n, down, time.monotonic())
            return ws
        return None

    def received(self, kind: str) -> int:
        """Messages of a kind received so far."""
        return sum(1 for r in self.stats.receipts if r[1] == kind)

    async def close(self) -> None:
        """Close every open connection and wait for the readers."""
        self._closing = True
        self._stop.set()
        conns = list(self.open.values())
        await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)
        await asyncio.gather(*self._readers, return_exceptions=True)
