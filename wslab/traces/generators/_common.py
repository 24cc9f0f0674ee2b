"""Shared machinery for the synthetic traffic generators.

What lives here: arrival processes (Poisson, two-state bursty, periodic with jitter), the
timeline that merges root events and their follow-ups into one time-ordered message stream,
compact deterministic JSON encoding, and pools of words and emoji for human-looking text.

What must not live here: anything specific to one kind of traffic (that is in the kind's
own module) or any file I/O. Every random choice goes through a ``random.Random`` passed in,
so a seed fully determines the output.
"""

from __future__ import annotations

import heapq
import json
import random
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from wslab.traces.model import Direction, Message, Priority

#: A message before it is stamped: (time, direction, type, priority, payload, is_text).
Event = tuple[float, Direction, str, Priority, bytes, bool]

#: Wall-clock origin used for timestamps inside payloads (2024-01-01T00:00:00Z).
EPOCH_MS = 1_704_067_200_000


def dumps(obj: Any) -> bytes:
    """Compact, key-order-preserving JSON as UTF-8 bytes (non-ASCII kept as is)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def text(t: float, d: Direction, kind: str, prio: Priority, obj: Any) -> Event:
    """A text event whose payload is ``obj`` as compact JSON."""
    return (t, d, kind, prio, dumps(obj), True)


def poisson(rng: random.Random, rate: float, start: float = 0.0) -> Iterator[float]:
    """Arrival times of a Poisson process with ``rate`` events per second."""
    t = start
    expo = rng.expovariate
    while True:
        t += expo(rate)
        yield t


def bursty(
    rng: random.Random,
    calm_rate: float,
    burst_rate: float,
    calm_s: float,
    burst_s: float,
    start: float = 0.0,
) -> Iterator[float]:
    """Arrival times of a two-state Markov-modulated Poisson process.

    The process alternates between a calm state and a burst state whose lengths are
    exponential with means ``calm_s`` and ``burst_s``; within each state arrivals are
    Poisson at that state's rate. This is the simplest model that gives the clustered
    arrivals (conversations, market moves, user sessions) a plain Poisson process lacks.
    """
    t = start
    bursting = False
    state_end = t + rng.expovariate(1.0 / calm_s)
    while True:
        rate = burst_rate if bursting else calm_rate
        nxt = t + rng.expovariate(rate)
        if nxt < state_end:
            t = nxt
            yield t
        else:  # memoryless: switch state and draw again from the switch time
            t = state_end
            bursting = not bursting
            state_end = t + rng.expovariate(1.0 / (burst_s if bursting else calm_s))


def periodic(
    rng: random.Random, period: float, jitter: float = 0.0, start: float = 0.0
) -> Iterator[float]:
    """Times ``start + k * period`` (k = 1, 2, ...), each late by up to ``jitter`` seconds.

    The jitter is kept below half a period so the times never go backwards.
    """
    jitter = min(jitter, period / 2)
    k = 0
    while True:
        k += 1
        yield start + k * period + (rng.random() * jitter if jitter else 0.0)


Expand = Callable[[float], Iterable[Event]]


def timeline(sources: Iterable[tuple[Iterator[float], Expand]]) -> Iterator[Message]:
    """Merge root processes and their follow-up events into time-ordered messages.

    Each source is an iterator of root times and a function that turns a root time into
    events at or after it (a chat message and the typing indicator before it must then be
    generated with the indicator as the root). Events wait in a heap until no earlier root
    can come; ties keep generation order, so the output is deterministic.

    Yields:
        Messages with ``t`` rounded to the microsecond and non-decreasing.
    """
    def tagged(
        times: Iterator[float], i: int, expand: Expand
    ) -> Iterator[tuple[float, int, Expand]]:
        for t in times:
            yield t, i, expand

    roots = heapq.merge(
        *(tagged(times, i, expand) for i, (times, expand) in enumerate(sources)),
        key=lambda item: (item[0], item[1]),
    )
    pending: list[tuple[float, int, Event]] = []
    seq = 0
    last = 0.0
    for root_t, _, expand in roots:
        while pending and pending[0][0] <= root_t:
            ev = heapq.heappop(pending)[2]
            last = max(last, round(ev[0], 6))
            yield Message(last, ev[1], ev[2], ev[3], ev[4], ev[5])
        for ev in expand(root_t):
            if ev[0] < root_t:
                raise ValueError("a follow-up event must not precede its root")
            heapq.heappush(pending, (ev[0], seq, ev))
            seq += 1


# -- text pools --------------------------------------------------------------------------

WORDS = (
    "ok", "yes", "no", "maybe", "sure", "thanks", "lol", "haha", "nice", "great", "cool",
    "wait", "what", "why", "how", "when", "where", "today", "tomorrow", "tonight", "later",
    "soon", "now", "meeting", "call", "lunch", "coffee", "deploy", "build", "release",
    "ticket", "bug", "fix", "review", "merge", "branch", "test", "prod", "staging",
    "server", "client", "latency", "socket", "the", "a", "to", "and", "of", "in", "is",
    "it", "for", "on", "with", "that", "this", "just", "can", "do", "we", "you", "I",
    "will", "be", "have", "sounds", "good", "let", "me", "check", "again", "looks", "fine",
    "see", "you", "there", "running", "late", "almost", "done", "ship", "it", "weekend",
    "plans", "game", "score", "anyone", "else", "agreed", "done", "pushed", "link", "doc",
    "slides",
)

PHRASES = (
    "¿Qué tal?", "¡Buenísimo!", "Schönes Wochenende!", "Grüße aus München",
    "ça marche", "très bien, merci", "お疲れ様です", "了解しました", "好的，没问题",
    "明天见", "Привет, как дела?", "Спасибо!", "مرحبا", "שלום", "नमस्ते", "안녕하세요",
    "Olá, tudo bem?", "Dziękuję", "Καλημέρα", "Tschüss", "cześć", "ευχαριστώ",
)

EMOJI = (
    "😀", "😂", "🤣", "😅", "😍", "🙏", "👍", "👍🏽", "👀", "🎉", "🔥", "💯", "✅", "❤️",
    "🚀", "🤔", "😭", "🙌", "👋🏻", "🍕", "☕", "🐛", "🇩🇪", "🇯🇵", "🇧🇷", "👩‍💻", "🧑🏿‍🚀",
    "👨‍👩‍👧‍👦", "🏳️‍🌈", "✨", "💥", "🥳",
)


def sentence(rng: random.Random) -> str:
    """A chat-like line: Zipf-ish length, sometimes another language, emoji or a newline."""
    n = min(40, max(1, int(rng.lognormvariate(1.6, 0.7))))
    parts = [rng.choice(WORDS) for _ in range(n)]
    roll = rng.random()
    if roll < 0.15:
        parts.insert(rng.randrange(len(parts) + 1), rng.choice(PHRASES))
    if rng.random() < 0.3:
        parts.append("".join(rng.choice(EMOJI) for _ in range(rng.randint(1, 3))))
    line = " ".join(parts)
    if rng.random() < 0.05:
        line += "\n" + " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 8)))
    if rng.random() < 0.04:
        line += f" https://example.com/d/{rng.getrandbits(40):010x}"
    return line[:1].upper() + line[1:]


def ident(rng: random.Random, prefix: str, bits: int = 48) -> str:
    """A random identifier such as ``u_3f9a1c2b7d10``."""
    return f"{prefix}_{rng.getrandbits(bits):0{bits // 4}x}"
