"""``wslab probe`` through nginx finds the config of the wslab server behind it.

A real ``wslab serve`` (its own process) runs a config this test chooses; nginx, from the
exporter's own ``nginx.conf`` (as ``wslab scale --balancer nginx`` runs it), stands in
front. The probe only sees nginx's port, and must report the server's window, context
takeover, compression threshold, message limit and heartbeat.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from probe.probe_support import probe
from tune.export_support import free_port, start, stop, wait_for_port

from wslab.cli.scale_cmd import nginx_conf
from wslab.config import TuningConfig
from wslab.harness.cluster import NginxFront, need_binary

CONFIG = TuningConfig().updated({
    "compression.server_max_window_bits": 9, "compression.client_max_window_bits": 11,
    "compression.server_no_context_takeover": False, "compression.policy": "threshold",
    "compression.threshold_bytes": 200, "scaling.max_size": 100_000,
    "scaling.heartbeat_interval_s": 0.5, "scaling.heartbeat_timeout_s": 0.5,
})


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    try:
        need_binary("nginx", "nginx")
    except Exception as exc:  # the message names the package to install
        pytest.fail(str(exc))
    tmp = tmp_path_factory.mktemp("probe-nginx")
    CONFIG.save(tmp / "config.yaml")
    upstream, listen = free_port(), free_port()
    server = start([sys.executable, "-m", "wslab", "serve", "--config", str(tmp / "config.yaml"),
                    "--port", str(upstream)], cwd=Path(__file__).parents[2])
    nginx = None
    try:
        wait_for_port(upstream)
        nginx = NginxFront(nginx_conf(CONFIG, upstream, listen), listen, tmp / "nginx")
        yield probe(f"ws://127.0.0.1:{listen}/")
    finally:
        if nginx is not None:
            nginx.stop()
        stop(server)


def test_wslab_behind_nginx(report: dict[str, Any]) -> None:
    c, s = CONFIG.compression, CONFIG.scaling
    assert report["ok"], report["problems"]
    assert "nginx" in (report["handshake"]["server"] or "")
    server = report["server"]
    assert server["window_unasked"] == c.server_max_window_bits
    assert server["client_window_wish"] == c.client_max_window_bits
    behaviour = report["behaviour"]
    assert behaviour["context_takeover"]["kept"] is True
    assert behaviour["threshold"]["compressed_from"] == c.threshold_bytes
    assert behaviour["max_message"]["largest_accepted"] == s.max_size
    assert behaviour["idle"]["ping_interval_s"] == pytest.approx(s.heartbeat_interval_s,
                                                                 abs=0.1)


def test_wslab_zstd_extension_is_found() -> None:
    """A wslab server on zstd-stream: the matrix shows x-wslab-zstd agreed in stream mode
    with the configured window, and message mode refused (a wslab server accepts its own
    mode only)."""
    import asyncio

    from wslab.harness.probe import ProbeOptions
    from wslab.harness.probe import probe as run
    from wslab.harness.probe_wire import Target
    from wslab.harness.server import LiveServer

    config = TuningConfig().updated({"compression.algorithm": "zstd-stream",
                                     "compression.zstd_window_log": 17})
    only_matrix = frozenset({"threshold", "takeover", "max_message", "ping", "idle"})

    async def main() -> dict[str, Any]:
        server = LiveServer(config, port=0, record=False)
        await server.start()
        try:
            return await run(Target("127.0.0.1", server.port, "/"),
                             ProbeOptions(timeout=2.0, skip=only_matrix))
        finally:
            await server.stop()

    report = asyncio.run(main())
    rows = {r["offer"]: r for r in report["matrix"]}
    stream = rows["x-wslab-zstd mode=stream"]
    assert stream["outcome"] == "agreed" and stream["violations"] == []
    assert stream["agreed"] == {"mode": "stream", "max_window_log": 17, "dict": None}
    assert rows["x-wslab-zstd mode=message"]["outcome"] == "declined"
    assert report["server"]["zstd"] == ["stream"]
