"""Renderer for the ``python-socketio`` target: an ASGI Socket.IO echo app on uvicorn.

What lives here: :func:`engineio_options` (the ``socketio.AsyncServer`` keyword arguments
as data) and :func:`render_python_socketio`, which writes ``server.py`` (``python server.py
--port N``) and ``README.md`` (where each knob goes). What must not live here: the uvicorn
protocol class (``_uvicorn_protocol.py``), writing files.

What python-socketio (engine.io 4.x, read in ``engineio/base_server.py``,
``async_server.py``, ``async_socket.py`` and ``async_drivers/asgi.py``) can and cannot
express: it has no WebSocket compression option at all: ``http_compression`` and
``compression_threshold`` compress HTTP long-polling bodies only, and in ASGI mode the
WebSocket, permessage-deflate included, is the ASGI server's. So the export runs the
ASGI app on uvicorn with the same ``TunedWebSocketsProtocol`` as the uvicorn export:
deflate windows, context takeover, memLevel and level come from that class.
``ping_interval`` / ``ping_timeout`` are engine.io's packet heartbeat; the open packet
announces ``int(ping_interval) * 1000`` (whole seconds), so the interval is written in
whole seconds. ``max_http_buffer_size`` bounds a packet's length (in characters for text)
and closes the socket beyond it; uvicorn's ``ws_max_size`` set to the same value answers
close 1009 first (on bytes).
"""

from __future__ import annotations

import math
from typing import Any

from wslab.config import TuningConfig
from wslab.tune.exporters._common import comment_block, deflate_plan, header_lines, limits_section
from wslab.tune.exporters._uvicorn_protocol import (
    PROTOCOL_IMPORTS,
    PROTOCOL_SOURCE,
    TESTED_WITH,
    deflate_constant,
    knobs_comment,
    knobs_markdown,
    uvicorn_knobs,
)
from wslab.tune.exporters.socketio_node import ENGINEIO_DEFAULT_PING_MS, own_limits

FILENAME = "server.py"
README = "README.md"


def engineio_options(config: TuningConfig) -> dict[str, Any]:
    """The ``socketio.AsyncServer`` options for this config.

    Returns:
        ``async_mode`` (asgi), ``transports`` (websocket only), ``ping_interval`` and
        ``ping_timeout`` (whole seconds, engine.io's defaults when pings are off),
        ``max_http_buffer_size``.
    """
    sc = config.scaling
    if sc.heartbeat_interval_s is None:
        interval, timeout = (ms // 1000 for ms in ENGINEIO_DEFAULT_PING_MS)
    else:
        interval = math.ceil(sc.heartbeat_interval_s)
        timeout = math.ceil(sc.heartbeat_timeout_s or sc.heartbeat_interval_s)
    return {
        "async_mode": "asgi",
        "transports": ["websocket"],
        "ping_interval": interval,
        "ping_timeout": timeout,
        "max_http_buffer_size": sc.max_size,
    }


def uvicorn_options(config: TuningConfig) -> dict[str, Any]:
    """The ``uvicorn.Config`` options under the Socket.IO app (no WebSocket pings)."""
    sc = config.scaling
    return {
        "ws_per_message_deflate": deflate_plan(config).enabled,
        "ws_max_size": sc.max_size,
        "ws_max_queue": sc.max_queue,
        "ws_ping_interval": None,  # engine.io pings with packets
        "ws_ping_timeout": None,
        "limit_concurrency": sc.max_connections,
    }


def _own_limits(config: TuningConfig) -> list[str]:
    sc = config.scaling
    plan = deflate_plan(config)
    own = own_limits(config, python=True)
    interval = sc.heartbeat_interval_s
    if interval is not None and not float(interval).is_integer():
        own.append(f"heartbeat: interval {interval:g} s is written as "
                   f"{math.ceil(interval)} s: python-socketio announces whole seconds in the "
                   "open packet, and a client told less would time out early.")
    own.append("compression: python-socketio has no WebSocket compression option "
               "(http_compression is for polling bodies): permessage-deflate is uvicorn's, "
               "set by TunedWebSocketsProtocol (see README.md).")
    if plan.enabled and plan.threshold_bytes:
        own.append(f"compression: threshold {plan.threshold_bytes} B cannot be expressed "
                   "(websockets under uvicorn compresses every message once agreed).")
    return own


def render_python_socketio(config: TuningConfig) -> dict[str, str]:
    """Render the python-socketio ASGI app module and its README.

    Returns:
        ``{"server.py": text, "README.md": text}``.
    """
    plan = deflate_plan(config)
    knobs = uvicorn_knobs(config, plan, engineio=True)
    limits = limits_section(config, plan, _own_limits(config))
    doc = comment_block(
        header_lines(config, "python-socketio"),
        [
            "",
            "Run: python server.py --host 127.0.0.1 --port 8000   (--port 0 picks a free port; "
            "the first line on stdout is 'listening on ws://HOST:PORT'). Needs "
            "python-socketio, uvicorn and websockets; proven by wslab's tests with "
            f"python-socketio 5.18 on {TESTED_WITH}. Clients: transports ['websocket'].",
            "Where each knob goes (README.md has the table):",
            *(f"  {line}" for line in knobs_comment(knobs)),
            "",
        ],
        limits,
        prefix="# ",
    )
    constants = (
        deflate_constant(plan)
        + f"WRITE_LIMIT = {config.scaling.write_limit}  # bytes: write buffer high-water mark\n"
        + "ENGINEIO_OPTIONS: dict[str, Any] = {  # socketio.AsyncServer keyword arguments\n"
        + "".join(f"    {k!r}: {v!r},\n" for k, v in engineio_options(config).items())
        + "}\n"
        + "UVICORN_OPTIONS: dict[str, Any] = {  # uvicorn.Config keyword arguments\n"
        + "".join(f"    {k!r}: {v!r},\n" for k, v in uvicorn_options(config).items())
        + "}\n"
    )
    text = (
        "#!/usr/bin/env python3\n"
        + doc
        + '"""A tuned python-socketio echo app on uvicorn, exported by wslab."""\n'
        + _IMPORTS
        + PROTOCOL_IMPORTS
        + "\n"
        + constants
        + PROTOCOL_SOURCE
        + _BODY
    )
    readme = (
        "# python-socketio (ASGI on uvicorn) export\n\n"
        + comment_block(header_lines(config, "python-socketio"), prefix="")
        + "\nRun `python server.py --port 8000`. Which knob is a uvicorn option, an "
        "engine.io option (`socketio.AsyncServer`), a setting of `TunedWebSocketsProtocol` "
        "(the protocol class in server.py), and which cannot be expressed:\n\n"
        + knobs_markdown(knobs)
        + "\n" + comment_block(limits, prefix="")
    )
    return {FILENAME: text, README: readme}


_IMPORTS = """
from __future__ import annotations

import argparse
import asyncio
import socket
from typing import Any

import socketio
import uvicorn
"""

_BODY = '''

sio = socketio.AsyncServer(**ENGINEIO_OPTIONS)
app = socketio.ASGIApp(sio)


@sio.on("*")
async def echo(event: str, sid: str, *data: Any) -> None:
    """Every event goes back to its sender with the same arguments."""
    await sio.emit(event, data[0] if len(data) == 1 else data, to=sid)


def main() -> None:
    """Bind, say where, then serve until SIGINT or SIGTERM (uvicorn handles both)."""
    parser = argparse.ArgumentParser(description="tuned python-socketio echo (wslab export)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=8000, help="port to bind (0: any free port)")
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        raise SystemExit(f"error: cannot bind {args.host}:{args.port}: {exc.strerror}") from None
    sock.listen(2048)
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(app, ws=TunedWebSocketsProtocol, log_level="warning",
                            **UVICORN_OPTIONS)
    print(f"listening on ws://{host}:{port}", flush=True)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
'''
