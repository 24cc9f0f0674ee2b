"""A trace the adaptive policy must tell apart: compressible JSON beside random binary blobs.

Shared by the simulator's and the live harness's adaptive tests. Server to client: small
ticker JSON every 10 ms, chat JSON every 40 ms, and ``media.chunk`` messages of 1,800 random
bytes (as encrypted media would be) every 30 ms; client to server: small JSON acks and
``upload.part`` random blobs. Seeded, so every run sees the same bytes.
"""

from __future__ import annotations

import json
import random

from wslab.traces.model import Message, Trace

BLOB_TYPES = ("media.chunk", "upload.part")


def blob_trace(seconds: float = 6.0, seed: int = 3) -> Trace:
    """About 100 messages per second of trace, a third of them random blobs."""
    rng = random.Random(seed)
    msgs: list[Message] = []

    def add(t: float, direction: str, kind: str, payload: bytes, text: bool) -> None:
        msgs.append(Message(round(t, 6), direction, kind, "normal", payload, text))  # type: ignore[arg-type]

    users = [f"user{i}" for i in range(12)]
    words = ["hello", "price", "update", "ready", "meeting", "moved", "to", "the", "room"]
    steps = int(seconds * 1000)
    for ms in range(0, steps, 10):
        t = ms / 1000
        tick = {"type": "tick", "sym": rng.choice(["ABC", "XYZ", "QRS"]),
                "px": round(rng.uniform(99, 101), 2), "qty": rng.randint(1, 500)}
        add(t, "s2c", "ticker", json.dumps(tick).encode(), True)
        if ms % 40 == 0:
            chat = {"type": "chat.message", "room": "general", "user": rng.choice(users),
                    "text": " ".join(rng.choice(words) for _ in range(rng.randint(3, 12)))}
            add(t + 0.002, "s2c", "chat", json.dumps(chat).encode(), True)
        if ms % 30 == 0:
            add(t + 0.004, "s2c", "media.chunk", rng.randbytes(1800), False)
        if ms % 50 == 0:
            add(t + 0.006, "c2s", "ack", json.dumps({"ack": ms, "ok": True}).encode(), True)
        if ms % 70 == 0:
            add(t + 0.008, "c2s", "upload.part", rng.randbytes(900), False)
    msgs.sort(key=lambda m: m.t)
    return Trace(msgs)
