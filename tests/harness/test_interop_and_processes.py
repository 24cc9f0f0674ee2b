"""`wslab serve` against peers that are not wslab, and process hygiene of the live commands."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from tune.export_support import ensure_node_ws, node_bin, node_env
from websockets.asyncio.client import connect

from wslab.codecs.negotiation import server_accept, server_params_from_config
from wslab.config import TuningConfig

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CONFIG = TuningConfig().updated({"compression.server_max_window_bits": 10,
                                 "compression.client_max_window_bits": 11,
                                 "compression.mem_level": 4,
                                 "compression.server_no_context_takeover": True})


def start_serve(tmp_path: Path, config: TuningConfig = CONFIG) -> tuple[subprocess.Popen[str], int]:
    cfg = tmp_path / "c.yaml"
    config.save(cfg)
    proc = subprocess.Popen([sys.executable, "-m", "wslab.cli", "serve", "--config", str(cfg),
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, env={**os.environ, "COLUMNS": "200"})
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "ws://127.0.0.1:" in line, proc.stderr.read() if proc.poll() is not None else line
    port = int(line.split("ws://127.0.0.1:")[1].split("/")[0])
    return proc, port


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def expected_header(offer: str) -> str:
    found = server_accept(offer, server_params_from_config(CONFIG.compression))
    assert found is not None
    return found[0].header()


def test_plain_websockets_client_negotiates_the_configured_deflate(tmp_path: Path) -> None:
    proc, port = start_serve(tmp_path)
    try:
        async def talk() -> tuple[str | None, list[str]]:
            async with connect(f"ws://127.0.0.1:{port}/") as ws:  # library defaults, no wslab
                for text in ("hello", "hello again", "x" * 3000):
                    await ws.send(text)
                got = [await asyncio.wait_for(ws.recv(), 5) for _ in range(3)]
                return ws.response.headers.get("Sec-WebSocket-Extensions"), got  # type: ignore[return-value]

        header, echoes = asyncio.run(talk())
    finally:
        stop(proc)
    assert echoes == ["hello", "hello again", "x" * 3000]
    offer = "permessage-deflate; client_max_window_bits"  # what websockets offers by default
    assert header == expected_header(offer)
    assert "server_max_window_bits=10" in header and "server_no_context_takeover" in header


def test_node_ws_client_negotiates_the_configured_deflate(tmp_path: Path) -> None:
    found = node_bin()
    if found is None:
        pytest.skip("node and npm are not installed: no Node.js peer can run here")
    modules = ensure_node_ws(found[1])
    proc, port = start_serve(tmp_path)
    try:
        run = subprocess.run(["node", str(HERE / "node_client.js"), f"ws://127.0.0.1:{port}/",
                              "one", "two", "three" * 500], capture_output=True, text=True,
                             timeout=20, env=node_env(modules))
    finally:
        stop(proc)
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    assert got["echoes"] == ["one", "two", "three" * 500]
    header = got["extensions"]
    assert "server_max_window_bits=10" in header
    assert "server_no_context_takeover" in header
    assert "client_max_window_bits=11" in header


def test_server_cleans_up_after_a_killed_client(tmp_path: Path) -> None:
    proc, port = start_serve(tmp_path)
    script = (f"import asyncio\nfrom websockets.asyncio.client import connect\n"
              f"async def m():\n    ws = await connect('ws://127.0.0.1:{port}/')\n"
              f"    await ws.send('x')\n    print('up', flush=True)\n    await asyncio.sleep(60)\n"
              f"asyncio.run(m())\n")
    victim = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert victim.stdout is not None and victim.stdout.readline().strip() == "up"
        victim.kill()
        victim.wait(5)
        import urllib.request

        deadline = time.monotonic() + 10
        text = ""
        while time.monotonic() < deadline:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5
                                          ).read().decode()
            if "wslab_active 0.0" in text:
                break
            time.sleep(0.2)
        assert "wslab_active 0.0" in text
        assert "wslab_connections_total 1.0" in text
    finally:
        stop(proc)


def test_bench_leaves_no_process_behind_even_on_ctrl_c(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "wslab.cli", "bench", str(ROOT / "data" / "chat.jsonl.zst"),
           "--duration", "60", "--link", "4g", "--json"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    me = psutil.Process(proc.pid)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(me.children(recursive=True)) < 3:
        time.sleep(0.2)
    children = me.children(recursive=True)
    assert len(children) >= 3  # server, shaper, client
    proc.send_signal(signal.SIGINT)
    proc.wait(30)
    _gone, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, [p.cmdline() for p in alive]
    assert proc.returncode != 0
