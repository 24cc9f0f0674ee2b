"""The picows load client (loadconn.py through LoadClient) against real and hostile servers.

Real: a wslab :class:`LiveServer` and a minimal websockets echo server, with
permessage-deflate on non-default parameters, ``x-wslab-zstd`` and batching in an envelope;
every message must come back (``join_stream``: nothing lost, duplicated or reordered).
Hostile: a small picows server written here that breaks one rule each time; the client must
close with the code of loadconn.py's table, and the hostile server records what it saw.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from picows import (
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_create_server,
)
from websockets.asyncio.server import ServerConnection, serve
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.typing import Subprotocol

from wslab.codecs.extheader import parse_extensions
from wslab.config import TuningConfig
from wslab.harness.client import ClientResult, LoadClient
from wslab.harness.recorder import join_stream
from wslab.harness.server import LiveServer, server_extensions
from wslab.traces.model import Message, Trace

pytestmark = pytest.mark.timeout(60)

CLEAN = {"lost": 0, "duplicated": 0, "reordered": 0}
PRIOS = ("critical", "normal", "background")


def trace(n: int = 150, seed: int = 1) -> Trace:
    """Compressible JSON text, client to server; the last 20 repeat earlier ones verbatim."""
    rng = random.Random(seed)
    msgs: list[Message] = []
    for i in range(n):
        doc = {"type": f"k{i % 3}", "i": i % 40, "user": f"user{rng.randrange(9)}",
               "text": "the quick brown fox " * rng.randrange(1, 30)}
        payload = msgs[i - 60].payload if i >= n - 20 else json.dumps(doc).encode()
        msgs.append(Message(i * 0.001, "c2s", f"k{i % 3}", PRIOS[i % 3], payload, True))
    return Trace(msgs)


def params(answer: str | None) -> dict[str, str | None]:
    assert answer is not None
    (offer,) = parse_extensions(answer)
    return {"name": offer.name, **dict(offer.params)}


async def run_client(url: str, config: TuningConfig, tr: Trace | None = None,
                     **kw: Any) -> tuple[LoadClient, ClientResult]:
    client = LoadClient(url, config, trace=tr, drain_timeout=kw.pop("drain_timeout", 2.0),
                        **kw)
    return client, await client.run()


# -- against a real wslab LiveServer ----------------------------------------------------


def against_live_echo(config: TuningConfig, tr: Trace, **kw: Any
                      ) -> tuple[LiveServer, LoadClient, ClientResult, Any, Any, Any]:
    """The load client against a live wslab echo server with the same config; with the
    integrity counts of both ways (client -> server, server -> client) and the rows of the
    way back."""

    async def run() -> tuple[LiveServer, LoadClient, ClientResult]:
        async with LiveServer(config, scenario="echo", trace=tr) as server:
            client, result = await run_client(f"ws://127.0.0.1:{server.port}/", config, tr,
                                              **kw)
        return server, client, result

    server, client, result = asyncio.run(run())
    _, up = join_stream(client.recorder.sent_frame(), server.recorder.received_frame())
    rows, down = join_stream(server.recorder.sent_frame(), client.recorder.received_frame())
    return server, client, result, up, down, rows

DEFLATE = TuningConfig().updated({
    "compression.algorithm": "permessage-deflate", "compression.server_max_window_bits": 10,
    "compression.client_max_window_bits": 9, "compression.server_no_context_takeover": True,
    "compression.client_no_context_takeover": True, "compression.mem_level": 3,
    "compression.level": 2})


def test_deflate_with_non_default_parameters_against_the_live_server() -> None:
    tr = trace()
    _server, client, result, up, down, down_rows = against_live_echo(DEFLATE, tr,
                                                                     connections=2)
    assert up == CLEAN and down == CLEAN
    assert len(down_rows) == 2 * len(tr.messages) and bool(down_rows["delivered"].all())
    for row in result.connections:
        assert row["error"] is None
        assert row["close_code"] == 1000
        assert params(row["extensions"]) == {
            "name": "permessage-deflate", "server_no_context_takeover": None,
            "client_no_context_takeover": None, "server_max_window_bits": "10",
            "client_max_window_bits": "9"}
        assert row["out_compressed_frames"] == row["out_data_frames"] == len(tr.messages)
        assert row["in_compressed_frames"] == len(tr.messages)
        assert row["out_data_payload_bytes"] < 0.5 * sum(len(m.payload) for m in tr.messages)
    # no context takeover on the client's side: a message repeated costs the same each time
    frames = client.recorder.coded_frame()
    sent = client.recorder.sent_frame()
    first = frames[frames["conn"] == "c-0"].reset_index(drop=True)
    by_key: dict[int, set[int]] = {}
    for key, wire in zip(sent[sent["conn"] == "c-0"]["key"], first["wire_payload_bytes"],
                         strict=True):
        by_key.setdefault(int(key), set()).add(int(wire))
    repeated = [sizes for key, sizes in by_key.items()
                if int((sent[sent["conn"] == "c-0"]["key"] == key).sum()) > 1]
    assert repeated and all(len(sizes) == 1 for sizes in repeated)


def test_client_context_takeover_is_kept_when_agreed() -> None:
    """The control for the test above: with context takeover a repeat costs less."""
    config = DEFLATE.updated({"compression.client_no_context_takeover": False})
    msg = Message(0.0, "c2s", "k", "normal", json.dumps({"a": "xyz " * 50}).encode(), True)
    tr = Trace([msg, Message(0.001, "c2s", "k", "normal", msg.payload, True)])

    async def run() -> tuple[LoadClient, ClientResult]:
        async with LiveServer(config, scenario="echo", trace=tr) as server:
            return await run_client(f"ws://127.0.0.1:{server.port}/", config, tr)

    client, result = asyncio.run(run())
    assert "client_no_context_takeover" not in params(result.connections[0]["extensions"])
    wire = client.recorder.coded_frame()["wire_payload_bytes"].tolist()
    assert wire[1] < wire[0]
    assert result.connections[0]["messages_received"] == 2


def test_zstd_stream_against_the_live_server() -> None:
    config = TuningConfig().updated({"compression.algorithm": "zstd-stream",
                                     "compression.zstd_window_log": 14})
    tr = trace()
    _server, _client, result, up, down, rows = against_live_echo(config, tr)
    assert up == CLEAN and down == CLEAN and len(rows) == len(tr.messages)
    row = result.connections[0]
    assert row["error"] is None
    got = params(row["extensions"])
    assert got["name"] == "x-wslab-zstd" and got.get("mode") == "stream"
    assert row["out_compressed_frames"] > 0 and row["in_compressed_frames"] > 0
    assert row["messages_received"] == len(tr.messages)


@pytest.mark.parametrize("envelope", ["json-array", "length-prefixed"])
def test_batching_in_an_envelope_against_the_live_server(envelope: str) -> None:
    config = TuningConfig().updated({"batching.strategy": "time", "batching.interval_ms": 20,
                                     "batching.envelope": envelope})
    tr = trace()
    _server, client, result, up, down, rows = against_live_echo(config, tr)
    assert up == CLEAN and down == CLEAN and len(rows) == len(tr.messages)
    row = result.connections[0]
    assert row["subprotocol"] == f"wslab.v1.{envelope}"
    assert row["messages_sent"] == len(tr.messages)
    assert row["frames_sent"] < len(tr.messages) / 3  # messages really shared frames
    assert row["in_data_frames"] < len(tr.messages) / 3
    assert client.recorder.received_frame()["frame"].nunique() == row["in_data_frames"]


# -- against a minimal websockets echo server -----------------------------------------


@asynccontextmanager
async def plain_echo(**kw: Any) -> AsyncIterator[str]:
    async def echo(ws: ServerConnection) -> None:
        async for m in ws:
            await ws.send(m)

    async with serve(echo, "127.0.0.1", 0, **kw) as srv:
        yield f"ws://127.0.0.1:{srv.sockets[0].getsockname()[1]}/"


def test_deflate_with_non_default_parameters_against_plain_websockets() -> None:
    tr = trace()
    factory = ServerPerMessageDeflateFactory(
        server_no_context_takeover=True, client_no_context_takeover=True,
        server_max_window_bits=10, client_max_window_bits=9)

    async def run() -> tuple[LoadClient, ClientResult]:
        async with plain_echo(compression=None, extensions=[factory]) as url:
            return await run_client(url, DEFLATE, tr)

    client, result = asyncio.run(run())
    rows, counts = join_stream(client.recorder.sent_frame(), client.recorder.received_frame())
    assert counts == CLEAN and len(rows) == len(tr.messages)
    row = result.connections[0]
    assert row["error"] is None and row["close_code"] == 1000
    assert params(row["extensions"]) == {
        "name": "permessage-deflate", "server_no_context_takeover": None,
        "client_no_context_takeover": None, "server_max_window_bits": "10",
        "client_max_window_bits": "9"}
    assert row["out_compressed_frames"] == len(tr.messages)
    assert row["in_compressed_frames"] == len(tr.messages)


def test_zstd_stream_against_plain_websockets_with_wslabs_extension() -> None:
    """A bare websockets echo server given only wslab's extension factories."""
    config = TuningConfig().updated({"compression.algorithm": "zstd-stream",
                                     "compression.zstd_window_log": 14})
    tr = trace()

    async def run() -> tuple[LoadClient, ClientResult]:
        async with plain_echo(compression=None,
                              extensions=server_extensions(config.compression)) as url:
            return await run_client(url, config, tr)

    client, result = asyncio.run(run())
    rows, counts = join_stream(client.recorder.sent_frame(), client.recorder.received_frame())
    assert counts == CLEAN and len(rows) == len(tr.messages)
    row = result.connections[0]
    assert row["error"] is None and row["close_code"] == 1000
    assert params(row["extensions"])["name"] == "x-wslab-zstd"
    assert row["out_compressed_frames"] > 0 and row["in_compressed_frames"] > 0


def test_an_envelope_against_plain_websockets() -> None:
    config = TuningConfig().updated({"batching.strategy": "hybrid", "batching.interval_ms": 20,
                                     "batching.envelope": "ndjson",
                                     "compression.algorithm": "none"})
    tr = trace()

    async def run() -> tuple[LoadClient, ClientResult]:
        async with plain_echo(compression=None,
                              subprotocols=[Subprotocol("wslab.v1.ndjson")]) as url:
            return await run_client(url, config, tr)

    client, result = asyncio.run(run())
    rows, counts = join_stream(client.recorder.sent_frame(), client.recorder.received_frame())
    assert counts == CLEAN and len(rows) == len(tr.messages)
    row = result.connections[0]
    assert row["subprotocol"] == "wslab.v1.ndjson" and row["extensions"] is None
    assert row["frames_sent"] < len(tr.messages) / 3


# -- against a hostile picows server --------------------------------------------------


@dataclass
class Seen:
    """What the hostile server saw from the client."""

    closes: list[int] = field(default_factory=list)
    pings: list[bytes] = field(default_factory=list)
    pongs: list[bytes] = field(default_factory=list)
    data: int = 0
    connected_at: float = 0.0
    disconnected_at: float | None = None


Attack = Callable[[WSTransport], None]


class Hostile(WSListener):
    def __init__(self, attack: Attack, seen: Seen, pong: bool) -> None:
        self.attack = attack
        self.seen = seen
        self.pong = pong

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.seen.connected_at = time.monotonic()
        self.attack(transport)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        op = frame.msg_type
        if op is WSMsgType.CLOSE:
            code = frame.get_close_code().value if frame.payload_size >= 2 else 1005
            self.seen.closes.append(code)
            transport.send_close(frame.get_close_code())
            transport.disconnect()
        elif op is WSMsgType.PING:
            self.seen.pings.append(frame.get_payload_as_bytes())
            if self.pong:
                transport.send_pong(frame.get_payload_as_bytes())
        elif op is WSMsgType.PONG:
            self.seen.pongs.append(frame.get_payload_as_bytes())
        else:
            self.seen.data += 1

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.seen.disconnected_at = time.monotonic()


@asynccontextmanager
async def hostile_server(attack: Attack, *, answer: str | None = None,
                         subprotocol: str | None = None,
                         pong: bool = False) -> AsyncIterator[tuple[str, Seen]]:
    """A picows server that runs ``attack`` on each connection (answering the extension
    offer with ``answer``, the subprotocol offer with ``subprotocol``; pings answered only
    with ``pong``)."""
    seen = Seen()
    headers = {}
    if answer is not None:
        headers["Sec-WebSocket-Extensions"] = answer
    if subprotocol is not None:
        headers["Sec-WebSocket-Protocol"] = subprotocol

    def factory(request: WSUpgradeRequest) -> Any:
        listener = Hostile(attack, seen, pong)
        if not headers:
            return listener
        response = WSUpgradeResponse.create_101_response(extra_headers=headers)
        return WSUpgradeResponseWithListener(response, listener)

    server = await ws_create_server(factory, "127.0.0.1", 0, enable_auto_pong=False)
    try:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/", seen
    finally:
        server.close()


DEFLATE_ANSWER = "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
"""The answer to the default offer (the client refuses one that drops a parameter)."""


def deflate_bytes(payload: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -12)
    return (c.compress(payload) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]


TEXT, BINARY, CONT = WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION
MAX_SIZE = 1024


def send_all(*frames: tuple[WSMsgType, bytes, bool, bool]) -> Attack:
    """An attack: these (opcode, payload, fin, rsv1) frames, right after the handshake."""
    def attack(transport: WSTransport) -> None:
        for op, payload, fin, rsv1 in frames:
            transport.send(op, payload, fin=fin, rsv1=rsv1)
    return attack


# name: (algorithm the client offers, server's extension answer, attack, code expected)
CASES: dict[str, tuple[str, str | None, Attack, int]] = {
    "RSV1 without any extension": ("none", None, send_all((TEXT, b"hello", True, True)), 1002),
    "RSV1 with deflate offered but declined": (
        "permessage-deflate", None, send_all((TEXT, deflate_bytes(b"hello"), True, True)),
        1002),
    "continuation without a start": ("none", None, send_all((CONT, b"x", True, False)), 1002),
    "invalid UTF-8 text": ("none", None, send_all((TEXT, b"ok \xff\xfe", True, False)), 1007),
    "invalid UTF-8 across fragments": (
        "none", None, send_all((TEXT, b"ab", False, False), (CONT, b"\xc3\x28", True, False)),
        1007),
    "invalid UTF-8 once inflated": (
        "permessage-deflate", DEFLATE_ANSWER,
        send_all((TEXT, deflate_bytes(b"caf\xc3\x28" * 5), True, True)), 1007),
    "one frame over max_size": ("none", None, send_all((BINARY, b"x" * (MAX_SIZE + 1), True,
                                                        False)), 1009),
    "fragments over max_size together": (
        "none", None, send_all((TEXT, b"a" * 700, False, False), (CONT, b"b" * 700, True, False)),
        1009),
    "a deflate bomb": ("permessage-deflate", DEFLATE_ANSWER,
                       send_all((BINARY, deflate_bytes(b"\0" * (MAX_SIZE * 64)), True, True)),
                       1009),
}


def hostile_config(algorithm: str, **more: Any) -> TuningConfig:
    return TuningConfig().updated({"compression.algorithm": algorithm,
                                   "scaling.max_size": MAX_SIZE, **more})


async def against(attack: Attack, config: TuningConfig, *, answer: str | None = None,
                  subprotocol: str | None = None, pong: bool = False,
                  drain_timeout: float = 3.0) -> tuple[dict[str, Any], Seen, float]:
    async with hostile_server(attack, answer=answer, subprotocol=subprotocol,
                              pong=pong) as (url, seen):
        t0 = time.monotonic()
        _, result = await run_client(url, config, drain_timeout=drain_timeout)
        took = time.monotonic() - t0
        for _ in range(50):
            if seen.disconnected_at is not None:
                break
            await asyncio.sleep(0.01)
    return result.connections[0], seen, took


@pytest.mark.parametrize("name", list(CASES))
def test_a_hostile_server_gets_the_close_code_of_the_table(name: str) -> None:
    algorithm, answer, attack, code = CASES[name]
    row, seen, took = asyncio.run(against(attack, hostile_config(algorithm), answer=answer))
    assert seen.closes == [code], (row, seen)
    assert seen.disconnected_at is not None
    assert took < 2.0  # closed at once, not after the drain wait
    assert row["messages_received"] == 0, row  # nothing of the bad message was delivered


@pytest.mark.parametrize("name", list(CASES))
def test_the_connection_row_says_how_the_client_closed(name: str) -> None:
    algorithm, answer, attack, code = CASES[name]
    row, _seen, _ = asyncio.run(against(attack, hostile_config(algorithm), answer=answer))
    assert row["close_code"] == code or str(code) in str(row["error"]), row


def test_a_server_that_never_answers_pings_is_closed_with_1011() -> None:
    config = hostile_config("none", **{"scaling.heartbeat_interval_s": 0.2,
                                       "scaling.heartbeat_timeout_s": 0.3})
    row, seen, took = asyncio.run(against(lambda t: None, config, pong=False))
    assert seen.pings  # the client did ping
    assert seen.closes == [1011], (row, seen)
    assert seen.disconnected_at is not None
    assert 0.45 < seen.disconnected_at - seen.connected_at < 1.5
    assert took < 2.0


def test_the_row_of_a_server_that_never_answers_pings_says_1011() -> None:
    config = hostile_config("none", **{"scaling.heartbeat_interval_s": 0.2,
                                       "scaling.heartbeat_timeout_s": 0.3})
    row, _seen, _ = asyncio.run(against(lambda t: None, config, pong=False))
    assert row["close_code"] == 1011 or "1011" in str(row["error"]), row


def test_a_server_that_answers_pings_is_kept() -> None:
    """The control for the test above: same heartbeat, pongs answered, no 1011."""
    config = hostile_config("none", **{"scaling.heartbeat_interval_s": 0.2,
                                       "scaling.heartbeat_timeout_s": 0.3})
    row, seen, took = asyncio.run(against(lambda t: None, config, pong=True,
                                          drain_timeout=1.2))
    assert len(seen.pings) >= 3
    assert seen.closes == [1000], (row, seen)  # the client's own closing handshake
    assert row["close_code"] == 1000 and row["error"] is None
    assert took >= 1.2


def test_a_ping_from_the_server_gets_a_pong_with_the_same_payload() -> None:
    payloads = [b"wslab-ping-42", b"", bytes(range(125))]

    def attack(transport: WSTransport) -> None:
        for p in payloads:
            transport.send_ping(p)

    config = hostile_config("none", **{"scaling.heartbeat_interval_s": None})
    row, seen, _ = asyncio.run(against(attack, config, drain_timeout=0.3))
    assert seen.pongs == payloads
    assert seen.pings == []  # no heartbeat configured: the client never pinged
    assert row["out_control_frames"] >= len(payloads)
    assert seen.closes == [1000]


def test_a_deflate_bomb_is_refused_before_it_inflates() -> None:
    """The 1009 comes from the bounded decoder: the client's peak allocation while refusing
    a 32 MiB bomb stays far below the bomb's inflated size."""
    import tracemalloc

    max_size = 64 * 1024
    bomb = deflate_bytes(b"\0" * (32 << 20))
    assert len(bomb) < max_size  # the frame itself is within max_size: only inflating is not
    config = hostile_config("permessage-deflate", **{"scaling.max_size": max_size})

    async def run() -> tuple[dict[str, Any], Seen, int]:
        tracemalloc.start()
        try:
            row, seen, _ = await against(send_all((BINARY, bomb, True, True)), config,
                                         answer=DEFLATE_ANSWER)
            return row, seen, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    row, seen, peak = asyncio.run(run())
    assert seen.closes == [1009], (row, seen)
    assert row["messages_received"] == 0
    assert peak < 8 << 20, peak


@pytest.mark.parametrize(("payload", "code", "received"), [
    (b'[{"a":1},{"b":', 1007, 0),
    (b'[{"a":1},{"b":2}]', 1000, 2),  # the control: a well-formed envelope is taken apart
])
def test_a_bad_envelope_is_closed_with_1007(payload: bytes, code: int, received: int) -> None:
    config = hostile_config("none", **{"batching.strategy": "time",
                                       "batching.envelope": "json-array"})
    row, seen, _ = asyncio.run(against(send_all((TEXT, payload, True, False)), config,
                                          subprotocol="wslab.v1.json-array",
                                          drain_timeout=0.5))
    assert row["subprotocol"] == "wslab.v1.json-array"
    assert seen.closes == [code], (row, seen)
    assert row["messages_received"] == received
