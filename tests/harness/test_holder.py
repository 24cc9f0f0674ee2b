"""The holding client: websockets' sans-I/O protocol without its asyncio layer."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus
from websockets.http11 import Response

from wslab.config import TuningConfig
from wslab.harness.holder import HoldClient, open_held
from wslab.harness.wiring import CLIENT_HEADER

OFF = TuningConfig().updated({"compression.algorithm": "none"})


def _msg(kind: str, seq: int, pad: int = 0) -> str:
    return json.dumps({"k": kind, "seq": seq, "t": time.monotonic(), "pad": "x" * pad})


async def _collect(url: str, config: TuningConfig, **kw: Any) -> tuple[Any, list[Any]]:
    got: list[tuple[bytes, float]] = []
    conn = await open_held(url, config, "h-0", lambda p, t: got.append((p, t)), **kw)
    return conn, got


def test_messages_whole_and_fragmented_arrive_with_labels_and_times() -> None:
    async def main() -> None:
        labels: list[str] = []

        async def handler(ws: ServerConnection) -> None:
            assert ws.request is not None
            labels.append(ws.request.headers[CLIENT_HEADER])
            await ws.send(_msg("b", 0))
            await ws.send(iter(["{\"k\": \"b\", ", "\"seq\": 1, ", "\"t\": 0.5}"]))
            await ws.send(b"\x00\x01binary")
            await ws.wait_closed()

        async with serve(handler, "127.0.0.1", 0, compression=None) as server:
            port = server.sockets[0].getsockname()[1]
            before = time.monotonic()
            conn, got = await _collect(f"ws://127.0.0.1:{port}/", OFF)
            for _ in range(100):
                if len(got) == 3:
                    break
                await asyncio.sleep(0.01)
            assert [json.loads(p)["seq"] for p, _ in got[:2]] == [0, 1]
            assert got[2][0] == b"\x00\x01binary"
            assert all(t >= before for _, t in got)
            assert labels == ["h-0"]
            await conn.close()
            assert conn.close_code == 1000

    asyncio.run(main())


def test_pings_are_answered_and_server_close_codes_are_kept() -> None:
    async def main() -> None:
        latencies: list[float] = []

        async def handler(ws: ServerConnection) -> None:
            waiter = await ws.ping()
            latencies.append(await asyncio.wait_for(waiter, 5))
            await ws.close(1013, "try again later")

        async with serve(handler, "127.0.0.1", 0, compression=None) as server:
            port = server.sockets[0].getsockname()[1]
            conn, _ = await _collect(f"ws://127.0.0.1:{port}/", OFF)
            await asyncio.wait_for(conn.closed, 5)
            assert len(latencies) == 1
            assert conn.close_code == 1013

    asyncio.run(main())


def test_deflate_is_negotiated_and_decoded() -> None:
    async def main() -> None:
        extensions: list[str] = []
        text = _msg("b", 7, pad=4000)

        async def handler(ws: ServerConnection) -> None:
            assert ws.response is not None
            extensions.append(ws.response.headers.get("Sec-WebSocket-Extensions", ""))
            await ws.send(text)
            await ws.wait_closed()

        async with serve(handler, "127.0.0.1", 0) as server:  # websockets' default deflate
            port = server.sockets[0].getsockname()[1]
            conn, got = await _collect(f"ws://127.0.0.1:{port}/", TuningConfig())
            for _ in range(100):
                if got:
                    break
                await asyncio.sleep(0.01)
            assert got[0][0] == text.encode()
            assert extensions[0].startswith("permessage-deflate")
            await conn.close()

    asyncio.run(main())


def test_refused_handshake_and_oversized_message() -> None:
    async def main() -> None:
        def refuse(ws: ServerConnection, request: Any) -> Response | None:
            if request.path == "/no":
                return Response(403, "Forbidden", Headers(), b"no\n")
            return None

        async def handler(ws: ServerConnection) -> None:
            await ws.send("y" * 5000)
            await ws.wait_closed()

        small = OFF.updated({"scaling.max_size": 1000})
        async with serve(handler, "127.0.0.1", 0, compression=None,
                         process_request=refuse) as server:
            port = server.sockets[0].getsockname()[1]
            with pytest.raises(InvalidStatus):
                await _collect(f"ws://127.0.0.1:{port}/no", OFF)
            conn, got = await _collect(f"ws://127.0.0.1:{port}/", small)
            await asyncio.wait_for(conn.closed, 5)
            assert got == []
            assert conn.protocol.close_sent is not None
            assert conn.protocol.close_sent.code == 1009

    asyncio.run(main())


def test_hold_client_counts_receipts_by_kind_and_other_messages() -> None:
    async def main() -> None:
        held: set[ServerConnection] = set()

        async def handler(ws: ServerConnection) -> None:
            held.add(ws)
            await ws.wait_closed()

        async with serve(handler, "127.0.0.1", 0, compression=None) as server:
            port = server.sockets[0].getsockname()[1]
            client = HoldClient(f"ws://127.0.0.1:{port}/", OFF, connections=20,
                                source_addresses=["127.0.0.2", "127.0.0.3"])
            stats = await client.ramp()
            assert stats.opened == 20 and stats.failed == 0
            for _ in range(100):
                if len(held) == 20:
                    break
                await asyncio.sleep(0.01)
            peers = {ws.remote_address[0] for ws in held}
            assert peers == {"127.0.0.2", "127.0.0.3"}
            for seq in range(3):
                for ws in held:
                    await ws.send(_msg("b", seq))
            for ws in list(held)[:5]:
                await ws.send("not json")
            for _ in range(200):
                if client.received("b") == 60 and client.other_messages == 5:
                    break
                await asyncio.sleep(0.01)
            assert client.received("b") == 60
            assert client.other_messages == 5
            per_conn: dict[int, list[int]] = {}
            for n, kind, seq, sent, got in stats.receipts:
                assert kind == "b" and got >= sent
                per_conn.setdefault(n, []).append(seq)
            assert all(seqs == [0, 1, 2] for seqs in per_conn.values())
            await client.close()
            assert stats.close_codes == {"1000": 20}
            assert stats.closed_early == 0

    asyncio.run(main())
