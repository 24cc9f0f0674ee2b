"""Renderer for the ``aiohttp`` target: an aiohttp.web echo app with tuned WebSocketResponse.

What lives here: :func:`response_options` (the ``web.WebSocketResponse`` keyword
arguments as data), :func:`send_window_bits` and :func:`render_aiohttp`, which writes
``server.py`` (``python server.py --port N``). What must not live here: writing files,
other targets.

What aiohttp negotiates (read in ``aiohttp/web_ws.py`` ``_handshake`` and
``aiohttp/_websocket/helpers.py`` ``ws_ext_parse`` / ``ws_ext_gen``, aiohttp 3.14), which
decides what can be exported:

| offer parameter (client)        | aiohttp's server answer                                |
|---------------------------------|--------------------------------------------------------|
| none                            | ``permessage-deflate`` (window 15, context kept)      |
| ``server_max_window_bits=N``    | echoed: compresses with N (9..15; 8 or >15: next offer) |
| ``server_no_context_takeover``  | echoed: a fresh compressor per message                 |
| ``client_max_window_bits[=N]``  | ignored: never answered, so clients may use 15 bits    |
| ``client_no_context_takeover``  | ignored: never answered                                |

``compress`` is only a switch (True: accept the first deflate offer on those terms); the
level is fixed at 1 (``Z_BEST_SPEED``) and memLevel at zlib's 8. A server can therefore
impose neither its window nor the client's; the one public lever is the per-message
``send_str(data, compress=wbits)``, which compresses that message with a fresh compressor
of that window: exact for a config without server context takeover, where the exported
app uses it to honour ``server_max_window_bits`` whatever the client asked. The heartbeat
pings every ``heartbeat`` seconds and waits ``heartbeat / 2`` for the pong (fixed ratio).
"""

from __future__ import annotations

from typing import Any

from wslab.config import TuningConfig
from wslab.tune.exporters._common import (
    DeflatePlan,
    comment_block,
    deflate_plan,
    header_lines,
    limits_section,
)

FILENAME = "server.py"
AIOHTTP_LEVEL = 1  # Z_BEST_SPEED, hard-coded in aiohttp's WebSocketWriter
ZLIB_DEFAULT_MEM_LEVEL = 8


def send_window_bits(plan: DeflatePlan) -> int | None:
    """The per-message window of every send, or None for the connection's compressor.

    Only without server context takeover: a per-message ``compress=`` starts a fresh
    compressor, which is exactly what server_no_context_takeover means.
    """
    if plan.enabled and plan.server_no_context_takeover:
        return plan.server_max_window_bits
    return None


def response_options(config: TuningConfig) -> dict[str, Any]:
    """The ``web.WebSocketResponse`` options for this config.

    Returns:
        ``compress``, ``max_msg_size`` (``max_size + 1``: aiohttp's limit on a plain
        frame is exclusive), ``heartbeat``, ``autoping``, ``writer_limit``.
    """
    sc = config.scaling
    return {
        "compress": deflate_plan(config).enabled,
        "max_msg_size": sc.max_size + 1,  # aiohttp refuses a plain frame of exactly this
        "heartbeat": sc.heartbeat_interval_s,
        "autoping": True,
        "writer_limit": sc.write_limit,
    }


def _own_limits(config: TuningConfig, plan: DeflatePlan) -> list[str]:
    sc = config.scaling
    own: list[str] = []
    window = send_window_bits(plan)
    if plan.enabled:
        if window is not None:
            own.append(
                f"compression: server_max_window_bits {plan.server_max_window_bits} and "
                "server_no_context_takeover are not options of aiohttp: every send passes "
                f"compress={window} (or the client's smaller window), so each message is "
                "compressed alone with that window. The answer header does not announce "
                "them unless the client asked; clients keep a 15-bit inflate window.")
        else:
            own.append(
                f"compression: server_max_window_bits {plan.server_max_window_bits} cannot be "
                "expressed with context takeover on: aiohttp compresses with the window the "
                "client asks for, 15 when it asks nothing (browsers ask nothing). Nearest: "
                "the client's choice (a per-message window would lose the kept context).")
        own.append(
            f"compression: client_max_window_bits {plan.client_max_window_bits} and "
            f"client_no_context_takeover {str(plan.client_no_context_takeover).lower()} "
            "cannot be expressed: aiohttp never answers them, so clients compress with up "
            "to 15 bits and keep their context; the server inflates with a 32 KiB window.")
        own.append(
            f"compression: memLevel {plan.mem_level} and level {plan.level} cannot be "
            f"expressed: aiohttp compresses at level {AIOHTTP_LEVEL} (Z_BEST_SPEED) with "
            f"zlib's memLevel {ZLIB_DEFAULT_MEM_LEVEL}.")
        if plan.threshold_bytes:
            own.append(
                f"compression: threshold {plan.threshold_bytes} B cannot be expressed: "
                "once agreed, every message is compressed (send_str has no 'do not "
                "compress' switch); nearest: compress every message.")
    if sc.heartbeat_interval_s is not None:
        wanted = sc.heartbeat_timeout_s or sc.heartbeat_interval_s
        own.append(
            f"heartbeat: timeout {wanted:g} s cannot be expressed: aiohttp waits "
            f"heartbeat / 2 = {sc.heartbeat_interval_s / 2:g} s for the pong, and sends a "
            "ping only after a heartbeat with nothing received.")
    else:
        own.append("heartbeat: off (heartbeat=None): dead peers are found only by TCP.")
    own.append(f"scaling: max_size {sc.max_size} B is written as max_msg_size "
               f"{sc.max_size + 1}: aiohttp refuses an uncompressed message of max_msg_size "
               "bytes or more but a compressed one only beyond it, so a compressed message "
               "one byte over max_size still passes (close 1009 beyond that).")
    own.append(f"scaling: max_queue {sc.max_queue} has no aiohttp option (its reader "
               "buffers by bytes, 64 KiB). writer_limit = write_limit.")
    own.append(f"scaling: max_connections {sc.max_connections} has no aiohttp option; "
               "server.py answers HTTP 503 to upgrades beyond it.")
    if sc.workers > 1:
        own.append(f"scaling: workers {sc.workers}: start one process per port behind the "
                   "exported nginx config (or share a socket with aiohttp's --reuse-port).")
    if sc.broker != "memory":
        own.append(f"scaling: broker {sc.broker} (cross-worker fan-out) is application code; "
                   "this echo app has nothing to fan out.")
    return own


def render_aiohttp(config: TuningConfig) -> dict[str, str]:
    """Render the aiohttp app module.

    Args:
        config: The tuned configuration.

    Returns:
        ``{"server.py": text}``.
    """
    plan = deflate_plan(config)
    sc = config.scaling
    doc = comment_block(
        header_lines(config, "aiohttp"),
        [
            "",
            "Run: python server.py --host 127.0.0.1 --port 8080   (--port 0 picks a free port; "
            "the first line on stdout is 'listening on ws://HOST:PORT'). Needs only aiohttp; "
            "proven by wslab's tests with aiohttp 3.14.",
            "aiohttp options used: WebSocketResponse(compress, max_msg_size (close 1009 "
            "beyond it), heartbeat, autoping, writer_limit); per-message send_str(..., "
            "compress=SEND_WINDOW_BITS) for the server's window without context takeover.",
            "",
        ],
        limits_section(config, plan, _own_limits(config, plan)),
        prefix="# ",
    )
    window = send_window_bits(plan)
    constants = (
        "RESPONSE_OPTIONS: dict[str, Any] = {  # web.WebSocketResponse keyword arguments\n"
        + "".join(f"    {key!r}: {value!r},\n" for key, value in response_options(config).items())
        + "}\n"
        + f"SEND_WINDOW_BITS = {window!r}  # per-message window (fresh compressor); None: "
        "the connection's\n"
        + f"MAX_CONNECTIONS = {sc.max_connections}\n"
    )
    text = (
        "#!/usr/bin/env python3\n"
        + doc
        + '"""A tuned aiohttp WebSocket echo server exported by wslab (needs only aiohttp)."""\n'
        + _IMPORTS
        + "\n"
        + constants
        + _BODY
    )
    return {FILENAME: text}


_IMPORTS = """
from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
from typing import Any

from aiohttp import WSMsgType, web
"""

_BODY = '''

_active = 0


async def echo(request: web.Request) -> web.StreamResponse:
    """Send every message back as it came (text stays text, binary stays binary)."""
    global _active
    if _active >= MAX_CONNECTIONS:
        return web.Response(status=503, text="connection limit reached\\n")
    ws = web.WebSocketResponse(**RESPONSE_OPTIONS)
    await ws.prepare(request)
    # ws.compress is the window agreed (0 when not): never exceed what the client allowed.
    window = None
    if ws.compress and SEND_WINDOW_BITS is not None:
        window = min(int(ws.compress), SEND_WINDOW_BITS)
    _active += 1
    try:
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                await ws.send_str(message.data, compress=window)
            elif message.type == WSMsgType.BINARY:
                await ws.send_bytes(message.data, compress=window)
    finally:
        _active -= 1
    return ws


async def main(host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM."""
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    app = web.Application()
    app.router.add_get("/", echo)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        raise SystemExit(f"error: cannot bind {host}:{port}: {exc.strerror}") from None
    site = web.SockSite(runner, sock)
    await site.start()
    bound = sock.getsockname()
    print(f"listening on ws://{bound[0]}:{bound[1]}", flush=True)
    try:
        await stop
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="tuned aiohttp WebSocket echo (wslab export)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=8080, help="port to bind (0: any free port)")
    args = parser.parse_args()
    asyncio.run(main(args.host, args.port))
'''
