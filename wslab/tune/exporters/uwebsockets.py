"""Renderer for the ``uwebsockets`` target: the nearest uWS compression presets + options.

What lives here: the preset tables, :func:`nearest_compressor` and
:func:`nearest_decompressor`, :func:`uws_settings` and :func:`render_uwebsockets`, which
writes a C++ behaviour snippet (``uws-behavior.hpp``) and the same for uWebSockets.js
(``uws-behavior.js``). What must not live here: anything that runs uWS (it is not
installed here; these files are checked by the tests as text and tables).

uWS has no free window/memLevel knobs: ``CompressOptions`` is a fixed menu. Per
uNetworking/uWebSockets ``src/PerMessageDeflate.h`` (enum ``CompressOptions``; the C API
``capi/libuwebsockets.h`` spells out the same bits), each dedicated compressor preset packs
a zlib (windowBits, memLevel) pair and each dedicated decompressor preset a windowBits; the
preset's name is its approximate memory per socket. ``SHARED_COMPRESSOR`` compresses with
one compressor shared by every socket and reset per message (no sliding window, so no
context takeover and no per-socket compressor memory); ``SHARED_DECOMPRESSOR`` likewise
inflates without a per-socket window (so clients must not keep context). Compression is
``DISABLED`` by default. The deflate level is not configurable (uWS initialises zlib with
its default level).
"""

from __future__ import annotations

from dataclasses import dataclass

from wslab.config import TuningConfig
from wslab.tune.exporters._common import (
    comment_block,
    deflate_plan,
    header_lines,
    limits_section,
    rendered_only,
)

CPP_FILE = "uws-behavior.hpp"
JS_FILE = "uws-behavior.js"


@dataclass(frozen=True)
class UwsPreset:
    """One uWS ``CompressOptions`` value and the zlib parameters it stands for."""

    name: str
    window_bits: int
    mem_level: int | None  # None for decompressors (inflate has no memLevel)


# (name, windowBits, memLevel), smallest first: the table the choice is made from.
COMPRESSORS: tuple[UwsPreset, ...] = (
    UwsPreset("DEDICATED_COMPRESSOR_3KB", 9, 1),
    UwsPreset("DEDICATED_COMPRESSOR_4KB", 9, 2),
    UwsPreset("DEDICATED_COMPRESSOR_8KB", 10, 3),
    UwsPreset("DEDICATED_COMPRESSOR_16KB", 11, 4),
    UwsPreset("DEDICATED_COMPRESSOR_32KB", 12, 5),
    UwsPreset("DEDICATED_COMPRESSOR_64KB", 13, 6),
    UwsPreset("DEDICATED_COMPRESSOR_128KB", 14, 7),
    UwsPreset("DEDICATED_COMPRESSOR_256KB", 15, 8),
)
DECOMPRESSORS: tuple[UwsPreset, ...] = (
    UwsPreset("DEDICATED_DECOMPRESSOR_512B", 9, None),
    UwsPreset("DEDICATED_DECOMPRESSOR_1KB", 10, None),
    UwsPreset("DEDICATED_DECOMPRESSOR_2KB", 11, None),
    UwsPreset("DEDICATED_DECOMPRESSOR_4KB", 12, None),
    UwsPreset("DEDICATED_DECOMPRESSOR_8KB", 13, None),
    UwsPreset("DEDICATED_DECOMPRESSOR_16KB", 14, None),
    UwsPreset("DEDICATED_DECOMPRESSOR_32KB", 15, None),
)
SHARED_COMPRESSOR = "SHARED_COMPRESSOR"
SHARED_DECOMPRESSOR = "SHARED_DECOMPRESSOR"
DISABLED = "DISABLED"
# uWS idle timeouts tick in 4-second steps (uWebSockets.js docs: "Resolution (granularity)
# for timeouts are typically 4 seconds"); 0 disables. We stay at 8 s or more.
IDLE_GRANULARITY_S = 4
MIN_IDLE_TIMEOUT_S = 8


def nearest_compressor(window_bits: int, mem_level: int) -> UwsPreset:
    """The dedicated compressor preset nearest to (window_bits, mem_level).

    The window decides first (it governs the ratio and is what the handshake announces),
    then memLevel; a remaining tie goes to the smaller preset (less memory per socket).

    Args:
        window_bits: zlib window, 9..15.
        mem_level: zlib memLevel, 1..9.

    Returns:
        The preset.
    """
    return min(COMPRESSORS, key=lambda p: (abs(p.window_bits - window_bits),
                                           abs((p.mem_level or 0) - mem_level),
                                           p.window_bits))


def nearest_decompressor(window_bits: int) -> UwsPreset:
    """The dedicated decompressor preset for the clients' window (8 reads as 9)."""
    return min(DECOMPRESSORS, key=lambda p: (abs(p.window_bits - window_bits), p.window_bits))


@dataclass(frozen=True)
class UwsSettings:
    """The uWS behaviour fields this config maps to."""

    compressor: str
    decompressor: str | None
    max_payload_length: int
    idle_timeout_s: int
    max_backpressure: int
    send_pings_automatically: bool

    @property
    def compression_expr(self) -> list[str]:
        """The preset names OR-ed together in the ``compression`` field."""
        return [self.compressor] + ([self.decompressor] if self.decompressor else [])


def idle_timeout(interval_s: float | None, timeout_s: float | None) -> int:
    """uWS ``idleTimeout`` covering one ping interval plus the pong wait, in 4 s steps.

    Returns:
        Seconds, a multiple of 4 and at least 8; 0 (disabled) without a heartbeat.
    """
    if interval_s is None:
        return 0
    wait = interval_s + (timeout_s if timeout_s is not None else interval_s)
    steps = -(-wait // IDLE_GRANULARITY_S)
    return max(MIN_IDLE_TIMEOUT_S, int(steps) * IDLE_GRANULARITY_S)


def uws_settings(config: TuningConfig) -> UwsSettings:
    """Map the config onto uWS behaviour fields."""
    plan = deflate_plan(config)
    sc = config.scaling
    if not plan.enabled:
        compressor, decompressor = DISABLED, None
    else:
        compressor = (SHARED_COMPRESSOR if plan.server_no_context_takeover
                      else nearest_compressor(plan.server_max_window_bits, plan.mem_level).name)
        decompressor = (SHARED_DECOMPRESSOR if plan.client_no_context_takeover
                        else nearest_decompressor(plan.client_max_window_bits).name)
    return UwsSettings(
        compressor=compressor,
        decompressor=decompressor,
        max_payload_length=sc.max_size,
        idle_timeout_s=idle_timeout(sc.heartbeat_interval_s, sc.heartbeat_timeout_s),
        max_backpressure=sc.write_limit,
        send_pings_automatically=sc.heartbeat_interval_s is not None,
    )


def _mapping_table() -> list[str]:
    rows = ["Preset table (windowBits, memLevel) -> name, from uWS PerMessageDeflate.h:"]
    rows += [f"  ({p.window_bits:>2}, {p.mem_level}) -> {p.name}" for p in COMPRESSORS]
    rows += [f"  ({p.window_bits:>2}, -) -> {p.name}" for p in DECOMPRESSORS]
    rows += ["  server_no_context_takeover -> SHARED_COMPRESSOR; "
             "client_no_context_takeover -> SHARED_DECOMPRESSOR; compression off -> DISABLED.",
             "  Nearest = same window first, then nearest memLevel, then the smaller preset."]
    return rows


def _own_limits(config: TuningConfig, st: UwsSettings) -> list[str]:
    plan = deflate_plan(config)
    sc = config.scaling
    own: list[str] = []
    if plan.enabled:
        if plan.server_no_context_takeover:
            own.append("compression: server_no_context_takeover -> SHARED_COMPRESSOR, which "
                       "also drops the configured window and memLevel (no sliding window).")
        else:
            chosen = next(p for p in COMPRESSORS if p.name == st.compressor)
            if (chosen.window_bits, chosen.mem_level) != (plan.server_max_window_bits,
                                                          plan.mem_level):
                own.append(
                    f"compression: no preset has window {plan.server_max_window_bits} with "
                    f"memLevel {plan.mem_level}; nearest: {chosen.name} (window "
                    f"{chosen.window_bits}, memLevel {chosen.mem_level})."
                )
        if plan.zlib_level != 6:
            own.append(f"compression: level {plan.level} cannot be set; nearest: zlib's "
                       "default level 6, which uWS always uses.")
        if plan.threshold_bytes:
            own.append(f"compression: threshold {plan.threshold_bytes} B has no option; "
                       "nearest: pass compress=false to ws.send() for small messages.")
        if config.compression.policy == "adaptive":
            own.append("compression: no adaptive policy; the per-send `compress` flag is "
                       "where an application would decide.")
    own.append(
        f"heartbeat: uWS has one idleTimeout instead of interval + timeout; "
        f"idleTimeout {st.idle_timeout_s} s covers ping interval + pong wait in uWS's 4 s "
        "steps, and sendPingsAutomatically pings before it expires."
        if st.send_pings_automatically else
        "heartbeat: none configured -> idleTimeout 0 (disabled), no automatic pings."
    )
    own.append(f"scaling: max_queue {sc.max_queue} (incoming frames) has no uWS option; "
               f"write_limit {sc.write_limit} B -> maxBackpressure (uWS's per-socket send "
               "buffer limit, 64 KiB by default).")
    own.append(f"scaling: max_connections {sc.max_connections} has no uWS option; refuse "
               "in the upgrade handler if you need a cap.")
    return own


def render_uwebsockets(config: TuningConfig) -> dict[str, str]:
    """Render the C++ and uWebSockets.js behaviour snippets.

    Args:
        config: The tuned configuration.

    Returns:
        ``{"uws-behavior.hpp": text, "uws-behavior.js": text}``.
    """
    st = uws_settings(config)
    plan = deflate_plan(config)
    comments = comment_block(
        [*header_lines(config, "uwebsockets"), rendered_only("uWebSockets")],
        [""],
        _mapping_table(),
        ["", "uWS's own advice (its docs, as gathered in wslab's field notes): the shared "
           "compressor for large JSON, a small dedicated one (4 KB) for small JSON, none for "
           "binary.", ""],
        limits_section(config, plan, _own_limits(config, st)),
        prefix="// ",
    )
    cpp_comp = " | ".join(f"uWS::{name}" for name in st.compression_expr)
    js_comp = " | ".join(f"uWS.{name}" for name in st.compression_expr)
    pings = "true" if st.send_pings_automatically else "false"
    cpp = (
        comments
        + "// Fields of uWS::TemplatedApp::WebSocketBehavior, for app.ws<PerSocketData>(\"/*\", "
        "{...}).\n"
        + "#pragma once\n\n"
        + "#define WSLAB_UWS_BEHAVIOR_FIELDS \\\n"
        + f"    .compression = uWS::CompressOptions({cpp_comp}), \\\n"
        + f"    .maxPayloadLength = {st.max_payload_length}, \\\n"
        + f"    .idleTimeout = {st.idle_timeout_s}, \\\n"
        + f"    .maxBackpressure = {st.max_backpressure}, \\\n"
        + "    .closeOnBackpressureLimit = false, \\\n"
        + "    .resetIdleTimeoutOnSend = false, \\\n"
        + f"    .sendPingsAutomatically = {pings}\n"
    )
    js = (
        comments
        + "// Spread into app.ws('/*', { ...behavior(uWS), open, message, close }) "
        "(uWebSockets.js).\n"
        + "'use strict';\n\n"
        + "module.exports = function behavior(uWS) {\n"
        + "  return {\n"
        + f"    compression: {js_comp},\n"
        + f"    maxPayloadLength: {st.max_payload_length},\n"
        + f"    idleTimeout: {st.idle_timeout_s},\n"
        + f"    maxBackpressure: {st.max_backpressure},\n"
        + f"    sendPingsAutomatically: {pings},\n"
        + "  };\n"
        + "};\n"
    )
    return {CPP_FILE: cpp, JS_FILE: js}
