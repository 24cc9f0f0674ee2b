"""The live server and load client in one process: scenarios, integrity, faults, admission."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from wslab.config import TuningConfig
from wslab.harness.client import LoadClient
from wslab.harness.recorder import join_stream
from wslab.harness.server import LiveServer
from wslab.traces.model import Message, Trace

PRIOS = ("critical", "normal", "background")


def small_trace(n: int = 240) -> Trace:
    msgs = []
    for i in range(n):
        doc = {"type": f"k{i % 3}", "i": i, "note": "hello world " * (i % 5)}
        msgs.append(Message(i * 0.002, "s2c" if i % 3 else "c2s", f"k{i % 3}", PRIOS[i % 3],
                            json.dumps(doc).encode(), True))
    return Trace(msgs)


async def run_pair(config: TuningConfig, scenario: str, connections: int = 3,
                   **client_kw: Any) -> tuple[LiveServer, LoadClient, dict[str, Any]]:
    trace = small_trace()
    n_s2c = sum(1 for m in trace if m.dir == "s2c")
    async with LiveServer(config, scenario=scenario, trace=trace, speed=2.0,
                          expect_clients=connections) as server:
        expect = n_s2c if scenario in ("replay", "broadcast") else client_kw.pop("expect", None)
        client = LoadClient(f"ws://127.0.0.1:{server.port}/", config, trace=trace,
                            connections=connections, speed=2.0, expect_s2c=expect,
                            drain_timeout=1.0, **client_kw)
        result = await client.run()
    return server, client, {"connections": result.connections}


@pytest.mark.parametrize("strategy", ["none", "hybrid", "priority"])
@pytest.mark.parametrize("scenario", ["echo", "replay"])
def test_scenarios_deliver_everything_in_order(strategy: str, scenario: str) -> None:
    config = TuningConfig().updated({"batching.strategy": strategy,
                                     "compression.policy": "adaptive"})
    server, client, info = asyncio.run(run_pair(config, scenario))
    down, down_counts = join_stream(server.recorder.sent_frame(),
                                    client.recorder.received_frame())
    up, up_counts = join_stream(client.recorder.sent_frame(),
                                server.recorder.received_frame())
    assert down_counts == {"lost": 0, "duplicated": 0, "reordered": 0}
    assert up_counts == {"lost": 0, "duplicated": 0, "reordered": 0}
    assert len(up) == 3 * 80
    assert len(down) == (3 * 80 if scenario == "echo" else 3 * 160)
    assert bool(down["delivered"].all())
    rows = info["connections"]
    assert all(r["error"] is None for r in rows)
    assert rows[0]["extensions"].startswith("permessage-deflate")
    assert (rows[0]["subprotocol"] is None) == (strategy == "none")


def test_broadcast_reaches_every_client() -> None:
    config = TuningConfig().updated({"batching.strategy": "hybrid"})
    server, client, _ = asyncio.run(run_pair(config, "broadcast", connections=4))
    _, counts = join_stream(server.recorder.sent_frame(), client.recorder.received_frame())
    assert counts == {"lost": 0, "duplicated": 0, "reordered": 0}
    per_conn = client.recorder.received_frame().groupby("conn").size()
    assert list(per_conn) == [160] * 4


ROOMS = {"a1": "0", "a2": "0", "a3": "0", "b1": "1", "b2": "1"}


async def _room_run(per_member: int) -> tuple[dict[str, list[tuple[str, int]]], LiveServer]:
    """Every member sends ``per_member`` numbered messages once all are in; what each got."""
    async with LiveServer(TuningConfig(), scenario="room", rooms=2) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        members = {name: await connect(url, additional_headers={"X-Wslab-Client": name,
                                                                "X-Wslab-Room": room})
                   for name, room in ROOMS.items()}
        while len(server.sessions) < len(members):  # every member is in its room
            await asyncio.sleep(0.01)
        got: dict[str, list[tuple[str, int]]] = {name: [] for name in members}

        async def read(name: str) -> None:
            with contextlib.suppress(TimeoutError, ConnectionClosed):
                while True:  # until the room has been quiet for a second
                    doc = json.loads(await asyncio.wait_for(members[name].recv(), 1.0))
                    got[name].append((doc["from"], doc["i"]))

        readers = [asyncio.create_task(read(name)) for name in members]
        for i in range(per_member):
            for name, ws in members.items():
                await ws.send(json.dumps({"from": name, "i": i}))
        await asyncio.gather(*readers)
        for ws in members.values():
            await ws.close()
    return got, server


def test_room_members_get_every_room_message_in_order_and_others_none() -> None:
    got, server = asyncio.run(_room_run(per_member=40))
    for name, room in ROOMS.items():
        mates = sorted(m for m, r in ROOMS.items() if r == room and m != name)
        senders = sorted({sender for sender, _ in got[name]})
        assert senders == mates, f"{name} heard from {senders}, its room-mates are {mates}"
        for mate in mates:  # everything a room-mate said, once each, in the order sent
            assert [i for sender, i in got[name] if sender == mate] == list(range(40))
    forwarded = sum(len(v) for v in got.values())
    assert forwarded == 40 * (3 * 2 + 2 * 1)  # each message to every other member
    assert server.metrics.counts["messages_sent"] == forwarded


async def _raw_session(port: int, action: Any) -> int | None:
    async with connect(f"ws://127.0.0.1:{port}/", compression=None,
                       subprotocols=["wslab.v1.json-array"]) as ws:  # type: ignore[list-item]
        await action(ws)
        with contextlib.suppress(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        return ws.close_code


@pytest.mark.parametrize(
    ("action", "code"),
    [
        (lambda ws: ws.send(b"[not json", text=True), 1007),  # malformed envelope
        (lambda ws: ws.send(b"\xff\xfe", text=True), 1007),  # invalid UTF-8
        (lambda ws: ws.send(b"x" * 5000), 1009),  # past max_size
    ],
)
def test_faulty_peers_are_closed_with_the_right_code_and_others_go_on(action: Any,
                                                                      code: int) -> None:
    config = TuningConfig().updated({"batching.strategy": "time", "batching.envelope": "json-array",
                                     "scaling.max_size": 4096})

    async def main() -> tuple[int | None, list[Any]]:
        async with LiveServer(config, scenario="echo") as server:
            got = await _raw_session(server.port, action)
            good = LoadClient(f"ws://127.0.0.1:{server.port}/", config, trace=small_trace(30),
                              drain_timeout=1.0)
            result = await good.run()
            return got, result.connections

    got, rows = asyncio.run(main())
    assert got == code
    assert rows[0]["error"] is None and rows[0]["messages_received"] == 10


def test_admission_rejects_with_1013_and_queues_with_timeout() -> None:
    config = TuningConfig().updated({"scaling.max_connections": 2, "scaling.pending_queue": 1,
                                     "scaling.pending_timeout_s": 0.3})

    async def main() -> tuple[list[int | None], dict[str, Any]]:
        async with LiveServer(config, scenario="echo") as server:
            url = f"ws://127.0.0.1:{server.port}/"
            holders = [await connect(url) for _ in range(2)]
            waiting = await connect(url)  # queued, then times out
            rejected = await connect(url)  # queue full: rejected at once
            codes = []
            for ws in (rejected, waiting):
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5)
                codes.append(ws.close_code)
            await holders[0].close()
            await asyncio.sleep(0.05)
            late = await connect(url)  # a slot is free again
            await late.send("hi")
            assert await asyncio.wait_for(late.recv(), 5) == "hi"
            for ws in (late, holders[1]):
                await ws.close()
            await asyncio.sleep(0.05)
            return codes, server.admission.snapshot()

    codes, snap = asyncio.run(main())
    assert codes == [1013, 1013]
    assert snap["rejected_full"] == 1 and snap["rejected_timeout"] == 1
    assert snap["accepted"] == 3 and snap["active"] == 0


def test_metrics_endpoint_speaks_prometheus() -> None:
    import urllib.request

    async def main() -> str:
        async with LiveServer(TuningConfig(), scenario="echo") as server:
            client = LoadClient(f"ws://127.0.0.1:{server.port}/", TuningConfig(),
                                trace=small_trace(30), drain_timeout=1.0)
            await client.run()
            url = f"http://127.0.0.1:{server.port}/metrics"
            return await asyncio.to_thread(
                lambda: urllib.request.urlopen(url, timeout=5).read().decode())

    text = asyncio.run(main())
    assert "wslab_connections_total 1.0" in text
    assert "wslab_messages_received 10.0" in text
    assert "# TYPE wslab_compression_ratio gauge" in text
    assert "wslab_admission_accepted 1.0" in text
    assert 'wslab_admission_breaker{state="closed"} 1.0' in text


def test_load_refuses_remote_targets() -> None:
    from wslab.errors import WslabError

    with pytest.raises(WslabError, match="--allow-remote"):
        LoadClient("ws://192.0.2.10:80/", TuningConfig())


def test_a_server_without_records_keeps_counts_only_and_still_echoes() -> None:
    from wslab.harness.recorder import CountingRecorder

    async def main() -> None:
        config = TuningConfig().updated({"compression.algorithm": "none"})
        async with LiveServer(config, scenario="echo", record=False) as server:
            async with connect(f"ws://127.0.0.1:{server.port}/", compression=None) as ws:
                for i in range(20):
                    await ws.send(f"m{i}")
                    assert await ws.recv() == f"m{i}"
            rec = server.recorder
            assert isinstance(rec, CountingRecorder)
            assert (rec.messages_sent, rec.messages_received) == (20, 20)
            assert rec.sent == [] and rec.received == []
            assert len(rec.sent_frame()) == 0

    asyncio.run(main())
