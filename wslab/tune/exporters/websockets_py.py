"""Renderer for the ``websockets`` target: a standalone, runnable Python server module.

What lives here: :func:`render_websockets`, which writes ``server.py`` (needs only the
``websockets`` package): an echo server with the tuned permessage-deflate factory, message
and buffer limits, heartbeat and a connection cap. The deflate arguments come from the
same :class:`~wslab.codecs.negotiation.ServerDeflateLimits` that wslab negotiates with, so
``server_accept`` predicts the exported server's answer exactly. What must not live here:
writing files (``export.py``) or other targets.
"""

from __future__ import annotations

from wslab.config import TuningConfig
from wslab.tune.exporters._common import comment_block, deflate_plan, header_lines, limits_section

FILENAME = "server.py"
GC_NOTE_CONNECTIONS = 5000
"""From this connection cap up, the module's notes recommend freezing the GC heap."""


def render_websockets(config: TuningConfig) -> dict[str, str]:
    """Render the Python server module.

    Args:
        config: The tuned configuration.

    Returns:
        ``{"server.py": text}``.
    """
    plan = deflate_plan(config)
    sc = config.scaling
    own: list[str] = []
    if plan.enabled and plan.threshold_bytes:
        own.append(
            f"compression: policy threshold ({plan.threshold_bytes} B): websockets compresses "
            "every message once the extension is agreed and its asyncio API has no per-message "
            "switch; nearest: compress every message."
        )
    own.append(
        f"scaling: max_connections {sc.max_connections} is not a websockets option; this "
        "module answers HTTP 503 to handshakes beyond it (wslab's own server queues them "
        f"for up to {sc.pending_timeout_s:g} s; that admission queue is not reproduced)."
    )
    if sc.max_connections >= GC_NOTE_CONNECTIONS:
        own.append(
            f"scaling: at {sc.max_connections} connections CPython's full garbage "
            "collections walk every connection's objects (about 90 each) and stop the loop "
            "meanwhile: 0.3-0.4 s at 10,000 in wslab's measurement. Calling gc.freeze() once "
            "the connections are up (and gc.unfreeze(); gc.collect() after heavy churn) "
            "keeps them out of those walks; compare with wslab scale --no-gc-freeze.")
    if sc.workers > 1:
        own.append(f"scaling: workers {sc.workers}: start one process per port "
                   "(--port N, N+1, ...) behind the exported nginx config.")
    if sc.broker != "memory":
        own.append(f"scaling: broker {sc.broker} (cross-worker fan-out) is application code, "
                   "not a server option; this echo server has nothing to fan out.")

    doc = comment_block(
        header_lines(config, "websockets"),
        [
            "",
            "Run: python server.py --host 127.0.0.1 --port 8765   (--port 0 picks a free port;",
            "the first line on stdout is 'listening on ws://HOST:PORT').",
            "Facts used (python-websockets docs, topics/compression.rst and "
            "extensions/permessage_deflate.py): compression is on by default with "
            "server/client windows 12 and memLevel 5; max_size bounds the message after "
            "decompression (close 1009 beyond it); max_queue and write_limit bound buffering.",
            "",
        ],
        limits_section(config, plan, own),
        prefix="# ",
    )
    if plan.enabled and plan.limits is not None:
        lim = plan.limits
        deflate = (
            f"DEFLATE = {{\n"
            f"    # None = 15 bits and no parameter unless the client asks (RFC 7692 7.1.2).\n"
            f"    \"server_max_window_bits\": {lim.server_max_window_bits!r},\n"
            f"    \"client_max_window_bits\": {lim.client_max_window_bits!r},\n"
            f"    \"server_no_context_takeover\": {lim.server_no_context_takeover!r},\n"
            f"    \"client_no_context_takeover\": {lim.client_no_context_takeover!r},\n"
            f"    # zlib's compressobj: memLevel sets the hash table memory, level the effort.\n"
            f"    \"compress_settings\": {{\"memLevel\": {plan.mem_level}, "
            f"\"level\": {plan.level}}},\n"
            f"}}\n"
        )
    else:
        deflate = "DEFLATE = None  # permessage-deflate is not offered\n"
    constants = (
        deflate
        + f"MAX_SIZE = {sc.max_size}  # bytes, after decompression\n"
        + f"MAX_QUEUE = {sc.max_queue}  # incoming frames buffered before reading stops\n"
        + f"WRITE_LIMIT = {sc.write_limit}  # bytes: write buffer high-water mark\n"
        + f"PING_INTERVAL = {sc.heartbeat_interval_s!r}  # seconds, None = no pings\n"
        + f"PING_TIMEOUT = {sc.heartbeat_timeout_s!r}  # seconds to wait for the pong\n"
        + f"MAX_CONNECTIONS = {sc.max_connections}\n"
    )
    text = (
        "#!/usr/bin/env python3\n"
        + doc
        + '"""A tuned python-websockets echo server exported by wslab (needs only websockets)."""\n'
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
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection, serve
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.http11 import Request, Response
"""

_BODY = '''

_active = 0


async def echo(ws: ServerConnection) -> None:
    """Send every message back as it came (text stays text, binary stays binary)."""
    global _active
    _active += 1
    try:
        async for message in ws:
            await ws.send(message)
    finally:
        _active -= 1


def admit(ws: ServerConnection, request: Request) -> Response | None:
    """Refuse the handshake with 503 once MAX_CONNECTIONS sockets are open."""
    if _active >= MAX_CONNECTIONS:
        return ws.respond(HTTPStatus.SERVICE_UNAVAILABLE, "connection limit reached\\n")
    return None


def server_options() -> dict[str, object]:
    """The keyword arguments for websockets.asyncio.server.serve."""
    options: dict[str, object] = {
        "max_size": MAX_SIZE,
        "max_queue": MAX_QUEUE,
        "write_limit": WRITE_LIMIT,
        "ping_interval": PING_INTERVAL,
        "ping_timeout": PING_TIMEOUT,
        "process_request": admit,
        # compression=None stops websockets adding its default factory; ours goes in
        # through extensions when deflate is enabled.
        "compression": None,
    }
    if DEFLATE is not None:
        options["extensions"] = [ServerPerMessageDeflateFactory(**DEFLATE)]
    return options


async def main(host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM."""
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with serve(echo, host, port, **server_options()) as server:
        bound = server.sockets[0].getsockname()
        print(f"listening on ws://{bound[0]}:{bound[1]}", flush=True)
        await stop


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="tuned websockets echo server (wslab export)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=8765, help="port to bind (0: any free port)")
    args = parser.parse_args()
    asyncio.run(main(args.host, args.port))
'''
