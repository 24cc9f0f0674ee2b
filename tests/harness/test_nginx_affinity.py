"""nginx in front of several workers keeps each client address on one worker.

The config is the exporter's own (``render_nginx``, started by ``cluster.NginxFront``, as
``wslab scale --balancer nginx`` runs it): ``hash $remote_addr consistent`` over the
workers' ports. Three real wslab servers sit behind a real nginx that the test starts, and
clients connect from ``ADDRESSES`` source addresses (127.0.0.x), ``RECONNECTS`` times each.
Which worker answered is what each worker saw: its ``on_open`` hook records the label the
client sent in ``X-Wslab-Client``, which nginx passes through with the upgrade.

Reconnects from one address must all reach one worker (affinity: round robin would spread
them), and the addresses must reach every worker (spread: ``ip_hash``, which keys on the
first three octets only, would send all of 127.0.0.x to one). With consistent hashing a
worker misses all of 32 addresses with a chance of about (2/3)^32, so the spread check is
not a matter of luck.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from wslab.cli.scale_cmd import nginx_conf
from wslab.config import TuningConfig
from wslab.harness.cluster import NginxFront, free_port, free_port_block, need_binary
from wslab.harness.server import LiveServer
from wslab.harness.wiring import CLIENT_HEADER

WORKERS = 3
ADDRESSES = [f"127.0.0.{2 + i}" for i in range(32)]
RECONNECTS = 3


async def _connect_all(port: int) -> None:
    for r in range(RECONNECTS):
        for address in ADDRESSES:
            ws = await connect(f"ws://127.0.0.1:{port}/", open_timeout=10,
                               local_addr=(address, 0),
                               additional_headers={CLIENT_HEADER: f"{address}#{r}"})
            await ws.close()


def test_nginx_keeps_each_address_on_one_worker_and_spreads_addresses(tmp_path: Path) -> None:
    try:
        need_binary("nginx", "nginx")
    except Exception as exc:  # the message names the package to install
        pytest.fail(str(exc))
    config = TuningConfig()
    seen: dict[str, int] = {}

    async def main() -> None:
        base = free_port_block(WORKERS)
        servers = []
        for i in range(WORKERS):
            server = LiveServer(config, port=base + i, record=False)
            server.on_open.append(lambda conn, _s, worker=i: seen.__setitem__(conn, worker))
            await server.start()
            servers.append(server)
        listen = free_port()
        conf = nginx_conf(config.updated({"scaling.workers": WORKERS}), base, listen)
        nginx = await asyncio.to_thread(NginxFront, conf, listen, tmp_path / "nginx")
        try:
            assert "hash $remote_addr consistent;" in nginx.conf.read_text()
            await _connect_all(nginx.port)
        finally:
            await asyncio.to_thread(nginx.stop)
            for server in servers:
                await server.stop()

    asyncio.run(main())
    assert len(seen) == len(ADDRESSES) * RECONNECTS  # every session reached a worker
    worker_of: dict[str, set[int]] = {}
    for label, worker in seen.items():
        worker_of.setdefault(label.split("#")[0], set()).add(worker)
    split = {a: sorted(w) for a, w in worker_of.items() if len(w) > 1}
    assert not split, f"reconnects from one address reached several workers: {split}"
    per_worker = [sum(1 for w in worker_of.values() if w == {i}) for i in range(WORKERS)]
    assert all(per_worker), f"addresses per worker: {per_worker}"
