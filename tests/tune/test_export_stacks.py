"""Exports for the stacks people run, each proven by starting it and speaking to it.

uvicorn (FastAPI, by ``python server.py`` and by uvicorn's own command line), aiohttp,
Socket.IO on Node (socket.io 4.8 from tests/tune/node) and python-socketio (ASGI on
uvicorn) are exported from chosen, non-default configs, started, and checked with a raw
client (``raw_ws.py``) that sees every frame:

- the Sec-WebSocket-Extensions answer to the offer a browser sends is the configured
  parameters (aiohttp cannot answer them: there the window and the context are checked
  in fact, from compressed frame sizes);
- the window and the context takeover in fact, from the sizes of echoed frames;
- a message of exactly max_size is echoed and one byte more is refused with close 1009;
- pings (WebSocket frames, or engine.io "2" packets) arrive at the configured interval,
  and engine.io's open packet announces the configured pair and max payload.

Every expected value below is written from the config the test chose, never read back
from the exported files. All servers start once, in parallel, bound to 127.0.0.1.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
from services import node_and_npm
from tune.export_support import (
    ensure_node_ws,
    free_port,
    node_env,
    parse_response,
    read_port,
    start,
    stop,
    wait_for_port,
)
from tune.raw_ws import (
    CLOSE,
    PONG,
    RawWebSocket,
    engineio_path,
    event_packet,
    open_packet,
)
from typer.testing import CliRunner

from wslab.cli.export_cmd import export as export_command
from wslab.codecs.negotiation import DeflateParams
from wslab.config import TuningConfig
from wslab.tune.export import export, render, target_rows

pytestmark = pytest.mark.timeout(120)


def cfg(**changes: Any) -> TuningConfig:
    return TuningConfig().updated(changes)


@dataclass(frozen=True)
class Chosen:
    """A config the test picked and what it must produce, written out by hand."""

    config: TuningConfig
    deflate: DeflateParams | None  # the answer to a browser's offer
    max_size: int
    interval_s: float
    timeout_s: float


CHOSEN = {
    # small server window, no context either way, tight limit, fast heartbeat
    "w10-reset": Chosen(
        cfg(**{"compression.server_max_window_bits": 10,
               "compression.client_max_window_bits": 12,
               "compression.server_no_context_takeover": True,
               "compression.client_no_context_takeover": True,
               "compression.mem_level": 4, "compression.level": 3,
               "scaling.max_size": 3000, "scaling.heartbeat_interval_s": 1.0,
               "scaling.heartbeat_timeout_s": 2.0}),
        DeflateParams(server_no_context_takeover=True, client_no_context_takeover=True,
                      server_max_window_bits=10, client_max_window_bits=12),
        3000, 1.0, 2.0),
    # windows 12/11, context kept, another limit and heartbeat
    "w12-kept": Chosen(
        cfg(**{"compression.server_max_window_bits": 12,
               "compression.client_max_window_bits": 11,
               "scaling.max_size": 5000, "scaling.heartbeat_interval_s": 1.5,
               "scaling.heartbeat_timeout_s": 3.0}),
        DeflateParams(server_max_window_bits=12, client_max_window_bits=11),
        5000, 1.5, 3.0),
    "off": Chosen(
        cfg(**{"compression.algorithm": "none", "scaling.max_size": 4000,
               "scaling.heartbeat_interval_s": 1.0}),
        None, 4000, 1.0, 1.0),
}
STACKS = ("uvicorn", "aiohttp", "socketio", "python-socketio")
ENGINEIO = ("socketio", "python-socketio")
SLACK_S = 0.4  # a loaded two-core machine; the configured intervals differ by >= 0.5 s


@dataclass
class Server:
    stack: str
    chosen: Chosen
    port: int

    @property
    def path(self) -> str:
        return engineio_path() if self.stack in ENGINEIO else "/"

    def connect(self) -> RawWebSocket:
        ws = RawWebSocket(self.port, self.path)
        assert ws.status == 101, ws.headers
        if self.stack in ENGINEIO:
            self.open = open_packet(ws)
            ws.send("40")  # join the main namespace
            assert ws.data_frame().data.startswith(b"40{")
        return ws

    def wrap(self, text: str) -> str:
        """What goes on the wire for ``text``: itself, or a socket.io event carrying it."""
        return event_packet("echo", text) if self.stack in ENGINEIO else text


def _uvicorn_cli(folder: Path, port: int) -> list[str]:
    """The command line the uvicorn README gives, on a free port, run by this Python."""
    readme = (folder / "README.md").read_text()
    line = readme.split("```\n", 1)[1].split("\n", 1)[0]
    assert line.startswith("uvicorn server:app ")
    words = line.split()[1:]
    words[words.index("--port") + 1] = str(port)
    return [sys.executable, "-m", "uvicorn", *words]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[tuple[str, str], Server]]:
    node = ensure_node_ws(node_and_npm()[1])  # fails, never skips, without node and npm
    root = tmp_path_factory.mktemp("stacks")
    procs: dict[tuple[str, str], subprocess.Popen[str]] = {}
    cli_port = free_port()
    try:
        for stack in STACKS:
            for name, chosen in CHOSEN.items():
                folder = root / f"{stack}-{name}"
                export(chosen.config, stack, folder)
                if stack == "socketio":
                    cmd = ["node", "server.js", "--port", "0"]
                else:
                    cmd = [sys.executable, "server.py", "--port", "0"]
                procs[stack, name] = start(cmd, cwd=folder, env=node_env(node))
        procs["uvicorn-cli", "w10-reset"] = start(
            _uvicorn_cli(root / "uvicorn-w10-reset", cli_port), cwd=root / "uvicorn-w10-reset")
        running = {key: Server(key[0], CHOSEN[key[1]], read_port(proc))
                   for key, proc in procs.items() if key[0] != "uvicorn-cli"}
        wait_for_port(cli_port)
        running["uvicorn-cli", "w10-reset"] = Server("uvicorn", CHOSEN["w10-reset"], cli_port)
        yield running
    finally:
        for proc in procs.values():
            stop(proc)


KEYS = [(stack, name) for stack in STACKS for name in CHOSEN]


def _ids(key: tuple[str, str]) -> str:
    return "-".join(key)


# --- what the handshake answers ----------------------------------------------------------------


@pytest.mark.parametrize("key", [*KEYS, ("uvicorn-cli", "w10-reset")], ids=_ids)
def test_answer_to_a_browser_offer(key: tuple[str, str],
                                   servers: dict[tuple[str, str], Server]) -> None:
    server = servers[key]
    with server.connect() as ws:
        answer = ws.extensions
    if server.chosen.deflate is None:
        assert answer is None
    elif server.stack == "aiohttp":
        # aiohttp answers only what the client asked; a browser asks nothing (module doc).
        assert answer == "permessage-deflate"
    else:
        assert answer is not None
        assert parse_response(answer) == server.chosen.deflate


# --- window and context takeover, in fact --------------------------------------------------------


def _hex(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


@pytest.mark.parametrize("key", [k for k in KEYS if k[1] != "off"], ids=_ids)
def test_window_and_context_in_fact(key: tuple[str, str],
                                    servers: dict[tuple[str, str], Server]) -> None:
    server = servers[key]
    rng = random.Random(7)
    one, block, again = _hex(rng, 1400), _hex(rng, 1400), _hex(rng, 900)
    with server.connect() as ws:
        sizes = []
        for text in (one, block + block, again, again):
            ws.send(server.wrap(text))
            frame = ws.data_frame()
            assert frame.rsv1 and frame.data == server.wrap(text).encode()
            sizes.append(len(frame.payload))
    single, doubled, first, second = sizes
    if server.chosen.config.compression.server_max_window_bits == 10:
        # 1024 bytes of window cannot reach the copy 1400 bytes back: twice the size
        assert doubled > 1.7 * single, sizes
    else:
        assert doubled < 1.3 * single, sizes
    if server.chosen.config.compression.server_no_context_takeover:
        assert abs(second - first) <= 2, sizes  # the repeat starts from an empty window
    else:
        assert second < 0.3 * first, sizes  # the repeat is found in the kept window


# --- message size limit ---


@pytest.mark.parametrize("key", KEYS, ids=_ids)
def test_max_size_refused_one_byte_over(key: tuple[str, str],
                                        servers: dict[tuple[str, str], Server]) -> None:
    server = servers[key]
    limit = server.chosen.max_size
    overhead = len(server.wrap(""))
    exact = server.wrap("z" * (limit - overhead))
    assert len(exact) == limit
    with server.connect() as ws:
        ws.send(exact)
        echo = ws.data_frame()
        assert echo.opcode != CLOSE and echo.data == exact.encode()
        ws.send(exact + "z")
        closing = ws.data_frame()
    assert (closing.opcode, closing.close_code) == (CLOSE, 1009)


# --- heartbeat ---


def _next_ping(server: Server, ws: RawWebSocket, timeout: float) -> float:
    """When the next ping arrives (answered at once): a ping frame, or engine.io's "2"."""
    while True:
        if server.stack in ENGINEIO:
            frame = ws.data_frame(timeout)
            if frame.data == b"2":
                ws.send("3")
                return frame.at
        else:
            frame = ws.frame(timeout)
            if frame.opcode == 0x9:
                ws.send(frame.payload, PONG)
                return frame.at
        assert frame.opcode != CLOSE, frame


@pytest.mark.parametrize("key", [k for k in KEYS if k[1] != "off"], ids=_ids)
def test_heartbeat_interval(key: tuple[str, str],
                            servers: dict[tuple[str, str], Server]) -> None:
    server = servers[key]
    chosen = server.chosen
    interval = chosen.interval_s
    if server.stack == "python-socketio":
        interval = float(int(interval + 0.999))  # whole seconds: its open packet says int()
    with server.connect() as ws:
        began = time.monotonic()  # the handshake (and engine.io's open) just ended
        first = _next_ping(server, ws, interval + 3)
        second = _next_ping(server, ws, interval + 3)
    assert abs((first - began) - interval) < SLACK_S, (first - began, interval)
    assert abs((second - first) - interval) < SLACK_S, (second - first, interval)
    if server.stack in ENGINEIO:
        assert server.open["pingInterval"] == round(interval * 1000)
        assert server.open["pingTimeout"] == round(chosen.timeout_s * 1000)
        assert server.open["maxPayload"] == chosen.max_size


# --- what the files say ---


def test_files_say_where_each_knob_goes() -> None:
    chosen = CHOSEN["w10-reset"].config
    uvi = render(chosen, "uvicorn")
    readme = uvi["README.md"]
    for row in ("| server_max_window_bits | 10 | protocol class |",
                "| client_no_context_takeover | true | protocol class |",
                "| mem_level | 4 | protocol class |",
                "| max_size | 3000 | uvicorn option |",
                "| heartbeat | 1 s / 2 s | uvicorn option |",
                "| permessage-deflate | on | uvicorn option |"):
        assert row in readme, row
    assert "protocol class: server_max_window_bits=10" in uvi["server.py"]
    threshold = render(cfg(**{"compression.policy": "threshold",
                              "compression.threshold_bytes": 300}), "uvicorn")["README.md"]
    assert "| threshold_bytes | 300 | cannot express |" in threshold
    aio = render(chosen, "aiohttp")["server.py"]
    assert "client_max_window_bits 12 and client_no_context_takeover true cannot be" in aio
    assert "memLevel 4 and level 3 cannot be expressed" in aio
    assert "heartbeat / 2 = 0.5 s" in aio
    psio = render(chosen, "python-socketio")
    assert "no WebSocket compression option" in psio["server.py"]
    assert "| heartbeat | 1 s / 2 s | engine.io option |" in psio["README.md"]
    sio = render(cfg(**{"scaling.heartbeat_interval_s": None}), "socketio")
    assert "heartbeat: off cannot be expressed" in sio["socketio-options.js"]
    for name, text in {**uvi, **psio, "aiohttp": aio}.items():
        if name.endswith(".py") or name == "aiohttp":
            compile(text, name, "exec")


ODD = cfg(**{"compression.algorithm": "zstd-dict", "compression.policy": "adaptive",
             "batching.strategy": "hybrid", "scaling.workers": 3,
             "scaling.heartbeat_interval_s": None, "scaling.heartbeat_timeout_s": None,
             "compression.level": -1, "scaling.broker": "redis"})


@pytest.mark.parametrize("config", [ODD, CHOSEN["off"].config], ids=["odd", "off"])
def test_every_new_file_parses_and_states_its_limits(config: TuningConfig,
                                                     tmp_path: Path) -> None:
    node = node_and_npm()[0]
    for target in ("uvicorn", "aiohttp", "socketio", "python-socketio"):
        for path in export(config, target, tmp_path / target):
            text = path.read_text()
            if path.suffix == ".py":
                compile(text, str(path), "exec")
            elif path.suffix == ".js":
                check = subprocess.run([node, "--check", str(path)], capture_output=True,
                                       text=True, timeout=30)
                assert check.returncode == 0, check.stderr
            if path.name != "server.js":
                assert "cannot express" in text, path
    uvi = (tmp_path / "uvicorn" / "server.py").read_text()
    if config is ODD:
        assert "'ws_ping_interval': None" in uvi and "--ws-ping-interval" not in uvi
        psio = (tmp_path / "python-socketio" / "server.py").read_text()
        assert "heartbeat: off cannot be expressed" in psio and "'ping_interval': 25" in psio
        assert "workers 3" in uvi and "--workers 3" in uvi


def test_rendered_only_targets_say_so(tmp_path: Path) -> None:
    files = render(CHOSEN["w12-kept"].config, "all")
    for name in ("uwebsockets/uws-behavior.hpp", "uwebsockets/uws-behavior.js",
                 "centrifugo/centrifugo.yaml"):
        head = files[name][:1500]
        assert "Rendered only, not run by wslab's tests" in head, name
    for name, text in files.items():
        if name.split("/")[0] in {"uvicorn", "aiohttp", "socketio", "python-socketio"}:
            assert "Rendered only" not in text, name
    proven = {row["target"]: row["proven_by_running"] for row in target_rows()}
    assert proven == {"wslab": True, "websockets": True, "uvicorn": True, "aiohttp": True,
                      "ws": True, "socketio": True, "python-socketio": True, "nginx": True,
                      "uwebsockets": False, "centrifugo": False}
    app = typer.Typer()
    app.command()(export_command)
    config_path = tmp_path / "c.yaml"
    CHOSEN["w12-kept"].config.save(config_path)
    result = CliRunner().invoke(app, [str(config_path), "-t", "centrifugo", "-o",
                                      str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    assert "centrifugo: proven by running: no" in result.output
    result = CliRunner().invoke(app, [str(config_path), "-t", "aiohttp", "-o",
                                      str(tmp_path / "a")])
    assert "aiohttp: proven by running: yes" in result.output
    assert (tmp_path / "a" / "server.py").stat().st_mode & 0o111
