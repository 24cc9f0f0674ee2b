"""Seeded generators of synthetic traffic that looks like real WebSocket applications.

What lives here: the registry of generator kinds, :data:`GENERATOR_KINDS`, and
:func:`generate`, which turns (kind, message count, seed) into a :class:`Trace`. Each kind
lives in its own module with a docstring that says how its shape was modelled; the shared
arrival processes and text pools live in ``_common``. No file I/O happens here: write the
result with :func:`wslab.traces.io.write_trace`.

Determinism: every random choice comes from a ``random.Random`` seeded with
``"<kind>:<seed>"`` (the sensor noise from numpy's frozen legacy ``RandomState`` seeded from
it), so the same kind, count and seed always give the same messages.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator

from wslab.errors import WslabError
from wslab.traces.generators.chat import chat_stream
from wslab.traces.generators.game import game_stream
from wslab.traces.generators.market import market_stream
from wslab.traces.generators.mixed import mixed_stream
from wslab.traces.generators.sensor import sensor_stream
from wslab.traces.generators.telemetry import telemetry_stream
from wslab.traces.model import Message, Trace, TraceMeta

_STREAMS: dict[str, tuple[Callable[[random.Random], Iterator[Message]], str]] = {
    "chat": (chat_stream, "group chat: messages, typing, receipts, presence, unicode text"),
    "game": (game_stream, "multiplayer game: tick-rate position deltas, critical inputs"),
    "market": (market_stream, "market data: bursty trades and order-book depth updates"),
    "telemetry": (telemetry_stream, "analytics beacons: batched events, vitals, errors"),
    "sensor": (sensor_stream, "binary sensor frames: header + noisy int16 samples + CRC"),
    "mixed": (mixed_stream, "chat + market + telemetry + critical orders on one socket"),
}

#: The kinds :func:`generate` knows, in a stable order.
GENERATOR_KINDS: tuple[str, ...] = tuple(_STREAMS)


def iter_generated(kind: str, seed: int = 0) -> Iterator[Message]:
    """The endless message stream of ``kind`` for ``seed`` (take as many as needed).

    Raises:
        WslabError: If ``kind`` is not one of :data:`GENERATOR_KINDS`.
    """
    try:
        stream, _ = _STREAMS[kind]
    except KeyError:
        raise WslabError(f"unknown trace kind {kind!r}; known kinds: "
                         f"{', '.join(GENERATOR_KINDS)}") from None
    return stream(random.Random(f"{kind}:{seed}"))


def generate(kind: str, messages: int, seed: int = 0) -> Trace:
    """Generate a synthetic trace.

    Args:
        kind: One of :data:`GENERATOR_KINDS`.
        messages: How many messages (>= 0).
        seed: Any integer; the same (kind, messages, seed) always gives the same trace, and
            a shorter trace is a prefix of a longer one with the same seed.

    Returns:
        The trace, with ``meta`` naming the kind, describing it and recording the seed.

    Raises:
        WslabError: For an unknown kind or a negative message count.
    """
    if isinstance(messages, bool) or not isinstance(messages, int) or messages < 0:
        raise WslabError(f"message count must be a non-negative integer, got {messages!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise WslabError(f"seed must be an integer, got {seed!r}")
    stream = iter_generated(kind, seed)
    meta = TraceMeta(
        name=kind,
        description=_STREAMS[kind][1],
        source=f"wslab.traces.generators: generate({kind!r}, messages={messages}, seed={seed})",
    )
    return Trace(list(itertools.islice(stream, messages)), meta)


__all__ = ["GENERATOR_KINDS", "generate", "iter_generated"]
