"""The selective permessage-deflate: skipped messages really go out with RSV1 clear."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Sequence
from typing import ClassVar

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.extensions.base import Extension
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
)
from websockets.frames import Frame
from websockets.typing import ExtensionParameter

from wslab.harness.extension import SelectiveServerDeflateFactory, selective_extension


class _Recording(PerMessageDeflate):
    """The library's decoder, noting RSV1 of every data frame it reads."""

    seen: list[tuple[bool, int]]

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        if frame.opcode.value in (1, 2):
            self.seen.append((frame.rsv1, len(frame.data)))
        return super().decode(frame, max_size=max_size)


class _RecordingClientFactory(ClientPerMessageDeflateFactory):
    made: ClassVar[list[_Recording]] = []

    def process_response_params(
        self, params: Sequence[ExtensionParameter], accepted: Sequence[Extension]
    ) -> PerMessageDeflate:
        n = super().process_response_params(params, accepted)
        ext = _Recording(n.remote_no_context_takeover, n.local_no_context_takeover,
                         n.remote_max_window_bits, n.local_max_window_bits)
        ext.seen = []
        self.made.append(ext)
        return ext


MESSAGES = [b'{"type":"chat","text":"hello hello hello hello"}' * (i + 1) for i in range(8)]
DECISIONS = [True, False, True, True, False, False, True, False]


class _Scripted:
    """A selector that answers from a script and notes what it is told, in order."""

    def __init__(self, answers: list[bool]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, str, int, int]] = []

    def decide(self, key: str, payload: bytes) -> bool:
        self.calls.append(("decide", key, len(payload), 0))
        return self.answers.pop(0)

    def observe(self, key: str, original: int, compressed: int) -> None:
        self.calls.append(("observe", key, original, compressed))


async def _exchange(no_context: bool) -> tuple[list[bytes], list[tuple[bool, int]],
                                                 list[tuple[str, str, int, int]]]:
    selector = _Scripted(DECISIONS)

    async def handler(ws: ServerConnection) -> None:
        ext = selective_extension(ws.protocol.extensions)
        assert ext is not None
        ext.compressor.selector = selector
        for n, payload in enumerate(MESSAGES):
            ext.keys.append(f"k{n}")
            await ws.send(payload)
        await ws.wait_closed()

    factory = SelectiveServerDeflateFactory(
        mem_level=5, level=6, server_max_window_bits=10, client_max_window_bits=10,
        server_no_context_takeover=no_context)
    client_factory = _RecordingClientFactory(client_max_window_bits=True)
    async with serve(handler, "127.0.0.1", 0, extensions=[factory], compression=None) as srv:
        port = srv.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", extensions=[client_factory],
                           compression=None) as ws:
            got = [await ws.recv() for _ in MESSAGES]
            negotiated = ws.response.headers["Sec-WebSocket-Extensions"]
    assert "server_max_window_bits=10" in negotiated
    texts = [g if isinstance(g, bytes) else g.encode() for g in got]
    return texts, client_factory.made[-1].seen, selector.calls


def test_skipped_messages_go_out_uncompressed_and_context_survives() -> None:
    for no_context in (False, True):
        got, seen, calls = asyncio.run(_exchange(no_context))
        assert got == MESSAGES
        assert [rsv1 for rsv1, _ in seen] == DECISIONS
        for (rsv1, wire_len), payload in zip(seen, MESSAGES, strict=True):
            if not rsv1:
                assert wire_len == len(payload)
        # The compressor saw exactly the compressed messages, in order: replaying them
        # through a fresh zlib stream with the same settings gives the same sizes.
        # Each frame is decided with its queued key, and a compressed one is observed
        # before the next frame is decided (the simulator's order).
        comp = zlib.compressobj(6, zlib.DEFLATED, -10, 5)
        expected: list[tuple[str, str, int, int]] = []
        for n, (payload, decision) in enumerate(zip(MESSAGES, DECISIONS, strict=True)):
            expected.append(("decide", f"k{n}", len(payload), 0))
            if decision:
                if no_context:
                    comp = zlib.compressobj(6, zlib.DEFLATED, -10, 5)
                out = comp.compress(payload) + comp.flush(zlib.Z_SYNC_FLUSH)
                expected.append(("observe", f"k{n}", len(payload), len(out) - 4))
        assert calls == expected
