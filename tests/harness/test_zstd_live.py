"""x-wslab-zstd live: LiveServer and LoadClient on loopback agree with the simulator per frame.

Each run replays a trace both ways (server plays s2c, clients c2s) through real websockets
connections that negotiated ``x-wslab-zstd``, then checks: the handshake answer, integrity,
every frame's compress-or-skip decision and compressed size against ``wslab.sim`` on the
same trace and config, RSV1 frames and data bytes as they crossed the socket, and that the
deflate fallback serves peers without the extension (the library's stock client included).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pandas as pd
import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import NegotiationError as WsNegotiationError

from wslab.codecs.zstd_dict import DictionarySet, train_dictionary_set
from wslab.codecs.zstd_negotiation import AgreedZstd, ZstdParams
from wslab.config import TuningConfig
from wslab.errors import ConfigError
from wslab.harness.client import LoadClient, client_extensions
from wslab.harness.recorder import join_stream
from wslab.harness.server import LiveServer
from wslab.harness.wiring import negotiated_extension, server_extensions
from wslab.harness.zstd_extension import (
    ClientZstdFactory,
    DeflateFallbackClientFactory,
    ZstdExtension,
)
from wslab.sim import simulate
from wslab.traces.model import Message, Trace

pytestmark = pytest.mark.timeout(120)

THRESHOLD = 120
TYPES = ("chat.message", "presence", "tick")


def message(i: int, kind: str, seed: int = 0) -> bytes:
    """A JSON message of ``kind``; ``tick`` ones are short (under THRESHOLD: skipped)."""
    if kind == "tick":
        return json.dumps({"t": "tick", "s": i}).encode()
    doc = {"type": kind, "room": f"room-{(i + seed) % 4}", "user": f"user{(i * 7 + seed) % 13}",
           "text": " ".join(["hello", "world", "zstd", "frames"][(i + j) % 4]
                            for j in range(10 + i % 17)), "seq": i}
    return json.dumps(doc).encode()


def make_trace(n: int = 180) -> Trace:
    msgs = [Message(i * 0.002, "s2c" if i % 2 else "c2s", TYPES[i % 3], "normal",
                    message(i, TYPES[i % 3]), True) for i in range(n)]
    return Trace(msgs)


@pytest.fixture(scope="module")
def dictionaries() -> DictionarySet:
    # Trained on other traffic of the same types, as a deployment trains on earlier days.
    samples = {k: [message(i, k, seed=5) for i in range(200, 260)] for k in TYPES}
    return train_dictionary_set(samples, 2048)


def config_for(algorithm: str) -> TuningConfig:
    return TuningConfig().updated({"compression.algorithm": algorithm,
                                   "compression.policy": "threshold",
                                   "compression.threshold_bytes": THRESHOLD})


async def replay(config: TuningConfig, trace: Trace, dictionaries: DictionarySet | None,
                 connections: int = 2) -> tuple[LiveServer, LoadClient, list[dict[str, Any]]]:
    n_s2c = sum(1 for m in trace if m.dir == "s2c")
    async with LiveServer(config, scenario="replay", trace=trace, speed=4.0,
                          dictionaries=dictionaries) as server:
        client = LoadClient(f"ws://127.0.0.1:{server.port}/", config, trace=trace,
                            connections=connections, speed=4.0, expect_s2c=n_s2c,
                            drain_timeout=1.0, c2s_only=True, dictionaries=dictionaries)
        result = await client.run()
    return server, client, result.connections


@pytest.mark.parametrize("algorithm", ["zstd-stream", "zstd-dict"])
def test_zstd_live_equals_the_simulator_frame_for_frame(algorithm: str,
                                                        dictionaries: DictionarySet) -> None:
    config = config_for(algorithm)
    trace = make_trace()
    server, client, rows = asyncio.run(replay(config, trace, dictionaries))
    window = f"max_window_log={config.compression.zstd_window_log}"
    expected_header = (f"x-wslab-zstd; mode=stream; {window}" if algorithm == "zstd-stream"
                       else f"x-wslab-zstd; mode=message; dict={dictionaries.id}; {window}")
    assert [r["error"] for r in rows] == [None, None]
    assert {r["extensions"] for r in rows} == {expected_header}

    # Integrity both ways, and every message intact (the join is by content).
    down, down_counts = join_stream(server.recorder.sent_frame(),
                                    client.recorder.received_frame())
    up, up_counts = join_stream(client.recorder.sent_frame(), server.recorder.received_frame())
    assert down_counts == up_counts == {"lost": 0, "duplicated": 0, "reordered": 0}
    assert len(down) == 2 * sum(m.dir == "s2c" for m in trace)
    assert len(up) == 2 * sum(m.dir == "c2s" for m in trace)

    # Frame by frame, per connection and direction: the live decisions and compressed sizes
    # are the simulator's (the same trace through the sans-I/O pipeline and codecs).
    sim = simulate(trace, config, dictionaries=dictionaries, verify=False).frames
    live = pd.concat([server.recorder.coded_frame(), client.recorder.coded_frame()])
    cols = ["key", "payload_bytes", "wire_payload_bytes", "compressed"]
    for direction in ("s2c", "c2s"):
        want = sim[sim["dir"] == direction][cols].reset_index(drop=True)
        assert want["compressed"].any() and not want["compressed"].all()
        for conn, got in live[live["dir"] == direction].groupby("conn"):
            got = got.sort_values("frame")[cols].reset_index(drop=True)
            pd.testing.assert_frame_equal(got, want, check_dtype=False, obj=f"{conn} {direction}")
    # The selector's skips went out plain: short ticks only, at their own size.
    skipped = live[~live["compressed"]]
    assert set(skipped["key"]) == {"tick"}
    assert (skipped["wire_payload_bytes"] == skipped["payload_bytes"]).all()

    # On the socket: RSV1 on exactly the compressed frames, and the data bytes the
    # simulator prices (RFC 6455 headers + compressed payloads).
    for direction, side in (("s2c", "in_"), ("c2s", "out_")):
        want = sim[sim["dir"] == direction]
        for row in rows:
            assert row[side + "compressed_frames"] == int(want["compressed"].sum())
            assert row[side + "data_frames"] == len(want)
            assert row[side + "data_bytes"] == int(want["ws_bytes"].sum())


def test_adaptive_decisions_are_the_simulators_live() -> None:
    config = config_for("zstd-stream").updated({"compression.policy": "adaptive"})
    trace = make_trace(150)
    server, client, _rows = asyncio.run(replay(config, trace, None, connections=1))
    sim = simulate(trace, config, verify=False).frames
    for direction, rec in (("s2c", server.recorder), ("c2s", client.recorder)):
        got = rec.coded_frame().sort_values("frame")
        want = sim[sim["dir"] == direction]
        assert got["compressed"].tolist() == want["compressed"].tolist()
        assert got["wire_payload_bytes"].tolist() == want["wire_payload_bytes"].tolist()


# --- fallback: peers without x-wslab-zstd get permessage-deflate -------------------------


def test_a_stock_websockets_client_gets_deflate_from_a_zstd_server(
        dictionaries: DictionarySet) -> None:
    async def run(algorithm: str) -> tuple[str | None, str, list[str]]:
        config = config_for(algorithm)
        async with LiveServer(config, scenario="echo", dictionaries=dictionaries) as server, \
                connect(f"ws://127.0.0.1:{server.port}/") as ws:
            sent = ["x" * 300, '{"a":1}', "hello " * 80]  # the library's default client
            got = []
            for text in sent:
                await ws.send(text)
                reply = await asyncio.wait_for(ws.recv(), 5)
                got.append(reply if isinstance(reply, str) else reply.decode())
            assert got == sent
            assert ws.response is not None
            return (ws.response.headers.get("Sec-WebSocket-Extensions"),
                    negotiated_extension(ws.protocol.extensions), got)

    for algorithm in ("zstd-stream", "zstd-dict"):
        header, name, _ = asyncio.run(run(algorithm))
        assert header is not None and header.startswith("permessage-deflate")
        assert name == "permessage-deflate"


def test_a_wslab_zstd_client_falls_back_to_deflate(dictionaries: DictionarySet) -> None:
    """Against a deflate-only wslab server, a stock websockets server, and a zstd-dict server
    holding another dictionary set: the zstd offer is passed over, deflate is agreed."""
    trace = make_trace(60)
    other = train_dictionary_set({"x": [message(i, "x", 9) for i in range(40)]}, 1024)
    zstd_dict = config_for("zstd-dict")

    async def against_wslab(server_config: TuningConfig,
                            server_sets: DictionarySet | None) -> list[dict[str, Any]]:
        async with LiveServer(server_config, scenario="echo", dictionaries=server_sets) as srv:
            client = LoadClient(f"ws://127.0.0.1:{srv.port}/", zstd_dict, trace=trace,
                                speed=8.0, drain_timeout=1.0, dictionaries=dictionaries)
            return (await client.run()).connections

    async def against_stock() -> str | None:
        async def echo(ws: ServerConnection) -> None:
            async for m in ws:
                await ws.send(m)

        async with serve(echo, "127.0.0.1", 0) as srv:  # the library's own deflate
            port = srv.sockets[0].getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}/", compression=None,
                               extensions=client_extensions(zstd_dict, dictionaries)) as ws:
                await ws.send("hello " * 50)
                assert await ws.recv() == "hello " * 50
                assert ws.response is not None
                return ws.response.headers.get("Sec-WebSocket-Extensions")

    for server_config, sets in ((config_for("permessage-deflate"), None), (zstd_dict, other)):
        rows = asyncio.run(against_wslab(server_config, sets))
        assert rows[0]["error"] is None
        assert rows[0]["extensions"].startswith("permessage-deflate")
        sent = sum(m.dir == "c2s" for m in trace)  # the client sends the c2s side, echoed
        assert rows[0]["messages_received"] == rows[0]["messages_sent"] == sent
    stock = asyncio.run(against_stock())
    assert stock is not None and stock.startswith("permessage-deflate")


def test_server_agrees_on_one_rsv1_extension_only(dictionaries: DictionarySet) -> None:
    from faults.rawws import RawClient

    async def answer(offer: str) -> str | None:
        async with LiveServer(config_for("zstd-stream"), scenario="echo") as server:
            raw = await RawClient.open(server.port, extensions=offer)
            assert raw.handshake.status == 101
            raw.writer.close()
            return raw.handshake.headers.get("sec-websocket-extensions")

    both = "x-wslab-zstd; mode=stream, permessage-deflate; client_max_window_bits"
    assert asyncio.run(answer(both)) == "x-wslab-zstd; mode=stream; max_window_log=15"
    flipped = "permessage-deflate; client_max_window_bits, x-wslab-zstd; mode=stream"
    got = asyncio.run(answer(flipped))
    assert got is not None and got.startswith("permessage-deflate") and "zstd" not in got
    # The client side: a server answering both fails the handshake.
    ext = ZstdExtension(AgreedZstd("stream", 15), 3, 15)
    with pytest.raises(WsNegotiationError, match="RSV1"):
        DeflateFallbackClientFactory(mem_level=5, level=6).process_response_params([], [ext])
    with pytest.raises(WsNegotiationError, match="RSV1"):
        ClientZstdFactory(ZstdParams("stream"), 3).process_response_params(
            [("mode", "stream"), ("max_window_log", "15")], [ext])


def test_zstd_dict_without_dictionaries_is_a_clear_error() -> None:
    config = config_for("zstd-dict")
    with pytest.raises(ConfigError, match="dictionary set"):
        LiveServer(config)
    with pytest.raises(ConfigError, match="dictionary set"):
        LoadClient("ws://127.0.0.1:9/", config)
    with pytest.raises(ConfigError, match="dictionary set"):
        server_extensions(config.compression)
