"""Hostile peers against the live server: RFC 6455 violations get the right close code.

Each test opens a raw connection to an in-process :class:`LiveServer`, breaks one rule of
RFC 6455 / 7692 with hand-made frames, reads the server's close code, and then checks that
a well-behaved client on the same server is still served.
"""

from __future__ import annotations

import asyncio
import tracemalloc
import zlib
from collections.abc import Awaitable, Callable

import pytest
from faults.rawws import Handshake, RawClient, close_frame, frame
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from wslab.config import TuningConfig
from wslab.harness.server import LiveServer

MAX_SIZE = 64 * 1024
PLAIN = TuningConfig().updated({"scaling.max_size": MAX_SIZE})
BATCHED = PLAIN.updated({"batching.strategy": "time", "batching.envelope": "json-array"})
JSON_ARRAY = "wslab.v1.json-array"
DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"

Attack = Callable[[RawClient], Awaitable[None]]


def deflate_message(payload: bytes) -> bytes:
    """``payload`` compressed as RFC 7692 sends it (raw deflate, sync flush, tail cut)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = c.compress(payload) + c.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(b"\x00\x00\xff\xff")
    return data[:-4]


async def good_client_echo(port: int, batched: bool) -> str:
    """What a well-behaved client gets back for one message."""
    protos = [Subprotocol(JSON_ARRAY)] if batched else None
    async with connect(f"ws://127.0.0.1:{port}/", subprotocols=protos) as ws:
        await ws.send('[{"ok":1}]' if batched else "hello")
        reply = await asyncio.wait_for(ws.recv(), 5)
        return reply if isinstance(reply, str) else reply.decode()


async def attack_then_check(config: TuningConfig, attack: Attack, *,
                            extensions: str | None = None,
                            subprotocols: list[str] | None = None) -> tuple[int | None, str]:
    batched = config.batching.strategy != "none"
    async with LiveServer(config, scenario="echo") as server:
        raw = await RawClient.open(server.port, extensions=extensions,
                                   subprotocols=subprotocols)
        assert raw.handshake.status == 101
        await attack(raw)
        code = await raw.close_code()
        echo = await good_client_echo(server.port, batched)
    return code, echo


def send(*frames: bytes) -> Attack:
    async def go(raw: RawClient) -> None:
        for f in frames:
            raw.send(f)
        await raw.writer.drain()
    return go


CASES = {
    # name: (frames, expected close code, RFC 6455 section)
    "invalid utf-8 in a text frame": (send(frame(0x1, b"caf\xc3(")), 1007),
    "invalid utf-8 split over fragments": (
        send(frame(0x1, b"ok \xe2\x82", fin=False), frame(0x0, b"\xff", fin=True)), 1007),
    "invalid utf-8 in a close reason": (send(close_frame(1000, b"\xff\xfe")), 1007),
    "frame past max_size": (send(frame(0x2, b"x" * (MAX_SIZE + 1))), 1009),
    "fragments adding up past max_size": (
        send(frame(0x2, b"x" * (MAX_SIZE // 2 + 1), fin=False),
             frame(0x0, b"x" * (MAX_SIZE // 2 + 1))), 1009),
    "header claiming a 2^62-byte payload": (send(frame(0x2, b"", length=1 << 62)), 1009),
    "ping with FIN=0 (fragmented control frame)": (send(frame(0x9, b"p", fin=False)), 1002),
    "ping with a 126-byte payload": (send(frame(0x9, b"p" * 126)), 1002),
    "reserved data opcode 0x3": (send(frame(0x3, b"x")), 1002),
    "reserved control opcode 0xB": (send(frame(0xB, b"x")), 1002),
    "RSV1 without negotiated compression": (send(frame(0x1, b"hi", rsv1=True)), 1002),
    "RSV2 set": (send(frame(0x1, b"hi", rsv2=True)), 1002),
    "unmasked client frame": (send(frame(0x1, b"hi", masked=False)), 1002),
    "continuation with nothing to continue": (send(frame(0x0, b"x")), 1002),
    "new message inside a fragmented one": (
        send(frame(0x1, b"a", fin=False), frame(0x1, b"b")), 1002),
    "close code 1005 sent on the wire": (send(close_frame(1005)), 1002),
    "close code 999": (send(close_frame(999)), 1002),
    "one-byte close payload": (send(frame(0x8, b"\x03")), 1002),
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", list(CASES))
def test_protocol_violation_gets_its_close_code_and_others_go_on(name: str) -> None:
    attack, expected = CASES[name]
    code, echo = asyncio.run(attack_then_check(PLAIN, attack))
    assert code == expected
    assert echo == "hello"


@pytest.mark.timeout(30)
def test_decompression_bomb_is_closed_1009_with_bounded_server_memory() -> None:
    inflated = 64 << 20  # 64 MiB of zeros, 1024 times max_size
    bomb = deflate_message(b"\x00" * inflated)
    assert len(bomb) < MAX_SIZE  # the frame itself is within max_size: only inflating is not
    peak_box: list[int] = []

    async def attack(raw: RawClient) -> None:
        assert raw.handshake.headers["sec-websocket-extensions"].startswith(
            "permessage-deflate")
        tracemalloc.start()
        tracemalloc.reset_peak()
        raw.send(frame(0x2, bomb, rsv1=True))
        await raw.writer.drain()

    async def main() -> tuple[int | None, str]:
        async with LiveServer(PLAIN, scenario="echo") as server:
            raw = await RawClient.open(server.port, extensions=DEFLATE_OFFER)
            await attack(raw)
            code = await raw.close_code()
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            peak_box.append(peak)
            return code, await good_client_echo(server.port, batched=False)

    code, echo = asyncio.run(main())
    assert code == 1009
    assert echo == "hello"
    # The whole process (server, client, bomb buffers) never held more than a few max_size
    # worth of heap while the server dealt with a 64 MiB bomb.
    assert peak_box[0] < 8 * MAX_SIZE + (1 << 20), f"peak {peak_box[0]} bytes"


@pytest.mark.timeout(30)
def test_compressed_frame_that_is_not_deflate_fails_the_connection() -> None:
    # RFC 7692 section 6.2 says to fail the connection and names no code; the library
    # reports a decompression failure as a protocol error (1002), which is what we pin.
    code, echo = asyncio.run(attack_then_check(
        PLAIN, send(frame(0x1, b"\xff\xff\xff\xff not deflate", rsv1=True)),
        extensions=DEFLATE_OFFER))
    assert code == 1002
    assert echo == "hello"


@pytest.mark.timeout(30)
def test_malformed_batch_envelope_is_closed_1007_and_others_go_on() -> None:
    code, echo = asyncio.run(attack_then_check(
        BATCHED, send(frame(0x1, b'[{"a":1},{"b":'), frame(0x1, b"[1]")),
        subprotocols=[JSON_ARRAY]))
    assert code == 1007
    assert echo == '[{"ok":1}]'


@pytest.mark.timeout(30)
def test_deeply_nested_batch_envelope_is_closed_1007() -> None:
    deep = b"[" * 20_000 + b"]" * 20_000
    assert len(deep) < MAX_SIZE
    code, echo = asyncio.run(attack_then_check(
        BATCHED, send(frame(0x1, deep)), subprotocols=[JSON_ARRAY]))
    assert echo == '[{"ok":1}]'
    assert code == 1007


@pytest.mark.timeout(30)
def test_unknown_subprotocol_is_never_selected() -> None:
    async def handshake(port: int, offered: list[str]) -> Handshake:
        raw = await RawClient.open(port, subprotocols=offered)
        raw.writer.close()
        return raw.handshake

    async def main() -> list[Handshake]:
        # Batching on: the server needs an envelope, so a peer offering none it knows is
        # refused before the upgrade (RFC 6455 4.2.2 lets a server fail the handshake).
        async with LiveServer(BATCHED, scenario="echo") as server:
            refused = await handshake(server.port, ["evil.v9", "chat"])
            mixed = await handshake(server.port, ["evil.v9", JSON_ARRAY])
        # Batching off: the server has no subprotocol, so it proceeds without one.
        async with LiveServer(PLAIN, scenario="echo") as server:
            plain = await handshake(server.port, ["evil.v9"])
        return [refused, mixed, plain]

    refused, mixed, plain = asyncio.run(main())
    assert refused.status == 400 and "sec-websocket-protocol" not in refused.headers
    assert mixed.status == 101 and mixed.headers["sec-websocket-protocol"] == JSON_ARRAY
    assert plain.status == 101 and "sec-websocket-protocol" not in plain.headers
