"""``wslab probe --trace``: the user's own messages through an echo endpoint, and the simulator
beside it.

What lives here: :func:`replay` (the trace's client-to-server messages sent one at a time
through an open probe connection, compressed as the agreed client side would, each echo
timed and its wire size counted) and :func:`predict` (what :func:`wslab.sim.simulate`
gives when a server with the negotiated parameters sends those same messages). Both
report the ratio as the summary record defines it: data-frame payload bytes on the wire
(compressed or not) over application bytes.

Assumptions, stated: the echo comes back as one message per message sent; the server's
zlib level and memLevel cannot be seen from outside, so the prediction uses zlib's
defaults (level 6, memLevel 8) unless told otherwise; latency is a round trip on the
probe's own link (loopback unless ``--allow-remote``), one message in flight.
What must not live here: the connection itself (``probe_behaviour.py``), advice
(``wslab.tune.probe_advice``).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from wslab.config import TuningConfig
from wslab.harness.probe_conn import ProbeConn
from wslab.harness.probe_wire import ProbeStepError
from wslab.traces.model import Message, Trace
from wslab.wire import Opcode

ASSUMED_ZLIB = {"level": 6, "mem_level": 8}


def client_messages(trace: Trace, limit: int) -> list[Message]:
    """The first ``limit`` client-to-server messages (all of the trace's messages when it
    has none in that direction: a server-only trace still says what the server's data
    compresses to)."""
    c2s = [m for m in trace.messages if m.dir == "c2s"]
    return (c2s or list(trace.messages))[:limit]


async def replay(conn: ProbeConn, messages: list[Message], timeout: float) -> dict[str, Any]:
    """Send each message, wait for its echo; latency percentiles and the echo's ratio."""
    encoder = None
    if conn.deflate is not None and conn.deflate.client_max_window_bits >= 9:
        encoder = conn.deflate.encoder_for("client")
    latencies: list[float] = []
    payload = wire = compressed_frames = mismatched = 0
    note = ""
    for m in messages:
        started = time.monotonic()
        try:
            data = encoder.encode(m.payload) if encoder is not None else m.payload
            await conn.raw.send(Opcode.TEXT if m.is_text else Opcode.BINARY, data,
                                rsv1=encoder is not None)
            got = await conn.next_message(timeout)
        except ProbeStepError as exc:
            note = f"stopped after {len(latencies)} messages: {exc}"
            break
        latencies.append(1000 * (got.at - started))
        payload += len(m.payload)
        wire += got.wire_payload
        compressed_frames += got.compressed
        mismatched += got.payload != m.payload
    if not latencies:
        return {"observed": False, "messages": 0, "note": note or "no message to replay"}
    pct = np.percentile(np.array(latencies), [50, 95, 99])
    return {"observed": True, "messages": len(latencies), "payload_bytes": payload,
            "wire_payload_bytes": wire, "compression_ratio": wire / payload if payload else None,
            "frames_compressed": compressed_frames, "not_echoed": mismatched,
            "latency_ms": {"p50": float(pct[0]), "p95": float(pct[1]), "p99": float(pct[2])},
            "note": note or f"{len(latencies)} messages echoed"}


def probe_config(agreed: dict[str, Any] | None, compressed_from: int | None,
                 *, level: int = ASSUMED_ZLIB["level"],
                 mem_level: int = ASSUMED_ZLIB["mem_level"]) -> TuningConfig:
    """A config whose server side is what the probe found (no batching)."""
    if agreed is None:
        return TuningConfig().updated({"compression.algorithm": "none"})
    fields: dict[str, Any] = {
        "compression.algorithm": "permessage-deflate",
        "compression.server_max_window_bits": max(9, agreed["server_max_window_bits"]),
        "compression.client_max_window_bits": max(9, agreed["client_max_window_bits"]),
        "compression.server_no_context_takeover": agreed["server_no_context_takeover"],
        "compression.client_no_context_takeover": agreed["client_no_context_takeover"],
        "compression.level": level, "compression.mem_level": mem_level,
        "compression.policy": "always", "compression.threshold_bytes": 0,
        "batching.strategy": "none",
    }
    if compressed_from is not None and compressed_from > 1:
        fields.update({"compression.policy": "threshold",
                       "compression.threshold_bytes": compressed_from})
    return TuningConfig().updated(fields)


def predict(messages: list[Message], config: TuningConfig) -> dict[str, Any]:
    """What the simulator gives for these messages sent by the server under ``config``."""
    from wslab.sim import simulate

    if not messages:
        return {"compression_ratio": None}
    base = messages[0].t
    s2c = Trace([dataclasses.replace(m, dir="s2c", t=m.t - base, conn=None)
                 for m in messages])
    summary = simulate(s2c, config, link="loopback").summary
    side = summary.get("by_dir", {}).get("s2c", summary)
    return {"compression_ratio": side.get("compression_ratio"),
            "payload_bytes": side.get("payload_bytes"),
            "compressed_bytes": side.get("compressed_bytes"),
            "assumed": {"level": config.compression.level,
                        "mem_level": config.compression.mem_level}}
