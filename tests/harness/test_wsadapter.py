"""wsadapter: the websockets internals it names exist, Reassembler, and SinkConnection live.

The live tests run a real :class:`LiveServer` (echo) against a websockets client or a raw
socket that writes hand-made frames: fragments, invalid UTF-8, frames in the handshake's
own TCP chunk, many frames in one chunk, and a client that writes without ever reading.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import os
import socket
import struct
import time
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.connection import Connection
from websockets.exceptions import ConnectionClosedError
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol

from wslab.config import TuningConfig
from wslab.harness import wsadapter
from wslab.harness.framewriter import FrameWriter
from wslab.harness.server import LiveServer
from wslab.harness.wsadapter import Reassembler, SinkConnection

pytestmark = pytest.mark.timeout(60)

CONFIG = TuningConfig().updated({"compression.algorithm": "none"})


# -- the internals the table in wsadapter.py lists ---------------------------------------


@pytest.mark.parametrize("name", ["process_event", "data_received", "send_data",
                                  "resume_writing"])
def test_connection_methods_used_exist_with_the_signature_overridden(name: str) -> None:
    method = getattr(Connection, name)
    assert callable(method)
    params = list(inspect.signature(method).parameters)
    overridden = getattr(SinkConnection, name, None)
    if overridden is not None and overridden is not method:  # SinkConnection's override
        assert list(inspect.signature(overridden).parameters) == params
    assert params[0] == "self" and len(params) <= 2


def test_send_in_progress_is_an_attribute_of_a_connection() -> None:
    assert "self.send_in_progress" in inspect.getsource(Connection.__init__)


@pytest.mark.parametrize("name", ["send_text", "send_binary", "send_frame", "send_ping"])
def test_protocol_send_methods_exist(name: str) -> None:
    params = inspect.signature(getattr(Protocol, name)).parameters
    assert list(params)[:2] == ["self", "frame" if name == "send_frame" else "data"]


def test_the_keepalive_internals_exist() -> None:
    # the heartbeat's close: send_context() around Protocol.fail(code, reason)
    assert "expected_state" in inspect.signature(Connection.send_context).parameters
    assert list(inspect.signature(Protocol.fail).parameters)[:3] == ["self", "code", "reason"]
    # its RTT goes where the library's own keepalive puts it
    assert "self.latency" in inspect.getsource(Connection.__init__)


def test_apply_mask_is_the_c_one_and_masks() -> None:
    from websockets import speedups

    assert wsadapter.apply_mask is speedups.apply_mask
    data, key = bytes(range(256)) * 3, b"\x01\x02\x03\x04"
    assert wsadapter.apply_mask(data, key) == bytes(b ^ key[i % 4] for i, b in enumerate(data))


# -- Reassembler --------------------------------------------------------------------------


class Sink:
    def __init__(self) -> None:
        self.messages: list[tuple[bytes, bool]] = []
        self.invalid: list[str] = []
        self.reassembler = Reassembler(lambda p, t: self.messages.append((p, t)),
                                       self.invalid.append)

    def feed(self, *frames: Frame) -> None:
        for f in frames:
            self.reassembler(f)


def test_reassembler_passes_whole_messages() -> None:
    sink = Sink()
    sink.feed(Frame(Opcode.TEXT, "héllo".encode()), Frame(Opcode.BINARY, b"\xff\x00"))
    assert sink.messages == [("héllo".encode(), True), (b"\xff\x00", False)]
    assert sink.invalid == []


def test_reassembler_joins_fragments_even_across_a_split_character() -> None:
    sink = Sink()
    text = "naïve – café ✓".encode()
    cut = text.index("✓".encode()) + 1  # inside the three bytes of the check mark
    sink.feed(Frame(Opcode.TEXT, text[:4], fin=False), Frame(Opcode.CONT, text[4:cut], fin=False))
    assert sink.messages == []
    sink.feed(Frame(Opcode.CONT, text[cut:], fin=True))
    sink.feed(Frame(Opcode.BINARY, b"\x80", fin=False), Frame(Opcode.CONT, b"\x81"))
    assert sink.messages == [(text, True), (b"\x80\x81", False)]
    assert sink.invalid == []


@pytest.mark.parametrize("frames", [
    [Frame(Opcode.TEXT, b"ok \xff\xfe")],
    [Frame(Opcode.TEXT, b"abc", fin=False), Frame(Opcode.CONT, b"\xc3\x28")],
    [Frame(Opcode.TEXT, "é".encode()[:1])],  # a character cut short at the end
], ids=["whole", "fragmented", "truncated"])
def test_reassembler_rejects_invalid_utf8_text(frames: list[Frame]) -> None:
    sink = Sink()
    sink.feed(*frames)
    assert sink.messages == []
    assert len(sink.invalid) == 1


def test_reassembler_passes_binary_that_is_not_utf8() -> None:
    sink = Sink()
    sink.feed(Frame(Opcode.BINARY, b"\xff\xfe\xc3\x28", fin=False), Frame(Opcode.CONT, b"\xff"))
    assert sink.messages == [(b"\xff\xfe\xc3\x28\xff", False)]
    assert sink.invalid == []


# -- live: a real LiveServer --------------------------------------------------------------


def url(server: LiveServer) -> str:
    return f"ws://127.0.0.1:{server.port}/"


def test_a_fragmented_text_message_is_echoed_whole() -> None:
    parts = ["frag-one ", "fräg-two ", "frag-three"]

    async def run() -> tuple[list[Any], list[int]]:
        async with LiveServer(CONFIG, scenario="echo") as server:
            async with connect(url(server), compression=None) as ws:
                await ws.send(parts)  # an iterable: one message in three frames
                await ws.send("after")
                got = [await asyncio.wait_for(ws.recv(), 5) for _ in range(2)]
            sizes = [int(s) for s in server.recorder.received_frame()["size"]]
        return got, sizes

    got, sizes = asyncio.run(run())
    assert got == ["".join(parts), "after"]
    assert sizes == [len("".join(parts).encode()), len(b"after")]


@pytest.mark.parametrize("frames", [
    [Frame(Opcode.TEXT, b"\xff\xfe")],
    [Frame(Opcode.TEXT, b"hello ", fin=False), Frame(Opcode.CONT, b"\xed\xa0\x80")],
], ids=["one frame", "fragmented"])
def test_invalid_utf8_text_is_closed_with_1007_and_others_are_served(
        frames: list[Frame]) -> None:
    async def run() -> tuple[int | None, int, str]:
        async with LiveServer(CONFIG, scenario="echo") as server:
            async with connect(url(server), compression=None) as ws:
                for f in frames:
                    ws.protocol.send_frame(f)
                ws.send_data()
                with contextlib.suppress(ConnectionClosedError):
                    while True:
                        await asyncio.wait_for(ws.recv(), 5)
                code = ws.close_code
            received = len(server.recorder.received_frame())
            async with connect(url(server), compression=None) as good:
                await good.send("still here")
                echo = await asyncio.wait_for(good.recv(), 5)
        assert isinstance(echo, str)
        return code, received, echo

    code, received, echo = asyncio.run(run())
    assert code == 1007
    assert received == 0  # nothing from the bad message was taken as a message
    assert echo == "still here"


# -- live: raw sockets --------------------------------------------------------------------


def client_frames(messages: list[bytes], opcode: int = 2) -> bytes:
    """Masked client frames for ``messages``, as one byte string."""
    out: list[bytes] = []
    writer = FrameWriter(out.append, burst_bytes=1 << 40)
    for m in messages:
        writer.add(opcode, m)
    writer.flush()
    return b"".join(out)


def request(port: int, label: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"X-Wslab-Client: {label}\r\n\r\n").encode()


async def raw_open(port: int, label: str, *, then: bytes = b"", rcvbuf: int | None = None,
                   ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect, send the opening handshake and ``then`` in one write, read the 101."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:  # a small window: the kernel cannot hide a reader that stalls
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(request(port, label) + then)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def read_frame(reader: asyncio.StreamReader, timeout: float = 5.0) -> tuple[int, bytes]:
    b1, b2 = await asyncio.wait_for(reader.readexactly(2), timeout)
    n = b2 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    return b1 & 0x0F, await reader.readexactly(n)


def test_frames_in_the_handshakes_own_chunk_are_echoed() -> None:
    """Data frames parsed before the handler attached its sink are not lost (a plain
    websockets server echoes them; RFC 6455 4.1 asks clients to wait, but the library
    accepts them, so they must not vanish unnoticed)."""
    messages = [b"early-%d" % i for i in range(5)]

    async def run() -> list[bytes]:
        async with LiveServer(CONFIG, scenario="echo") as server:
            reader, writer = await raw_open(server.port, "early",
                                            then=client_frames(messages))
            try:
                got = [(await read_frame(reader, 1.0))[1] for _ in messages]
            finally:
                writer.close()
        return got

    assert asyncio.run(run()) == messages


def test_answers_to_one_read_leave_in_one_write() -> None:
    messages = [b"m%03d" % i for i in range(60)]

    async def run() -> tuple[list[bytes], int]:
        async with LiveServer(CONFIG, scenario="echo") as server:
            reader, writer = await raw_open(server.port, "burst")
            for _ in range(100):
                if "burst" in server.sessions:
                    break
                await asyncio.sleep(0.01)
            transport = server.sessions["burst"].ws.transport
            writes = []
            real_write = transport.write

            def counting(data: Any) -> None:
                writes.append(len(data))
                real_write(data)

            transport.write = counting
            writer.write(client_frames(messages))  # one chunk
            got = [(await read_frame(reader))[1] for _ in messages]
            writer.close()
        return got, len(writes)

    got, writes = asyncio.run(run())
    assert got == messages
    assert writes <= 2  # one per read (a loopback read may, rarely, split the chunk)


def test_a_client_that_never_reads_cannot_grow_the_server_or_starve_others() -> None:
    """The server stops reading from a peer that does not read its answers: what it holds
    for it stays bounded however much the peer sends, and others keep their echoes; once
    the peer reads again, so does the server."""
    chunk = client_frames([os.urandom(1024) for _ in range(1024)])  # 1 MiB of messages
    rounds = 24

    def taken(server: LiveServer) -> int:
        return int((server.recorder.received_frame()["conn"] == "hostile").sum())

    async def run() -> dict[str, Any]:
        async with LiveServer(CONFIG, scenario="echo") as server:
            reader, writer = await raw_open(server.port, "hostile", rcvbuf=4096)
            for _ in range(100):
                if "hostile" in server.sessions:
                    break
                await asyncio.sleep(0.01)
            session = server.sessions["hostile"]
            ws = session.ws
            held_max = 0
            for _ in range(rounds):
                writer.write(chunk)  # never drained: the hostile peer's own memory
                await asyncio.sleep(0.02)
                held = ws.transport.get_write_buffer_size() + session.outbox_bytes
                held_max = max(held_max, held)
            deadline = time.monotonic() + 2
            while ws.transport.is_reading() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            paused = not ws.transport.is_reading()
            t0 = time.monotonic()
            async with connect(url(server), compression=None) as good:
                echoes = []
                for i in range(20):
                    await good.send(f"good {i}")
                    echoes.append(await asyncio.wait_for(good.recv(), 5))
            good_s = time.monotonic() - t0
            held = ws.transport.get_write_buffer_size() + session.outbox_bytes
            before = taken(server)
            for _ in range(2048):  # the peer reads 2 MiB of its echoes: the server reads on
                await read_frame(reader)
            await asyncio.sleep(0.05)
            after = taken(server)
            writer.transport.abort()
        return {"paused": paused, "held_max": max(held_max, held), "taken": before,
                "taken_after": after, "echoes": echoes, "good_s": good_s}

    out = asyncio.run(run())
    sent = rounds * 1024
    assert out["paused"], out
    assert out["taken"] < sent // 4, out  # most of what it sent was never even read
    assert out["held_max"] < 2 * 1024 * 1024, out  # vs 24 MiB sent at it
    assert out["echoes"] == [f"good {i}" for i in range(20)]
    assert out["good_s"] < 5
    assert out["taken_after"] >= out["taken"] + 1024, out  # reading resumed
