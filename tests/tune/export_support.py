"""Helpers for tests/tune/test_export*.py: free ports, server processes, npm, nginx, clients.

Everything here runs on loopback only, with timeouts, and every process it starts is
stopped by the caller through :func:`stop` (in a ``finally``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from wslab.codecs.extheader import parse_extensions
from wslab.codecs.negotiation import (
    DeflateParams,
    deflate_offers,
    offer_from_config,
    server_accept,
    server_params_from_config,
)
from wslab.config import TuningConfig
from wslab.harness.linepipe import LinePipe

NODE_DIR = Path(__file__).parent / "node"
LISTENING = re.compile(r"listening on ws://([0-9.]+):(\d+)")
START_TIMEOUT_S = 15.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_block(count: int, attempts: int = 50) -> int:
    """The first of ``count`` consecutive loopback ports that are all free right now."""
    for _ in range(attempts):
        base = free_port()
        if base + count > 65535:
            continue
        socks: list[socket.socket] = []
        try:
            for offset in range(count):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no block of {count} free ports found")


def read_port(proc: subprocess.Popen[str], timeout: float = START_TIMEOUT_S) -> int:
    """Wait for the 'listening on ws://HOST:PORT' line of an exported server; its port."""
    assert proc.stdout is not None
    pipe = LinePipe(proc.stdout)  # lines printed together are not held back
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = pipe.readline(min(left, 0.5))
        except TimeoutError:
            if proc.poll() is not None:
                break
            continue
        if line is None:
            break
        seen.append(line)
        match = LISTENING.search(line)
        if match:
            return int(match.group(2))
    err = proc.stderr.read() if proc.stderr and proc.poll() is not None else ""
    raise AssertionError(f"server did not report its port; stdout={seen!r} stderr={err!r}")


def start(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start a process in its own session, with pipes, text mode."""
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM, timeout: float = 5.0) -> None:
    """Stop a process started by :func:`start`: signal, wait, then kill."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def python_server(server_py: Path, port: int = 0) -> subprocess.Popen[str]:
    """Start an exported ``server.py`` with this interpreter."""
    return start([sys.executable, str(server_py), "--host", "127.0.0.1", "--port", str(port)],
                 cwd=server_py.parent)


def ensure_node_ws(npm: str) -> Path:
    """Install the pinned npm packages (``ws``, ``socket.io``) into tests/tune/node once;
    the node_modules path.

    ``make test`` has done it already (scripts/os-deps.sh, same marker: npm's own record of
    what it installed, newer than the lock file)."""
    modules = NODE_DIR / "node_modules"
    marker = modules / ".package-lock.json"
    lock = NODE_DIR / "package-lock.json"
    if not marker.exists() or lock.stat().st_mtime > marker.stat().st_mtime:
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True,
                       capture_output=True, timeout=180)
    return modules


def wait_for_port(port: int, timeout: float = START_TIMEOUT_S) -> None:
    """Block until something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def client_factory(config: TuningConfig) -> ClientPerMessageDeflateFactory:
    """A websockets client extension offering exactly what a wslab client would."""
    offer = offer_from_config(config.compression)
    return ClientPerMessageDeflateFactory(
        server_no_context_takeover=offer.server_no_context_takeover,
        client_no_context_takeover=offer.client_no_context_takeover,
        server_max_window_bits=offer.server_max_window_bits,
        client_max_window_bits=offer.client_max_window_bits,
    )


def predicted_response(config: TuningConfig) -> DeflateParams:
    """What a server configured like ``config`` must answer to :func:`client_factory`."""
    offer = offer_from_config(config.compression)
    result = server_accept(offer.header(), server_params_from_config(config.compression))
    assert result is not None, "the config's own offer must be acceptable"
    return result[0]


def parse_response(header: str) -> DeflateParams:
    """The permessage-deflate parameters of a response header."""
    elements = deflate_offers(parse_extensions(header))
    assert len(elements) == 1, header
    return DeflateParams.from_params(elements[0].params, response=True)


@dataclass
class Session:
    """What one client session observed."""

    status: int
    upgrade: str | None
    extensions: str | None
    echoes: list[str | bytes]
    sent: list[str | bytes]


MESSAGES: list[str | bytes] = [
    '{"type":"chat.message","room":"general","text":"' + "hello " * 40 + '"}',
    '{"type":"chat.message","room":"general","text":"' + "hello " * 41 + '"}',
    b"\x00\x01\x02" * 500,
    "x",
    '{"type":"tick","seq":4}' * 30,
]


def session(url: str, config: TuningConfig, offer_deflate: bool = True,
            timeout: float = 10.0) -> Session:
    """Connect, send :data:`MESSAGES`, collect their echoes, close."""

    async def run() -> Session:
        extensions = [client_factory(config)] if offer_deflate else None
        async with connect(url, compression=None, extensions=extensions,
                           open_timeout=timeout, close_timeout=2) as ws:
            assert ws.response is not None
            echoes: list[str | bytes] = []
            for message in MESSAGES:
                await ws.send(message)
                echoes.append(await asyncio.wait_for(ws.recv(), timeout))
            headers = ws.response.headers
            return Session(ws.response.status_code, headers.get("Upgrade"),
                           headers.get("Sec-WebSocket-Extensions"), echoes, list(MESSAGES))

    return asyncio.run(asyncio.wait_for(run(), timeout * 2))


def node_env(modules: Path) -> dict[str, str]:
    """Environment for node with the test's ``ws`` resolvable."""
    env = dict(os.environ)
    env["NODE_PATH"] = str(modules)
    return env
