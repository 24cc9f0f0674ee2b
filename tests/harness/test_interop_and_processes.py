"""`wslab serve` against peers that are not wslab, and process hygiene of the commands.

Stopping: ``wslab bench``, ``scale``, ``serve``, ``sweep`` and ``demo`` are started as a
script's background job would start them (SIGINT ignored) and sent Ctrl-C, SIGTERM or
SIGKILL mid-run; each must exit within ``STOP_S`` with nothing it started still running
(found by psutil through the process tree and an environment tag every descendant
inherits), and print its result whole or not at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from services import node_and_npm, program
from tune.export_support import ensure_node_ws, node_env
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
    modules = ensure_node_ws(node_and_npm()[1])  # fails, never skips, if they are missing
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


# --- stopping: every command exits within STOP_S of Ctrl-C / SIGTERM, leaves nothing ---------

STOP_S = 5.0  # issue 14: every command exits within 5 s of Ctrl-C, and nothing it started lives on
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 128 + signal.SIGTERM,
              signal.SIGKILL: -signal.SIGKILL}
MESSAGES = {signal.SIGINT: "wslab: interrupted", signal.SIGTERM: "wslab: stopped by SIGTERM"}


def _as_a_background_job() -> None:
    """Start with SIGINT ignored, as a script's background job is (``make test &``, CI
    wrappers): the fresh-machine run that found ``wslab bench`` ignoring Ctrl-C did."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _wslab(args: list[str], tag: str, sigint_ignored: bool = True) -> subprocess.Popen[str]:
    """``python -m wslab.cli ARGS``; every descendant inherits WSLAB_TEST_TAG=tag."""
    return subprocess.Popen([sys.executable, "-m", "wslab.cli", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "WSLAB_TEST_TAG": tag, "COLUMNS": "200"},
                            preexec_fn=_as_a_background_job if sigint_ignored else None)


def _tagged(tag: str) -> list[psutil.Process]:
    """Every process carrying WSLAB_TEST_TAG=tag (children, grandchildren, orphans)."""
    found = []
    for p in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if p.environ().get("WSLAB_TEST_TAG") == tag:
                found.append(p)
    return found


def _running(procs: list[psutil.Process]) -> list[psutil.Process]:
    """Those still running (a zombie has exited: in a container nobody may reap it)."""
    left = []
    for p in procs:
        with contextlib.suppress(psutil.Error):
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                left.append(p)
    return left


def _wait_for(proc: subprocess.Popen[str], ready: Callable[[list[psutil.Process]], bool],
              timeout: float = 120.0) -> list[psutil.Process]:
    """The command's descendants once ``ready`` says they are all up."""
    me = psutil.Process(proc.pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the command ended early: {proc.stderr.read() if proc.stderr else ''}")
        with contextlib.suppress(psutil.Error):
            kids = me.children(recursive=True)
            if ready(kids):
                return kids
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"the command's processes did not all start within {timeout:g} s")


def _stop(proc: subprocess.Popen[str], sig: int, tag: str,
          kids: list[psutil.Process]) -> tuple[str, str]:
    """Send ``sig``; assert the command exits within STOP_S with the shell's exit code and
    that nothing it started is left running by then. Its (stdout, stderr)."""
    sent = time.monotonic()
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=STOP_S)
    except subprocess.TimeoutExpired:
        for p in _running([*kids, *_tagged(tag)]):  # they hold its pipes open too
            p.kill()
        proc.kill()
        out, err = proc.communicate(timeout=STOP_S)
        pytest.fail(f"still running {STOP_S:g} s after {signal.Signals(sig).name}: {err}")
    left = _running([*kids, *_tagged(tag)])
    while left and time.monotonic() < sent + STOP_S:
        time.sleep(0.05)
        left = _running(left)
    names = [(p.pid, " ".join(p.cmdline()[:4])) for p in left]
    for p in left:
        p.kill()
    assert not names, f"left running {STOP_S:g} s after {signal.Signals(sig).name}: {names}"
    assert proc.returncode == EXIT_CODES[sig], err
    assert out == ""  # the result is printed whole at the end, or not at all
    if sig in MESSAGES:
        assert err.strip().splitlines()[-1:] == [MESSAGES[sig]]
    return out, err


def _roles(kids: list[psutil.Process], *needles: str) -> bool:
    """Is each needle in the command line of one of ``kids``?"""
    lines = []
    for p in kids:
        with contextlib.suppress(psutil.Error):
            lines.append(" ".join(p.cmdline()))
    return all(any(n in line for line in lines) for n in needles)


@pytest.mark.parametrize(("sig", "sigint_ignored"), [
    (signal.SIGINT, True), (signal.SIGINT, False), (signal.SIGTERM, True),
    (signal.SIGKILL, True)], ids=["ctrl-c-background", "ctrl-c", "sigterm", "sigkill"])
def test_bench_leaves_no_process_behind_even_on_ctrl_c(sig: int,
                                                       sigint_ignored: bool) -> None:
    tag = f"bench-{uuid.uuid4().hex}"
    proc = _wslab(["bench", str(ROOT / "data" / "chat.jsonl.zst"), "--duration", "60",
                   "--link", "4g", "--json"], tag, sigint_ignored)
    kids = _wait_for(proc, lambda k: _roles(k, "procs server", "shaper_proc", "procs client"))
    _stop(proc, sig, tag, kids)


@pytest.mark.parametrize(("sig", "balancer"), [
    (signal.SIGINT, "reuseport"), (signal.SIGTERM, "nginx"), (signal.SIGKILL, "nginx")],
    ids=["ctrl-c-reuseport", "sigterm-nginx", "sigkill-nginx"])
def test_scale_takes_its_redis_nginx_workers_and_holders_with_it(sig: int,
                                                                 balancer: str) -> None:
    program("redis-server", "redis-server")
    if balancer == "nginx":
        program("nginx", "nginx")
    tag = f"scale-{uuid.uuid4().hex}"
    # Two workers: a private redis-server fans out between them.
    proc = _wslab(["scale", "-n", "60", "-w", "2", "--balancer", balancer, "--idle", "60",
                   "--json"], tag)
    needles = ["redis-server", "procs worker", "procs holder"]
    if balancer == "nginx":
        needles.append("nginx: master")
    kids = _wait_for(proc, lambda k: _roles(k, *needles))
    _stop(proc, sig, tag, kids)


def test_serve_exits_promptly_although_a_client_never_answers_the_close() -> None:
    tag = f"serve-{uuid.uuid4().hex}"
    proc = _wslab(["serve", "--port", "0"], tag)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    port = int(line.split("ws://127.0.0.1:")[1].split("/")[0])
    script = (f"import asyncio\nfrom websockets.asyncio.client import connect\n"
              f"async def m():\n    ws = await connect('ws://127.0.0.1:{port}/')\n"
              f"    print('up', flush=True)\n    await asyncio.sleep(600)\nasyncio.run(m())\n")
    frozen = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert frozen.stdout is not None and frozen.stdout.readline().strip() == "up"
        frozen.send_signal(signal.SIGSTOP)  # its kernel still acks; it never closes back
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(STOP_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f"wslab serve still running {STOP_S:g} s after Ctrl-C")
        assert proc.returncode == 0  # Ctrl-C is how a server is meant to stop
        assert time.monotonic() - sent < STOP_S
    finally:
        frozen.kill()
        frozen.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_sweep_stops_mid_grid_and_writes_no_half_table(tmp_path: Path) -> None:
    space = tmp_path / "space.yaml"
    space.write_text("compression.level: [1, 2, 3, 4, 5, 6, 7, 8, 9]\n"
                     "compression.mem_level: [3, 5, 7, 9]\n"
                     "compression.server_max_window_bits: [9, 11, 13, 15]\n")
    out = tmp_path / "results.parquet"
    partial = tmp_path / "results.parquet.partial.jsonl"
    tag = f"sweep-{uuid.uuid4().hex}"
    proc = _wslab(["sweep", str(ROOT / "data" / "mixed.jsonl.zst"), "--space", str(space),
                   "-o", str(out), "--workers", "2"], tag)
    kids = _wait_for(proc, lambda k: len(k) >= 2 and partial.exists()
                     and partial.read_text().count("\n") >= 1)
    _stop(proc, signal.SIGINT, tag, kids)
    assert sorted(p.name for p in tmp_path.iterdir()) == [partial.name, space.name]
    rows = [json.loads(line) for line in partial.read_text().splitlines()]
    assert 1 <= len(rows) < 9 * 4 * 4  # whole rows to resume from, far from the whole grid


def test_demo_stops_at_once_and_every_file_it_wrote_is_whole(tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    tag = f"demo-{uuid.uuid4().hex}"
    proc = _wslab(["demo", "--out", str(out_dir), "--messages", "500"], tag)
    kids = _wait_for(proc, lambda k: len(k) >= 1)  # its sweep's workers (or a live run)
    _stop(proc, signal.SIGINT, tag, kids)
    import pandas as pd

    written = sorted(out_dir.rglob("*")) if out_dir.exists() else []
    assert not [p for p in written if p.name.endswith(".part")]
    for path in written:
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".parquet":
            pd.read_parquet(path)
