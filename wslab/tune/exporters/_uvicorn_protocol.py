"""The tuned uvicorn WebSocket protocol, shared by the ``uvicorn`` and ``python-socketio`` exports.

What lives here: :class:`Knob` and :func:`uvicorn_knobs` (every setting of the config, and
where it goes: a uvicorn option, the protocol class, the application, or nowhere),
:func:`knobs_markdown` and :func:`knobs_comment` (that table for a README and for a file
header), :func:`deflate_constant` and :data:`PROTOCOL_SOURCE` (the text of the protocol
class pasted into an exported module). What must not live here: the applications
(FastAPI echo, python-socketio), writing files.

How uvicorn builds its WebSocket (read in ``uvicorn/config.py`` and
``uvicorn/protocols/websockets/websockets_sansio_impl.py``, uvicorn 0.55 with websockets
17, the pair wslab's tests run): ``--ws auto`` picks the websockets sans-I/O protocol when
websockets is installed; ``ws_per_message_deflate`` is a switch, and when on the protocol
always builds ``ServerPerMessageDeflateFactory(server_max_window_bits=12,
client_max_window_bits=12, compress_settings={"memLevel": 5})``, with no option for
windows, context takeover, memLevel or level. ``Config(ws=...)`` (``--ws module:Class``)
accepts a protocol class instead of a name: that is the supported hook. The exported
class subclasses uvicorn's and, after uvicorn's constructor, replaces the websockets
``ServerProtocol`` it keeps in ``.conn`` by one built with the tuned factory (and bounds
the transport's write buffer); it refuses to start on a uvicorn without ``.conn``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from wslab.config import TuningConfig
from wslab.tune.exporters._common import DeflatePlan

Where = Literal["uvicorn option", "protocol class", "engine.io option", "application",
                "cannot express"]
TESTED_WITH = "uvicorn 0.55 and websockets 17"


@dataclass(frozen=True)
class Knob:
    """One setting of the config and where the export puts it."""

    setting: str
    value: str
    where: Where
    how: str


def uvicorn_knobs(config: TuningConfig, plan: DeflatePlan, *,
                  engineio: bool = False) -> list[Knob]:
    """Where each setting goes on uvicorn (``engineio``: python-socketio's ASGI app on it).

    Args:
        config: The tuned configuration.
        plan: Its deflate plan.
        engineio: Heartbeat and message limit are engine.io's (python-socketio) as well.

    Returns:
        One :class:`Knob` per setting, in the order a reader checks them.
    """
    sc = config.scaling
    on = plan.enabled
    knobs = [Knob("permessage-deflate", "on" if on else "off", "uvicorn option",
                  f"ws_per_message_deflate={on} (--ws-per-message-deflate {str(on).lower()})")]
    if on:
        knobs += [
            Knob("server_max_window_bits", str(plan.server_max_window_bits), "protocol class",
                 "DEFLATE['server_max_window_bits'] (None: 15, the RFC 7692 default)"),
            Knob("client_max_window_bits", str(plan.client_max_window_bits), "protocol class",
                 "DEFLATE['client_max_window_bits']"),
            Knob("server_no_context_takeover", str(plan.server_no_context_takeover).lower(),
                 "protocol class", "DEFLATE['server_no_context_takeover']"),
            Knob("client_no_context_takeover", str(plan.client_no_context_takeover).lower(),
                 "protocol class", "DEFLATE['client_no_context_takeover']"),
            Knob("mem_level", str(plan.mem_level), "protocol class",
                 "DEFLATE['compress_settings']['memLevel']"),
            Knob("level", str(plan.level), "protocol class",
                 "DEFLATE['compress_settings']['level']"),
        ]
        if plan.threshold_bytes:
            knobs.append(Knob("threshold_bytes", str(plan.threshold_bytes), "cannot express",
                              "websockets compresses every message once the extension is "
                              "agreed; nearest: compress every message"))
    if engineio:
        knobs.append(Knob("max_size", str(sc.max_size), "uvicorn option",
                          "ws_max_size (close 1009 beyond it, after decompression); also "
                          "engine.io's max_http_buffer_size"))
    else:
        knobs.append(Knob("max_size", str(sc.max_size), "uvicorn option",
                          "ws_max_size (close 1009 beyond it, after decompression)"))
    knobs += [
        Knob("max_queue", str(sc.max_queue), "uvicorn option",
             "ws_max_queue: read only by the legacy --ws websockets protocol; the sans-I/O "
             "one used here stops reading after each message until the app takes it"),
        Knob("write_limit", str(sc.write_limit), "protocol class",
             "WRITE_LIMIT: transport.set_write_buffer_limits(high=...); sends wait above it"),
    ]
    if engineio:
        knobs.append(Knob("heartbeat", _heartbeat_text(config), "engine.io option",
                          "ping_interval / ping_timeout of socketio.AsyncServer (engine.io "
                          "pings as packets); uvicorn's ws_ping_interval is None"))
    else:
        knobs.append(Knob("heartbeat", _heartbeat_text(config), "uvicorn option",
                          "ws_ping_interval / ws_ping_timeout (None: no pings)"))
    knobs.append(Knob("max_connections", str(sc.max_connections), "uvicorn option",
                      "limit_concurrency: HTTP 503 once that many connections or tasks are "
                      "open (it counts plain HTTP requests too)"))
    if sc.workers > 1:
        knobs.append(Knob("workers", str(sc.workers), "uvicorn option",
                          "workers (command line: uvicorn server:app --workers N shares one "
                          "port; server.py itself runs one process)"))
    if config.batching.strategy != "none":
        knobs.append(Knob("batching", config.batching.strategy, "application",
                          "the application's send path (wslab SendPipeline)"))
    if on and config.compression.policy == "adaptive":
        knobs.append(Knob("policy", "adaptive", "cannot express",
                          "nearest: compress every message"))
    return knobs


def _heartbeat_text(config: TuningConfig) -> str:
    sc = config.scaling
    if sc.heartbeat_interval_s is None:
        return "off"
    return f"{sc.heartbeat_interval_s:g} s / {sc.heartbeat_timeout_s or 0:g} s"


def knobs_markdown(knobs: list[Knob]) -> str:
    """The knob table as Markdown, one row per setting."""
    rows = ["| setting | value | where | how |", "|---|---|---|---|"]
    rows += [f"| {k.setting} | {k.value} | {k.where} | {k.how} |" for k in knobs]
    return "\n".join(rows) + "\n"


def knobs_comment(knobs: list[Knob]) -> list[str]:
    """The knob table as header lines grouped by where each setting goes."""
    lines: list[str] = []
    for where in ("uvicorn option", "engine.io option", "protocol class", "application",
                  "cannot express"):
        names = [f"{k.setting}={k.value}" for k in knobs if k.where == where]
        if names:
            lines.append(f"{where}: {', '.join(names)}.")
    return lines


def deflate_constant(plan: DeflatePlan) -> str:
    """The ``DEFLATE = {...}`` constant: ServerPerMessageDeflateFactory's arguments, or None."""
    if not plan.enabled or plan.limits is None:
        return "DEFLATE = None  # permessage-deflate is not offered\n"
    lim = plan.limits
    return (
        "DEFLATE = {  # websockets' ServerPerMessageDeflateFactory arguments\n"
        "    # None = 15 bits and no parameter unless the client asks (RFC 7692 7.1.2).\n"
        f'    "server_max_window_bits": {lim.server_max_window_bits!r},\n'
        f'    "client_max_window_bits": {lim.client_max_window_bits!r},\n'
        f'    "server_no_context_takeover": {lim.server_no_context_takeover!r},\n'
        f'    "client_no_context_takeover": {lim.client_no_context_takeover!r},\n'
        f'    "compress_settings": {{"memLevel": {plan.mem_level}, "level": {plan.level}}},\n'
        "}\n"
    )


PROTOCOL_IMPORTS = (
    "from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol\n"
) + """from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.server import ServerProtocol
"""

PROTOCOL_SOURCE = '''

class TunedWebSocketsProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets protocol with the tuned permessage-deflate and write buffer.

    uvicorn's ws_per_message_deflate only switches compression on (windows 12/12, memLevel
    5, fixed); this class keeps that switch and swaps in a websockets ServerProtocol built
    from DEFLATE. Pass it as uvicorn.Config(ws=TunedWebSocketsProtocol) or on the command
    line as --ws server:TunedWebSocketsProtocol.
    """

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        previous = getattr(self, "conn", None)
        if not isinstance(previous, ServerProtocol):
            raise RuntimeError("this uvicorn keeps no websockets ServerProtocol in .conn; "
                               "TunedWebSocketsProtocol cannot apply DEFLATE")
        use_deflate = DEFLATE is not None and config.ws_per_message_deflate
        self.conn = ServerProtocol(
            extensions=[ServerPerMessageDeflateFactory(**DEFLATE)] if use_deflate else [],
            max_size=config.ws_max_size,
            logger=previous.logger,
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if isinstance(transport, asyncio.WriteTransport):
            transport.set_write_buffer_limits(high=WRITE_LIMIT)
'''
