"""Renderer for the ``socketio`` target: Node.js ``socket.io`` server options and script.

What lives here: :func:`heartbeat_ms` (engine.io's ping pair for a config),
:func:`socketio_options` (the ``new Server(httpServer, {...})`` options as data) and
:func:`render_socketio`, which writes ``socketio-options.js`` and ``server.js`` (``node
server.js --port N``: echoes every event back to its sender). What must not live here:
writing files, other targets.

How socket.io 4.8 (engine.io 6.6) carries the settings, read in
``engine.io/build/server.js``: ``perMessageDeflate`` is handed to the ``ws``
WebSocketServer it builds, merged over engine.io's own ``{threshold: 1024}`` (so the
threshold is always written here), and off unless given; ``maxHttpBufferSize`` becomes
ws's ``maxPayload`` (close 1009 beyond it on the websocket, on the whole engine.io packet)
and bounds HTTP polling bodies; ``pingInterval`` / ``pingTimeout`` are engine.io's own
heartbeat (a "2" packet from the server, "3" back), announced in the open packet; there
is no WebSocket-level ping. The deflate options are those of the ``ws`` export
(:func:`~wslab.tune.exporters.node_ws.ws_options`), which negotiate exactly as wslab does.
"""

from __future__ import annotations

import json
from typing import Any

from wslab.config import TuningConfig
from wslab.tune.exporters._common import comment_block, deflate_plan, header_lines, limits_section
from wslab.tune.exporters.node_ws import ws_options

OPTIONS_FILE = "socketio-options.js"
SCRIPT_FILE = "server.js"
ENGINEIO_DEFAULT_PING_MS = (25000, 20000)  # engine.io's pingInterval / pingTimeout


def heartbeat_ms(config: TuningConfig) -> tuple[int, int]:
    """engine.io's (pingInterval, pingTimeout) in ms; its defaults when pings are off."""
    sc = config.scaling
    if sc.heartbeat_interval_s is None:
        return ENGINEIO_DEFAULT_PING_MS
    timeout = sc.heartbeat_timeout_s or sc.heartbeat_interval_s
    return round(sc.heartbeat_interval_s * 1000), round(timeout * 1000)


def socketio_options(config: TuningConfig) -> dict[str, Any]:
    """The socket.io ``Server`` options for this config, as JSON-ready data.

    Returns:
        ``transports`` (websocket only), ``perMessageDeflate`` (ws's options or false),
        ``maxHttpBufferSize``, ``pingInterval``, ``pingTimeout``.
    """
    ws = ws_options(config)
    interval, timeout = heartbeat_ms(config)
    return {
        "transports": ["websocket"],
        "perMessageDeflate": ws["perMessageDeflate"],
        "maxHttpBufferSize": config.scaling.max_size,
        "pingInterval": interval,
        "pingTimeout": timeout,
    }


def own_limits(config: TuningConfig, *, python: bool = False) -> list[str]:
    """What Socket.IO (Node, or python-socketio with ``python``) cannot express."""
    sc = config.scaling
    plan = deflate_plan(config)
    name = "python-socketio" if python else "socket.io"
    own = [
        "transports: websocket only, because what wslab tuned is WebSocket frames; clients "
        "must connect with transports: ['websocket'] (the client's default starts with HTTP "
        "long-polling, whose bodies are compressed by httpCompression, not tuned here). Add "
        "'polling' back to keep that fallback.",
        f"framing: every message travels as an engine.io/socket.io packet ('42[\"event\","
        f"...]'), a few bytes more than the bare payload, and {name} applies max_size to "
        "the whole packet.",
    ]
    if sc.heartbeat_interval_s is None:
        own.append(f"heartbeat: off cannot be expressed: engine.io always pings; nearest: its "
                   f"defaults, {ENGINEIO_DEFAULT_PING_MS[0] // 1000} s / "
                   f"{ENGINEIO_DEFAULT_PING_MS[1] // 1000} s.")
    else:
        own.append("heartbeat: engine.io's ping packets ('2', answered '3') replace WebSocket "
                   "ping frames; a client that misses pingInterval + pingTimeout is dropped.")
    if plan.enabled and config.compression.policy == "adaptive":
        own.append("compression: per-message choice is socket.compress(false).emit(...) in "
                   "application code; no adaptive policy of its own.")
    own.append(f"scaling: max_queue {sc.max_queue} and write_limit {sc.write_limit} B have no "
               f"{name} option (it buffers packets per socket without bound).")
    own.append(f"scaling: max_connections {sc.max_connections} has no {name} option; "
               "server.js refuses handshakes beyond it through allowRequest (HTTP 403)."
               if not python else
               f"scaling: max_connections {sc.max_connections}: uvicorn's limit_concurrency "
               "answers HTTP 503 beyond it.")
    if sc.workers > 1:
        own.append(f"scaling: workers {sc.workers} need sticky sessions only with polling, and "
                   "an adapter (e.g. @socket.io/redis-adapter) to broadcast across them.")
    return own


def _node_limits(config: TuningConfig) -> list[str]:
    plan = deflate_plan(config)
    own = own_limits(config)
    if plan.enabled and plan.threshold_bytes and not plan.server_no_context_takeover:
        own.append(f"compression: threshold {plan.threshold_bytes} B is written, but ws (under "
                   "engine.io) applies it only without server context takeover (ws #1950).")
    if plan.enabled:
        own.append("compression: ws declines (does not lower) offers asking for a smaller "
                   "window than the configured one.")
    return own


def render_socketio(config: TuningConfig) -> dict[str, str]:
    """Render the socket.io options module and the runnable server script.

    Returns:
        ``{"socketio-options.js": text, "server.js": text}``.
    """
    plan = deflate_plan(config)
    options_js = (
        comment_block(header_lines(config, "socketio"), [""],
                      limits_section(config, plan, _node_limits(config)), prefix="// ")
        + "// The options object for `new Server(httpServer, {...options})` from npm "
        "`socket.io` 4.8.\n'use strict';\n\nmodule.exports = "
        + json.dumps(socketio_options(config), indent=2)
        + ";\n"
    )
    script = (
        "#!/usr/bin/env node\n"
        + comment_block(
            header_lines(config, "socketio"),
            [
                "",
                "Run: node server.js --host 127.0.0.1 --port 3000   (--port 0 picks a free "
                "port; the first line on stdout is 'listening on ws://HOST:PORT'). Needs "
                "`socket.io` 4.8 from npm and socketio-options.js beside this file; proven by "
                "wslab's tests with socket.io 4.8.3.",
                "Clients: io(url, { transports: ['websocket'] }). See socketio-options.js "
                "for what socket.io cannot express.",
            ],
            prefix="// ",
        )
        + _SCRIPT_HEAD
        + f"const MAX_CONNECTIONS = {config.scaling.max_connections};\n"
        + _SCRIPT_BODY
    )
    return {OPTIONS_FILE: options_js, SCRIPT_FILE: script}


_SCRIPT_HEAD = """'use strict';

const http = require('http');
const path = require('path');
const { Server } = require('socket.io');

const OPTIONS = require(path.join(__dirname, 'socketio-options.js'));
"""

_SCRIPT_BODY = r"""
function parseArgs(argv) {
  const args = { host: '127.0.0.1', port: 3000 };
  for (let i = 0; i < argv.length; i += 1) {
    if (argv[i] === '--host') args.host = argv[++i];
    else if (argv[i] === '--port') args.port = Number(argv[++i]);
    else {
      console.error(`unknown argument ${argv[i]}; usage: node server.js [--host H] [--port N]`);
      process.exit(2);
    }
  }
  return args;
}

const args = parseArgs(process.argv.slice(2));
const httpServer = http.createServer();
const io = new Server(httpServer, {
  ...OPTIONS,
  // Refuse handshakes beyond the connection cap (socket.io has no option for it).
  allowRequest: (req, callback) => callback(null, io.engine.clientsCount < MAX_CONNECTIONS),
});

io.on('connection', (socket) => {
  // Echo: every event goes back to its sender with the same arguments.
  socket.onAny((event, ...data) => socket.emit(event, ...data));
});

httpServer.listen(args.port, args.host, () => {
  const addr = httpServer.address();
  console.log(`listening on ws://${addr.address}:${addr.port}`);
});

function shutdown() {
  io.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
"""
