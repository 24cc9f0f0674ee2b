"""The holding client of ``wslab scale``: many idle connections that only listen.

What lives here: :class:`HeldConnection`, one WebSocket connection driven straight by
websockets' sans-I/O :class:`~websockets.client.ClientProtocol` from an asyncio protocol
(no task, no message queue, no assembler per connection), and :class:`HoldClient`, which
opens thousands of them, answers pings, timestamps every message on arrival and opens
dropped connections again. What must not live here: sending application messages (that is
:class:`~wslab.harness.client.LoadClient`) and process plumbing (``procs.py``).

Heartbeat (``scaling.heartbeat_interval_s`` / ``heartbeat_timeout_s``): a connection that
hears nothing from the server for interval + timeout is closed (1011, counted in
``HoldStats.keepalive_timeouts``). The holder pings only when the server's own ping is
overdue by half the timeout, so against wslab's workers (which ping at that interval) it
stays as quiet as a browser, and a server that does not ping is kept while it answers.

Why not websockets' asyncio client: the holders are the measuring instrument. On a machine
where they share the cores with the server under test, whatever a holder spends per message
is time the server cannot use, and it shows up as fan-out latency that a real deployment
(clients on other machines) would not have. Driving the same protocol implementation
without the asyncio layer's per-connection task and queues costs a fraction of the CPU per
received message; the handshake, extensions (permessage-deflate included), pings, close
codes and size limits are still websockets' own.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from wslab.config import TuningConfig
from wslab.errors import WslabError
from wslab.harness.broker import jittered_backoff
from wslab.harness.client import check_target, client_extensions
from wslab.harness.server import CLIENT_HEADER

MessageCallback = Callable[[bytes, float], None]
"""Called per received message: payload and arrival time (``time.monotonic()``)."""

CLOSE_TIMEOUT_S = 5.0
"""How long to wait for the server to close TCP after the closing handshake."""
KEEPALIVE_CODE = 1011  # what a silent server's connection is closed with, as websockets does


class HeldConnection(asyncio.Protocol):
    """One client connection: bytes in, websockets' sans-I/O protocol, bytes out.

    Args:
        protocol: A fresh client protocol (its URI, extensions and ``max_size``).
        label: Sent as the ``X-Wslab-Client`` header.
        on_message: Called with each whole data message and its arrival time.
        ping_interval: Heartbeat interval, s (None: none); ping_timeout: silence past it
            that closes the connection (None: ping when quiet, never close).
    """

    __slots__ = ("_beat", "_close_timer", "_deadline", "_heard", "_parts", "_pinged",
                 "_probe", "closed", "keepalive_failed", "label", "on_message", "opened",
                 "protocol", "transport")

    def __init__(self, protocol: ClientProtocol, label: str,
                 on_message: MessageCallback, *, ping_interval: float | None = None,
                 ping_timeout: float | None = None) -> None:
        loop = asyncio.get_running_loop()
        self.protocol = protocol
        self.label = label
        self.on_message = on_message
        # Ping after this much silence (the server's own ping is overdue by half the
        # timeout then); close after interval + timeout of it.
        self._probe = None if ping_interval is None else ping_interval + (ping_timeout or 0) / 2
        self._deadline = (ping_interval + ping_timeout
                          if ping_interval is not None and ping_timeout is not None else None)
        self.keepalive_failed = False
        self._heard = 0.0  # time.monotonic() of the last bytes from the server
        self._pinged = 0.0  # when this side last pinged
        self._beat: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self._parts: list[bytes] | None = None  # fragments of a message in progress
        self._close_timer: asyncio.TimerHandle | None = None

    @property
    def close_code(self) -> int | None:
        """The code the server closed with (1006 if it never sent one; None while open)."""
        return self.protocol.close_code

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        request = self.protocol.connect()
        request.headers[CLIENT_HEADER] = self.label
        self.protocol.send_request(request)
        self._flush()

    def data_received(self, data: bytes) -> None:
        self._heard = now = time.monotonic()
        self.protocol.receive_data(data)
        self._on_events(now)

    def eof_received(self) -> bool | None:
        self.protocol.receive_eof()
        self._on_events(time.monotonic())  # a response without a length ends at EOF
        return None  # the closing handshake never writes after EOF: let asyncio close

    def connection_lost(self, exc: Exception | None) -> None:
        self.protocol.receive_eof()  # idempotent; makes the state CLOSED
        if self.protocol.state is not State.CLOSED:
            self.protocol.state = State.CLOSED
        if self._close_timer is not None:
            self._close_timer.cancel()
        if self._beat is not None:
            self._beat.cancel()
            self._beat = None
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(
                f"connection closed during the handshake: {exc or 'EOF'}"))
        if not self.closed.done():
            self.closed.set_result(None)

    # the rest

    def _on_events(self, arrived: float) -> None:
        protocol = self.protocol
        for event in protocol.events_received():
            if isinstance(event, Frame):
                self._on_frame(event, arrived)
            elif not self.opened.done():  # the handshake response
                if protocol.handshake_exc is not None:
                    self.opened.set_exception(protocol.handshake_exc)
                else:
                    self.opened.set_result(None)
                    if self._probe is not None:
                        self._arm(self._probe)
        self._flush()

    # heartbeat

    def _arm(self, delay: float) -> None:
        self._beat = asyncio.get_running_loop().call_later(delay, self._on_beat)

    def _on_beat(self) -> None:
        """Fail a silent server, ping a quiet one; re-arm for the next moment that matters."""
        self._beat = None
        if self.protocol.state is not State.OPEN or self.transport is None \
                or self._probe is None:
            return
        now = time.monotonic()
        quiet, probe, deadline = now - self._heard, self._probe, self._deadline
        if deadline is not None and quiet >= deadline:
            self.keepalive_failed = True  # close 1011, then drop TCP (the timer aborts)
            self.protocol.fail(KEEPALIVE_CODE, "keepalive ping timeout")
            self._flush()
            self.transport.close()
            return
        if quiet >= probe and self._pinged <= self._heard:
            self._pinged = now
            self.protocol.send_ping(b"")
            self._flush()
        self._arm(probe - quiet if quiet < probe else probe if deadline is None
                  else deadline - quiet)

    def _on_frame(self, frame: Frame, arrived: float) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if frame.fin:
                self.on_message(bytes(frame.data), arrived)
            else:
                self._parts = [bytes(frame.data)]
        elif opcode is Opcode.CONT and self._parts is not None:
            self._parts.append(bytes(frame.data))
            if frame.fin:
                payload = b"".join(self._parts)
                self._parts = None
                self.on_message(payload, arrived)
        # Pings are answered and close frames echoed by the protocol itself.

    def _flush(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        for data in self.protocol.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                transport.write_eof()
        if self.protocol.close_expected() and self._close_timer is None:
            self._close_timer = asyncio.get_running_loop().call_later(
                CLOSE_TIMEOUT_S, transport.abort)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Run the closing handshake; cut TCP if the server does not finish it in time."""
        if self.protocol.state is State.OPEN:
            self.protocol.send_close(code, reason)
            self._flush()
        elif self.transport is not None and self.protocol.state is State.CONNECTING:
            self.transport.abort()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.closed), CLOSE_TIMEOUT_S)
        if not self.closed.done() and self.transport is not None:
            self.transport.abort()


async def open_held(url: str, config: TuningConfig, label: str, on_message: MessageCallback,
                    *, local_addr: tuple[str, int] | None = None,
                    open_timeout: float = 60) -> HeldConnection:
    """Open one held connection (TCP + WebSocket handshake) or raise why not."""
    uri = parse_uri(url)
    loop = asyncio.get_running_loop()
    extensions = client_extensions(config)
    protocol = ClientProtocol(uri, extensions=extensions or None,
                              max_size=config.scaling.max_size)

    sc = config.scaling

    async def handshake() -> HeldConnection:
        _transport, conn = await loop.create_connection(
            lambda: HeldConnection(protocol, label, on_message,
                                   ping_interval=sc.heartbeat_interval_s,
                                   ping_timeout=sc.heartbeat_timeout_s),
            uri.host, uri.port, local_addr=local_addr)
        try:
            await conn.opened
        except BaseException:
            if conn.transport is not None:
                conn.transport.abort()
            raise
        return conn

    return await asyncio.wait_for(handshake(), open_timeout)


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
    keepalive_timeouts: int = 0
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
    but not kept. The client answers pings; a silent server is closed (module notes).
    Each connection is a :class:`HeldConnection`: websockets' protocol without its asyncio
    layer.

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
        self.open: dict[int, HeldConnection] = {}
        self.other_messages = 0
        self._received: dict[str, int] = {}
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

    async def _connect(self, n: int, open_timeout: float = 60) -> HeldConnection:
        local = None
        if self.source_addresses:
            local = (self.source_addresses[n % len(self.source_addresses)], 0)
        receipts = self.stats.receipts
        received = self._received

        def on_message(payload: bytes, arrived: float) -> None:
            try:
                msg = orjson.loads(payload)
                kind = msg["k"]
                receipts.append((n, kind, int(msg["seq"]), float(msg["t"]), arrived))
            except (ValueError, KeyError, TypeError):
                self.other_messages += 1
                return
            received[kind] = received.get(kind, 0) + 1

        return await open_held(self.url, self.config, f"{self.prefix}-{n}", on_message,
                               local_addr=local, open_timeout=open_timeout)

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

    async def _read(self, n: int, ws: HeldConnection | None) -> None:
        while ws is not None:
            opened = time.monotonic()
            await self._listen(n, ws)
            if self._closing or not self.reconnect:
                return
            if time.monotonic() - opened >= self.backoff_max_s:
                self._streak.pop(n, None)  # it lived: the next drop starts from the base
            ws = await self._reopen(n)

    async def _listen(self, n: int, ws: HeldConnection) -> None:
        await ws.closed
        if self.open.get(n) is ws:
            del self.open[n]
        code = str(ws.close_code)
        self.stats.close_codes[code] = self.stats.close_codes.get(code, 0) + 1
        self.stats.keepalive_timeouts += ws.keepalive_failed
        if not self._closing:
            self.stats.closed_early += 1

    async def _reopen(self, n: int) -> HeldConnection | None:
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
        return self._received.get(kind, 0)

    async def close(self) -> None:
        """Close every open connection and wait for the readers."""
        self._closing = True
        self._stop.set()
        conns = list(self.open.values())
        await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)
        await asyncio.gather(*self._readers, return_exceptions=True)
