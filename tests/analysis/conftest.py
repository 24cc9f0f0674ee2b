"""Small synthetic traces shared by the analysis tests (built from Message directly)."""

from __future__ import annotations

import json
import random

import pytest

from wslab.traces.model import Message, Trace


def make_trace(kinds: list[tuple[str, str, bytes]]) -> Trace:
    """A trace from (type, dir, payload) triples, 10 ms apart."""
    return Trace([
        Message(i * 0.01, d, t, "normal", p, not p or p[:1] in (b"{", b"["))  # type: ignore[arg-type]
        for i, (t, d, p) in enumerate(kinds)
    ])


def chat_json(rng: random.Random) -> bytes:
    """A repetitive chat-like JSON message."""
    return json.dumps({
        "type": "chat.message", "room": "general", "user": f"user{rng.randint(1, 20)}",
        "text": rng.choice(["hello there", "how are you", "see you soon", "ok"]),
        "meta": {"client": "web", "version": "1.2.3"},
    }).encode()


def random_blob(rng: random.Random, n: int = 400) -> bytes:
    """Incompressible bytes."""
    return rng.randbytes(n)


@pytest.fixture
def mixed_trace() -> Trace:
    """JSON chat (s2c), random blobs (c2s), small ticks (s2c), one rare type."""
    rng = random.Random(7)
    kinds: list[tuple[str, str, bytes]] = []
    for i in range(600):
        r = i % 3
        if r == 0:
            kinds.append(("chat", "s2c", chat_json(rng)))
        elif r == 1:
            kinds.append(("blob", "c2s", random_blob(rng)))
        else:
            tick = {"s": "ABC", "p": round(rng.uniform(99, 101), 2), "v": rng.randint(1, 9)}
            kinds.append(("tick", "s2c", json.dumps(tick).encode()))
    kinds.append(("rare", "c2s", b'{"a": 1}'))
    return make_trace(kinds)
