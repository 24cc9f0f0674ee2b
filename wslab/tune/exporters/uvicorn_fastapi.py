"""Renderer for the ``uvicorn`` target: a FastAPI (Starlette) echo app served by uvicorn.

What lives here: :func:`uvicorn_options` (the ``uvicorn.Config`` keyword arguments as
data) and :func:`render_uvicorn`, which writes ``server.py`` (``python server.py --port
N``, or ``uvicorn server:app --ws server:TunedWebSocketsProtocol ...``) and ``README.md``
(the table of which knob is a uvicorn option, which comes from the protocol class, and
what cannot be expressed). What must not live here: the protocol class and the knob table
(``_uvicorn_protocol.py``, shared with python-socketio), writing files.

uvicorn's own options cover the on/off switch of permessage-deflate, the message limit,
the heartbeat and a concurrency cap; windows, context takeover, memLevel, level and the
write buffer come from the protocol class passed as ``ws=``. The app is FastAPI's; a
Starlette app is the same ``WebSocket`` object and the same uvicorn settings.
"""

from __future__ import annotations

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

FILENAME = "server.py"
README = "README.md"


def uvicorn_options(config: TuningConfig) -> dict[str, Any]:
    """The ``uvicorn.Config`` options this config sets (``ws`` is added by server.py).

    Args:
        config: The tuned configuration.

    Returns:
        ``ws_per_message_deflate``, ``ws_max_size``, ``ws_max_queue``, ``ws_ping_interval``,
        ``ws_ping_timeout`` and ``limit_concurrency``.
    """
    sc = config.scaling
    return {
        "ws_per_message_deflate": deflate_plan(config).enabled,
        "ws_max_size": sc.max_size,
        "ws_max_queue": sc.max_queue,
        "ws_ping_interval": sc.heartbeat_interval_s,
        "ws_ping_timeout": sc.heartbeat_timeout_s,
        "limit_concurrency": sc.max_connections,
    }


def _command_line(config: TuningConfig) -> str:
    opts = uvicorn_options(config)
    parts = ["uvicorn server:app --host 127.0.0.1 --port 8000",
             "--ws server:TunedWebSocketsProtocol",
             "--ws-per-message-deflate " + str(opts["ws_per_message_deflate"]).lower(),
             f"--ws-max-size {opts['ws_max_size']}", f"--ws-max-queue {opts['ws_max_queue']}"]
    for flag, key in (("--ws-ping-interval", "ws_ping_interval"),
                      ("--ws-ping-timeout", "ws_ping_timeout")):
        if opts[key] is not None:
            parts.append(f"{flag} {opts[key]:g}")
    parts.append(f"--limit-concurrency {opts['limit_concurrency']}")
    if config.scaling.workers > 1:
        parts.append(f"--workers {config.scaling.workers}")
    return " ".join(parts)


def _own_limits(config: TuningConfig) -> list[str]:
    sc = config.scaling
    own: list[str] = []
    plan = deflate_plan(config)
    if plan.enabled and plan.threshold_bytes:
        own.append(f"compression: threshold {plan.threshold_bytes} B: websockets (under "
                   "uvicorn) compresses every message once the extension is agreed, and "
                   "the ASGI send event has no per-message switch; nearest: compress all.")
    if sc.heartbeat_interval_s is None:
        own.append("heartbeat: off (ws_ping_interval None): dead peers are found only by TCP.")
    own.append(f"scaling: max_queue {sc.max_queue} is uvicorn's ws_max_queue, which only the "
               "legacy `--ws websockets` protocol reads; the websockets sans-I/O protocol "
               "used here stops reading after each message until the app receives it.")
    own.append(f"scaling: max_connections {sc.max_connections} is limit_concurrency, which "
               "answers HTTP 503 once that many connections or tasks are open (plain HTTP "
               "requests count too); wslab's admission queue is not reproduced.")
    if sc.workers > 1:
        own.append(f"scaling: workers {sc.workers}: run `uvicorn ... --workers "
                   f"{sc.workers}` (one port, processes share it); server.py runs one.")
    if sc.broker != "memory":
        own.append(f"scaling: broker {sc.broker} (cross-worker fan-out) is application code; "
                   "this echo app has nothing to fan out.")
    return own


def render_uvicorn(config: TuningConfig) -> dict[str, str]:
    """Render the FastAPI app module and its README.

    Args:
        config: The tuned configuration.

    Returns:
        ``{"server.py": text, "README.md": text}``.
    """
    plan = deflate_plan(config)
    knobs = uvicorn_knobs(config, plan)
    doc = comment_block(
        header_lines(config, "uvicorn"),
        [
            "",
            "Run: python server.py --host 127.0.0.1 --port 8000   (--port 0 picks a free port; "
            "the first line on stdout is 'listening on ws://HOST:PORT'), or: "
            + _command_line(config),
            f"Needs fastapi and uvicorn (with websockets); proven by wslab's tests with "
            f"{TESTED_WITH}.",
            "Where each knob goes (README.md has the table):",
            *(f"  {line}" for line in knobs_comment(knobs)),
            "",
        ],
        limits_section(config, plan, _own_limits(config)),
        prefix="# ",
    )
    constants = (
        deflate_constant(plan)
        + f"WRITE_LIMIT = {config.scaling.write_limit}  # bytes: write buffer high-water mark\n"
        + "UVICORN_OPTIONS: dict[str, Any] = {  # uvicorn.Config keyword arguments\n"
        + "".join(f"    {key!r}: {value!r},\n" for key, value in uvicorn_options(config).items())
        + "}\n"
    )
    text = (
        "#!/usr/bin/env python3\n"
        + doc
        + '"""A tuned FastAPI echo app on uvicorn, exported by wslab (needs fastapi, uvicorn, '
        + 'websockets)."""\n'
        + _IMPORTS
        + PROTOCOL_IMPORTS
        + "\n"
        + constants
        + PROTOCOL_SOURCE
        + _BODY
    )
    readme = (
        "# uvicorn (FastAPI / Starlette) export\n\n"
        + comment_block(header_lines(config, "uvicorn"), prefix="")
        + "\nRun `python server.py --port 8000`, or\n\n```\n" + _command_line(config)
        + "\n```\n\nWhich knob is a uvicorn option, which comes from `TunedWebSocketsProtocol` "
        "(the protocol class in server.py, passed as `ws=`), and which cannot be expressed:\n\n"
        + knobs_markdown(knobs)
        + "\n" + comment_block(limits_section(config, plan, _own_limits(config)), prefix="")
    )
    return {FILENAME: text, README: readme}


_IMPORTS = """
from __future__ import annotations

import argparse
import asyncio
import socket
from typing import Any

import uvicorn
from fastapi import FastAPI, WebSocket
"""

_BODY = '''

app = FastAPI()


@app.websocket("/")
async def echo(websocket: WebSocket) -> None:
    """Send every message back as it came (text stays text, binary stays binary)."""
    await websocket.accept()
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await websocket.send_text(message["text"])
        elif message.get("bytes") is not None:
            await websocket.send_bytes(message["bytes"])


def main() -> None:
    """Bind, say where, then serve until SIGINT or SIGTERM (uvicorn handles both)."""
    parser = argparse.ArgumentParser(description="tuned FastAPI/uvicorn echo (wslab export)")
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
