"""A deliberately wrong WebSocket server for the probe tests: each path breaks one rule.

It speaks raw HTTP on an asyncio stream and answers the opening handshake as the path
says (the table below), starting from a correct answer to the offer and breaking only
that path's rule; after a 101 it reads and drops whatever comes, except on
``/reset-lie``, which echoes with a real deflate stream. What the probe must flag for each
path is in ``test_probe_faults.py``.

| path             | what it does                                                       |
|------------------|--------------------------------------------------------------------|
| /larger          | answers server_max_window_bits two above the offered value         |
| /repeat          | answers server_no_context_takeover twice                           |
| /unoffered       | answers every offer with permessage-deflate and x-made-up          |
| /client-window   | answers client_max_window_bits=10 whatever was offered             |
| /malformed       | answers server_max_window_bits=016                                 |
| /dropped-nct     | accepts a server_no_context_takeover offer without answering it    |
| /subprotocol     | chooses a subprotocol nobody offered                               |
| /bad-accept      | 101 with a Sec-WebSocket-Accept for another key                    |
| /reset-lie       | agrees server_no_context_takeover, then compresses with its window |
|                  | kept across messages                                               |
| /garbage         | answers bytes that are not HTTP, then closes                       |
| /drop            | sends half a status line, then closes                              |
| /silent          | reads the request and never answers                                |
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import re
import struct
import zlib

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _accept(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def _correct(offer: str) -> list[str]:
    """The parameters of a correct answer to the first permessage-deflate offer: each
    flag and each window value echoed (value-less client_max_window_bits left out)."""
    first = offer.split(",")[0]
    params = [p.strip() for p in first.split(";")[1:]]
    return [p for p in params if p != "client_max_window_bits"]


def _extension_answer(path: str, offer: str) -> str | None:
    if path == "/unoffered":
        return "permessage-deflate, x-made-up"
    if "permessage-deflate" not in offer:
        return None
    params = _correct(offer)
    bits = re.search(r"server_max_window_bits=(\d+)", offer)
    if path == "/larger" and bits is not None:
        params = [p for p in params if not p.startswith("server_max_window_bits")]
        params.append(f"server_max_window_bits={min(int(bits[1]) + 2, 15)}")
    elif path == "/repeat":
        params += ["server_no_context_takeover"] * (
            1 if "server_no_context_takeover" in params else 2)
    elif path == "/client-window":
        params = [p for p in params if not p.startswith("client_max_window_bits")]
        params.append("client_max_window_bits=10")
    elif path == "/malformed":
        params = [p for p in params if not p.startswith("server_max_window_bits")]
        params.append("server_max_window_bits=016")
    elif path == "/dropped-nct":
        params = [p for p in params if p != "server_no_context_takeover"]
    elif path == "/reset-lie":
        params = [p for p in params if p != "server_no_context_takeover"]
        params.append("server_no_context_takeover")
    return "; ".join(["permessage-deflate", *params])


async def _frames(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    b1, b2 = await reader.readexactly(2)
    n = b2 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    mask = await reader.readexactly(4)
    data = bytes(b ^ mask[i % 4] for i, b in enumerate(await reader.readexactly(n)))
    if b1 & 0x40:  # the client compressed it: inflate, the client keeps its own window
        data = zlib.decompressobj(-15).decompress(data + b"\x00\x00\xff\xff")
    return b1 & 0x0F, data


def _server_frame(opcode: int, payload: bytes, rsv1: bool = False) -> bytes:
    first = 0x80 | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    head = (struct.pack("!BB", first, n) if n < 126 else
            struct.pack("!BBH", first, 126, n) if n < 1 << 16 else
            struct.pack("!BBQ", first, 127, n))
    return head + payload


async def _lying_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    kept = zlib.compressobj(6, zlib.DEFLATED, -15)  # one window for every message
    while True:
        opcode, data = await _frames(reader)
        if opcode == 0x8:
            writer.write(_server_frame(0x8, data[:2]))
            return
        if opcode == 0x9:
            writer.write(_server_frame(0xA, data))
        elif opcode in (0x1, 0x2):
            body = kept.compress(data) + kept.flush(zlib.Z_SYNC_FLUSH)
            writer.write(_server_frame(opcode, body[:-4], rsv1=True))
        await writer.drain()


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One connection, answered as its request path says."""
    try:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        path = head.split(" ", 2)[1]
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (line.partition(":") for line in head.split("\r\n")[1:] if line)}
        if path == "/silent":
            await reader.read()  # until the client gives up
            return
        if path == "/garbage":
            writer.write(b"\x16\x03\x01 this is not HTTP at all\r\n\r\n")
            return
        if path == "/drop":
            writer.write(b"HTTP/1.1 101 Swi")
            return
        key = headers.get("sec-websocket-key", "")
        lines = ["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket",
                 "Connection: Upgrade",
                 f"Sec-WebSocket-Accept: {_accept('x' + key if path == '/bad-accept' else key)}"]
        answer = _extension_answer(path, headers.get("sec-websocket-extensions", ""))
        if answer:
            lines.append(f"Sec-WebSocket-Extensions: {answer}")
        if path == "/subprotocol":
            lines.append("Sec-WebSocket-Protocol: nobody-offered-this")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        if path == "/reset-lie":
            await _lying_echo(reader, writer)
        else:
            while await reader.read(65536):
                pass
    except (asyncio.IncompleteReadError, ConnectionError, IndexError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def start_raw_server() -> tuple[asyncio.Server, int]:
    """The server on a free loopback port (close it when done)."""
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]
