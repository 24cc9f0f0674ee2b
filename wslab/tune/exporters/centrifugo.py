"""Renderer for the ``centrifugo`` target: the matching Centrifugo v6 configuration keys.

What lives here: :func:`centrifugo_config` (the keys as data) and
:func:`render_centrifugo`, which writes ``centrifugo.json`` (plain JSON, loadable with
``centrifugo --config centrifugo.json``) and ``centrifugo.yaml`` (the same keys, with the
comments JSON cannot carry; Centrifugo reads YAML too). What must not live here: secrets
(no token keys, no API keys: the user adds those), other targets.

Key names follow Centrifugo v6's nested layout (``internal/configtypes/types.go`` in
centrifugal/centrifugo, module ``github.com/centrifugal/centrifugo/v6``; docs at
centrifugal.dev/docs/transports/websocket): ``websocket.compression`` (off by default),
``websocket.compression_level`` (1 by default), ``websocket.compression_min_size``
(0 by default), ``websocket.message_size_limit`` (65536 by default),
``websocket.decompressed_message_size_limit`` (in the newest v6 source, whose comments
date changes to v6.5.1 and later; a release without it reports an unknown key and goes on),
and under ``client`` the inlined ping/pong pair ``ping_interval`` (25s) and
``pong_timeout`` (8s, which must be less than the interval), ``connection_limit`` and
``queue_max_size`` (1 MiB by default). v5 and older used flat ``websocket_compression``
style names; this renderer does not emit those.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from wslab.config import TuningConfig
from wslab.tune.exporters._common import (
    comment_block,
    deflate_plan,
    header_lines,
    limits_section,
    rendered_only,
    seconds_text,
)

JSON_FILE = "centrifugo.json"
YAML_FILE = "centrifugo.yaml"


def pong_timeout(interval_s: float, timeout_s: float | None) -> float:
    """Centrifugo's pong timeout: the configured one, kept strictly below the interval.

    Centrifugo requires ``pong_timeout < ping_interval``; when the config's timeout is not
    below, the nearest allowed value is one second under the interval (half the interval
    for intervals of two seconds or less).
    """
    wanted = interval_s if timeout_s is None else timeout_s
    if wanted < interval_s:
        return wanted
    return interval_s - 1 if interval_s > 2 else interval_s / 2


def centrifugo_config(config: TuningConfig) -> dict[str, Any]:
    """The Centrifugo v6 keys this config maps to.

    Args:
        config: The tuned configuration.

    Returns:
        ``{"websocket": {...}, "client": {...}}``.
    """
    plan = deflate_plan(config)
    sc = config.scaling
    websocket: dict[str, Any] = {"compression": plan.enabled}
    if plan.enabled:
        websocket["compression_level"] = max(1, plan.zlib_level)
        websocket["compression_min_size"] = plan.threshold_bytes
    websocket["message_size_limit"] = sc.max_size
    if plan.enabled:
        websocket["decompressed_message_size_limit"] = sc.max_size
    client: dict[str, Any] = {}
    if sc.heartbeat_interval_s is None:
        client["ping_interval"] = "-1s"
        client["pong_timeout"] = "-1s"
    else:
        client["ping_interval"] = seconds_text(sc.heartbeat_interval_s)
        client["pong_timeout"] = seconds_text(
            pong_timeout(sc.heartbeat_interval_s, sc.heartbeat_timeout_s))
    client["connection_limit"] = sc.max_connections
    client["queue_max_size"] = sc.write_limit
    return {"websocket": websocket, "client": client}


def _own_limits(config: TuningConfig) -> list[str]:
    plan = deflate_plan(config)
    sc = config.scaling
    own: list[str] = []
    if plan.enabled:
        own.append(
            f"compression: windows {config.compression.server_max_window_bits}/"
            f"{plan.client_max_window_bits} and memLevel {plan.mem_level} cannot be set: "
            "Centrifugo's WebSocket library (gorilla/websocket lineage) compresses with a "
            "fixed 15-bit window and no context takeover; nearest: its defaults."
        )
        if not (plan.server_no_context_takeover and plan.client_no_context_takeover):
            own.append("compression: context takeover cannot be kept: Centrifugo always "
                       "compresses every message from an empty window.")
        if plan.level <= 0:
            own.append(f"compression: level {plan.level} -> compression_level "
                       f"{max(1, plan.zlib_level)} (Centrifugo takes 1..9).")
        own.append("compression: Centrifugo compresses a broadcast once for all subscribers "
                   "(prepared messages), which wslab's per-connection model does not credit.")
    if sc.heartbeat_interval_s is not None:
        pt = pong_timeout(sc.heartbeat_interval_s, sc.heartbeat_timeout_s)
        wanted = sc.heartbeat_timeout_s
        if wanted is None or wanted != pt:
            own.append(
                f"heartbeat: pong timeout {wanted} s is not below the {sc.heartbeat_interval_s:g} "
                f"s interval, which Centrifugo requires; nearest: {seconds_text(pt)}. Pings are "
                "Centrifugo protocol messages, not WebSocket ping frames."
            )
    else:
        own.append("heartbeat: none configured -> ping_interval/pong_timeout -1s (disabled).")
    own.append(
        f"scaling: write_limit {sc.write_limit} B -> client.queue_max_size (bytes queued per "
        f"client before Centrifugo disconnects it as slow); max_queue {sc.max_queue} frames "
        "has no equivalent."
    )
    own.append(
        f"scaling: max_size {sc.max_size} B -> websocket.message_size_limit (on the wire) and "
        "decompressed_message_size_limit (after inflation)."
    )
    if config.batching.strategy != "none":
        own.append(
            "batching: Centrifugo merges queued messages into one frame by itself "
            "(best effort) and can hold writes briefly (write delay); check the key names "
            "for your release, they are not written here."
        )
    return own


def render_centrifugo(config: TuningConfig) -> dict[str, str]:
    """Render ``centrifugo.json`` and the commented ``centrifugo.yaml`` with the same keys.

    Args:
        config: The tuned configuration.

    Returns:
        ``{"centrifugo.json": text, "centrifugo.yaml": text}``.
    """
    data = centrifugo_config(config)
    plan = deflate_plan(config)
    comments = comment_block(
        [*header_lines(config, "centrifugo"), rendered_only("Centrifugo")],
        [
            "",
            "Centrifugo v6 nested keys, checked against the newest v6 source (v6.5.1 or "
            "later: centrifugal/centrifugo internal/configtypes/types.go) and "
            "centrifugal.dev/docs/transports/websocket. centrifugo.json holds the same keys "
            "without comments (JSON has none). Merge them into your config; token and API "
            "keys are yours to add.",
            "",
        ],
        limits_section(config, plan, _own_limits(config)),
        prefix="# ",
    )
    return {
        JSON_FILE: json.dumps(data, indent=2) + "\n",
        YAML_FILE: comments + yaml.safe_dump(data, sort_keys=False),
    }
