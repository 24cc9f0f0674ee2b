"""Every websockets internal wslab relies on, in one place.

What lives here: :class:`SinkConnection`, the server connection class (a subclass of the
library's asyncio ``ServerConnection``) that hands each data frame to a sink as soon as the
library has parsed it, instead of queueing it for ``recv()``, and writes the answers to a
whole read in one ``send()``; and the few calls a session makes below the public API
(:func:`can_write_now`, :func:`write_frame`), the heartbeat's ping and keepalive close
(:func:`send_ping`, :func:`fail_keepalive`: ``heartbeat.py`` decides when), and the
library's C masking function that the load client's frame writer borrows
(:func:`apply_mask`). What must not live here: what a frame means
(``session.py``), admission (``handshake.py``).

What stays the library's: the opening handshake, frame parsing and limits (``max_size``
is enforced by its parser), extensions (a frame reaches the sink already decompressed),
control frames (pings, pongs, the closing handshake, keepalive) and every close code.
What changes: the assembler and ``recv()`` are skipped for data frames, so a message costs
no coroutine switch; a sink reassembles fragments itself (:class:`Reassembler`) and checks
UTF-8 as ``recv()`` would. Reading is paused while the socket's write buffer is over its
high-water mark (the peer is not reading what we answer), as ``await send()`` would.

Internals used, all checked by ``tests/harness/test_wsadapter.py`` against the installed
library (``pyproject.toml`` bounds websockets to the majors tested):

| internal                                   | used for                                 |
|--------------------------------------------|------------------------------------------|
| ``Connection.process_event(frame)``        | taking data frames before the assembler  |
| ``Connection.data_received`` / ``send_data``| one write per read instead of per frame |
| ``Protocol.writes`` (framed, unsent bytes)  | joining a read's answers into one write  |
| ``Connection.send_in_progress``            | never interleaving with a fragmented send|
| ``Connection.resume_writing``              | resuming reads once the peer caught up   |
| ``Protocol.send_text`` / ``send_binary``   | framing a message without awaiting       |
| ``websockets.speedups.apply_mask``         | masking client frames in C               |
| ``Protocol.send_ping``, ``Connection.latency`` | the server heartbeat's pings, their RTT |
| ``Connection.send_context`` + ``Protocol.fail`` | the keepalive close, as the library's |
|                                            | own keepalive does it                    |
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import DATA_OPCODES, CloseCode, Frame, Opcode
from websockets.protocol import State

try:  # the C version; the library falls back to Python when it was built without it
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - every wheel on PyPI has the C extension
    from websockets.utils import apply_mask

__all__ = ["FrameSink", "Reassembler", "SinkConnection", "apply_mask", "can_write_now",
           "fail_keepalive", "send_ping", "write_frame"]

HEARTBEAT_PING = b"wslb"
"""Payload of the heartbeat's pings (the pong echoes it; the library ignores a pong for a
ping it did not send itself)."""

EARLY_FRAMES = 16
"""Data frames kept for a sink not attached yet (admission may hold a handler back) before
reading from that peer pauses until it is."""

FrameSink = Callable[[Frame], None]
"""Called with each data frame (decompressed, possibly a fragment) as it is parsed."""


class SinkConnection(ServerConnection):
    """A server connection whose data frames go to :attr:`sink` (once one is attached)."""

    _sink: FrameSink | None = None
    _early: list[Frame] | None = None
    _deferring = False
    _dirty = False
    _reading_paused = False
    pinged_at = 0.0
    """``time.monotonic()`` of the last heartbeat ping (:func:`send_ping`)."""
    pong_at = -1.0
    """``time.monotonic()`` of the last pong received."""

    def attach(self, sink: FrameSink) -> None:
        """Send every data frame to ``sink`` from now on, those already parsed first."""
        self._sink = sink
        early, self._early = self._early, None
        for frame in early or ():
            sink(frame)
        if self._reading_paused and self.transport.get_write_buffer_size() <= \
                self.transport.get_write_buffer_limits()[0]:
            self._reading_paused = False
            self.transport.resume_reading()

    def process_event(self, event: Any) -> None:
        if isinstance(event, Frame) and event.opcode in DATA_OPCODES:
            sink = self._sink
            if sink is not None:
                sink(event)
                return
            # Parsed before the handler attached, or even before the handshake finished
            # (frames sent in the same TCP chunk as the request are parsed in CONNECTING).
            if self.protocol.state in (State.CONNECTING, State.OPEN):
                if self._early is None:
                    self._early = []
                self._early.append(event)
                if len(self._early) >= EARLY_FRAMES and not self._reading_paused:
                    # admission may hold the handler back: stop reading meanwhile
                    self._reading_paused = True
                    self.transport.pause_reading()
                return
        elif isinstance(event, Frame) and event.opcode is Opcode.PONG:
            self.pong_at = now = time.monotonic()
            if bytes(event.data) == HEARTBEAT_PING and self.pinged_at:
                self.latency = now - self.pinged_at
        super().process_event(event)

    def data_received(self, data: bytes) -> None:
        self._deferring = True
        try:
            super().data_received(data)
        finally:
            self._deferring = False
        if self._dirty:
            self._dirty = False
            self.flush()
        transport = self.transport
        if not self._reading_paused and transport.get_write_buffer_size() > \
                transport.get_write_buffer_limits()[1] and not transport.is_closing():
            self._reading_paused = True  # the peer is not reading our answers: stop reading
            transport.pause_reading()

    def send_data(self) -> None:
        # The library writes each frame it framed with a write of its own (a system call
        # each while the socket keeps up): join them first, unless one marks EOF.
        writes = self.protocol.writes
        if len(writes) > 1 and all(writes):
            self.protocol.writes = [b"".join(writes)]
        super().send_data()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._reading_paused:
            self._reading_paused = False
            if not self.transport.is_closing():
                self.transport.resume_reading()

    def flush(self) -> None:
        """Hand what the protocol has framed to the transport (now, or at the end of the
        read being processed)."""
        if self._deferring:
            self._dirty = True
            return
        try:
            self.send_data()
        except Exception as exc:  # the transport is gone; the library ends the connection
            self.set_connection_exc(exc)


def can_write_now(ws: Any, limit: int) -> bool:
    """Can a frame be written without awaiting: open, no fragmented send under way, and
    the transport's buffer under ``limit`` bytes?"""
    transport = ws.transport
    return (ws.protocol.state is State.OPEN and ws.send_in_progress is None
            and transport is not None and transport.get_write_buffer_size() < limit)


def write_frame(ws: Any, payload: bytes, opcode: int) -> None:
    """Frame one message through the library's protocol and write it (no await)."""
    if opcode == Opcode.TEXT:
        ws.protocol.send_text(payload)
    else:
        ws.protocol.send_binary(payload)
    if isinstance(ws, SinkConnection):
        ws.flush()
    else:
        ws.send_data()


def send_ping(ws: SinkConnection) -> None:
    """Write one heartbeat ping (no await; a connection no longer open is left alone)."""
    if ws.protocol.state is State.OPEN:
        ws.pinged_at = time.monotonic()
        ws.protocol.send_ping(HEARTBEAT_PING)
        ws.flush()


async def fail_keepalive(ws: ServerConnection) -> None:
    """Close a connection whose ping went unanswered: 1011 "keepalive ping timeout", then
    TCP cut if the peer does not finish the closing handshake within the close timeout,
    exactly as the library's own keepalive does it (run it as a task: it lasts until the
    connection is closed)."""
    with contextlib.suppress(ConnectionClosed):
        async with ws.send_context():
            ws.protocol.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")


class Reassembler:
    """Data frames back into messages: what the library's assembler does for ``recv()``.

    Args:
        on_message: Called with each whole message (payload bytes, is_text).
        on_invalid: Called with a reason when a text message is not UTF-8 (close 1007).
    """

    __slots__ = ("_parts", "_text", "on_invalid", "on_message")

    def __init__(self, on_message: Callable[[bytes, bool], None],
                 on_invalid: Callable[[str], None]) -> None:
        self.on_message = on_message
        self.on_invalid = on_invalid
        self._parts: list[bytes] | None = None
        self._text = False

    def __call__(self, frame: Frame) -> None:
        opcode = frame.opcode
        if frame.fin and opcode is not Opcode.CONT and self._parts is None:
            self._deliver(bytes(frame.data), opcode is Opcode.TEXT)
            return
        if opcode is not Opcode.CONT:  # the first fragment (the parser checked the order)
            self._parts = []
            self._text = opcode is Opcode.TEXT
        parts = self._parts
        assert parts is not None
        parts.append(bytes(frame.data))
        if frame.fin:
            self._parts = None
            self._deliver(b"".join(parts), self._text)

    def _deliver(self, payload: bytes, is_text: bool) -> None:
        if is_text and not payload.isascii():
            try:
                payload.decode()
            except UnicodeDecodeError as exc:
                self.on_invalid(f"{exc.reason} at position {exc.start}")
                return
        self.on_message(payload, is_text)
