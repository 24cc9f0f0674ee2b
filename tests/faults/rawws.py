"""A deliberately naive WebSocket client for hostile-input tests: hand-made RFC 6455 frames.

The websockets library refuses to send most of what these tests need (unmasked frames,
fragmented pings, reserved opcodes, RSV bits, lengths it does not have), so this client
does the opening handshake itself over a plain asyncio stream and then writes whatever
bytes it is given. It reads the server's frames back only to find the close code.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import struct
from dataclasses import dataclass, field

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv1: bool = False,
          rsv2: bool = False, rsv3: bool = False, masked: bool = True,
          length: int | None = None) -> bytes:
    """One frame's bytes. ``length`` overrides the declared payload length (to lie)."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | (0x20 if rsv2 else 0) \
        | (0x10 if rsv3 else 0) | (opcode & 0x0F)
    n = len(payload) if length is None else length
    mask_bit = 0x80 if masked else 0
    if n < 126:
        head = struct.pack("!BB", first, mask_bit | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", first, mask_bit | 126, n)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, n)
    if not masked:
        return head + payload
    key = os.urandom(4)
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + body


def close_frame(code: int, reason: bytes = b"") -> bytes:
    """A masked close frame with ``code`` and raw ``reason`` bytes."""
    return frame(0x8, struct.pack("!H", code) + reason)


@dataclass
class Handshake:
    """The server's answer to the opening handshake."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)


class RawClient:
    """One TCP connection that speaks just enough HTTP to open a WebSocket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.handshake = Handshake(0)

    @classmethod
    async def open(cls, port: int, *, extensions: str | None = None,
                   subprotocols: list[str] | None = None, origin: str | None = None,
                   path: str = "/") -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                 "Sec-WebSocket-Version: 13"]
        if extensions:
            lines.append(f"Sec-WebSocket-Extensions: {extensions}")
        if subprotocols:
            lines.append(f"Sec-WebSocket-Protocol: {', '.join(subprotocols)}")
        if origin:
            lines.append(f"Origin: {origin}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        client.handshake = Handshake(int(status_line.split()[1]), headers)
        if client.handshake.status == 101:
            accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
            assert headers.get("sec-websocket-accept") == accept
        return client

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def read_frame(self) -> tuple[int, bytes]:
        """The next (opcode, payload) from the server (server frames are never masked)."""
        b1, b2 = await self.reader.readexactly(2)
        assert not b2 & 0x80, "a server must not mask its frames"
        n = b2 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return b1 & 0x0F, await self.reader.readexactly(n)

    async def close_code(self, timeout: float = 5.0) -> int | None:
        """Read until the server's close frame; its code (None: closed without one)."""

        async def wait() -> int | None:
            while True:
                try:
                    opcode, payload = await self.read_frame()
                except (asyncio.IncompleteReadError, ConnectionError):
                    return None
                if opcode == 0x8:
                    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005

        try:
            return await asyncio.wait_for(wait(), timeout)
        finally:
            self.writer.close()
            with contextlib.suppress(ConnectionError):
                await self.writer.wait_closed()
