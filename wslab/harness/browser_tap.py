"""The browser client's tap: a loopback relay that sees what Chromium really sends.

What lives here: :class:`BrowserTap`, a small TCP relay between the page and the server
under test (or the link shaper), and :class:`MessageFrames`, a sans-I/O reader of one
direction's RFC 6455 frame headers. What must not live here: Playwright, the page, the
schedule of a trace (``browser_client.py``).

A page cannot set request headers on a WebSocket, and its frames are built inside
Chromium's network service, out of reach of the page and of Playwright. The tap fills
both gaps, per connection:

| it does                                         | because                              |
|-------------------------------------------------|--------------------------------------|
| serves the page (``GET /``, cross-origin        | the page then has an http origin and |
| isolated: COOP ``same-origin``, COEP            | 5 us timers instead of 100 us        |
| ``require-corp``)                               | (Chromium coarsens unisolated pages) |
| adds ``X-Wslab-Client: LABEL`` to the upgrade   | ``wslab bench`` joins the two sides' |
| request (the label comes in ``?wslab-client=``) | logs by that label                   |
| keeps the request's and the response's          | what Chromium offered, what was      |
| ``Sec-WebSocket-Extensions``                    | agreed, as the server saw them       |
| reads every frame header both ways (payloads    | frames, bytes, RSV1 per message as   |
| are passed on, never copied or parsed)          | they crossed the socket              |
| reads ``TCP_INFO`` of its socket to the server  | kernel bytes and segments, as the    |
|                                                 | load client reads its own socket's   |

The relay is one more hop on loopback: a few tens of microseconds each way, counted in the
browser's latency (``bench_browser_client`` measures the browser beside the load client).
"""

from __future__ import annotations

import asyncio
import contextlib
from array import array
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from wslab.harness.frametally import FrameCounts
from wslab.harness.meter import tcp_info
from wslab.harness.wiring import CLIENT_HEADER
from wslab.wire import CONTROL_OPCODES, OPCODE_BITS, Opcode

LABEL_PARAM = "wslab-client"
"""The query parameter the page names its connection in (the tap turns it into a header)."""
HEAD_LIMIT = 64 << 10
"""Largest HTTP head the tap reads (request or response)."""
HEAD_TIMEOUT_S = 10.0
"""Longest wait for an HTTP head, or for the server to accept the tap's connection."""
_CONTROL = frozenset(map(int, CONTROL_OPCODES))
_CONT = int(Opcode.CONT)


class MessageFrames(FrameCounts):
    """:class:`FrameCounts` of one direction, plus one row per data message: its payload
    bytes on the wire (all its frames) and whether its first frame had RSV1 set."""

    __slots__ = ("_head", "_skip", "message_bytes", "message_rsv1")

    def __init__(self) -> None:
        super().__init__()
        self._head = bytearray()
        self._skip = 0
        self.message_bytes: array[int] = array("q")
        self.message_rsv1: array[int] = array("b")

    def feed(self, data: bytes) -> None:
        """Account for the next chunk of the stream (after the opening handshake)."""
        i, n = 0, len(data)
        while i < n:
            if self._skip:
                take = min(self._skip, n - i)
                self._skip -= take
                i += take
                continue
            head = self._head
            if not head and n - i >= 2:
                size = _header_size(data[i + 1])
                if n - i >= size:  # the whole header is here (almost always)
                    self._frame(data[i:i + size])
                    i += size
                    continue
            # A header split across chunks: gather it byte by byte (at most 14).
            head.append(data[i])
            i += 1
            if len(head) >= 2 and len(head) == _header_size(head[1]):
                self._frame(bytes(head))
                head.clear()

    def _frame(self, header: bytes) -> None:
        b0, b1 = header[0], header[1] & 0x7F
        length = (b1 if b1 < 126 else int.from_bytes(header[2:4], "big") if b1 == 126
                  else int.from_bytes(header[2:10], "big"))
        self._skip = length
        opcode = b0 & OPCODE_BITS
        if opcode in _CONTROL:
            self.control_frames += 1
            self.control_bytes += len(header) + length
            return
        self.data_frames += 1
        self.data_bytes += len(header) + length
        self.data_payload_bytes += length
        rsv1 = bool(b0 & 0x40)
        if rsv1:
            self.compressed_frames += 1
        if opcode == _CONT and len(self.message_bytes):
            self.message_bytes[-1] += length
        else:
            self.message_bytes.append(length)
            self.message_rsv1.append(rsv1)


def _header_size(second: int) -> int:
    """A frame header's size in bytes, from its second byte (mask bit, length code)."""
    code = second & 0x7F
    return 2 + (4 if second & 0x80 else 0) + (2 if code == 126 else 8 if code == 127 else 0)


@dataclass(slots=True)
class TappedConnection:
    """What the tap saw of one WebSocket connection.

    Attributes:
        label: The connection's label (``X-Wslab-Client``).
        offered: The request's ``Sec-WebSocket-Extensions`` (None: none offered).
        agreed: The response's ``Sec-WebSocket-Extensions`` (None: none agreed).
        subprotocol: The response's ``Sec-WebSocket-Protocol``.
        status: The response's HTTP status (101 when the upgrade succeeded).
        up: Frames from the browser to the server.
        down: Frames from the server to the browser.
        tcp: ``TCP_INFO`` of the tap's socket to the server, read before it closed.
    """

    label: str
    offered: str | None = None
    agreed: str | None = None
    subprotocol: str | None = None
    status: int | None = None
    up: MessageFrames = field(default_factory=MessageFrames)
    down: MessageFrames = field(default_factory=MessageFrames)
    tcp: dict[str, int | None] | None = None


def _parse_head(head: bytes) -> tuple[str, dict[str, str]]:
    """The first line and the headers (lower-case names; repeated ones joined by ``, ``)."""
    lines = head.decode("latin-1").split("\r\n")
    fields: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            key = name.strip().lower()
            fields[key] = (fields[key] + ", " if key in fields else "") + value.strip()
    return lines[0], fields


def _with_label(head: bytes, target: str, label: str) -> bytes:
    """The upgrade request as the server gets it: the tap's query gone, the label added."""
    lines = head.decode("latin-1").split("\r\n")
    method, _, rest = lines[0].partition(" ")
    _path, _, version = rest.rpartition(" ")
    kept = [line for line in lines[1:] if line
            and not line.lower().startswith(CLIENT_HEADER.lower() + ":")]
    out = [f"{method} {target} {version}", *kept, f"{CLIENT_HEADER}: {label}", "", ""]
    return "\r\n".join(out).encode("latin-1")


class BrowserTap:
    """A loopback relay from the page to ``upstream``, serving the page itself.

    Args:
        upstream: Host and port of the server under test (or of the shaper before it).
        page: The HTML served at ``GET /``.
    """

    def __init__(self, upstream: tuple[str, int], page: bytes) -> None:
        self.upstream = upstream
        self.page = page
        self.connections: list[TappedConnection] = []
        self.errors: list[str] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> int:
        """Listen on 127.0.0.1; return the port."""
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening and drop every relayed connection still open."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _client(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
            line, fields = _parse_head(head[:HEAD_LIMIT])
            if fields.get("upgrade", "").lower() != "websocket":
                await self._serve_page(line, writer)
                return
            await self._relay(line, head, fields, reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                TimeoutError) as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve_page(self, line: str, writer: asyncio.StreamWriter) -> None:
        parts = line.split(" ")
        found = len(parts) == 3 and parts[0] == "GET" and urlsplit(parts[1]).path == "/"
        body = self.page if found else b"not found\n"
        status = "200 OK" if found else "404 Not Found"
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\n"
            "Cross-Origin-Opener-Policy: same-origin\r\n"
            "Cross-Origin-Embedder-Policy: require-corp\r\nConnection: close\r\n\r\n"
            .encode() + body)
        await writer.drain()

    async def _relay(self, line: str, head: bytes, fields: dict[str, str],
                     reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        url = urlsplit(line.split(" ")[1])
        label = (parse_qs(url.query).get(LABEL_PARAM) or [f"b-{len(self.connections)}"])[0]
        conn = TappedConnection(label, offered=fields.get("sec-websocket-extensions"))
        self.connections.append(conn)
        up_reader, up_writer = await asyncio.wait_for(
            asyncio.open_connection(*self.upstream), HEAD_TIMEOUT_S)
        sock = up_writer.get_extra_info("socket")
        try:
            up_writer.write(_with_label(head, url.path or "/", label))
            answer = await asyncio.wait_for(up_reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
            status_line, answered = _parse_head(answer[:HEAD_LIMIT])
            status = status_line.split(" ")
            conn.status = int(status[1]) if len(status) > 1 and status[1].isdigit() else None
            conn.agreed = answered.get("sec-websocket-extensions")
            conn.subprotocol = answered.get("sec-websocket-protocol")
            writer.write(answer)
            await asyncio.gather(self._pump(reader, up_writer, conn.up),
                                 self._pump(up_reader, writer, conn.down))
        finally:
            if sock is not None and conn.tcp is None:
                info = tcp_info(sock)
                conn.tcp = info.as_dict() if info is not None else None
            up_writer.close()
            with contextlib.suppress(Exception):
                await up_writer.wait_closed()

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                    frames: MessageFrames) -> None:
        """Copy one direction until its end, reading every frame header on the way."""
        while True:
            data = await src.read(1 << 16)
            if not data:
                break
            frames.feed(data)
            dst.write(data)
            if dst.transport.get_write_buffer_size() > (1 << 20):
                await dst.drain()
        if dst.can_write_eof():
            with contextlib.suppress(OSError):
                dst.write_eof()
