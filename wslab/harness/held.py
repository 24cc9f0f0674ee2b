"""One held connection of ``wslab scale``: websockets' sans-I/O protocol on an asyncio protocol.

What lives here: :class:`HeldConnection`, one WebSocket connection driven straight by
websockets' sans-I/O :class:`~websockets.client.ClientProtocol` from an asyncio protocol
(no task, no message queue, no assembler per connection; bytes in, events out, bytes
back), with its heartbeat timer, and :func:`open_held`, which opens one. What must not
live here: many connections, their stats and reconnects
(:class:`~wslab.harness.holder.HoldClient`, ``holder.py``), sending application messages
(``client.py``).

Heartbeat (``scaling.heartbeat_interval_s`` / ``heartbeat_timeout_s``), one timer per
connection, re-armed for the next moment that matters:

| silence from the server            | the connection                                       |
|------------------------------------|------------------------------------------------------|
| < interval + timeout / 2           | waits (the server's own ping is not yet overdue)     |
| >= interval + timeout / 2          | pings once (again only after hearing from it)        |
| >= interval + timeout              | closes 1011 (``keepalive_failed``), then drops TCP   |

So against wslab's workers (which ping at that interval) it stays as quiet as a browser,
and a server that does not ping is kept while it answers. Without a timeout it pings when
quiet and never closes; without an interval it has no timer at all.

Reading in bulk: while the connection is OPEN and the library's parser holds nothing (no
partial frame, no fragmented message), ``data_received`` takes every whole data frame at
the start of the bytes that arrived itself (:func:`take_frames`): FIN set, RSV bits
clear, unmasked, no larger than ``max_size``. That is the one case where the library's
parser would do nothing but hand the frame over; the other is a whole ping, which the
library would only answer with the same payload (the heartbeat of a server holding
tens of thousands of connections sends thousands a second). Anything else (another
control frame, a compressed or fragmented frame, a partial one, a bad one) and everything
after it goes to the library, which answers, fails or closes as it always does.

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
import os
import time
from collections.abc import Callable
from typing import cast

from websockets.client import ClientProtocol
from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from wslab.config import TuningConfig
from wslab.harness.client import client_extensions
from wslab.harness.wiring import CLIENT_HEADER
from wslab.harness.wsadapter import apply_mask

MessageCallback = Callable[[bytes, float], None]
"""Called per received message: payload and arrival time (``time.monotonic()``)."""

CLOSE_TIMEOUT_S = 5.0
"""How long to wait for the server to close TCP after the closing handshake."""
KEEPALIVE_CODE = CloseCode.INTERNAL_ERROR
"""What a silent server's connection is closed with (1011), as websockets does."""


class HeldConnection(asyncio.Protocol):
    """One client connection: bytes in, websockets' sans-I/O protocol, bytes out.

    Args:
        protocol: A fresh client protocol (its URI, extensions and ``max_size``).
        label: Sent as the ``X-Wslab-Client`` header.
        on_message: Called with each whole data message and its arrival time.
        ping_interval: Heartbeat interval, s (None: none); ping_timeout: silence past it
            that closes the connection (None: ping when quiet, never close).
    """

    __slots__ = ("_beat", "_close_timer", "_deadline", "_heard", "_limit", "_parts", "_pinged",
                 "_probe", "closed", "keepalive_failed", "label", "on_message", "opened",
                 "protocol", "transport")

    def __init__(self, protocol: ClientProtocol, label: str,
                 on_message: MessageCallback, *, ping_interval: float | None = None,
                 ping_timeout: float | None = None) -> None:
        loop = asyncio.get_running_loop()
        self.protocol = protocol
        # The largest frame the library's parser takes (message and fragment limits).
        limits = [n for n in (protocol.max_message_size, protocol.max_fragment_size)
                  if n is not None]
        self._limit = min(limits) if limits else None
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
        # uvloop's TCP transport has asyncio.Transport's methods but not its class.
        self.transport = cast(asyncio.Transport, transport)
        request = self.protocol.connect()
        request.headers[CLIENT_HEADER] = self.label
        self.protocol.send_request(request)
        self._flush()

    def data_received(self, data: bytes) -> None:
        self._heard = now = time.monotonic()
        protocol = self.protocol
        if protocol.state is State.OPEN and protocol.current_size is None \
                and not protocol.reader.buffer:
            used = take_frames(data, self._limit, self.on_message, now, self._pong)
            if used == len(data):
                return
            if used:
                data = data[used:]
        protocol.receive_data(data)
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

    def _pong(self, payload: bytes) -> None:
        """Answer a ping read in bulk (:func:`take_frames`): a masked pong echoing it, the
        frame the library would write (RFC 6455 5.5.3), without its parser."""
        if self.transport is not None and not self.transport.is_closing():
            mask = os.urandom(4)
            self.transport.write(b"".join((bytes((0x8A, 0x80 | len(payload))), mask,
                                           apply_mask(payload, mask))))

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

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
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


def take_frames(data: bytes, max_size: int | None, on_message: MessageCallback,
                arrived: float, on_ping: Callable[[bytes], None] | None = None) -> int:
    """Hand over every whole, plain data frame at the start of ``data``; bytes used.

    Plain: FIN set, RSV bits clear, text or binary, unmasked, at most ``max_size``
    (None: any size). With ``on_ping``, a whole unmasked ping (FIN set, RSV clear, at most
    125 bytes, as RFC 6455 5.5 requires of every control frame) goes to it too. It stops
    at the first frame that is anything else or incomplete; what follows is the library's
    to parse.
    """
    pos, end = 0, len(data)
    while end - pos >= 2:
        head, size = data[pos], data[pos + 1]
        if head == 0x89 and size <= 125 and on_ping is not None:
            start = pos + 2
            if end - start < size:
                break
            pos = start + size
            on_ping(data[start:pos])
            continue
        if (head != 0x81 and head != 0x82) or size & 0x80:
            break
        start = pos + 2
        if size == 126:
            if end - start < 2:
                break
            size = int.from_bytes(data[start:start + 2])
            start += 2
        elif size == 127:
            if end - start < 8:
                break
            size = int.from_bytes(data[start:start + 8])
            start += 8
        if (max_size is not None and size > max_size) or end - start < size:
            break
        pos = start + size
        on_message(data[start:pos], arrived)
    return pos


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

    def factory() -> HeldConnection:
        return HeldConnection(protocol, label, on_message,
                              ping_interval=sc.heartbeat_interval_s,
                              ping_timeout=sc.heartbeat_timeout_s)

    async def handshake() -> HeldConnection:
        _transport, conn = await loop.create_connection(factory, uri.host, uri.port,
                                                        local_addr=local_addr)
        try:
            await conn.opened
        except BaseException:
            if conn.transport is not None:
                conn.transport.abort()
            raise
        return conn

    return await asyncio.wait_for(handshake(), open_timeout)
