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
from wslab.harness.held import take_frames
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


def _frame(payload: bytes, head: int = 0x81, mask: bool = False) -> bytes:
    n = len(payload)
    size = (bytes([n | (0x80 if mask else 0)]) if n < 126 else
            bytes([126 | (0x80 if mask else 0)]) + n.to_bytes(2) if n < 65536 else
            bytes([127 | (0x80 if mask else 0)]) + n.to_bytes(8))
    return bytes([head]) + size + (b"\x00" * 4 if mask else b"") + payload


def test_take_frames_hands_over_whole_plain_frames_and_stops_at_anything_else() -> None:
    got: list[bytes] = []

    def take(data: bytes, max_size: int | None = 1 << 20) -> int:
        got.clear()
        return take_frames(data, max_size, lambda p, _t: got.append(p), 1.0)

    a, b, c = b"one", b"x" * 300, b"z" * 70_000  # 7-bit, 16-bit and 64-bit lengths
    whole = _frame(a) + _frame(b, 0x82) + _frame(c)
    assert take(whole) == len(whole) and got == [a, b, c]
    third = _frame(b"three")
    assert take(whole + third[:4]) == len(whole) and got == [a, b, c]  # partial: left
    assert take(_frame(a) + _frame(b)[:3]) == len(_frame(a))  # partial 16-bit length
    for head in (0x89, 0x8A, 0x88, 0xC1, 0x01, 0x00, 0x91, 0xA1):  # control, RSV, !FIN, CONT
        assert take(_frame(b"p", head) + _frame(a)) == 0 and got == []
    assert take(_frame(a) + _frame(b"p", 0x89) + _frame(a)) == len(_frame(a))
    assert take(_frame(a, mask=True)) == 0  # a server never masks: the library fails it
    assert take(_frame(b), max_size=299) == 0  # too big: the library closes 1009
    assert take(_frame(b), max_size=None) == len(_frame(b))
    assert take(b"\x81") == 0


def test_take_frames_hands_whole_pings_to_on_ping_and_nothing_else() -> None:
    got: list[bytes] = []
    pings: list[bytes] = []

    def take(data: bytes) -> int:
        got.clear()
        pings.clear()
        return take_frames(data, 1 << 20, lambda p, _t: got.append(p), 1.0, pings.append)

    a = b"one"
    burst = _frame(a) + _frame(b"wslb", 0x89) + _frame(a) + _frame(b"", 0x89)
    assert take(burst) == len(burst) and got == [a, a] and pings == [b"wslb", b""]
    assert take(_frame(b"wslb", 0x89)[:4]) == 0 and pings == []  # partial: the library's
    for frame in (_frame(b"p", 0x8A), _frame(b"p", 0x88), _frame(b"p" * 126, 0x89),
                  _frame(b"p", 0x89, mask=True), _frame(b"p", 0x99)):  # pong, close,
        assert take(frame) == 0 and pings == []  # too long, masked, RSV1: the library's


def test_a_burst_is_taken_in_bulk_around_pings_and_split_frames(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Many messages, pings between them and frames split over reads arrive whole, in order;
    the library sees only what the bulk path leaves (handshake, pings, partial frames)."""
    from websockets.client import ClientProtocol

    fed: list[int] = []
    real = ClientProtocol.receive_data

    def counting(self: ClientProtocol, data: bytes) -> None:
        fed.append(len(data))
        real(self, data)

    monkeypatch.setattr(ClientProtocol, "receive_data", counting)
    pongs: list[float] = []

    async def main() -> None:
        async def handler(ws: ServerConnection) -> None:
            for i in range(300):
                await ws.send(_msg("b", i, pad=i % 7 * 40))
                if i % 100 == 50:
                    pongs.append(await asyncio.wait_for(await ws.ping(), 5))
            await ws.wait_closed()

        async with serve(handler, "127.0.0.1", 0, compression=None) as server:
            port = server.sockets[0].getsockname()[1]
            conn, got = await _collect(f"ws://127.0.0.1:{port}/", OFF)
            for _ in range(500):
                if len(got) == 300:
                    break
                await asyncio.sleep(0.01)
            assert [json.loads(p)["seq"] for p, _ in got] == list(range(300))
            assert len(pongs) == 3  # every ping answered (read in bulk, echoing its payload)
            await conn.close()
            assert conn.close_code == 1000

    asyncio.run(main())
    bulk = sum(len(_msg("b", i, pad=i % 7 * 40)) + 2 for i in range(300))
    assert sum(fed) < bulk / 2  # most bytes never went through the library's parser
