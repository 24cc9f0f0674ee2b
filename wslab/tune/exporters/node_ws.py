"""Renderer for the ``ws`` target: Node.js ``ws`` server options and a runnable server script.

What lives here: :func:`ws_options` (the ``WebSocketServer`` options as plain data),
:func:`render_ws`, which writes ``ws-options.js`` (the options, commented) and
``server.js`` (``node server.js --port N``: echo, heartbeat by ping/terminate, connection
cap). What must not live here: writing files, other targets.

How ws negotiates (``lib/permessage-deflate.js``, ``acceptAsServer``), which decides what
is written: a numeric ``serverMaxWindowBits``/``clientMaxWindowBits`` is always put in the
answer, and an offer that asks for a *smaller* window than the configured one is declined
rather than lowered; ``serverNoContextTakeover: false`` declines offers that ask for it. So
a 15-bit window (the RFC default) is left out, and a false server flag is left out, which
makes ws answer the offers a wslab client sends exactly as wslab's ``server_accept`` does.
"""

from __future__ import annotations

import json
from typing import Any

from wslab.config import TuningConfig
from wslab.tune.exporters._common import comment_block, deflate_plan, header_lines, limits_section

OPTIONS_FILE = "ws-options.js"
SCRIPT_FILE = "server.js"
# ws's own default (README: "concurrencyLimit: 10, limits zlib concurrency for perf").
CONCURRENCY_LIMIT = 10


def ws_options(config: TuningConfig) -> dict[str, Any]:
    """The ``new WebSocketServer(...)`` options for this config, as JSON-ready data.

    Args:
        config: The tuned configuration.

    Returns:
        ``{"perMessageDeflate": {...} | False, "maxPayload": int}``.
    """
    plan = deflate_plan(config)
    pmd: dict[str, Any] | bool = False
    if plan.enabled:
        deflate: dict[str, Any] = {}
        if plan.server_max_window_bits != 15:
            deflate["serverMaxWindowBits"] = plan.server_max_window_bits
        if plan.client_max_window_bits != 15:
            deflate["clientMaxWindowBits"] = plan.client_max_window_bits
        if plan.server_no_context_takeover:
            deflate["serverNoContextTakeover"] = True
        deflate["clientNoContextTakeover"] = plan.client_no_context_takeover
        deflate["zlibDeflateOptions"] = {"memLevel": plan.mem_level, "level": plan.zlib_level}
        deflate["threshold"] = plan.threshold_bytes
        deflate["concurrencyLimit"] = CONCURRENCY_LIMIT
        pmd = deflate
    return {"perMessageDeflate": pmd, "maxPayload": config.scaling.max_size}


def _own_limits(config: TuningConfig) -> list[str]:
    plan = deflate_plan(config)
    sc = config.scaling
    own: list[str] = []
    if plan.enabled and plan.threshold_bytes and not plan.server_no_context_takeover:
        own.append(
            f"compression: threshold {plan.threshold_bytes} B is written, but since ws 8.2.3 "
            "the threshold only applies when the sender has no context takeover (ws #1950: "
            "with a kept window small messages compress well); with server context takeover "
            "on, as here, ws compresses every message. Nearest: per-message "
            "ws.send(data, {compress: false}) in application code, or turn on "
            "server_no_context_takeover."
        )
    if plan.enabled and config.compression.policy == "adaptive":
        own.append("compression: ws has no adaptive policy of its own; its per-message "
                   "{compress: bool} send option is where an application would decide.")
    if plan.enabled:
        own.append(
            "compression: ws declines (does not lower) offers asking for a smaller window than "
            "the configured one, and answers the configured window otherwise."
        )
    own.append(
        "compression: perMessageDeflate is off by default on a ws server since ws 3.0 (CPU, "
        "memory, zlib fragmentation: ws #1202, #1369, nodejs/node #8871); reported cost "
        "~9-11k msg/s with deflate vs ~78-81k without (ws #756). It is on here because the "
        "config asks for it." if plan.enabled else
        "compression: perMessageDeflate false (also ws's own server default)."
    )
    own.append(
        f"scaling: max_queue {sc.max_queue} and write_limit {sc.write_limit} B have no ws "
        "option (ws buffers sends without bound; check ws.bufferedAmount in application "
        "code). maxPayload = max_size bounds the message after inflation as well."
    )
    own.append(
        f"scaling: max_connections {sc.max_connections} has no ws option; server.js closes "
        "extra sockets with 1013 (try again later) right after the upgrade."
    )
    if sc.heartbeat_interval_s is not None:
        own.append(
            "heartbeat: ws sends no pings by itself; server.js pings every "
            f"{sc.heartbeat_interval_s:g} s and terminates a socket whose pong does not "
            f"arrive within {sc.heartbeat_timeout_s or sc.heartbeat_interval_s:g} s."
        )
    return own


def render_ws(config: TuningConfig) -> dict[str, str]:
    """Render the ws options module and the runnable server script.

    Args:
        config: The tuned configuration.

    Returns:
        ``{"ws-options.js": text, "server.js": text}``.
    """
    plan = deflate_plan(config)
    sc = config.scaling
    options_js = (
        comment_block(header_lines(config, "ws"), [""],
                      limits_section(config, plan, _own_limits(config)), prefix="// ")
        + "// The options object for `new WebSocketServer({...options, port})` from npm `ws`.\n"
        + "'use strict';\n\n"
        + "module.exports = "
        + json.dumps(ws_options(config), indent=2)
        + ";\n"
    )
    interval_ms = None if sc.heartbeat_interval_s is None else round(sc.heartbeat_interval_s * 1000)
    timeout_s = sc.heartbeat_timeout_s or sc.heartbeat_interval_s
    timeout_ms = None if timeout_s is None else round(timeout_s * 1000)
    constants = (
        f"const PING_INTERVAL_MS = {json.dumps(interval_ms)}; // null: no heartbeat\n"
        f"const PONG_TIMEOUT_MS = {json.dumps(timeout_ms)};\n"
        f"const MAX_CONNECTIONS = {sc.max_connections};\n"
    )
    script = (
        "#!/usr/bin/env node\n"
        + comment_block(
            header_lines(config, "ws"),
            [
                "",
                "Run: node server.js --host 127.0.0.1 --port 8765   (--port 0 picks a free "
                "port; the first line on stdout is 'listening on ws://HOST:PORT'). Needs `ws` "
                "from npm and ws-options.js beside this file.",
                "See ws-options.js for what ws cannot express.",
            ],
            prefix="// ",
        )
        + _SCRIPT_HEAD
        + constants
        + _SCRIPT_BODY
    )
    return {OPTIONS_FILE: options_js, SCRIPT_FILE: script}


_SCRIPT_HEAD = """'use strict';

const path = require('path');
const { WebSocketServer } = require('ws');

const OPTIONS = require(path.join(__dirname, 'ws-options.js'));
"""

_SCRIPT_BODY = r"""
function parseArgs(argv) {
  const args = { host: '127.0.0.1', port: 8765 };
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
const wss = new WebSocketServer({ ...OPTIONS, host: args.host, port: args.port });

wss.on('listening', () => {
  const addr = wss.address();
  console.log(`listening on ws://${addr.address}:${addr.port}`);
});

wss.on('connection', (socket) => {
  if (wss.clients.size > MAX_CONNECTIONS) {
    socket.close(1013, 'connection limit reached');
    return;
  }
  socket.pongTimer = null;
  socket.on('pong', () => {
    clearTimeout(socket.pongTimer);
    socket.pongTimer = null;
  });
  socket.on('message', (data, isBinary) => {
    socket.send(data, { binary: isBinary });
  });
  socket.on('close', () => clearTimeout(socket.pongTimer));
  socket.on('error', () => socket.terminate());
});

// Heartbeat: ping every socket each interval; one that has not answered within the
// timeout is terminated (ws has no built-in keepalive on the server).
let heartbeat = null;
if (PING_INTERVAL_MS !== null) {
  heartbeat = setInterval(() => {
    for (const socket of wss.clients) {
      if (socket.pongTimer !== null) continue; // still waiting for the last pong
      socket.pongTimer = setTimeout(() => socket.terminate(), PONG_TIMEOUT_MS);
      socket.ping();
    }
  }, PING_INTERVAL_MS);
}

function shutdown() {
  if (heartbeat !== null) clearInterval(heartbeat);
  for (const socket of wss.clients) socket.terminate();
  wss.close(() => process.exit(0));
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
"""
