"""Cluster plumbing: load planning, missing programs, ports in use, one worker's node
(in-memory broker and registry), and the compress-once shared broadcast.

The shared broadcast test runs a real server and real websockets clients in one process:
every client gets identical messages, each distinct message is compressed exactly once
for all connections that negotiated no context takeover, and a client that negotiated no
compression gets the same messages uncompressed (RSV1 is per connection).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import time

import pytest
from websockets.asyncio.client import connect
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from wslab.config import TuningConfig
from wslab.errors import ConfigError, WslabError
from wslab.harness import cluster
from wslab.harness.broker import MemoryBroker
from wslab.harness.cluster import check_port_free, need_binary, plan_load, python_child
from wslab.harness.registry import ClusterNode, MemoryRegistry
from wslab.harness.server import LiveServer
from wslab.harness.wiring import CLIENT_HEADER


def test_plan_spreads_processes_and_addresses_and_says_why_not() -> None:
    plan = plan_load(20000, 2)
    assert sum(plan.per_process) == 20000
    assert max(plan.per_process) <= plan.fd_limit - cluster.FD_SLACK
    assert plan.client_processes >= 2 and not plan.problems
    big = plan_load(60000, 2)
    assert len(big.source_addresses) >= 3  # ~28k ports per source address
    one = plan_load(25000, 1)
    assert one.problems and str(one.fd_limit) in one.problems[0]
    nginx = plan_load(12000, 2, nginx=True)
    assert nginx.problems and "nginx" in nginx.problems[0]
    over = plan_load(500, 1, max_connections=100)
    assert "max_connections" in over.problems[0]


def test_missing_program_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(WslabError, match=r"apt-get install wslab-nonexistent"):
        need_binary("wslab-definitely-missing", "wslab-nonexistent")


def test_port_in_use_is_a_clear_error(tmp_path: object) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(WslabError, match=f"port {port} .* already in use"):
            check_port_free(port)
        cfg = tmp_path / "c.yaml"  # type: ignore[operator]
        TuningConfig().save(cfg)
        worker = python_child(["worker", "--config", str(cfg), "--port", str(port)], "worker")
        try:
            answer = worker.read_json(30)
        except WslabError as exc:
            answer = {"error": str(exc)}
        finally:
            worker.stop()
        assert "already in use" in answer["error"]


def test_shared_broadcast_needs_no_context_takeover() -> None:
    with pytest.raises(ConfigError, match="server_no_context_takeover"):
        LiveServer(TuningConfig(), shared_broadcast=True)


async def _shared_run(shared: bool) -> tuple[list[list[str]], LiveServer]:
    config = TuningConfig().updated({"compression.server_no_context_takeover": True})
    server = LiveServer(config, shared_broadcast=shared)
    node = ClusterNode(server, MemoryBroker(), MemoryRegistry(), "0")
    await node.start()
    port = await server.start()
    url = f"ws://127.0.0.1:{port}/"
    deflate = [ClientPerMessageDeflateFactory(server_no_context_takeover=True)]
    clients = [await connect(url, extensions=deflate, compression=None,
                             additional_headers={CLIENT_HEADER: f"c{i}"}) for i in range(6)]
    clients.append(await connect(url, compression=None,
                                 additional_headers={CLIENT_HEADER: "plain"}))
    while len(server.sessions) < 7:
        await asyncio.sleep(0.01)
    messages = [json.dumps({"k": "b", "seq": i, "text": "quote " * (50 + i)})
                for i in range(3)]
    for m in messages:
        await node.broadcast(m.encode())
    got = [[str(await asyncio.wait_for(c.recv(), 5)) for _ in messages] for c in clients]
    assert all(g == messages for g in got)
    for c in clients:
        await c.close()
    for _ in range(500):
        if not server.sessions:
            break
        await asyncio.sleep(0.01)
    await node.settle()
    assert await node.registry.count() == 0  # every close unregistered
    await server.stop()
    await node.stop()
    return got, server


def test_shared_broadcast_compresses_once_and_delivers_identical_messages() -> None:
    got, server = asyncio.run(_shared_run(True))
    assert len(got) == 7 and server.shared is not None
    assert server.shared.compressions == 3  # one per message, not one per connection
    assert server.shared.reused == 3 * 5
    # Each connection's compressor timed its calls, which hold the three real compressions.
    assert server.compress_ns >= server.shared.encode_ns > 0
    assert server.metrics.counts["compressed_bytes_in"] > \
        server.metrics.counts["compressed_bytes_out"]


def test_per_connection_compression_without_sharing() -> None:
    _, server = asyncio.run(_shared_run(False))
    assert server.shared is None and server.compress_ns > 0


def test_port_taken_by_reuseport_workers_is_shared() -> None:
    """Two servers with reuse_port listen on one port (what SO_REUSEPORT workers do)."""

    async def run() -> None:
        a = LiveServer(TuningConfig(), reuse_port=True)
        port = await a.start()
        b = LiveServer(TuningConfig(), port=port, reuse_port=True)
        assert await b.start() == port
        await a.stop()
        await b.stop()

    started = time.monotonic()
    asyncio.run(run())
    assert time.monotonic() - started < 10
