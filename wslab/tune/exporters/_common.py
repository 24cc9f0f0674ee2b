"""What every exporter shares: the effective deflate plan and the limits every target has.

What lives here: :func:`deflate_plan` (the permessage-deflate settings a server should run
with, after mapping what no target can express onto the nearest thing it can), the notes
that apply to every target (zstd, adaptive policy, batching), and small text helpers
(comment blocks, durations). What must not live here: anything specific to one target;
each target's own limits live in its renderer module beside this one.
"""

from __future__ import annotations

import itertools
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field

from wslab.codecs.deflate import MIN_ENCODER_WINDOW_BITS
from wslab.codecs.negotiation import ServerDeflateLimits, server_params_from_config
from wslab.config import TuningConfig


@dataclass(frozen=True)
class DeflatePlan:
    """The permessage-deflate settings an exported server runs with.

    Attributes:
        enabled: Whether the server should offer permessage-deflate at all.
        limits: The negotiation limits (``None`` when disabled); the same object wslab's own
            server negotiates with, so a test can predict the response header exactly.
        server_max_window_bits: The server's window, 9..15.
        client_max_window_bits: The window asked of clients, 9..15 (a configured 8 is 9).
        server_no_context_takeover: The server resets its compressor for every message.
        client_no_context_takeover: Clients are asked to reset theirs.
        mem_level: zlib memLevel, 1..9.
        level: zlib level, -1..9 (-1 is zlib's default, 6).
        threshold_bytes: Smallest message worth compressing (0: every message).
        notes: What the config asks for that no target can express, and what was chosen.
    """

    enabled: bool
    limits: ServerDeflateLimits | None
    server_max_window_bits: int
    client_max_window_bits: int
    server_no_context_takeover: bool
    client_no_context_takeover: bool
    mem_level: int
    level: int
    threshold_bytes: int
    notes: list[str] = field(default_factory=list)

    @property
    def zlib_level(self) -> int:
        """The level with zlib's ``-1`` spelled out (6), for targets that want 0..9."""
        return 6 if self.level < 0 else self.level


ZSTD_WHO = (
    "Browsers cannot speak it: their WebSocket API offers permessage-deflate only, so a web "
    "page needs a JS/wasm zstd decoder and an application-level scheme instead, as Discord's "
    "gateway does (compress=zlib-stream or zstd-stream in the gateway URL, decompressed by the "
    "client from plain binary messages: Discord developer docs, Gateway, 'Transport "
    "Compression')."
)


def zstd_note(algorithm: str, speaks_zstd: bool) -> str:
    """What an export does with a zstd algorithm: ships x-wslab-zstd, or falls back."""
    if speaks_zstd:
        return (f"compression: algorithm {algorithm} is offered as x-wslab-zstd, wslab's "
                "private extension (no standard WebSocket extension carries zstd), from "
                "zstd_extension.py; only clients that implement it negotiate it (wslab's own "
                f"client does). {ZSTD_WHO} Every other client gets permessage-deflate with "
                "this config's deflate fields.")
    return (f"compression: algorithm {algorithm} cannot be expressed by this target: no "
            "standard WebSocket extension carries zstd, and wslab's private x-wslab-zstd "
            "ships only with the websockets (Python) export. Fallback: permessage-deflate "
            "with this config's deflate fields (window bits, memLevel, level, context "
            "takeover).")


def deflate_plan(config: TuningConfig, *, speaks_zstd: bool = False) -> DeflatePlan:
    """Map the config's compression section onto plain permessage-deflate.

    Args:
        config: The tuned configuration.
        speaks_zstd: The target ships x-wslab-zstd (the websockets export), so a zstd
            config's note says so instead of naming a fallback.

    Returns:
        The plan, with one note per choice the targets cannot follow literally.
    """
    comp = config.compression
    notes: list[str] = []
    enabled = True
    if comp.algorithm == "none":
        enabled = False
        notes.append("compression: algorithm none -> permessage-deflate is not offered.")
    elif comp.policy == "never":
        enabled = False
        notes.append("compression: policy never -> permessage-deflate is not offered at all "
                     "(negotiating it and never using it would only cost memory).")
    elif comp.algorithm in ("zstd-stream", "zstd-dict"):
        notes.append(zstd_note(comp.algorithm, speaks_zstd))
    if enabled and comp.policy == "adaptive":
        notes.append(
            "compression: policy adaptive (wslab picks per message type) cannot be expressed; "
            "nearest: compress every message (policy always)."
        )
    threshold = comp.threshold_bytes if enabled and comp.policy == "threshold" else 0
    if enabled and comp.client_max_window_bits < MIN_ENCODER_WINDOW_BITS:
        notes.append(
            "compression: client_max_window_bits 8 is asked as 9: zlib-based clients "
            "(browsers, python-websockets, Node) cannot compress with an 8-bit window."
        )
    if config.batching.strategy != "none":
        notes.append(
            f"batching: strategy {config.batching.strategy} "
            f"(interval {config.batching.interval_ms:g} ms, envelope "
            f"{config.batching.envelope}) is done by the application's send path "
            "(wslab SendPipeline), not by the server library: no option here expresses it."
        )
    return DeflatePlan(
        enabled=enabled,
        limits=server_params_from_config(comp) if enabled else None,
        server_max_window_bits=comp.server_max_window_bits,
        client_max_window_bits=max(comp.client_max_window_bits, MIN_ENCODER_WINDOW_BITS),
        server_no_context_takeover=comp.server_no_context_takeover,
        client_no_context_takeover=comp.client_no_context_takeover,
        mem_level=comp.mem_level,
        level=comp.level,
        threshold_bytes=threshold,
        notes=notes,
    )


def comment_block(*sections: Sequence[str], prefix: str, width: int = 96) -> str:
    """Render the lines of ``sections`` as one comment block, wrapping long lines.

    Args:
        *sections: Lists of text lines, one paragraph per item ("" for a blank comment line).
        prefix: The comment marker with its trailing space, e.g. ``"# "`` or ``"// "``.
        width: Wrap column.

    Returns:
        The block, ending with a newline.
    """
    out: list[str] = []
    for line in itertools.chain.from_iterable(sections):
        if not line:
            out.append(prefix.rstrip())
            continue
        indent = " " * (len(line) - len(line.lstrip()))
        wrapped = textwrap.wrap(line.strip(), width=width - len(prefix) - len(indent),
                                break_long_words=False, break_on_hyphens=False)
        first = True
        for piece in wrapped:
            lead = indent if first else indent + "  "
            out.append(f"{prefix}{lead}{piece}")
            first = False
    return "\n".join(out) + "\n"


def limits_section(config: TuningConfig, plan: DeflatePlan, own: list[str]) -> list[str]:
    """The "what this target cannot express" paragraph: the shared notes, then the target's."""
    items = plan.notes + own
    if not items:
        return ["Cannot express: nothing in this config is lost for this target."]
    return ["What this target cannot express, and the nearest setting chosen instead:",
            *(f"  - {item}" for item in items)]


def seconds_text(seconds: float) -> str:
    """A Go-style duration string: ``"20s"`` for whole seconds, else milliseconds."""
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


def ceil_seconds(seconds: float) -> int:
    """Whole seconds, rounded up."""
    return math.ceil(seconds)


def rendered_only(stack: str) -> str:
    """The header line of a target wslab's tests can only render, never start."""
    return (f"Rendered only, not run by wslab's tests: {stack} cannot be installed where "
            "wslab is built and tested, so this file is checked as text and tables, never "
            "started. Try it on a staging server before production.")


def header_lines(config: TuningConfig, target: str) -> list[str]:
    """The opening lines every exported file carries."""
    comp = config.compression
    hb = config.scaling
    return [
        f"Generated by `wslab export --target {target}` from a wslab TuningConfig.",
        f"compression: {comp.algorithm}, policy {comp.policy}, windows "
        f"{comp.server_max_window_bits}/{comp.client_max_window_bits} (server/client), "
        f"memLevel {comp.mem_level}, level {comp.level}, no_context_takeover "
        f"{str(comp.server_no_context_takeover).lower()}/"
        f"{str(comp.client_no_context_takeover).lower()}, threshold {comp.threshold_bytes} B.",
        f"scaling: max_connections {hb.max_connections}, heartbeat "
        f"{hb.heartbeat_interval_s}s/{hb.heartbeat_timeout_s}s (interval/timeout), max_size "
        f"{hb.max_size} B, max_queue {hb.max_queue}, write_limit {hb.write_limit} B, "
        f"workers {hb.workers}.",
        "No secrets: this file holds tuning values only.",
    ]
