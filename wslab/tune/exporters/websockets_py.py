"""Renderer for the ``websockets`` target: a standalone, runnable Python server module.

What lives here: :func:`render_websockets`, which writes ``server.py`` (needs only the
``websockets`` package): an echo server with the tuned permessage-deflate factory, message
and buffer limits, heartbeat and a connection cap. The deflate arguments come from the
same :class:`~wslab.codecs.negotiation.ServerDeflateLimits` that wslab negotiates with, so
``server_accept`` predicts the exported server's answer exactly. For ``zstd-stream`` and
``zstd-dict`` it also ships ``zstd_extension.py`` (x-wslab-zstd server-side, the text of
``shipped_zstd_extension.py``; needs ``zstandard`` too) and, given the pre-shared set,
``dictionaries.json``; permessage-deflate stays behind it for every other client. What must
not live here: writing files (``export.py``) or other targets.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from wslab.config import TuningConfig
from wslab.tune.exporters._common import comment_block, deflate_plan, header_lines, limits_section

if TYPE_CHECKING:
    from wslab.codecs.zstd_dict import DictionarySet

FILENAME = "server.py"
ZSTD_MODULE = "zstd_extension.py"
DICTIONARY_FILE = "dictionaries.json"
_SHIPPED = Path(__file__).with_name("shipped_zstd_extension.py")
GC_NOTE_CONNECTIONS = 5000
"""From this connection cap up, the module's notes recommend freezing the GC heap."""


def _zstd_settings(config: TuningConfig, dictionaries: DictionarySet | None,
                   own: list[str]) -> str:
    """The ``ZSTD = {...}`` constant of server.py for a zstd config."""
    comp = config.compression
    stream = comp.algorithm == "zstd-stream"
    with_set = comp.algorithm == "zstd-dict" and dictionaries is not None
    if comp.algorithm == "zstd-dict" and dictionaries is None:
        own.append("compression: zstd-dict was exported without its dictionary set, so "
                   "x-wslab-zstd is offered in mode=message without a dictionary (nearest); "
                   "export with the set to ship dictionaries.json and accept dict offers.")
    if with_set:
        assert dictionaries is not None
        own.append(f"compression: {DICTIONARY_FILE} is the pre-shared dictionary set (id "
                   f"{dictionaries.id}, {len(dictionaries)} dictionaries, "
                   f"{dictionaries.nbytes} bytes held once per process): clients must hold "
                   "the same file and name its id in their offer.")
    if comp.policy == "threshold" and comp.threshold_bytes:
        own.append(f"compression: x-wslab-zstd leaves messages under {comp.threshold_bytes} B "
                   "uncompressed (min_size); the deflate fallback compresses every message.")
    min_size = comp.threshold_bytes if comp.policy == "threshold" else 0
    return (
        "ZSTD = {  # x-wslab-zstd (zstd_extension.py); None: not offered\n"
        f'    "level": {comp.zstd_level},  # zstd level of what this server sends\n'
        f'    "max_window_log": {comp.zstd_window_log},  # largest zstd window, 2^N bytes\n'
        f'    "stream": {stream!r},  # accept mode=stream (one context per connection)\n'
        f'    "message": {not stream and not with_set!r},  # accept per-message frames, '
        "no dictionary\n"
        f'    "dictionaries": {DICTIONARY_FILE if with_set else None!r},  # beside this file\n'
        f'    "min_size": {min_size},  # smaller messages go out uncompressed\n'
        "}\n"
    )


def render_websockets(config: TuningConfig,
                      dictionaries: DictionarySet | None = None) -> dict[str, str]:
    """Render the Python server module (and, for zstd, its extension and dictionaries).

    Args:
        config: The tuned configuration.
        dictionaries: The pre-shared zstd dictionary set, shipped for ``zstd-dict``.

    Returns:
        ``{"server.py": text}``, plus ``zstd_extension.py`` for a zstd algorithm and
        ``dictionaries.json`` for ``zstd-dict`` with ``dictionaries``.
    """
    plan = deflate_plan(config, speaks_zstd=True)
    sc = config.scaling
    own: list[str] = []
    zstd = plan.enabled and config.compression.algorithm in ("zstd-stream", "zstd-dict")
    zstd_constant = _zstd_settings(config, dictionaries, own) if zstd else "ZSTD = None\n"
    if plan.enabled and plan.threshold_bytes and not zstd:
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
        + zstd_constant
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
        + '"""A tuned python-websockets echo server exported by wslab '
        + ('(needs websockets, and zstandard for zstd_extension.py)."""\n' if zstd
           else '(needs only websockets)."""\n')
        + _IMPORTS
        + "\n"
        + constants
        + _BODY
    )
    files = {FILENAME: text}
    if zstd:
        files[ZSTD_MODULE] = _SHIPPED.read_text(encoding="utf-8")
        if config.compression.algorithm == "zstd-dict" and dictionaries is not None:
            files[DICTIONARY_FILE] = dictionaries.to_json() + "\n"
    return files


_IMPORTS = """
from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from http import HTTPStatus
from pathlib import Path

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
    if ZSTD is not None:
        # x-wslab-zstd first, permessage-deflate behind it for every other client; this
        # import needs zstandard and the zstd_extension.py shipped beside this file.
        import zstd_extension

        settings = dict(ZSTD)
        if settings["dictionaries"] is not None:
            path = Path(__file__).with_name(str(settings["dictionaries"]))
            settings["dictionaries"] = zstd_extension.DictionaryFile(path)
        options["extensions"] = zstd_extension.server_extensions(settings, DEFLATE)
    elif DEFLATE is not None:
        options["extensions"] = [ServerPerMessageDeflateFactory(**DEFLATE)]
    return options


async def main(host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM."""
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    try:
        options = server_options()
    except (OSError, ValueError) as exc:  # a missing or damaged dictionaries.json
        raise SystemExit(f"error: {exc}") from None
    async with serve(echo, host, port, **options) as server:
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
