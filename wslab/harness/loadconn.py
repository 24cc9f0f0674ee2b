"""One load-client connection on picows: frames in and out at C speed, wslab's rules kept.

What lives here: :func:`open_load_connection`, which opens a connection with picows (a
Cython WebSocket library: frame parsing, masking and writes in C), and
:class:`LoadConnection`, its listener: the send side (the connection's
:class:`~wslab.pipeline.SendPipeline`, its batch timer, the negotiated extension's
:class:`~wslab.compressor.FrameCompressor`), the receive side (decompression, envelopes,
one row per message in a :class:`~wslab.harness.loadlog.ConnectionLog`), its own frame
tally, heartbeat and closing handshake. What must not live here: the schedule of a trace
and the run of many connections (``client.py``), the negotiation rules.

Negotiation stays the websockets library's: the offer is the request that the library's
own ``ClientProtocol`` builds for wslab's extension factories (``wiring.py``), and the
server's answer goes through that protocol's ``process_extensions`` and
``process_subprotocol``, so a wslab client agrees to exactly what a websockets client
would, and gets the same extension objects. Compressed frames are decoded by those
objects with the library's ``max_size`` guard; plain frames never leave the fast path.

What a peer can get wrong, and what this side does (codes are websockets' ``CloseCode``):

| the peer sends                                  | this side closes with   |
|-------------------------------------------------|-------------------------|
| RSV1 without an agreed extension, a stray CONT  | 1002 protocol error     |
| invalid UTF-8 in a text message, a bad envelope | 1007 invalid data       |
| a message (after decompression) over max_size   | 1009 message too big    |
| no pong within the heartbeat timeout            | 1011 internal error     |
"""

from __future__ import annotations

import asyncio
import encodings.idna  # noqa: F401  (see below)
import itertools
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect
from websockets.client import ClientProtocol
from websockets.datastructures import Headers
from websockets.exceptions import PayloadTooBig, ProtocolError
from websockets.extensions.base import ClientExtensionFactory
from websockets.frames import CloseCode, Frame, Opcode
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from wslab import envelopes
from wslab.compressor import make_selector
from wslab.config import TuningConfig
from wslab.errors import DecodeError
from wslab.harness.extension import SelectiveSender, selective_extension
from wslab.harness.frametally import FrameCounts
from wslab.harness.framewriter import FrameWriter
from wslab.harness.loadlog import ConnectionLog
from wslab.harness.recorder import CONTENT_HASH, LOW32, message_keys
from wslab.pipeline import Incoming, OutFrame, SendPipeline
from wslab.priority import Priority

# encodings.idna is imported above because picows' connect encodes the host with the idna
# codec, which Python imports on its first use: a few milliseconds (and stringprep) inside
# the first connection's set-up, counted in every measured run, not once per process.

_TEXT, _BINARY, _CONT = WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION
_CLOSE, _PING, _PONG = WSMsgType.CLOSE, WSMsgType.PING, WSMsgType.PONG
_WS_OPCODE = {_TEXT: Opcode.TEXT, _BINARY: Opcode.BINARY, _CONT: Opcode.CONT}


def _header(n: int, masked: bool) -> int:
    """RFC 6455 frame header bytes for an ``n``-byte payload."""
    return (2 if n < 126 else 4 if n < 65536 else 10) + (4 if masked else 0)


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """What every connection of a load run shares.

    Attributes:
        url: The target ``ws://`` URL.
        config: Batching, compression and scaling for this side.
        extensions: The extension factories offered (``wiring.client_extensions``).
        envelope: The envelope offered as a ``wslab.v1.*`` subprotocol (None: none).
        label_header: The header that carries the connection's label.
    """

    url: str
    config: TuningConfig
    extensions: Sequence[ClientExtensionFactory]
    envelope: str | None
    label_header: str


class LoadConnection(WSListener):
    """The listener of one load connection (built by :func:`open_load_connection`)."""

    def __init__(self, plan: LoadPlan, log: ConnectionLog, extension: Any,
                 subprotocol: str | None, expect: int | None) -> None:
        super().__init__()
        config = plan.config
        self.log = log
        self.ext: SelectiveSender | None = extension
        self.decoder = extension
        self.compressor = extension.compressor if extension is not None else None
        self.subprotocol = subprotocol
        self.envelope = envelopes.envelope_of(subprotocol)
        self.pipeline = SendPipeline(config, envelope=self.envelope,
                                     batching=self.envelope is not None)
        if self.compressor is not None:  # compressed frames are chosen by this side's policy
            self.compressor.selector = make_selector(config.compression)
        self.max_size = config.scaling.max_size
        self.write_limit = config.scaling.write_limit
        self.heartbeat = (config.scaling.heartbeat_interval_s, config.scaling.heartbeat_timeout_s)
        self.transport: WSTransport | None = None
        self.writer: FrameWriter | None = None
        self.tally_in, self.tally_out = FrameCounts(), FrameCounts()
        self.messages_sent = 0
        self.frames_received = self.received = 0
        self.expect = expect
        self.last = time.monotonic()
        loop = asyncio.get_running_loop()
        self.loop = loop
        self.complete: asyncio.Future[None] = loop.create_future()
        self.disconnected: asyncio.Future[None] = loop.create_future()
        self.writable: asyncio.Future[None] | None = None
        self.close_code: int | None = None
        self.failed: str | None = None
        self.close_sent = False
        self._fragments: list[bytes] | None = None
        self._fragment_text = False
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None
        self._ping: asyncio.TimerHandle | None = None
        self._pong_due: asyncio.TimerHandle | None = None

    # -- connection life ---------------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.writer = FrameWriter(transport.underlying_transport.write)
        # websockets' write_limit: past it, the sender waits for the socket to drain
        transport.underlying_transport.set_write_buffer_limits(high=self.write_limit)
        if self.heartbeat[0]:
            self._ping = self.loop.call_later(self.heartbeat[0], self._send_ping)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        for handle in (self._timer, self._ping, self._pong_due):
            if handle is not None:
                handle.cancel()
        if self.close_code is None:
            self.close_code = CloseCode.ABNORMAL_CLOSURE
        if not self.disconnected.done():
            self.disconnected.set_result(None)
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)

    def pause_writing(self) -> None:
        if self.writable is None or self.writable.done():
            self.writable = self.loop.create_future()

    def resume_writing(self) -> None:
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)

    def socket(self) -> Any:
        """The connection's socket (for its kernel counters), or None once closed."""
        if self.transport is None:
            return None
        return self.transport.underlying_transport.get_extra_info("socket")

    def fail(self, code: int, reason: str) -> None:
        """Close at once with ``code`` (the peer broke a rule) and drop the connection; the
        connection's row then says so (``close_code`` and ``failed``)."""
        if self.close_code is None:
            self.close_code = code
            self.failed = f"sent {code}: {reason}"
        self._send_close(code, reason)
        if self.transport is not None:
            self.transport.disconnect()

    def flush_writes(self) -> None:
        """Write the frames framed so far (before waiting on anything, and before picows
        writes a control frame of its own, so the peer sees everything in order)."""
        if self.writer is not None:
            self.writer.flush()

    def _send_close(self, code: int, reason: str = "") -> None:
        if self.close_sent or self.transport is None or self.disconnected.done():
            return
        self.flush_writes()
        self.close_sent = True
        message = reason.encode()[:123]
        self.transport.send_close(WSCloseCode(code), message)
        self.tally_out.control_frames += 1
        self.tally_out.control_bytes += _header(2 + len(message), True) + 2 + len(message)

    async def close(self, timeout: float) -> None:
        """The closing handshake: send 1000, wait up to ``timeout`` for the peer's answer."""
        self._send_close(CloseCode.NORMAL_CLOSURE)
        try:
            await asyncio.wait_for(asyncio.shield(self.disconnected), timeout)
        except TimeoutError:
            if self.transport is not None:
                self.transport.disconnect(graceful=False)
            await self.disconnected

    def _send_ping(self) -> None:
        interval, timeout = self.heartbeat
        if self.transport is None or self.disconnected.done():
            return
        self.flush_writes()
        self.transport.send_ping(os.urandom(4))
        self.tally_out.control_frames += 1
        self.tally_out.control_bytes += _header(4, True) + 4
        if timeout and self._pong_due is None:
            self._pong_due = self.loop.call_later(timeout, self.fail, CloseCode.INTERNAL_ERROR,
                                                  "keepalive ping timeout")
        if interval:
            self._ping = self.loop.call_later(interval, self._send_ping)

    # -- sending ------------------------------------------------------------------------

    def push(self, index: int, t_handoff: float, priority: Priority, type: str, payload: bytes,
             is_text: bool) -> None:
        """Hand one message to the pipeline; send what it releases, arm its batch timer."""
        frames = self.pipeline.push(index, t_handoff, priority, type, payload, is_text)
        if frames:
            self.send_frames(frames)
        if self.pipeline.batcher is not None:
            self._arm()

    def push_many(self, now: float, messages: Sequence[Incoming]) -> None:
        """Hand several messages due at the same time to the pipeline in one call."""
        frames = self.pipeline.push_many(now, messages)
        if frames:
            self.send_frames(frames)
        if self.pipeline.batcher is not None:
            self._arm()

    def _arm(self) -> None:
        deadline = self.pipeline.next_deadline()
        if deadline == self._deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deadline = deadline
        if deadline is not None:
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._deadline = None
        self.send_frames(self.pipeline.poll(time.monotonic()))
        self.flush_writes()
        self._arm()

    def flush(self) -> None:
        """Send whatever the batcher still holds (the connection is about to close)."""
        self.send_frames(self.pipeline.flush(time.monotonic()))
        self.flush_writes()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def send_frames(self, frames: list[OutFrame]) -> None:
        """Compress (if the selector says so) and frame each one into the current burst
        (written at :meth:`flush_writes`, or once it is large), logging what left."""
        writer = self.writer
        if writer is None or self.close_sent or self.disconnected.done():
            return
        comp = self.compressor
        log = self.log
        if comp is None:  # every frame as it is: framed and logged in one call each
            writer.add_all(zip([f.opcode for f in frames], [f.payload for f in frames],
                               itertools.repeat(False)))
            self.messages_sent += log.on_sent(frames)
            return
        wires = [comp.encode(f.payload, f.key) for f in frames]
        writer.add_all((f.opcode, f.payload if w is None else w, w is not None)
                       for f, w in zip(frames, wires, strict=True))
        self.messages_sent += log.on_sent(frames, [None if w is None else len(w)
                                                   for w in wires])

    @property
    def frames_sent(self) -> int:
        """Data frames sent so far."""
        return self.log.coded_n

    # -- receiving ----------------------------------------------------------------------

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        op = frame.msg_type
        size = frame.payload_size
        if op is _TEXT or op is _BINARY or op is _CONT:
            if self.max_size is not None and size > self.max_size:
                # picows answers 1009 on the header, yet may still hand the frame over
                self.fail(CloseCode.MESSAGE_TOO_BIG, "message too big")
                return
            tally = self.tally_in
            tally.data_frames += 1
            tally.data_payload_bytes += size
            tally.data_bytes += size + (2 if size < 126 else 4 if size < 65536 else 10)
            if frame.rsv1:
                tally.compressed_frames += 1
            elif frame.fin and op is not _CONT and self._fragments is None:
                self._message(frame.get_payload_as_bytes(), op is _TEXT)
                return
            self._slow_frame(frame, op)
            return
        self.tally_in.control_frames += 1
        self.tally_in.control_bytes += size + _header(size, False)
        if op is _PING:
            payload = frame.get_payload_as_bytes()
            self.flush_writes()
            transport.send_pong(payload)
            self.tally_out.control_frames += 1
            self.tally_out.control_bytes += _header(len(payload), True) + len(payload)
        elif op is _PONG:
            if self._pong_due is not None:
                self._pong_due.cancel()
                self._pong_due = None
        elif op is _CLOSE:
            code = frame.get_close_code().value if size >= 2 else CloseCode.NO_STATUS_RCVD
            self.close_code = code
            self._send_close(code if size >= 2 else CloseCode.NORMAL_CLOSURE)
            transport.disconnect()

    def _slow_frame(self, frame: WSFrame, op: WSMsgType) -> None:
        """A compressed or fragmented frame: through the extension, then reassembled."""
        starts = op is not _CONT
        if starts == (self._fragments is not None) or (frame.rsv1 and self.decoder is None):
            self.fail(CloseCode.PROTOCOL_ERROR, "unexpected continuation or RSV1 frame")
            return
        data = frame.get_payload_as_bytes()
        if self.decoder is not None:
            try:
                decoded = self.decoder.decode(
                    Frame(_WS_OPCODE[op], data, frame.fin, frame.rsv1), max_size=self.max_size)
            except PayloadTooBig:
                self.fail(CloseCode.MESSAGE_TOO_BIG, "message too big")
                return
            except ProtocolError as exc:
                self.fail(CloseCode.PROTOCOL_ERROR, str(exc))
                return
            data = bytes(decoded.data)
        if starts:
            self._fragments = []
            self._fragment_text = op is _TEXT
        parts = self._fragments
        assert parts is not None
        parts.append(data)
        if self.max_size is not None and sum(map(len, parts)) > self.max_size:
            self.fail(CloseCode.MESSAGE_TOO_BIG, "message too big")
            return
        if frame.fin:
            self._fragments = None
            self._message(b"".join(parts), self._fragment_text)

    def _message(self, payload: bytes, is_text: bool) -> None:
        """One whole message: checked, taken apart (envelope), logged by content key."""
        t = time.monotonic()
        if is_text and not payload.isascii():
            try:
                payload.decode()
            except UnicodeDecodeError:
                self.fail(CloseCode.INVALID_DATA, "invalid UTF-8")
                return
        frame_no = self.frames_received
        self.frames_received = frame_no + 1
        self.last = t
        if self.envelope is None:
            key = (len(payload) << 32) | (CONTENT_HASH(payload) & LOW32)
            self.log.on_received(t, key, frame_no)
            got = self.received = self.received + 1
        else:
            try:
                parts = envelopes.decode(self.envelope, payload)
            except DecodeError as exc:
                self.fail(CloseCode.INVALID_DATA, f"bad {self.envelope} envelope: {exc}")
                return
            self.log.on_received_many(t, message_keys(parts), frame_no)
            got = self.received = self.received + len(parts)
        if self.expect is not None and got >= self.expect and not self.complete.done():
            self.complete.set_result(None)

    def counts(self) -> dict[str, int]:
        """Frame and byte counters both ways, plus the bytes each way after the handshake."""
        out = self.tally_out.as_dict("out_")
        out.update({"out_" + k: v for k, v in self.log.sent_frame_totals(True).items()})
        return {"read": self.tally_in.data_bytes + self.tally_in.control_bytes,
                "written": out["out_data_bytes"] + out["out_control_bytes"],
                **self.tally_in.as_dict("in_"), **out}


async def open_load_connection(plan: LoadPlan, label: str, log: ConnectionLog, *,
                               expect: int | None = None,
                               local_addr: tuple[str, int] | None = None,
                               open_timeout: float = 30.0,
                               ) -> tuple[LoadConnection, str | None]:
    """Connect, negotiate as the websockets library would, and return the listener and the
    server's ``Sec-WebSocket-Extensions`` answer.

    Raises:
        websockets' ``InvalidHandshake`` errors (``NegotiationError`` ...) or picows'
        handshake errors, ``OSError`` and ``TimeoutError``: per connection, for the caller
        to report.
    """
    subprotocols = ([Subprotocol(envelopes.subprotocol(plan.envelope))]
                    if plan.envelope else None)
    protocol = ClientProtocol(parse_uri(plan.url), extensions=plan.extensions,
                              subprotocols=subprotocols)
    offered = protocol.connect().headers
    headers = {name: offered[name] for name in ("Sec-WebSocket-Extensions",
                                                "Sec-WebSocket-Protocol") if name in offered}
    headers[plan.label_header] = label
    answer: list[str | None] = [None]

    def listener(_request: Any, response: Any) -> LoadConnection:
        got = Headers(list(response.headers.items()))
        extension = selective_extension(protocol.process_extensions(got))
        subprotocol = protocol.process_subprotocol(got)
        answer[0] = got.get("Sec-WebSocket-Extensions")
        return LoadConnection(plan, log, extension, subprotocol, expect)

    max_size = plan.config.scaling.max_size
    kwargs: dict[str, Any] = {"local_addr": local_addr} if local_addr else {}
    _transport, conn = await ws_connect(
        listener, plan.url, extra_headers=headers, enable_auto_pong=False,
        websocket_handshake_timeout=open_timeout, disconnect_on_exception=True,
        max_frame_size=max_size if max_size is not None else 2 ** 62, **kwargs)
    assert isinstance(conn, LoadConnection)
    return conn, answer[0]
