"""Inputs the lab panels share: which trace, how much of it, at what speed.

What lives here: fast mode (``WSLAB_FAST=1``: a small slice of every trace and small
grids, so every notebook runs top to bottom in seconds), :func:`load_trace` (a bundled
trace by name, or any trace file), :func:`speed_up` (the message-rate knob: the same
messages, sent faster or slower), and :func:`deflate_ratio_cell` (one cell of the
window-bits x memLevel heatmap, measured with the real deflate encoder). The panels call
these; the notebooks may too.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from wslab.analysis.bundled import DATA_DIR
from wslab.codecs.deflate import DeflateEncoder
from wslab.traces.io import read_trace
from wslab.traces.model import Trace

FAST_ENV = "WSLAB_FAST"
FAST_MESSAGES = 2_000
"""Messages a panel simulates in fast mode."""
INTERACTIVE_MESSAGES = 6_000
"""Messages a simulation-backed panel replays per slider move by default (None = all)."""
WINDOW_BITS = tuple(range(9, 16))
MEM_LEVELS = tuple(range(1, 10))
FAST_WINDOW_BITS = (9, 12, 15)
FAST_MEM_LEVELS = (1, 5, 9)


def fast_mode() -> bool:
    """True when ``WSLAB_FAST`` is set to something other than ``""``, ``0`` or ``false``."""
    return os.environ.get(FAST_ENV, "").strip().lower() not in ("", "0", "false", "no")


def default_messages() -> int:
    """How many messages of a trace a simulation-backed panel replays per run."""
    return FAST_MESSAGES if fast_mode() else INTERACTIVE_MESSAGES


def bundled_names() -> list[str]:
    """Names of the bundled traces (``chat``, ``game``, ...), sorted."""
    return sorted(p.name.split(".")[0] for p in DATA_DIR.glob("*.jsonl.zst"))


def load_trace(name_or_path: str | Path, *, messages: int | None = None) -> Trace:
    """A bundled trace by name (``"chat"``) or a trace file by path.

    Args:
        name_or_path: Bundled trace name, or a path to a ``.jsonl``/``.jsonl.zst`` file.
        messages: Keep only the first this many messages (``None``: all of them, or the
            fast-mode slice when ``WSLAB_FAST=1``).
    """
    path = Path(name_or_path)
    if not path.exists():
        bundled = DATA_DIR / f"{name_or_path}.jsonl.zst"
        if not bundled.exists():
            known = ", ".join(bundled_names())
            raise FileNotFoundError(f"no trace file {name_or_path!r} and no bundled trace "
                                    f"of that name (bundled: {known})")
        path = bundled
    trace = read_trace(path)
    limit = messages if messages is not None else (FAST_MESSAGES if fast_mode() else None)
    return trace[:limit] if limit is not None else trace


def head(trace: Trace, messages: int | None) -> Trace:
    """The first ``messages`` messages (the whole trace for ``None`` or a larger count)."""
    if messages is None or messages >= len(trace):
        return trace
    return trace[:messages]


def speed_up(trace: Trace, factor: float) -> Trace:
    """The same messages with their send times divided by ``factor``.

    ``factor`` 2 sends every message twice as fast (twice the message rate); 0.5 halves
    the rate. Sizes, order, types and priorities are unchanged, so the result isolates
    the effect of rate on batching. Results are remembered on the trace per factor.
    """
    if factor <= 0:
        raise ValueError(f"rate factor must be positive, got {factor}")
    if factor == 1:
        return trace

    def scaled(t: Trace) -> Trace:
        return Trace([replace(m, t=m.t / factor) for m in t.messages], t.meta)

    return trace.derived(f"lab.speed_up:{factor:.6g}", scaled)


def heatmap_axes() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Window bits and memLevel values of the heatmap grid (a 3 x 3 grid in fast mode)."""
    if fast_mode():
        return FAST_WINDOW_BITS, FAST_MEM_LEVELS
    return WINDOW_BITS, MEM_LEVELS


def deflate_ratio_cell(
    trace: Trace, window_bits: int, mem_level: int, *, level: int = 6,
    context_takeover: bool = True,
) -> float:
    """Byte-weighted permessage-deflate ratio of ``trace`` at one setting.

    One encoder per direction, fed that direction's messages in order, as one connection
    sends them unbatched (with ``context_takeover`` off, each message starts afresh).

    Returns:
        Compressed bytes / original bytes (``nan`` for an empty trace).
    """
    total = 0
    packed = 0
    for direction in ("s2c", "c2s"):
        encode = DeflateEncoder(
            window_bits, mem_level, level, no_context_takeover=not context_takeover
        ).encode
        for m in trace.messages:
            if m.dir == direction:
                total += len(m.payload)
                packed += len(encode(m.payload))
    return packed / total if total else float("nan")
