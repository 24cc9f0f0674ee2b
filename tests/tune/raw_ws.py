"""A raw WebSocket client for the export tests: every frame seen as it is on the wire.

What lives here: :class:`RawWebSocket` (blocking socket, every step with a timeout): the
handshake with an offer chosen by the test and the answer's headers, masked frames out,
server frames in exactly as sent (RSV1, opcode, payload still compressed, pings and
closes included), and :func:`inflate` for RFC 7692 payloads. Also the little of engine.io
v4 / socket.io v5 text framing the Socket.IO tests speak (:func:`engineio_path`,
:func:`open_packet`). What must not live here: expectations (the tests hold those).

It is written from RFC 6455 and RFC 7692 directly, not with the websockets library, so
that pings, close codes and compressed sizes are observed rather than handled for us.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time
import zlib
from dataclasses import dataclass
from typing import Any

# RFC 6455 opcodes (section 11.8)
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
BROWSER_OFFER = "permessage-deflate; client_max_window_bits"  # what Chromium sends
TAIL = b"\x00\x00\xff\xff"  # RFC 7692 7.2.1: stripped by the sender, put back to inflate


@dataclass
class Frame:
    """One server frame as received."""

    fin: bool
    rsv1: bool
    opcode: int
    payload: bytes  # as on the wire (still compressed when rsv1)
    at: float  # time.monotonic() when it was read
    data: bytes = b""  # the message, inflated (data frames read by data_frame only)

    @property
    def close_code(self) -> int | None:
        """The status code of a close frame (None for an empty one or another opcode)."""
        if self.opcode != CLOSE or len(self.payload) < 2:
            return None
        return int(struct.unpack("!H", self.payload[:2])[0])


class Closed(Exception):
    """The server closed the TCP connection without (more) frames."""


class RawWebSocket:
    """One client connection; ``extensions`` is the Sec-WebSocket-Extensions offer (or None)."""

    def __init__(self, port: int, path: str = "/", extensions: str | None = BROWSER_OFFER,
                 timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buffer = b""
        # One inflater for the connection: it follows a server that keeps its context and
        # is just as right for one that does not (RFC 7692 7.2.2).
        self.inflater = zlib.decompressobj(-15)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                 "Sec-WebSocket-Version: 13"]
        if extensions is not None:
            lines.append(f"Sec-WebSocket-Extensions: {extensions}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()

    @property
    def extensions(self) -> str | None:
        """The server's Sec-WebSocket-Extensions answer."""
        return self.headers.get("sec-websocket-extensions")

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise Closed("connection closed by the server")
        self.buffer += chunk

    def _take(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self._fill()
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def send(self, payload: bytes | str, opcode: int | None = None) -> None:
        """One masked, uncompressed, final frame (text for str, binary for bytes)."""
        data = payload.encode() if isinstance(payload, str) else payload
        if opcode is None:
            opcode = TEXT if isinstance(payload, str) else BINARY
        n = len(data)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 1 << 16:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(head + mask + masked)

    def frame(self, timeout: float = 5.0) -> Frame:
        """The next server frame, whatever it is."""
        self.sock.settimeout(timeout)
        b0, b1 = self._take(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._take(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._take(8))[0]
        if b1 & 0x80:
            raise AssertionError("a server frame must not be masked (RFC 6455 5.1)")
        return Frame(bool(b0 & 0x80), bool(b0 & 0x40), b0 & 0x0F, self._take(n),
                     time.monotonic())

    def data_frame(self, timeout: float = 5.0, *, answer_pings: bool = True) -> Frame:
        """The next text/binary/close frame, inflated into ``data``; pings on the way are
        answered (or dropped)."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.frame(max(0.05, deadline - time.monotonic()))
            if frame.opcode == PING:
                if answer_pings:
                    self.send(frame.payload, PONG)
                continue
            if frame.opcode == PONG:
                continue
            if frame.rsv1:
                frame.data = self.inflater.decompress(frame.payload + TAIL)
            else:
                frame.data = frame.payload
            return frame

    def close(self) -> None:
        """Drop the TCP connection (the tests do not need a closing handshake)."""
        self.sock.close()

    def __enter__(self) -> RawWebSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def inflate(payload: bytes, window_bits: int = 15) -> bytes:
    """RFC 7692: one message's payload, decompressed alone (fresh context)."""
    return zlib.decompressobj(-window_bits).decompress(payload + TAIL)


# --- engine.io v4 / socket.io v5 text framing ------------------------------------------------
# engine.io packet types (first character): 0 open, 1 close, 2 ping, 3 pong, 4 message.
# socket.io packets ride in engine.io messages: "40" connect the main namespace,
# "42[...]" an event.

def engineio_path() -> str:
    """The engine.io websocket-only endpoint (no polling handshake first)."""
    return "/socket.io/?EIO=4&transport=websocket"


def open_packet(ws: RawWebSocket, timeout: float = 5.0) -> dict[str, Any]:
    """Read engine.io's open packet ("0{...}") and return its JSON."""
    text = ws.data_frame(timeout).data.decode()
    assert text.startswith("0{"), text
    data: dict[str, Any] = json.loads(text[1:])
    return data


def event_packet(event: str, data: str) -> str:
    """A socket.io event on the main namespace, as engine.io text: 42["event","data"]."""
    return "42" + json.dumps([event, data], separators=(",", ":"))
