"""Hostile x-wslab-zstd peers: bombs end with 1009, corrupt frames with 1002, bad text 1007.

A raw client (``tests/faults/rawws.py``) negotiates ``x-wslab-zstd`` with an in-process
LiveServer, sends one hand-made frame, and reads the server's close code; then a
well-behaved zstd client on the same server must still be served.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import zstandard
from faults.rawws import RawClient, frame
from websockets.asyncio.client import connect

from wslab.codecs.zstd import ZstdEncoder, new_compressor
from wslab.codecs.zstd_dict import DictionarySet, ZstdDictSetEncoder, train_dictionary_set
from wslab.config import TuningConfig
from wslab.harness.client import client_extensions
from wslab.harness.server import LiveServer

pytestmark = pytest.mark.timeout(60)

MAX_SIZE = 64 * 1024
WINDOW = 15  # the agreed max_window_log (both configs use it)
TEXT, BINARY, CONT = 0x1, 0x2, 0x0


def cfg(algorithm: str) -> TuningConfig:
    return TuningConfig().updated({"compression.algorithm": algorithm,
                                   "compression.zstd_window_log": WINDOW,
                                   "scaling.max_size": MAX_SIZE})


@pytest.fixture(scope="module")
def dset() -> DictionarySet:
    samples = {"chat": [f'{{"type":"chat","n":{i},"text":"hi there {i % 5}"}}'.encode()
                        for i in range(40)]}
    return train_dictionary_set(samples, 1024)


def stream_message(payload: bytes, window_log: int = WINDOW) -> bytes:
    """``payload`` as the first message of a fresh x-wslab-zstd stream."""
    return ZstdEncoder(3, stream=True, window_log=window_log).encode(payload)


def frame_without_size(payload: bytes) -> bytes:
    return zstandard.ZstdCompressor(write_content_size=False).compress(payload)


def stream_bomb() -> bytes:
    """Far more than MAX_SIZE of zeros, in blocks that never declare their total."""
    c = new_compressor(1, WINDOW).compressobj()
    return c.compress(b"\0" * (MAX_SIZE * 64)) + c.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)


def frame_bomb() -> bytes:
    """One per-message frame, within the agreed window, declaring MAX_SIZE * 64 bytes."""
    return new_compressor(1, WINDOW).compress(b"\0" * (MAX_SIZE * 64))


Attack = Callable[[DictionarySet], list[bytes]]

# name: (algorithm, frames to send, expected close code)
CASES: dict[str, tuple[str, Attack, int]] = {
    "stream bomb (no declared size)": ("zstd-stream",
                                       lambda d: [frame(BINARY, stream_bomb(), rsv1=True)],
                                       1009),
    "per-message bomb (declares its size)": (
        "zstd-dict", lambda d: [frame(BINARY, frame_bomb(), rsv1=True)], 1009),
    "dictionary-primed bomb": (
        "zstd-dict", lambda d: [frame(BINARY, ZstdDictSetEncoder(d, window_log=WINDOW).encode(
            b"\0" * (MAX_SIZE + 1), "chat"), rsv1=True)], 1009),
    "stream frame needing a larger window than agreed": (
        "zstd-stream", lambda d: [frame(BINARY, stream_message(b"hello " * 30, WINDOW + 4),
                                        rsv1=True)], 1002),
    "per-message frame needing a larger window than agreed": (
        "zstd-dict", lambda d: [frame(BINARY, new_compressor(3, WINDOW + 2).compress(
            b"abcdefgh" * (1 << (WINDOW - 1))), rsv1=True)], 1002),
    "stream bytes that are not zstd": ("zstd-stream",
                                       lambda d: [frame(BINARY, b"\x01\x02\x03garbage",
                                                        rsv1=True)], 1002),
    "per-message bytes that are not zstd": ("zstd-dict",
                                            lambda d: [frame(BINARY, b"not zstd at all",
                                                             rsv1=True)], 1002),
    "truncated per-message frame": (
        "zstd-dict", lambda d: [frame(BINARY, ZstdDictSetEncoder(d, window_log=WINDOW).encode(
            b"hello there " * 40, "chat")[:-5], rsv1=True)], 1002),
    "per-message frame without its content size": (
        "zstd-dict", lambda d: [frame(BINARY, frame_without_size(b"hello" * 9), rsv1=True)],
        1002),
    "dictionary outside the agreed set": (
        "zstd-dict", lambda d: [frame(BINARY, zstandard.ZstdCompressor(
            dict_data=zstandard.ZstdCompressionDict(d.by_key["chat"][:4] + (12345).to_bytes(
                4, "little") + d.by_key["chat"][8:])).compress(b"hi there " * 20),
            rsv1=True)], 1002),
    "compressed message in fragments": (
        "zstd-stream", lambda d: [frame(TEXT, stream_message(b"hello " * 30), rsv1=True,
                                        fin=False), frame(CONT, b"", fin=True)], 1002),
    "RSV1 on a continuation frame": (
        "zstd-stream", lambda d: [frame(TEXT, b"plain ", fin=False),
                                  frame(CONT, stream_message(b"x" * 50), rsv1=True)], 1002),
    "RSV1 on a ping": ("zstd-stream", lambda d: [frame(0x9, b"", rsv1=True)], 1002),
    "decompresses to invalid UTF-8 text": (
        "zstd-stream", lambda d: [frame(TEXT, stream_message(b"caf\xc3(" * 10), rsv1=True)],
        1007),
}


async def good_client(port: int, config: TuningConfig, dset: DictionarySet) -> str:
    async with connect(f"ws://127.0.0.1:{port}/", compression=None,
                       extensions=client_extensions(config, dset)) as ws:
        assert ws.response is not None
        assert ws.response.headers["Sec-WebSocket-Extensions"].startswith("x-wslab-zstd")
        await ws.send("hello " * 40)
        reply = await asyncio.wait_for(ws.recv(), 5)
        return reply if isinstance(reply, str) else reply.decode()


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_zstd_frames_get_the_right_close_code(name: str, dset: DictionarySet) -> None:
    algorithm, attack, expected = CASES[name]
    config = cfg(algorithm)
    offer = (f"x-wslab-zstd; mode=stream; max_window_log={WINDOW}" if algorithm == "zstd-stream"
             else f"x-wslab-zstd; mode=message; dict={dset.id}; max_window_log={WINDOW}")

    async def run() -> tuple[int | None, str]:
        async with LiveServer(config, scenario="echo", dictionaries=dset) as server:
            raw = await RawClient.open(server.port, extensions=offer)
            assert raw.handshake.status == 101
            assert raw.handshake.headers["sec-websocket-extensions"] == offer
            frames = attack(dset)
            # Every frame fits max_size as sent: a 1009 comes from inflating, not framing.
            assert all(len(f) < MAX_SIZE for f in frames)
            for data in frames:
                raw.send(data)
            await raw.writer.drain()
            code = await raw.close_code()
            echo = await good_client(server.port, config, dset)
        return code, echo

    code, echo = asyncio.run(run())
    assert code == expected
    assert echo == "hello " * 40


def test_a_bomb_is_stopped_before_it_inflates() -> None:
    """The 1009 comes from the bounded decoder, not from memory running out: the server's
    peak allocation while refusing a 64 MiB bomb stays far below the bomb's size."""
    import tracemalloc

    config = cfg("zstd-stream")
    bomb = new_compressor(1, WINDOW).compressobj()
    data = bomb.compress(b"\0" * (1 << 26)) + bomb.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
    assert len(data) < MAX_SIZE // 4  # a few KiB on the wire, 64 MiB if inflated

    async def run() -> int | None:
        async with LiveServer(config, scenario="echo") as server:
            raw = await RawClient.open(server.port, extensions="x-wslab-zstd; mode=stream; "
                                       f"max_window_log={WINDOW}")
            tracemalloc.start()
            raw.send(frame(BINARY, data, rsv1=True))
            await raw.writer.drain()
            code = await raw.close_code()
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            assert peak < 16 * MAX_SIZE, peak
        return code

    assert asyncio.run(run()) == 1009
