"""Broadcasts as one prepared frame, and the connections that must take their own path.

A real :class:`LiveServer` joined to a :class:`ClusterNode`; real websockets clients (each
checks every frame it receives with the library's own parser) and wslab's holder.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.typing import Subprotocol

from wslab import envelopes
from wslab.config import TuningConfig
from wslab.errors import ConfigError
from wslab.harness.broker import MemoryBroker
from wslab.harness.fanout import prepared_frame
from wslab.harness.registry import ClusterNode, MemoryRegistry
from wslab.harness.server import LiveServer
from wslab.harness.wiring import CLIENT_HEADER

OFF = TuningConfig().updated({"compression.algorithm": "none"})
# A server that accepts permessage-deflate (websockets' defaults): a client that offers
# it compresses, one that offers nothing gets plain frames.
DEFLATE = TuningConfig()
# A batching server: every client agrees on an envelope (ndjson here).
ENVELOPED = OFF.updated({"batching.strategy": "time", "batching.interval_ms": 5,
                         "batching.envelope": "ndjson"})


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 70000])
@pytest.mark.parametrize("is_text", [True, False])
def test_prepared_frame_parses_back_to_the_payload(size: int, is_text: bool) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    frame = prepared_frame(payload, is_text)
    header = 2 + (2 if 126 <= size < 65536 else 8 if size >= 65536 else 0)
    assert len(frame) == header + size and frame[header:] == payload
    assert frame[0] == (0x81 if is_text else 0x82) and not frame[1] & 0x80  # FIN, unmasked

    def reader() -> Any:
        data = frame
        pos = 0

        def read_exact(n: int) -> Any:
            nonlocal pos
            chunk = data[pos:pos + n]
            pos += n
            return chunk
            yield  # a generator, as the library's parser wants

        return read_exact

    parser = Frame.parse(reader(), mask=False)
    with pytest.raises(StopIteration) as done:
        next(parser)
    parsed = done.value.value
    assert parsed.opcode is (Opcode.TEXT if is_text else Opcode.BINARY)
    assert parsed.fin and parsed.data == payload


async def _broadcast_run(prepared: bool, config: TuningConfig, plain: int, deflate: int,
                         enveloped: int) -> tuple[ClusterNode, dict[str, list[str]]]:
    server = LiveServer(config, record=False)
    node = ClusterNode(server, MemoryBroker(), MemoryRegistry(), "0", prepared=prepared)
    await node.start()
    port = await server.start()
    url = f"ws://127.0.0.1:{port}/"
    clients: dict[str, ClientConnection] = {}
    sub = Subprotocol(envelopes.subprotocol("ndjson"))
    for label, n, kw in (("plain", plain, {}),
                         ("deflate", deflate, {"extensions": [ClientPerMessageDeflateFactory()]}),
                         ("enveloped", enveloped, {"subprotocols": [sub]})):
        for i in range(n):
            clients[f"{label}{i}"] = await connect(
                url, compression=None, additional_headers={CLIENT_HEADER: f"{label}{i}"},
                **kw)  # type: ignore[arg-type]
    while len(server.sessions) < len(clients):
        await asyncio.sleep(0.01)
    messages = [json.dumps({"k": "b", "seq": i, "pad": "y" * (40 * i)}) for i in range(3)]
    for m in messages:
        await node.broadcast(m.encode())
        await asyncio.sleep(0.05)  # the memory broker delivers on the next turn
    got: dict[str, list[str]] = {}
    for label, client in clients.items():
        frames = [await asyncio.wait_for(client.recv(), 5) for _ in messages]
        if client.subprotocol is not None:  # one message per batch, each in its envelope
            frames = [p.decode() for f in frames
                      for p, _text in envelopes.decode("ndjson", str(f).encode())]
        got[label] = [str(f) for f in frames]
        await client.close()
    await server.stop()
    await node.stop()
    assert all(g == messages for g in got.values()), got
    return node, got


def test_plain_connections_take_the_prepared_frame_compressed_ones_their_session() -> None:
    node, got = asyncio.run(_broadcast_run(True, DEFLATE, plain=4, deflate=1, enveloped=0))
    assert len(got) == 5
    assert node.fanout_prepared == 4 * 3 and node.fanout_pushed == 1 * 3
    assert len(node.fanout_s) == len(node.fanout_cpu_s) == 3
    assert node.server.metrics.counts["messages_sent"] == 5 * 3
    assert node.server.metrics.counts["frames_sent"] == 5 * 3


def test_enveloped_connections_are_batched_by_their_session() -> None:
    node, got = asyncio.run(_broadcast_run(True, ENVELOPED, plain=0, deflate=0, enveloped=2))
    assert len(got) == 2 and node.fanout_prepared == 0 and node.fanout_pushed == 2 * 3


def test_without_prepared_frames_every_connection_goes_through_its_session() -> None:
    node, got = asyncio.run(_broadcast_run(False, DEFLATE, plain=4, deflate=1, enveloped=0))
    assert len(got) == 5 and node.fanout_prepared == 0 and node.fanout_pushed == 5 * 3


def test_prepared_broadcasts_refuse_a_server_that_logs_every_message() -> None:
    with pytest.raises(ConfigError, match="record=False"):
        ClusterNode(LiveServer(OFF), MemoryBroker(), MemoryRegistry(), "0", prepared=True)
    ClusterNode(LiveServer(OFF), MemoryBroker(), MemoryRegistry(), "0")  # sessions: fine


def test_a_reader_that_falls_behind_is_left_to_its_session() -> None:
    """A client that stops reading fills its socket; once its transport holds write_limit
    bytes the prepared frame passes it by and its session sends (queues, and would shed)."""
    config = OFF.updated({"scaling.write_limit": 4096})

    async def main() -> None:
        server = LiveServer(config, record=False)
        node = ClusterNode(server, MemoryBroker(), MemoryRegistry(), "0", prepared=True)
        await node.start()
        port = await server.start()
        url = f"ws://127.0.0.1:{port}/"
        fast = await connect(url, compression=None, additional_headers={CLIENT_HEADER: "f"})
        slow = await connect(url, compression=None, additional_headers={CLIENT_HEADER: "s"},
                             max_queue=1)
        while len(server.sessions) < 2:
            await asyncio.sleep(0.01)
        slow.transport.pause_reading()  # its kernel buffers fill, then the server's
        big = json.dumps({"k": "b", "pad": "z" * 60_000}).encode()
        sent = 0
        while node.fanout_pushed == 0 and sent < 400:
            await node.broadcast(big)
            sent += 1
            await asyncio.sleep(0)
            await asyncio.wait_for(fast.recv(), 5)  # the fast reader keeps up
        assert node.fanout_pushed >= 1  # the slow one went back to its session
        assert node.fanout_prepared >= sent  # the fast one took every prepared frame
        # it is still behind: the frames it did not take are its session's to send
        assert server.sessions["s"].ws.transport.get_write_buffer_size() >= 4096
        slow.transport.abort()
        await fast.close()
        await server.stop()
        await node.stop()

    asyncio.run(main())
